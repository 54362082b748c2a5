import Foundation

/// A `.safetensors` file (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length N, N bytes of JSON describing each tensor, then the raw data. Every field is
/// validated before any data is read, so a truncated or lying file gives an error, not a crash.
public struct SafetensorsFile: Sendable {
    public struct TensorInfo: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        /// Byte range inside the data section.
        public var begin: Int
        public var end: Int
    }

    public static let elementSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8,
    ]
    /// Header lengths above this are rejected (the format's own reference limit is 100 MB).
    public static let maximumHeaderLength = 100_000_000

    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    public var names: [String] { tensors.keys.sorted() }

    /// Reads and validates a file; the data is memory-mapped, not copied.
    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FlowError("cannot read weight file: \(error.localizedDescription)", in: path)
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        func fail(_ message: String, _ offset: Int) -> FlowError { FlowError(message, in: "\(path) (byte \(offset))") }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes; a safetensors file starts with an 8-byte header length", 0) }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(SafetensorsFile.maximumHeaderLength) else {
            throw fail("header length \(n) exceeds the limit of \(SafetensorsFile.maximumHeaderLength) bytes (not a safetensors file?)", 0)
        }
        guard Int(n) <= data.count - 8 else {
            throw fail("header length \(n) runs past the end of the file (\(data.count) bytes): truncated file", 0)
        }
        let headerLength = Int(n)
        let headerBytes = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any] else {
            throw fail("the header is not a JSON object", 8)
        }
        dataStart = 8 + headerLength
        let dataLength = data.count - dataStart
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ must be an object of strings", 8) }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("__metadata__ value '\(k)' is not a string", 8) }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw fail("tensor '\(name)': entry is not an object", 8) }
            guard let dtype = entry["dtype"] as? String, let size = SafetensorsFile.elementSizes[dtype] else {
                throw fail("tensor '\(name)': dtype \(entry["dtype"].map { "\($0)" } ?? "missing"); expected one of \(SafetensorsFile.elementSizes.keys.sorted().joined(separator: ", "))", 8)
            }
            guard let shapeAny = entry["shape"] as? [Any], let shape = SafetensorsFile.integers(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor '\(name)': shape must be a list of non-negative integers", 8)
            }
            guard let offsetsAny = entry["data_offsets"] as? [Any], let offsets = SafetensorsFile.integers(offsetsAny), offsets.count == 2 else {
                throw fail("tensor '\(name)': data_offsets must be [begin, end]", 8)
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] outside the data section of \(dataLength) bytes (truncated file?)", dataStart + max(0, begin))
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor '\(name)': shape \(shape) overflows", 8) }
                count = product
            }
            let (bytes, tooMany) = count.multipliedReportingOverflow(by: size)
            guard !tooMany, bytes == end - begin else {
                throw fail("tensor '\(name)': shape \(shape) of \(dtype) needs \(tooMany ? "more than 2^63" : String(bytes)) bytes but data_offsets span \(end - begin)", dataStart + begin)
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, begin: begin, end: end)
        }
        // Tensors must tile the data section: no overlap, no holes.
        var cursor = 0
        for (name, info) in tensors.sorted(by: { ($0.value.begin, $0.value.end) < ($1.value.begin, $1.value.end) }) {
            if info.begin < cursor { throw fail("tensor '\(name)' overlaps the previous tensor (begins at \(info.begin), previous ends at \(cursor))", dataStart + info.begin) }
            if info.begin > cursor { throw fail("gap in the data section before tensor '\(name)' (bytes \(cursor)..<\(info.begin) belong to no tensor)", dataStart + cursor) }
            cursor = info.end
        }
        if cursor != dataLength {
            throw fail("data section is \(dataLength) bytes but the tensors cover \(cursor)", dataStart + cursor)
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else { return nil }
            out.append(i)
        }
        return out
    }

    /// The tensor's values converted to Double (floats, bools as 0/1, integers exactly up to 2^53).
    public func values(_ name: String) throws -> [Double] {
        guard let info = tensors[name] else { throw FlowError("no tensor '\(name)'", in: path) }
        let count = info.shape.reduce(1, *)
        return ByteDecoding.decode(data, offset: dataStart + info.begin, count: count, dtype: info.dtype)
    }

    /// Writes tensors as F32 (or F64) with optional string metadata.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Double])], metadata: [String: String] = [:],
                             f64: Bool = false, to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "tensor \(t.name): values do not fill shape")
            let bytes = ByteDecoding.encode(t.values, f64: f64)
            header[t.name] = ["dtype": f64 ? "F64" : "F32", "shape": t.shape, "data_offsets": [body.count, body.count + bytes.count]] as [String: Any]
            body.append(bytes)
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        ByteDecoding.appendLittleEndian(UInt64(json.count), to: &out)
        out.append(json)
        out.append(body)
        do { try out.write(to: URL(fileURLWithPath: path)) } catch {
            throw FlowError("cannot write: \(error.localizedDescription)", in: path)
        }
    }
}
