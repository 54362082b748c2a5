import Foundation

/// A NumPy `.npy` array (format versions 1.0–3.0): little-endian f32 or f64, C order.
/// Values are held as Double; `isF64` records the file's element type.
public struct NpyArray: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Double]
    public var isF64: Bool

    public init(shape: [Int], values: [Double], isF64: Bool = false) {
        self.shape = shape
        self.values = values
        self.isF64 = isF64
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // "\x93NUMPY"

    public static func read(path: String) throws -> NpyArray {
        try parse(try contents(of: path), path: path)
    }

    /// The file's bytes, or an error that names it.
    private static func contents(of path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw FlowError("cannot read .npy file: \(error.localizedDescription)", in: path)
        }
    }

    public static func parse(_ data: Data, path: String) throws -> NpyArray {
        let layout = try layout(data, path: path)
        let values = ByteDecoding.decode(data, offset: layout.dataStart, count: layout.count, dtype: layout.isF64 ? "F64" : "F32")
        return NpyArray(shape: layout.shape, values: values, isF64: layout.isF64)
    }

    /// A model input as f32 straight from the file: '<f4' data copied as it is, '<f8' rounded
    /// once (no f64 array in between, as `read` makes); a value that is not a finite f32 is an
    /// error that names its flat index and byte offset.
    public static func readFloat32(path: String) throws -> (shape: [Int], values: [Float]) {
        let data = try contents(of: path)
        let layout = try layout(data, path: path)
        let count = layout.count
        var values = [Float](repeating: 0, count: count)
        let firstBad: Int? = values.withUnsafeMutableBufferPointer { out in
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int? in
                let base = raw.baseAddress!.advanced(by: layout.dataStart)
                if layout.isF64 {
                    for i in 0..<count {
                        out[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    }
                } else {
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(start: base, count: 4 * count))   // x86-64: little-endian
                }
                // one pass, no closures: a debug build checks 6.4 M values in a fraction of a second
                for i in 0..<count where !out[i].isFinite { return i }
                return nil
            }
        }
        if let i = firstBad {
            let bytes = layout.isF64 ? 8 : 4
            let original = ByteDecoding.decode(data, offset: layout.dataStart + bytes * i, count: 1, dtype: layout.isF64 ? "F64" : "F32")[0]
            throw FlowError("value \(original) at flat index \(i) is not a finite f32", in: "\(path) (byte \(layout.dataStart + bytes * i))")
        }
        return (layout.shape, values)
    }

    /// Writes f32 `values` of `shape` as a version 1.0 '<f4' file (no f64 array in between).
    public static func writeFloat32(_ values: [Float], shape: [Int], path: String) throws {
        var out = header(shape: shape, isF64: false)
        values.withUnsafeBytes { out.append(contentsOf: $0) }   // x86-64: little-endian
        try store(out, path: path)
    }

    /// The shape, element type and data of a .npy file, checked against its size.
    private static func layout(_ data: Data, path: String) throws -> (shape: [Int], isF64: Bool, dataStart: Int, count: Int) {
        let bytes = [UInt8](data.prefix(12))   // the header's bytes are read below; the data stays in `data`
        func fail(_ message: String, _ offset: Int) -> FlowError { FlowError(message, in: "\(path) (byte \(offset))") }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail("not a .npy file: it must start with \\x93NUMPY", 0)
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header", 8) }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy version \(major).\(bytes[7]); expected 1.0, 2.0 or 3.0", 6)
        }
        guard headerStart + headerLength <= data.count else {
            throw fail("header of \(headerLength) bytes runs past the end of the file (\(data.count) bytes)", headerStart)
        }
        guard let header = String(bytes: data.dropFirst(headerStart).prefix(headerLength), encoding: .utf8) else {
            throw fail("header is not text", headerStart)
        }
        guard let descr = field("descr", in: header) else { throw fail("header has no 'descr'", headerStart) }
        let isF64: Bool
        switch descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) {
        case "<f4", "=f4", "f4": isF64 = false
        case "<f8", "=f8", "f8": isF64 = true
        case let other: throw fail("element type \(other) is not supported; expected little-endian float32 '<f4' or float64 '<f8'", headerStart)
        }
        guard let order = field("fortran_order", in: header) else { throw fail("header has no 'fortran_order'", headerStart) }
        guard order.trimmingCharacters(in: .whitespaces) == "False" else {
            throw fail("Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)", headerStart)
        }
        guard let shapeText = field("shape", in: header) else { throw fail("header has no 'shape'", headerStart) }
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let d = Int(trimmed), d >= 0 else { throw fail("bad shape \(shapeText)", headerStart) }
            shape.append(d)
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape \(shape) overflows", headerStart) }
            count = p
        }
        let dataStart = headerStart + headerLength
        let size = isF64 ? 8 : 4
        let (needed, tooMany) = count.multipliedReportingOverflow(by: size)
        guard !tooMany, data.count - dataStart == needed else {
            throw fail("shape \(shape) needs \(tooMany ? "more than 2^63" : String(needed)) data bytes but the file has \(data.count - dataStart)", dataStart)
        }
        return (shape, isF64, dataStart, count)
    }

    /// The text after `'key':` up to the next top-level comma (tuples kept whole).
    static func field(_ key: String, in header: String) -> String? {
        guard let range = header.range(of: "'\(key)':") ?? header.range(of: "\"\(key)\":") else { return nil }
        var depth = 0
        var out = ""
        for c in header[range.upperBound...] {
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if (c == "," && depth == 0) || c == "}" { break }
            out.append(c)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    /// Writes a version 1.0 file, header padded so the data starts on a 64-byte boundary.
    public func write(path: String) throws {
        var out = NpyArray.header(shape: shape, isF64: isF64)
        out.append(ByteDecoding.encode(values, f64: isF64))
        try NpyArray.store(out, path: path)
    }

    /// Writes a whole file's bytes, or an error that names it.
    private static func store(_ bytes: Data, path: String) throws {
        do { try bytes.write(to: URL(fileURLWithPath: path)) } catch {
            throw FlowError("cannot write .npy file: \(error.localizedDescription)", in: path)
        }
    }

    /// The magic, version 1.0 and header of a C-order file, padded so the data starts on a 64-byte
    /// boundary.
    static func header(shape: [Int], isF64: Bool) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(isF64 ? "<f8" : "<f4")', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data(NpyArray.magic + [1, 0])
        ByteDecoding.appendLittleEndian(UInt16(header.utf8.count), to: &out)
        out.append(header.data(using: .utf8)!)
        return out
    }
}
