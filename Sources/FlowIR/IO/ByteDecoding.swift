import Foundation

/// Little-endian element decoding shared by the safetensors and .npy readers.
enum ByteDecoding {
    /// IEEE half precision bits to Double (handles subnormals, Inf and NaN).
    static func half(_ bits: UInt16) -> Double {
        let sign: Double = (bits & 0x8000) != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Double(bits & 0x3FF)
        if exponent == 0 { return sign * fraction * 0x1p-24 }
        if exponent == 31 { return fraction == 0 ? sign * .infinity : .nan }
        return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
    }

    /// Decodes `count` elements of `dtype` starting at `offset` in `data`.
    static func decode(_ data: Data, offset: Int, count: Int, dtype: String) -> [Double] {
        var out = [Double](repeating: 0, count: count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress!.advanced(by: offset)
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
                T(littleEndian: base.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            for i in 0..<count {
                switch dtype {
                case "F32": out[i] = Double(Float(bitPattern: load(UInt32.self, i)))
                case "F64": out[i] = Double(bitPattern: load(UInt64.self, i))
                case "F16": out[i] = half(load(UInt16.self, i))
                case "BF16": out[i] = Double(Float(bitPattern: UInt32(load(UInt16.self, i)) << 16))
                case "BOOL", "U8": out[i] = Double(load(UInt8.self, i))
                case "I8": out[i] = Double(load(Int8.self, i))
                case "I16": out[i] = Double(load(Int16.self, i))
                case "I32": out[i] = Double(load(Int32.self, i))
                case "I64": out[i] = Double(load(Int64.self, i))
                default: fatalError("dtype \(dtype) was validated")
                }
            }
        }
        return out
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    /// Encodes values as F32 or F64 little-endian bytes.
    static func encode(_ values: [Double], f64: Bool) -> Data {
        var data = Data(capacity: values.count * (f64 ? 8 : 4))
        for v in values {
            if f64 { appendLittleEndian(v.bitPattern, to: &data) } else { appendLittleEndian(Float(v).bitPattern, to: &data) }
        }
        return data
    }
}
