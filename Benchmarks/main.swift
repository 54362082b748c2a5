import CBLAS
import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowSolvers
import Foundation

/// Compiled vs interpreted vs PyTorch eager vs ONNX Runtime, in one run: log_prob and sample (from
/// given noise) at batch 1 and 256 of every reference model and of the trained example models
/// (these without ONNX Runtime) (compiled, eager and ONNX Runtime: the median of 3 rounds over
/// all rows, each the median of calls after 3 warm-up calls, the peers' method, their rounds
/// alternating; interpreted: one round), next to the best peer of issue 8's table (another run);
/// then the machine's FMA peak and the GEMM rows' GFLOP/s, compile times, the base noise's
/// time (flowc_noise against libm), and heap allocations inside the entry points.
/// Run in release: `make bench`.
struct Row {
    var model: String
    var pass: String
    var batch: Int
    var interpreted: Double
    var compiled: Double
    /// the key of PyTorch's and the peers' timings: "model pass batch"
    var peerKey: String { "\(model) \(pass.hasPrefix("sample") ? "sample" : pass) \(batch)" }
    /// Whether the peers ran this pass: they ran the compiled-loop samplers, not the solver's.
    var peersRanIt: Bool { !pass.contains("solver") && !pass.contains("dopri") }
}

func median(_ seconds: [Double]) -> Double { seconds.sorted()[seconds.count / 2] }

/// Rounds over all rows of the compiled, eager and ONNX Runtime timings (the peers' runs took 3).
let rounds = 3

