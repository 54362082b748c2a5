import CBLAS
import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowSolvers
import Foundation

/// Compiled vs interpreted, in one run: log_prob and sample of every reference model at batch 1
/// and 256; the median of repeated timed calls after a warm-up. Run in release: `make bench`.
struct Row {
    var model: String
    var pass: String
    var batch: Int
    var interpreted: Double
    var compiled: Double
}

func median(_ seconds: [Double]) -> Double { seconds.sorted()[seconds.count / 2] }

/// Median seconds per call: repeats until ~0.3 s have been spent (at least 5, at most 200).
func time(_ body: () throws -> Void) rethrows -> Double {
    try body()   // warm-up
    var samples: [Double] = []
    let budget = Date().addingTimeInterval(0.3)
    while samples.count < 5 || (Date() < budget && samples.count < 200) {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let keys = CommandLine.arguments.count > 1 ? Array(CommandLine.arguments.dropFirst())
    : ["c_realnvp2", "c_realnvp64", "b_maf", "a_nsf", "d_glow", "e_fm", "f_meanflow", "g_tarflow", "g_tarflow_jacobi", "g_tarflow_jacobi4"]
/// Variants of a reference model: the same spec and weights with another inverse mode (TarFlow:
/// the KV-cached sequential decoding of the spec vs Jacobi iteration over the whole sequence).
let variants: [String: (String, CausalInverseMode)] = [
    "g_tarflow_jacobi": ("g_tarflow", .jacobi(tolerance: 1e-6)), "g_tarflow_jacobi4": ("g_tarflow", .jacobi(tolerance: 1e-6, chunk: 4)),
]
/// Velocity models: the sampler each is timed with (the 8-step Euler and 1-step MeanFlow).
let samplers: [String: SamplerSettings] = ["e_fm": SamplerSettings(method: .euler, steps: 8), "f_meanflow": SamplerSettings(method: .meanflow, steps: 1)]
/// Samplers run by the solver over the network (compiled `flowc_field` vs the interpreter's):
/// adaptive dopri5 (rtol = atol = 1e-5), and the 8-step Euler again to show the solver's overhead
/// next to the compiled whole loop.
let solverRuns: [String: [SamplerSettings]] = ["e_fm": [SamplerSettings(method: .dopri5, steps: 1), SamplerSettings(method: .euler, steps: 8)]]
print("OpenBLAS core: \(String(cString: openblas_get_corename())), threads: \(ProcessInfo.processInfo.activeProcessorCount)")
var rows: [Row] = []
for key in keys {
    let (file, mode) = variants[key] ?? (key, nil)
    let weights = root.appendingPathComponent("Tests/Fixtures/\(file).safetensors").path
    var model = try Elaborator.elaborate(path: root.appendingPathComponent("examples/reference/\(file).flow").path, options: .init(weightsPath: weights))
    if let mode { model.causalInverse = mode }
    let store = try WeightStore(path: weights)
    let so = NSTemporaryDirectory() + "flowc-bench-\(key).so"
    let compileStart = Date()
    try ArtifactCompiler.compile(model, options: .init(sampler: samplers[key]), output: so)
    print(String(format: "%@: compiled in %.2f s", key, Date().timeIntervalSince(compileStart)))
    let compiled = try CompiledModel(path: so)
    let hasLogProb = EntryPoints.entries(of: model).contains(.logProb)
    let logProb = hasLogProb ? try Interpreter(graph: try EntryPoints.graph(.logProb, of: model), weights: store, precision: .f32) : nil
    let sample = try Interpreter(graph: try EntryPoints.graph(.sample, of: model, sampler: samplers[key]), weights: store, precision: .f32)
    let samplePass = samplers[key].map { "sample \($0.method.rawValue) \($0.steps) (compiled loop)" } ?? "sample"
    let interpretedField = model.kind == .flow ? nil : try InterpretedField(model: model)
    let input = model.flow.type(of: model.flow.inputs[0]), latent = model.flow.type(of: model.flow.outputs[0])
    if let mode, case .jacobi = mode {
        let statistics = RunStatistics()
        var probe = sample
        probe.statistics = statistics
        _ = try probe.run([Tensor(shape: latent.shape(batch: 1), values: Philox.normals(seed: 2, firstRow: 0, rows: 1, perRow: latent.elementsPerSample))])
        print("\(key): Jacobi sweeps per block (batch 1): \(statistics.sweeps)")
    }
    for batch in key.hasPrefix("g_tarflow") ? [1, 64, 256] : [1, 256] {
        let x = Philox.normals(seed: 1, firstRow: 0, rows: batch, perRow: input.elementsPerSample)
        let xf = x.map { Float($0) }
        let xt = Tensor(shape: input.shape(batch: batch), values: x)
        let noise = Tensor(shape: latent.shape(batch: batch), values: Philox.normals(seed: 2, firstRow: 0, rows: batch, perRow: latent.elementsPerSample))
        if let logProb {
            rows.append(Row(model: key, pass: "log_prob", batch: batch,
                            interpreted: try time { _ = try logProb.run([xt]) }, compiled: try time { _ = try compiled.logProb(xf) }))
        }
        rows.append(Row(model: key, pass: samplePass, batch: batch,
                        interpreted: try time { _ = try sample.run([noise]) }, compiled: try time { _ = try compiled.sample(count: batch, seed: 2) }))
        for settings in solverRuns[key] ?? [] {
            let noiseF = noise.values.map { Float($0) }
            var steps = ""
            let interpreted = try time { _ = try ODESolve.sample(interpretedField!, noise: noiseF, settings: settings) }
            let compiledTime = try time { steps = try compiled.solve(noise: noiseF, settings: settings).report.summary }
            let name = settings.method == .dopri5 ? "sample dopri5 (\(steps))" : "sample \(settings.method.rawValue) \(settings.steps) (solver)"
            rows.append(Row(model: key, pass: name, batch: batch, interpreted: interpreted, compiled: compiledTime))
        }
    }
}
print("\n| model | pass | batch | interpreted µs | compiled µs | speed-up |\n|---|---|---|---|---|---|")
for r in rows {
    print(String(format: "| %@ | %@ | %d | %.1f | %.1f | %.1fx |", r.model, r.pass, r.batch, r.interpreted * 1e6, r.compiled * 1e6, r.interpreted / r.compiled))
}
