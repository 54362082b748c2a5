import FlowCodegen
import FlowIR
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowSolvers
import Foundation

/// `flowc-bench --compiled MODEL...`: compiled code only (no interpreter, no PyTorch), log_prob
/// and sample at batch 1 and 256 on 1 and 2 threads, and the compile time: the quick loop for
/// profiling a change.
enum CompiledOnly {
    /// `sources`: the spec and weights of a variant key; `modes`: its causal inverse mode.
    static func run(keys: [String], root: URL, samplers: [String: SamplerSettings], sources: [String: String], modes: [String: CausalInverseMode],
                    time: (() throws -> Void) throws -> Double) throws {
        let fixtures = root.appendingPathComponent("Tests/Fixtures")
        print("| model | pass | batch | 1 thread µs | 2 threads µs |")
        print("|---|---|---:|---:|---:|")
        for key in keys {
            let file = sources[key] ?? key
            let weights = try BenchmarkWeights.path(for: file, fixtures: fixtures)
            var model = try Elaborator.elaborate(path: root.appendingPathComponent("examples/reference/\(file).flow").path, options: .init(weightsPath: weights))
            if let mode = modes[key] { model.causalInverse = mode }
            let so = NSTemporaryDirectory() + "flowc-bench-\(key).so"
            let compileStart = Date()
            try ArtifactCompiler.compile(model, options: .init(sampler: samplers[key]), output: so)
            print(String(format: "| %@ | compile (s) | | %.2f | |", key, Date().timeIntervalSince(compileStart)))
            let single = try CompiledModel(path: so, threads: 1), double = try CompiledModel(path: so, threads: 2)
            let width = model.flow.type(of: model.flow.inputs[0]).elementsPerSample
            let hasLogProb = EntryPoints.entries(of: model).contains(.logProb)
            for batch in [1, 256] {
                let x = Philox.normals(seed: 1, firstRow: 0, rows: batch, perRow: width).map { Float($0) }
                if hasLogProb {
                    let one = try time { _ = try single.logProb(x) }, two = try time { _ = try double.logProb(x) }
                    print(String(format: "| %@ | log_prob | %d | %.1f | %.1f |", key, batch, one * 1e6, two * 1e6))
                }
                let one = try time { _ = try single.sample(count: batch, seed: 2) }, two = try time { _ = try double.sample(count: batch, seed: 2) }
                print(String(format: "| %@ | sample | %d | %.1f | %.1f |", key, batch, one * 1e6, two * 1e6))
            }
        }
    }
}
