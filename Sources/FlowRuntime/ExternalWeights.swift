import Foundation

/// The weights of a model compiled with --external-weights, read from its .safetensors file:
/// the file's size and FNV-1a 64 checksum must be the ones recorded at compile time, and every
/// tensor the model lists must be there as float32 with the recorded shape. The data stays
/// memory-mapped; the table points into it.
final class ExternalWeights: @unchecked Sendable {
    struct Manifest: Decodable {
        struct Tensor: Decodable { var name: String; var shape: [Int] }
        var file: String
        var size: Int
        var checksum: String
        var tensors: [Tensor]
    }

    let data: Data
    /// Pointers to each tensor's first float, in manifest order.
    let table: UnsafeMutablePointer<UnsafePointer<Float>?>

    init(path: String, manifest: Manifest) throws {
        func fail(_ why: String) -> RuntimeError { RuntimeError(message: "\(path): \(why)") }
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail("external weight file not found (the model was compiled with weights '\(manifest.file)'; pass its path)")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw fail("cannot read the weight file: \(error.localizedDescription)")
        }
        guard data.count == manifest.size else {
            throw fail("weight file has \(data.count) bytes, the model was compiled with a \(manifest.size)-byte '\(manifest.file)'")
        }
        let hash = WeightChecksum.fnv1a64(data)
        guard String(hash, radix: 16) == manifest.checksum else {
            throw fail("weight file checksum \(String(hash, radix: 16)) differs from the \(manifest.checksum) of the weights the model was compiled with")
        }
        // header: 8-byte length, JSON (already validated as a whole by the checksum; parsed for offsets)
        guard data.count >= 8 else { throw fail("not a safetensors file") }
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard n > 0, 8 + n <= data.count,
              let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw fail("the safetensors header is not readable")
        }
        self.data = data
        table = .allocate(capacity: max(manifest.tensors.count, 1))
        let base = data.withUnsafeBytes { $0.baseAddress! }
        for (i, tensor) in manifest.tensors.enumerated() {
            guard let entry = header[tensor.name] as? [String: Any], entry["dtype"] as? String == "F32",
                  let shape = entry["shape"] as? [Int], shape == tensor.shape,
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2, (8 + n + offsets[0]) % 4 == 0 else {
                table.deallocate()
                throw fail("tensor '\(tensor.name)' is missing or is not float32 \(tensor.shape)")
            }
            table[i] = UnsafePointer(base.advanced(by: 8 + n + offsets[0]).assumingMemoryBound(to: Float.self))
        }
    }

    deinit { table.deallocate() }
}