/// Median seconds per call: repeats until ~0.3 s have been spent (at least 7 calls), the peers'
/// method (results-peers.md). (Until 2026-12-06 at most 200 calls: a batch-1 call of a few µs
/// was then timed in its first ~1 ms, while the second core's worker and vCPU woke from idle —
/// f_meanflow's sample 5.4–7.9 µs in its first 200 calls against 4.0–6.1 over 50 000.)
func time(_ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<3 { try body() }   // warm-up, as the peers' runs
    var samples: [Double] = []
    let budget = Date().addingTimeInterval(0.3)
    while samples.count < 7 || Date() < budget {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
/// The trained example models (examples/*/): their specs with the weights their `weights` lines
/// name. (examples/default/realnvp2.flow is c_realnvp2's spec with its fixture's weights.)
let examples: KeyValuePairs = ["two_moons_realnvp": "examples/two_moons/realnvp.flow", "two_moons_nsf": "examples/two_moons/nsf.flow",
                               "two_moons_fm": "examples/two_moons/fm.flow", "two_moons_meanflow": "examples/two_moons/meanflow.flow",
                               "digits_glow": "examples/digits/glow.flow", "digits_tarflow": "examples/digits/tarflow.flow"]
let exampleSpecs = Dictionary(uniqueKeysWithValues: examples.map { ($0.key, $0.value) })
/// The examples' sampling temperatures (examples/digits/README.md): their samplers start from
/// noise of this standard deviation (at 1 a trained TarFlow's inverse overflows for some rows).
let temperatures = ["digits_glow": 0.7, "digits_tarflow": 0.8]
/// The examples' log_prob inputs: rows of their held-out data (standard normal pixels are far
/// outside what a trained image flow maps, and its exponentials overflow).
let heldOut = ["two_moons_realnvp": "examples/two_moons/heldout.npy", "two_moons_nsf": "examples/two_moons/heldout.npy",
               "digits_glow": "examples/digits/heldout_glow.npy", "digits_tarflow": "examples/digits/heldout.npy"]
let allKeys = ["c_realnvp2", "c_realnvp64", "b_maf", "a_nsf", "d_glow", "e_fm", "e_fm_rk4", "f_meanflow", "g_tarflow", "g_tarflow_jacobi", "g_tarflow_jacobi4"]
    + examples.map(\.key)
let usage = "usage: flowc-bench [--compiled] [MODEL...]   (default: all; models: \(allKeys.joined(separator: " ")))"
let requested = CommandLine.arguments.dropFirst().filter { $0 != "--compiled" }
if let unknown = requested.first(where: { !allKeys.contains($0) }) {
    FileHandle.standardError.write(Data((unknown == "--help" || unknown == "-h" ? usage : "flowc-bench: unknown model '\(unknown)'\n\(usage)").utf8 + [10]))
    exit(unknown == "--help" || unknown == "-h" ? 0 : 2)
}
let keys = CommandLine.arguments.count > 1 && CommandLine.arguments[1] != "--compiled" ? Array(requested) : allKeys
/// Variants of a reference model: the same spec and weights with another inverse mode (TarFlow:
/// the KV-cached sequential decoding of the spec vs Jacobi iteration over the whole sequence) or
/// another compiled sampler.
let variantSources = ["g_tarflow_jacobi": "g_tarflow", "g_tarflow_jacobi4": "g_tarflow", "e_fm_rk4": "e_fm"]
let inverseModes: [String: CausalInverseMode] = ["g_tarflow_jacobi": .jacobi(tolerance: 1e-6), "g_tarflow_jacobi4": .jacobi(tolerance: 1e-6, chunk: 4)]
/// Velocity models: the sampler each is timed with (the issue's 8-step Euler and RK4, and 1-step MeanFlow).
let samplers: [String: SamplerSettings] = ["e_fm": SamplerSettings(method: .euler, steps: 8), "e_fm_rk4": SamplerSettings(method: .rk4ThreeEighths, steps: 8),
                                           "f_meanflow": SamplerSettings(method: .meanflow, steps: 1),
                                           "two_moons_fm": SamplerSettings(method: .rk4ThreeEighths, steps: 8), "two_moons_meanflow": SamplerSettings(method: .meanflow, steps: 1)]
/// Samplers run by the solver over the network (compiled `flowc_field` vs the interpreter's):
/// adaptive dopri5 (rtol = atol = 1e-5), and the 8-step Euler again to show the solver's overhead
/// next to the compiled whole loop.
let solverRuns: [String: [SamplerSettings]] = ["e_fm": [SamplerSettings(method: .dopri5, steps: 1), SamplerSettings(method: .euler, steps: 8)]]
if CommandLine.arguments.dropFirst().first == "--compiled" {
    try CompiledOnly.run(keys: Array(CommandLine.arguments.dropFirst(2)), root: root, samplers: samplers, sources: variantSources, modes: inverseModes, time: time)
    exit(0)
}
// The interpreter's sgemm runs on one OpenBLAS thread: OpenBLAS's idle threads spin after each
// call and took the second core from the compiled code timed next (e_fm's batch-1 sample 30 →
// 69 µs after two models' interpreter runs).
openblas_set_num_threads(1)
/// The FMA peak is measured at the start and at the end of the run, the best kept (a shared
/// VM's slow phases come and go within the bench's minutes).
let peakAtStart = ExternalTools.fmaPeak()
print("OpenBLAS core: \(String(cString: openblas_get_corename())) (sgemm runs only for products without a packed weight; one thread), threads: \(ProcessInfo.processInfo.activeProcessorCount)")
let fixtures = root.appendingPathComponent("Tests/Fixtures")
var rows: [Row] = []
var compileSeconds: [(String, Double)] = []
/// The `flowc compile` arguments of each reference compile the issue bounds (IssueGoals.compiledModels).
var compileArguments: [(String, [String])] = []
var artifacts: [(String, String)] = []
var weightFiles: [(String, String)] = []
/// f32 flops per sample of the dense products (2·N·K per linear weight, times the network
/// evaluations per call), for the GEMM-bound rows.
var denseFlops: [String: Double] = [:]
/// Each row's compiled call (rows[i] ↔ compiledCalls[i]), timed again in the later rounds.
var compiledCalls: [() throws -> Void] = []
for key in keys {
    let (file, mode) = (variantSources[key] ?? key, inverseModes[key])
    let spec = root.appendingPathComponent(exampleSpecs[key] ?? "examples/reference/\(file).flow").path
    var model = try Elaborator.elaborate(path: spec, options: .init(weightsPath: exampleSpecs[key] == nil ? try BenchmarkWeights.path(for: file, fixtures: fixtures) : nil))
    guard let weights = model.weightsPath else { fatalError("every benchmarked spec has weights") }
    if mode == nil { weightFiles.append((key, weights)) }   // PyTorch has one inverse, and a sampler per key
    if let mode { model.causalInverse = mode }
    let store = try WeightStore(path: weights)
    let so = NSTemporaryDirectory() + "flowc-bench-\(key).so"
    let compileStart = Date()
    try ArtifactCompiler.compile(model, options: .init(sampler: samplers[key]), output: so)
    compileSeconds.append((key, Date().timeIntervalSince(compileStart)))
    if IssueGoals.compiledModels.contains(key) {
        let sampler = samplers[key].map { ["--method", $0.method.rawValue, "--steps", String($0.steps)] } ?? []
        compileArguments.append((key, [spec, "--weights", weights, "-o", NSTemporaryDirectory() + "flowc-bench-shell-\(key).so"] + sampler))
    }
    artifacts.append((key, so))
    if key == "c_realnvp64" || file == "e_fm" {
        let file = try SafetensorsFile(path: weights)
        let perEvaluation = file.names.filter { $0.hasSuffix(".weight") && file.tensors[$0]!.shape.count == 2 }.map { 2.0 * Double(file.tensors[$0]!.shape.reduce(1, *)) }.reduce(0, +)
        denseFlops[key] = perEvaluation * Double(samplers[key].map { $0.steps * $0.method.evaluationsPerStep } ?? 1)
    }
    let compiled = try CompiledModel(path: so)
    // a sampler variant has the same log_prob as its model: timed once, there
    let hasLogProb = EntryPoints.entries(of: model).contains(.logProb) && (mode != nil || variantSources[key] == nil)
    let logProb = hasLogProb ? try Interpreter(graph: try EntryPoints.graph(.logProb, of: model, weights: store), weights: store, precision: .f32) : nil
    let sample = try Interpreter(graph: try EntryPoints.graph(.sample, of: model, weights: store, sampler: samplers[key]), weights: store, precision: .f32)
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
    let data = try heldOut[key].map { try NpyArray.read(path: root.appendingPathComponent($0).path).values }
    for batch in key.hasPrefix("g_tarflow") ? [1, 64, 256] : [1, 256] {
        let x = data.map { Array($0.prefix(batch * input.elementsPerSample)) } ?? Philox.normals(seed: 1, firstRow: 0, rows: batch, perRow: input.elementsPerSample)
        let xf = x.map { Float($0) }
        let xt = Tensor(shape: input.shape(batch: batch), values: x)
        let temperature = temperatures[key] ?? 1
        let noise = Tensor(shape: latent.shape(batch: batch), values: Philox.normals(seed: 2, firstRow: 0, rows: batch, perRow: latent.elementsPerSample).map { temperature * $0 })
        // samples from given noise, as PyTorch and the peers are timed (drawing it is not part
        // of their calls either; `flowc sample` draws it with Philox on the worker threads)
        let noiseFloats = noise.values.map { Float($0) }
        if let logProb {
            let call = { _ = try compiled.logProb(xf) }
            rows.append(Row(model: key, pass: "log_prob", batch: batch, interpreted: try time { _ = try logProb.run([xt]) }, compiled: try time(call)))
            compiledCalls.append(call)
        }
        let call = { _ = try compiled.sample(noise: noiseFloats) }
        rows.append(Row(model: key, pass: samplePass, batch: batch, interpreted: try time { _ = try sample.run([noise]) }, compiled: try time(call)))
        compiledCalls.append(call)
        for settings in solverRuns[key] ?? [] {
            let noiseF = noise.values.map { Float($0) }
            var steps = ""
            let interpreted = try time { _ = try ODESolve.sample(interpretedField!, noise: noiseF, settings: settings) }
            let compiledTime = try time { steps = try compiled.solve(noise: noiseF, settings: settings).report.summary }
            let name = settings.method == .dopri5 ? "sample dopri5 (\(steps))" : "sample \(settings.method.rawValue) \(settings.steps) (solver)"
            rows.append(Row(model: key, pass: name, batch: batch, interpreted: interpreted, compiled: compiledTime))
            compiledCalls.append { _ = try compiled.solve(noise: noiseF, settings: settings) }
        }
    }
}
// Every compiled, eager, ONNX Runtime and JAX time is the median of 3 rounds over all rows (each
// round a median of calls), the peers' method (results-peers.md), and the rounds alternate —
// Flowc's, then eager's, ONNX Runtime's and JAX's, three times — so that a slow phase of this
// shared machine moves one round of each, not all of one side of a ratio.
var roundTimes = compiledCalls.map { _ in [Double]() }
/// The peers other than eager run the reference models only (the examples have no ports there).
let referenceWeightFiles = weightFiles.filter { exampleSpecs[$0.0] == nil }
var eagerRounds: [[String: Double]] = [], onnxRounds: [[String: Double]] = [], jaxRounds: [[String: Double]] = []
for round in 0..<rounds {
    if round > 0 {
        for (i, call) in compiledCalls.enumerated() { roundTimes[i].append(try time(call)) }
    }
    if let e = ExternalTools.timings(.eager, weightFiles, batches: [1, 256], rounds: 1) { eagerRounds.append(e) }
    if let o = ExternalTools.timings(.onnxRuntime, referenceWeightFiles, batches: [1, 256], rounds: 1) { onnxRounds.append(o) }
    if let j = ExternalTools.timings(.jax, referenceWeightFiles, batches: [1, 256], rounds: 1) { jaxRounds.append(j) }
}
for i in rows.indices { rows[i].compiled = median([rows[i].compiled] + roundTimes[i]) }
/// torch.compile, opt-in (FLOWC_BENCH_TORCH_COMPILE=1): its 3 rounds in one process after the
/// alternating rounds, since every cell is compiled first (minutes for the reference models).
let compileWanted = ProcessInfo.processInfo.environment["FLOWC_BENCH_TORCH_COMPILE"] == "1"
let torchCompiled = compileWanted ? ExternalTools.timings(.torchCompile, referenceWeightFiles, batches: [1, 256], rounds: rounds) : nil
/// Per key, the median of the rounds' values (nil when no round ran).
func medians(_ rounds: [[String: Double]]) -> [String: Double]? {
    guard let first = rounds.first else { return nil }
    return Dictionary(uniqueKeysWithValues: first.keys.map { key in (key, median(rounds.compactMap { $0[key] })) })
}
let eager = medians(eagerRounds)
if eager == nil { print(ExternalTools.Peer.eager.skipNote) }
let onnx = medians(onnxRounds)
if onnx == nil { print(ExternalTools.Peer.onnxRuntime.skipNote) }
let jax = medians(jaxRounds)
if jax == nil { print(ExternalTools.Peer.jax.skipNote) }
if torchCompiled == nil {
    print(compileWanted ? ExternalTools.Peer.torchCompile.skipNote
                        : "torch.compile: not run (FLOWC_BENCH_TORCH_COMPILE=1 adds it: minutes of compilation)")
}
let goals = IssueGoals(eager: eager, onnx: onnx, jax: jax, torchCompile: torchCompiled)
func ratio(_ a: Double?, _ b: Double) -> String { a.map { String(format: "%.1fx", $0 / b) } ?? "-" }
func micros(_ a: Double?) -> String { a.map { String(format: "%.1f", $0) } ?? "-" }
print("\n| model | pass | batch | interpreted µs | compiled µs | vs interpreted | PyTorch eager µs | vs eager | ONNX Runtime µs | vs ONNX Runtime | JAX jit µs | vs JAX jit | torch.compile µs | vs torch.compile | vs the fastest peer in this run | best peer µs (who) | vs best peer |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows {
    let compiled = r.compiled * 1e6
    let peers = goals.peerTimes(r)
    let (e, o, j, c) = (peers[0].micros, peers[1].micros, peers[2].micros, peers[3].micros)
    let peer = r.peersRanIt ? PeerTimings.best[r.peerKey] : nil
    let fastest = goals.fastest(r)
    print("| \(r.model) | \(r.pass) | \(r.batch) | \(micros(r.interpreted * 1e6)) | \(micros(compiled)) | \(ratio(r.interpreted * 1e6, compiled)) | "
          + "\(micros(e)) | \(ratio(e, compiled)) | \(micros(o)) | \(ratio(o, compiled)) | \(micros(j)) | \(ratio(j, compiled)) | \(micros(c)) | \(ratio(c, compiled)) | "
          + "\(fastest.map { "\(ratio($0.0, compiled)) (\($0.1))" } ?? "-") | \(peer.map { "\(micros($0.micros)) (\($0.who))" } ?? "-") | \(ratio(peer?.micros, compiled)) |")
}
print("\nEager, ONNX Runtime and JAX jit: Benchmarks/pytorch_eager.py, onnxruntime_peer.py and jax_peer.py in this run (the same ports; 1 or 2 threads, the faster); "
      + "torch.compile: torch_compile_peer.py, one thread (as the peers' table), its rounds after the others'. "
      + "Best peer: ../shared/baselines/results-peers.md (another run, on Sapphire Rapids; PyTorch eager, torch.compile, ONNX Runtime, JAX jit).")
print("\nIssue 8's rows, as the README shows them:")
goals.printTables(rows)

let peak = ExternalTools.fmaPeak().map { $0.combined(with: peakAtStart) } ?? peakAtStart
print("\nf32 FMA peak (Benchmarks/fma_peak.c, the best of 5 runs at the start and 5 at the end of this bench): "
      + (peak.map { String(format: "%.0f GFLOP/s on 1 thread, %.0f on 2 (slowest runs %.0f and %.0f)", $0.one, $0.two, $0.slowestOne, $0.slowestTwo) }
         ?? "not measured (neither AVX-512 nor AVX2 + FMA, or no C compiler)"))
var gemmShares: [(row: String, share: Double)] = []
for r in rows where r.batch == 256 && r.peersRanIt {
    guard let flops = denseFlops[r.model], r.pass != "log_prob" || !r.model.hasPrefix("e_fm") else { continue }
    let rate = flops * 256 / r.compiled / 1e9
    if let peak { gemmShares.append(("\(r.model) \(r.pass)", rate / peak.two)) }
    print(String(format: "  %@ %@, batch 256: dense products %.0f MFLOP, %.0f GFLOP/s", r.model, r.pass, flops * 256 / 1e6, rate)
          + (peak.map { String(format: " = %.0f%% of the 2-thread peak", 100 * rate / $0.two) } ?? ""))
}

print("\nCompile times (flowc compile, in-process, release build of the compiler):")
for (key, seconds) in compileSeconds { print(String(format: "  %@: %.2f s", key, seconds)) }
var shellCompileSeconds: [(String, Double)] = []
if let flowc = ExternalTools.flowc {
    print("\nflowc compile from the shell (the release flowc as a process of its own, as a user times it: median of \(IssueGoals.shellCompileRuns) runs, the slowest in brackets):")
    for (key, arguments) in compileArguments {
        guard let (median, slowest) = ExternalTools.shellCompileSeconds(flowc: flowc, arguments, runs: IssueGoals.shellCompileRuns) else {
            print("  \(key): failed (run `\(flowc) compile \(arguments.joined(separator: " "))` to see why)")
            continue
        }
        print(String(format: "  %@: %.2f s (%.2f)", key, median, slowest))
        shellCompileSeconds.append((key, median))
    }
} else {
    print("\nflowc compile from the shell: not measured (no release flowc next to flowc-bench: `swift build -c release --product flowc`)")
}

// The base noise that `sample(count:seed:)` and `flowc sample` draw: the artifact's vectorised
// flowc_noise (NoiseLowering) against its definition through libm (`Philox.normals`, what the
// runtime ran before it), 256 × 64 normals on one thread, the two timed alternately.
if let so = artifacts.first(where: { $0.0 == "c_realnvp64" })?.1 {
    let model = try CompiledModel(path: so, threads: 1)
    var pairs: [(artifact: Double, libm: Double)] = []
    for _ in 0..<5 {
        pairs.append((try time { _ = try model.noise(seed: 3, firstRow: 0, rows: 256) },
                      time { _ = Philox.normals(seed: 3, firstRow: 0, rows: 256, perRow: 64).map { Float($0) } }))
    }
    print(String(format: "\nBase noise, 256 × 64 normals on one thread (5 alternated rounds, medians): flowc_noise %.1f µs, libm Box–Muller %.1f µs: %.3fx the time",
                 median(pairs.map(\.artifact)) * 1e6, median(pairs.map(\.libm)) * 1e6, median(pairs.map { $0.artifact / $0.libm })))
}

var allocationLines: [String] = []
if let tool = ExternalTools.compileC("entry_allocations.c", flags: ["-O1"]) {
    print("\nHeap allocations inside the entry points (Benchmarks/entry_allocations.c: malloc family counted; first call, then 20 more):")
    for (key, so) in artifacts {
        for batch in [1, 256] {
            for line in ExternalTools.allocations(tool: tool, model: so, batch: batch, calls: 20) {
                print("  \(key) batch \(batch): \(line)")
                allocationLines.append(line)
            }
        }
    }
} else {
    print("\nHeap allocations: not measured (no C compiler)")
}
goals.printVerdict(rows, gemmShares: gemmShares, compileSeconds: compileSeconds, shellCompileSeconds: shellCompileSeconds, allocationLines: allocationLines)
