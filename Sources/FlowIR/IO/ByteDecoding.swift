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

    /// Decodes `count` elements of `dtype` starting at `offset` in `data`: one loop per element
    /// type, the type chosen once (a 25 MB .npy took 2 s in a debug build with the choice per
    /// element).
    static func decode(_ data: Data, offset: Int, count: Int, dtype: String) -> [Double] {
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress!.advanced(by: offset)
            func each<T: FixedWidthInteger>(_: T.Type, _ convert: (T) -> Double) -> [Double] {
                [Double](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = convert(T(littleEndian: base.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))) }
                    initialized = count
                }
            }
            switch dtype {
            case "F32":   // the common case, without generics (which a debug build does not specialise)
                return [Double](unsafeUninitializedCapacity: count) { out, initialized in
                    let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
                    defer { floats.deallocate() }
                    UnsafeMutableRawBufferPointer(floats).copyMemory(from: UnsafeRawBufferPointer(start: base, count: 4 * count))   // x86-64: little-endian
                    for i in 0..<count { out[i] = Double(floats[i]) }
                    initialized = count
                }
            case "F64": return each(UInt64.self) { Double(bitPattern: $0) }
            case "F16": return each(UInt16.self, half)
            case "BF16": return each(UInt16.self) { Double(Float(bitPattern: UInt32($0) << 16)) }
            case "BOOL", "U8": return each(UInt8.self) { Double($0) }
            case "I8": return each(Int8.self) { Double($0) }
            case "I16": return each(Int16.self) { Double($0) }
            case "I32": return each(Int32.self) { Double($0) }
            case "I64": return each(Int64.self) { Double($0) }
            default: fatalError("dtype \(dtype) was validated")
            }
        }
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    /// Encodes values as F32 or F64 little-endian bytes, into one buffer of the final size.
    static func encode(_ values: [Double], f64: Bool) -> Data {
        var data = Data(count: values.count * (f64 ? 8 : 4))
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            values.withUnsafeBufferPointer { values in
                if f64 {
                    for i in 0..<values.count { raw.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
                } else {
                    for i in 0..<values.count { raw.storeBytes(of: Float(values[i]).bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                }
            }
        }
        return data
    }
}
