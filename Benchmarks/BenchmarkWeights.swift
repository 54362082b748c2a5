import FlowIR
import FlowRandom
import Foundation

/// The weights each model is timed with. The fixtures' sizes are the benchmark sizes of issue 8
/// (`models.BENCH`) except RealNVP, whose fixture has hidden width 128 where the peers were timed
/// with 256: its benchmark weights have the fixture's names and structure with every 128 → 256,
/// values b·tanh(n), n standard normal from a fixed Philox stream, |w| < b = 1/√fan_in (the scale
/// of PyTorch's default Linear init). The fixture's x and
/// noise stay (their shapes do not change; the PyTorch script reads shapes from them).
enum BenchmarkWeights {
    static let widened: [String: (from: Int, to: Int)] = ["c_realnvp64": (128, 256)]

    static func path(for file: String, fixtures: URL) throws -> String {
        let fixture = fixtures.appendingPathComponent("\(file).safetensors").path
        guard let (from, to) = widened[file] else { return fixture }
        let source = try SafetensorsFile(path: fixture)
        var tensors: [(name: String, shape: [Int], values: [Double])] = []
        var stream: UInt64 = 0
        for name in source.names {
            let shape = source.tensors[name]!.shape
            if name == "x" || name == "noise" { tensors.append((name, shape, try source.values(name))); continue }
            guard name.hasPrefix("w.") else { continue }
            let wide = shape.map { $0 == from ? to : $0 }
            if name.hasSuffix(".weight") || name.hasSuffix(".bias") {
                let fanIn = name.hasSuffix(".weight") ? wide[1] : (source.tensors[name.replacingOccurrences(of: ".bias", with: ".weight")]?.shape[1]).map { $0 == from ? to : $0 } ?? 1
                let count = wide.reduce(1, *), bound = 1 / Double(fanIn).squareRoot()
                stream += 1
                let uniform = Philox.normals(seed: 99, firstRow: Int(stream), rows: 1, perRow: count).map { bound * tanh($0) }
                tensors.append((name, wide, uniform))
            } else {
                tensors.append((name, shape, try source.values(name)))   // masks and orders keep their sizes
            }
        }
        let path = NSTemporaryDirectory() + "flowc-bench-\(file)-hidden\(to).safetensors"
        try SafetensorsFile.write(tensors, to: path)
        return path
    }
}
