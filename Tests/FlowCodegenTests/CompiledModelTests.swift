import CFlowcABI
import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowSolvers
import FlowTestSupport
import Foundation
import XCTest

/// Compiled code against the interpreter (the oracle) for every entry point of every reference
/// model, within 1e-4 + 1e-4·|b| (f32 code vs f32 interpretation: they differ only in the
/// order of float operations and in libm vs Foundation math); and the runtime's guarantees.
final class CompiledModelTests: XCTestCase {
    static let keys = ["a_nsf", "b_maf", "c_realnvp2", "c_realnvp64", "d_glow", "g_tarflow"]
    nonisolated(unsafe) static var compiled: [String: String] = [:]

    /// Compiles each model once per test run, at O3 as `flowc compile` does.
    static func artifact(_ key: String) throws -> String {
        if let path = compiled[key] { return path }
        let path = TestFiles.path("test-\(key).so")
        try ArtifactCompiler.compile(try ReferenceFixture(key).model(), output: path)
        compiled[key] = path
        return path
    }

    func interpret(_ entry: EntryPoints.Entry, _ key: String, _ input: Tensor) throws -> [Tensor] {
        let model = try ReferenceFixture(key).model()
        return try Interpreter(graph: try EntryPoints.graph(entry, of: model), weights: try WeightStore(path: model.weightsPath!), precision: .f32).run([input])
    }

    /// A sample does not depend on its position in the batch: row 0 of a batch of 37 (inside a
    /// 6-row register tile) and row 36 (a tile of one leftover row) equal the same noise rows
    /// sampled alone, bit for bit — every row is summed in the same order, by the microkernel's
    /// tiles and by the generated dot products of narrow outputs (e_fm's N = 2, TarFlow's N = 8).
    func testASampleDoesNotDependOnItsPositionInTheBatch() throws {
        try Self.assertSamplesDoNotDependOnTheirPlace(Self.artifact)
    }

    /// Rows 0 and 36 of e_fm's and TarFlow's samples at batch 37, compiled by `artifact`, equal
    /// the same noise rows sampled alone, bit for bit.
    static func assertSamplesDoNotDependOnTheirPlace(_ artifact: (String) throws -> String, file: StaticString = #filePath, line: UInt = #line) throws {
        for key in ["e_fm", "g_tarflow"] {
            let model = try CompiledModel(path: try artifact(key))
            let noise = try model.noise(seed: 5, firstRow: 0, rows: 37)
            let batch = try model.sample(noise: noise)
            let (width, latent) = (model.inputElements, model.latentElements)
            for row in [0, 36] {
                let alone = try model.sample(noise: Array(noise[(row * latent)..<((row + 1) * latent)]))
                XCTAssertEqual(alone, Array(batch[(row * width)..<((row + 1) * width)]), "\(key) row \(row)", file: file, line: line)
            }
        }
    }

    /// Offers of the test hooks below (a C function pointer cannot capture).
    nonisolated(unsafe) static var splitOffers = 0

    typealias SplitTask = @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void
    typealias SplitHook = @convention(c) (Int64, SplitTask?, UnsafeMutableRawPointer?) -> Int32
    /// Parallel hooks that run a split product's halves on the calling thread, in order or in
    /// reverse order, counting the offers.
    static let halvesInOrder: SplitHook = { tasks, task, context in
        CompiledModelTests.splitOffers += 1
        for i in 0..<tasks { task!(context, i) }
        return 1
    }
    static let halvesReversed: SplitHook = { tasks, task, context in
        CompiledModelTests.splitOffers += 1
        for i in stride(from: tasks - 1, through: 0, by: -1) { task!(context, i) }
        return 1
    }

    /// Installs `hook` with the loaded artifact's flowc_set_parallel (opening a CompiledModel of
    /// it again restores the pool's hook).
    static func installHook(_ hook: SplitHook, in path: String) throws {
        let handle = try XCTUnwrap(dlopen(path, RTLD_NOW | RTLD_NOLOAD))
        defer { dlclose(handle) }
        unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_set_parallel")), to: (@convention(c) (SplitHook?) -> Void).self)(hook)
    }

    /// The column split (ColumnSplit): at batch 1 and 3, e_fm's 256×256 products are offered to
    /// the host's parallel hook as two halves. The worker pool's threads, one thread (the hook
    /// declines), and a hook that runs the halves in reverse order on the calling thread all
    /// give the same bits — each output column is computed by one half in the same order.
    func testProductsSplitOverThreadsGiveTheSameBits() throws {
        try Self.assertSplitHalvesGiveTheSameBits(path: try Self.artifact("e_fm"), batches: [1, 3])
    }

    /// The split check of e_fm's sample compiled at `path` (the default sampler, RK4 with 8
    /// steps), at each of `batches`.
    static func assertSplitHalvesGiveTheSameBits(path: String, batches: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try CompiledModel(path: path)
        for rows in batches {
            let noise = try model.noise(seed: 3, firstRow: 0, rows: rows)
            model.threads = 2
            let pooled = try model.sample(noise: noise)
            model.threads = 1
            XCTAssertEqual(try model.sample(noise: noise), pooled, "threads 1, batch \(rows)", file: file, line: line)
            splitOffers = 0
            try installHook(halvesReversed, in: path)
            model.threads = 2
            let halves = try model.sample(noise: noise)
            _ = try CompiledModel(path: path)   // opening the model again restores the pool's hook
            XCTAssertEqual(halves, pooled, "reversed halves, batch \(rows)", file: file, line: line)
            // two 256×256 products per network evaluation, one pair (ProductPairs): one offer;
            // the default sampler, RK4 (3/8 rule) with 8 steps, evaluates the network 4 times a step
            XCTAssertEqual(splitOffers, 4 * 8, "offers at batch \(rows)", file: file, line: line)
        }
    }

    /// Products narrower than 256 columns split at a multiple of 2 vectors when at least 2 rows
    /// are needed to split them: a 384 → 64 product with a bias and GELU at 13 and 14 rows —
    /// 6 + 4 + 3 and 6 + 4 + 4 (PackedGemmLowering.tileHeights), whose tiles must keep 2-vector panels (not
    /// the 4 and 8 of `tileWidth` when no split can reach them) so each half owns the columns
    /// it finishes. Hooks that run the halves in order and in reverse order on one thread, and one
    /// thread alone, give the pool's bits: a half that finished columns of the other would differ.
    func testNarrowProductsSplitAtTwoVectors() throws {
        for tokens in [13, 14] {
            let text = """
            model narrow {
              input x: f32[B, \(tokens), 448]
              flow {
                a = slice(x, axis=2, start=0, end=384)
                b = slice(x, axis=2, start=384, end=448)
                return concat(a, b + gelu(linear(a, weight("w"), weight("bias"))), axis=2)
              }
            }

            """
            let narrow = try Self.compile(text, name: "narrow\(tokens)", weights: [
                ("w", [64, 384], Philox.normals(seed: 21, firstRow: 0, rows: 64, perRow: 384).map { 0.05 * $0 }),
                ("bias", [64], Philox.normals(seed: 22, firstRow: 0, rows: 1, perRow: 64).map { 0.1 * $0 })])
            try assertHalvesGiveTheSameBits(path: narrow, batch: 1, offers: 1)
        }
    }

    /// A product pair (ProductPairs): z = (a, b + silu(a·W1ᵀ + b1)·W2ᵀ + b2) with a of 256 and b
    /// of 128 or 120 values (a ragged last vector), the 256 → 256 and 256 → m products one
    /// kernel; and with a lead (a of 8 values, silu(a·W0ᵀ + b0) of 256 first, computed by both
    /// halves). Against a brute-force f64 MLP at 1, 3 and 20 rows (20: above the split's 16
    /// rows, one thread computes both halves). Tolerance 2·10⁻⁵ times the sum of |terms|
    /// through the layers: each f32 sum of 256 products is within 256·2⁻²⁴ ≈ 1.5·10⁻⁵ of exact
    /// relative to its Σ|terms|; a missing or doubled half, or a half reading the other's lead
    /// before it is written, gives O(1) errors. Then the bits: one offer of the hook per call
    /// at 1 and 3 rows, whose halves in order, reversed and on the pool equal one thread's; and
    /// rows 0 and 19 of the 20 (one thread) equal the same rows alone (split).
    func testProductPairsMatchABruteForceMLPAndGiveTheSameBits() throws {
        for m in [128, 120] { try assertProductPair(outputs: m) }
        try assertProductPair(outputs: 128, lead: 8)
    }

    /// The pair test with a second product of `outputs` columns (120: its last vector masked),
    /// after a lead product from `lead` values when given.
    func assertProductPair(outputs m: Int, lead: Int? = nil) throws {
        let input = lead ?? 256, width = input + m
        let pairInput = lead == nil ? "a" : "silu(linear(a, weight(\"w0\"), weight(\"b0\")))"
        let text = """
        model pair {
          input x: f32[B, \(width)]
          flow {
            a = slice(x, axis=1, start=0, end=\(input))
            b = slice(x, axis=1, start=\(input), end=\(width))
            return concat(a, b + linear(silu(linear(\(pairInput), weight("w1"), weight("b1"))), weight("w2"), weight("b2")), axis=1)
          }
        }

        """
        let w0 = Philox.normals(seed: 40, firstRow: 0, rows: 256, perRow: input).map { 0.5 * $0 }, b0 = Philox.normals(seed: 39, firstRow: 0, rows: 1, perRow: 256)
        let w1 = Philox.normals(seed: 41, firstRow: 0, rows: 256, perRow: 256).map { 0.1 * $0 }, b1 = Philox.normals(seed: 42, firstRow: 0, rows: 1, perRow: 256)
        let w2 = Philox.normals(seed: 43, firstRow: 0, rows: m, perRow: 256).map { 0.1 * $0 }, b2 = Philox.normals(seed: 44, firstRow: 0, rows: 1, perRow: m)
        let path = try Self.compile(text, name: "pair\(m)\(lead.map { "lead\($0)" } ?? "")", weights: [("w1", [256, 256], w1), ("b1", [256], b1), ("w2", [m, 256], w2), ("b2", [m], b2)]
                                    + (lead == nil ? [] : [("w0", [256, input], w0), ("b0", [256], b0)]))
        let model = try CompiledModel(path: path)
        let f32 = { (v: [Double]) in v.map { Double(Float($0)) } }
        /// A layer in f64 from f32 weights: the values and their Σ|terms| (the inputs' own sums
        /// carried through: SiLU's slope is below 1.1).
        func layer(_ w: [Double], _ bias: [Double], _ x: [Double], _ xScale: [Double], silu: Bool) -> (values: [Double], scale: [Double]) {
            let (w, bias, k) = (f32(w), f32(bias), x.count)
            let pre = bias.indices.map { i in (0..<k).reduce(bias[i]) { $0 + w[i * k + $1] * x[$1] } }
            let scale = bias.indices.map { i in (0..<k).reduce(abs(bias[i])) { $0 + abs(w[i * k + $1]) * (abs(x[$1]) + xScale[$1]) } }
            return silu ? (pre.map { $0 / (1 + exp(-$0)) }, scale.map { 1.1 * $0 }) : (pre, scale)
        }
        for rows in [1, 3, 20] {
            let x = Philox.normals(seed: 45, firstRow: 0, rows: rows, perRow: width).map { Float($0) }
            let z = try model.forward(x).z
            var worst = 0.0
            for r in 0..<rows {
                var a = ((0..<input).map { Double(x[r * width + $0]) }, [Double](repeating: 0, count: input))
                if lead != nil { a = layer(w0, b0, a.0, a.1, silu: true) }
                let h = layer(w1, b1, a.0, a.1, silu: true), y = layer(w2, b2, h.values, h.scale, silu: false)
                for j in 0..<m {
                    let b = Double(x[r * width + input + j])
                    worst = max(worst, abs(Double(z[r * width + input + j]) - (b + y.values[j])) / (abs(b) + y.scale[j]))
                }
            }
            XCTAssertLessThan(worst, 2e-5, "\(m) outputs, lead \(lead ?? 0), \(rows) rows: worst error / Σ|terms|")
        }
        try assertHalvesGiveTheSameBits(path: path, batch: 1, offers: 1)
        try assertHalvesGiveTheSameBits(path: path, batch: 3, offers: 1)
        if lead != nil {
            // half 2 computes the lead itself: run first (halves reversed) on another input than
            // the call before, it would otherwise read that call's lead from the workspace
            let (first, second) = (Philox.normals(seed: 47, firstRow: 0, rows: 1, perRow: width).map { Float($0) },
                                   Philox.normals(seed: 48, firstRow: 0, rows: 1, perRow: width).map { Float($0) })
            // (every workspace the calls may take holds the first input's values)
            model.threads = 1
            let expected = try model.forward(second).z
            _ = try model.forward(first)
            model.threads = 2
            try Self.installHook(Self.halvesReversed, in: path)
            _ = try model.forward(first)
            Self.splitOffers = 0
            XCTAssertEqual(try model.forward(second).z, expected, "half 2 first, after another input")
            XCTAssertEqual(Self.splitOffers, 1, "offers")
            _ = try CompiledModel(path: path)   // the pool's hook again
        }
        let x = Philox.normals(seed: 46, firstRow: 0, rows: 20, perRow: width).map { Float($0) }
        let batch = try model.forward(x).z
        for row in [0, 19] {
            XCTAssertEqual(try model.forward(Array(x[(row * width)..<((row + 1) * width)])).z, Array(batch[(row * width)..<((row + 1) * width)]), "\(m) outputs, row \(row)")
        }
    }

    /// A model written in the test, compiled with the given weights; the artifact's path.
    /// `cpu`: nil for this machine, or a CPU name (`ArtifactCompiler.Options.cpu`).
    static func compile(_ text: String, name: String, weights: [(name: String, shape: [Int], values: [Double])], cpu: String? = nil) throws -> String {
        let file = TestFiles.path("\(name).safetensors")
        try SafetensorsFile.write(weights, to: file)
        let path = TestFiles.path("test-\(name).so")
        try ArtifactCompiler.compile(try Elaborator.elaborate(text: text, path: "\(name).flow", options: .init(weightsPath: file)), options: .init(cpu: cpu), output: path)
        return path
    }

    /// The packed weight layouts (WeightPacking.layout) against a brute-force product in f64,
    /// compiled for this machine and for x86-64-v3 (AVX2: 16 ymm registers, whose tiles and
    /// 64-column panels differ from AVX-512's; both run on any machine with AVX-512): one
    /// vector (N = 12: accumulator sets, in tiles of up to 3 rows with AVX2), one panel
    /// (N = 112), three whole panels of 128 (N = 384), and two panels with a ragged last one
    /// (N = 200: 128 + 80 columns, the 80 of N16 = 208), each at batch 1, 2, 7, 9 and 13 (1–5-row
    /// tiles, 6-row tiles and their leftovers, 9 rows as 5 + 4 with AVX2); and products of 7 and 4 rows per sample (N = 200
    /// and 48, [B, T, K]: with AVX2, panels of 16 columns, each vector its own, once RowFolding
    /// has folded the rows into the batch; 7 and 14 rows leave 1- and 2-row tiles of several
    /// vectors). The model is an additive coupling, so z's second
    /// part is b + a·Wᵀ + bias. Tolerance 4·10⁻⁶ times the sum of |terms|: f32 accumulation over
    /// K ≤ 40 products rounds each partial sum once (K·2⁻²⁴ ≈ 2.4·10⁻⁶), and a misplaced panel
    /// or stride gives O(1) errors.
    func testPackedLayoutsMatchABruteForceProduct() throws {
        for cpu in [nil, "x86-64-v3"] { for (n, k, tokens) in [(12, 33, 1), (112, 40, 1), (384, 19, 1), (200, 37, 1), (200, 37, 7), (48, 21, 4)] {
            let shape = tokens == 1 ? "[B, \(k + n)]" : "[B, \(tokens), \(k + n)]", axis = tokens == 1 ? 1 : 2
            let text = """
            model packed {
              input x: f32\(shape)
              flow {
                a = slice(x, axis=\(axis), start=0, end=\(k))
                b = slice(x, axis=\(axis), start=\(k), end=\(k + n))
                return concat(a, b + linear(a, weight("w"), weight("bias")), axis=\(axis))
              }
            }

            """
            let w = Philox.normals(seed: 31, firstRow: 0, rows: n, perRow: k).map { 0.2 * $0 }
            let bias = Philox.normals(seed: 32, firstRow: 0, rows: 1, perRow: n)
            let model = try CompiledModel(path: try Self.compile(text, name: "packed\(n)x\(tokens)", weights: [("w", [n, k], w), ("bias", [n], bias)], cpu: cpu))
            // f32 weights as the model holds them
            let (w32, bias32) = (w.map { Double(Float($0)) }, bias.map { Double(Float($0)) })
            for batch in [1, 2, 7, 9, 13] {
                let rows = batch * tokens
                let x = Philox.normals(seed: 33, firstRow: 0, rows: rows, perRow: k + n).map { Float($0) }
                let z = try model.forward(x).z
                var worst = 0.0
                for r in 0..<rows {
                    let row = Array(x[(r * (k + n))..<((r + 1) * (k + n))]).map(Double.init)
                    for j in 0..<n {
                        let terms = (0..<k).map { row[$0] * w32[j * k + $0] }
                        let exact = row[k + j] + bias32[j] + terms.reduce(0, +)
                        let scale = terms.map(abs).reduce(0, +) + abs(bias32[j]) + abs(row[k + j])
                        worst = max(worst, abs(Double(z[r * (k + n) + k + j]) - exact) / scale)
                    }
                }
                XCTAssertLessThan(worst, 4e-6, "\(cpu ?? "host"): N = \(n), K = \(k), \(tokens) rows per sample, batch \(batch): worst error / Σ|terms|")
            }
        } }
    }

    /// Row-parallel regions (RowParallelRegions): each TarFlow layer's kernels from one attention
    /// to the next — the attention's query rows, proj, residual, layernorm, MLP, qkv and its
    /// split — run as two row halves, one hand-over per region: 6 in the forward pass (3 per
    /// flow block: the layernorm to the first qkv, the first attention to the second qkv, the
    /// second attention to the output projection), at batch 1 (16 rows, 8 + 8) and batch 3
    /// (48 rows: the halves cut a sample in two, in the attention too). Halves in order, reversed and on the pool give one thread's bits: a half that
    /// read another value's rows, or a memory plan that let two values of a region share
    /// memory, would differ.
    func testRowRegionsGiveTheSameBits() throws {
        let path = try Self.artifact("g_tarflow")
        try assertHalvesGiveTheSameBits(path: path, batch: 1, offers: 6)
        try assertHalvesGiveTheSameBits(path: path, batch: 3, offers: 6)
    }

    /// The forward pass of `path` at `batch`: one thread, the pool, and hooks running the halves
    /// in order and reversed on one thread give the same bits, with `offers` calls of the hook.
    func assertHalvesGiveTheSameBits(path: String, batch: Int, offers: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try CompiledModel(path: path)
        let x = Philox.normals(seed: 4, firstRow: 0, rows: batch, perRow: model.inputElements).map { Float($0) }
        model.threads = 1
        let single = try model.forward(x).z
        model.threads = 2
        for (name, hook) in [("in order", Self.halvesInOrder), ("reversed", Self.halvesReversed)] {
            Self.splitOffers = 0
            try Self.installHook(hook, in: path)
            XCTAssertEqual(try model.forward(x).z, single, "\(path) batch \(batch): halves \(name)", file: file, line: line)
            XCTAssertEqual(Self.splitOffers, offers, "\(path) batch \(batch): offers", file: file, line: line)
        }
        _ = try CompiledModel(path: path)   // the pool's hook again
        XCTAssertEqual(try model.forward(x).z, single, "\(path) batch \(batch): the pool", file: file, line: line)
    }

    func testEveryEntryPointMatchesTheInterpreter() throws {
        var worst: [String] = []
        for key in Self.keys {
            let fixture = try ReferenceFixture(key)
            let model = try CompiledModel(path: try Self.artifact(key))
            let x = try fixture.tensor("x"), noise = try fixture.tensor("noise")
            let floats = { (t: Tensor) in t.values.map { Float($0) } }
            func check(_ name: String, _ a: [Float], _ b: Tensor) {
                let c = Closeness.compare(a.map(Double.init), b.values, atol: 1e-4, rtol: 1e-4)
                XCTAssertTrue(c.passes, "\(key) \(name): \(c)")
                worst.append("\(key) \(name): max |compiled - interpreted| = \(c.maxAbsoluteError)")
            }
            let forward = try model.forward(floats(x))
            let expectedForward = try interpret(.forward, key, x)
            check("forward z", forward.z, expectedForward[0])
            check("forward logdet", forward.logdet, expectedForward[1])
            check("log_prob", try model.logProb(floats(x)), try interpret(.logProb, key, x)[0])
            let inverse = try model.inverse(floats(noise))
            let expectedInverse = try interpret(.inverse, key, noise)
            check("inverse x", inverse.x, expectedInverse[0])
            check("inverse logdet", inverse.logdet, expectedInverse[1])
            let samples = try model.sample(count: 16, seed: 42, temperature: 0.8)
            let philox = Philox.normals(seed: 42, firstRow: 0, rows: 16, perRow: model.latentElements).map { Double(Float($0) * 0.8) }
            check("sample", samples, try interpret(.sample, key, Tensor(shape: noise.shape, values: philox))[0])
            // and the fixtures themselves, as in DerivedEntryPointTests
            let fixtureCheck = Closeness.compare(try model.logProb(floats(x)).map(Double.init), try fixture.tensor("log_prob").values, atol: 1e-3, rtol: 1e-5)
            XCTAssertTrue(fixtureCheck.passes, "\(key) log_prob vs fixture: \(fixtureCheck)")
        }
        print(worst.joined(separator: "\n"))
    }

    /// 8 threads calling one loaded model at once get exactly the serial results; and the
    /// result does not depend on the runtime's thread count.
    func testConcurrentCallsAndThreadCountsGiveIdenticalResults() throws {
        let model = try CompiledModel(path: try Self.artifact("c_realnvp64"))
        let x = Philox.normals(seed: 1, firstRow: 0, rows: 300, perRow: 64).map { Float($0) }
        model.threads = 1
        let serial = try model.logProb(x)
        model.threads = 4
        XCTAssertEqual(try model.logProb(x), serial)
        nonisolated(unsafe) var results = [[Float]](repeating: [], count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            results[i] = (try? model.logProb(x)) ?? []
        }
        for r in results { XCTAssertEqual(r, serial) }
    }

    func testBadInputsAreErrors() throws {
        let model = try CompiledModel(path: try Self.artifact("c_realnvp2"))
        XCTAssertThrowsError(try model.logProb([1, 2, 3])) { XCTAssertTrue("\($0)".contains("rows of 2 values, got 3"), "\($0)") }
        XCTAssertThrowsError(try model.logProb([1, .nan])) { XCTAssertTrue("\($0)".contains("an input value is NaN or infinite"), "\($0)") }
        XCTAssertThrowsError(try model.sample(count: 0, seed: 1)) { XCTAssertTrue("\($0)".contains("at least 1"), "\($0)") }
        // z² overflows f32 for |x| ≈ 1e30: an error, not a silent infinity
        XCTAssertThrowsError(try model.logProb([1e30, 1e30])) { XCTAssertTrue("\($0)".contains("produced a NaN or infinite value"), "\($0)") }
    }

    /// A C caller's buffers that overlap where kernels would write one while reading another
    /// (their pointers are `noalias`) are rejected with FLOWC_ERROR_OVERLAP before any work;
    /// disjoint buffers, adjacent ones too, run.
    func testOverlappingBuffersAreRejected() throws {
        let handle = try XCTUnwrap(dlopen(try Self.artifact("c_realnvp2"), RTLD_NOW))
        defer { dlclose(handle) }
        typealias Forward = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?,
                                            UnsafePointer<UnsafePointer<Float>?>?) -> Int32
        let forward = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_forward")), to: Forward.self)
        let workspaceSize = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_workspace_size")), to: (@convention(c) (Int32, Int64) -> UInt64).self)
        let batch = 4, bytes = Int(workspaceSize(FLOWC_ENTRY_FORWARD, Int64(batch)))
        // one arena: x (8 floats), z (8), logdet (4), then the workspace
        let arena = UnsafeMutableRawPointer.allocate(byteCount: 64 * 4 + bytes, alignment: 64)
        defer { arena.deallocate() }
        let floats = arena.bindMemory(to: Float.self, capacity: 64)
        for i in 0..<20 { floats[i] = Float(i % 5) * 0.25 - 0.5 }
        let (x, z, logdet, workspace) = (floats, floats + 8, floats + 16, arena + 64 * 4)
        XCTAssertEqual(forward(x, z, logdet, Int64(batch), workspace, nil), FLOWC_OK)
        XCTAssertEqual(forward(x, x + 2, logdet, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "z over x's last rows")
        XCTAssertEqual(forward(x, z, z + 7, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "logdet over z's last value")
        XCTAssertEqual(forward(x, z, logdet, Int64(batch), UnsafeMutableRawPointer(logdet + 3), nil), FLOWC_ERROR_OVERLAP, "the workspace over logdet")
        XCTAssertEqual(forward(UnsafePointer(workspace.assumingMemoryBound(to: Float.self) + 1), z, logdet, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP,
                       "x inside the workspace")
        XCTAssertEqual(forward(x, z, z, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "logdet where z is")
        XCTAssertEqual(forward(x, workspace.assumingMemoryBound(to: Float.self) + 16, logdet, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP,
                       "z inside the workspace")
        // adjacent buffers are not overlapping ones
        XCTAssertEqual(forward(x, z + 8 + 4, logdet, Int64(batch), workspace, nil), FLOWC_OK, "z right after logdet")
    }

    /// A flow's flowc_log_prob is flowc_forward then the base density, and RealNVP's
    /// flowc_sample the base's transform of the noise then flowc_inverse (EntryComposition): the
    /// log_prob's own checks reject a bad batch and overlapping buffers, and both write only
    /// inside flowc_workspace_size bytes (the values passed between the two calls rounded up to
    /// 64 bytes at its start, then the callees' workspace): a sentinel after the workspace stays
    /// intact, and the results equal the Swift runtime's bit for bit (the same code on the same rows).
    func testComposedEntryPointsCheckTheirBuffersAndStayInTheirWorkspace() throws {
        typealias LogProb = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?,
                                            UnsafePointer<UnsafePointer<Float>?>?) -> Int32
        typealias Sample = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?,
                                           UnsafePointer<UnsafePointer<Float>?>?) -> Int32
        for (key, width) in [("c_realnvp2", 2), ("g_tarflow", 64)] {
            let path = try Self.artifact(key)
            let handle = try XCTUnwrap(dlopen(path, RTLD_NOW))
            defer { dlclose(handle) }
            let logProb = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_log_prob")), to: LogProb.self)
            let workspaceSize = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_workspace_size")), to: (@convention(c) (Int32, Int64) -> UInt64).self)
            for batch in [1, 3, 5] {
                let bytes = Int(workspaceSize(FLOWC_ENTRY_LOG_PROB, Int64(batch))), guardFloats = 256
                let workspace = UnsafeMutableRawPointer.allocate(byteCount: bytes + 4 * guardFloats, alignment: 64)
                defer { workspace.deallocate() }
                let sentinel = (workspace + bytes).bindMemory(to: Float.self, capacity: guardFloats)
                for i in 0..<guardFloats { sentinel[i] = -1234.5 }
                let x = Philox.normals(seed: 7, firstRow: 0, rows: batch, perRow: width).map { Float($0) * 0.5 }
                var out = [Float](repeating: .nan, count: batch + 1)
                let status = x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { logProb(xs.baseAddress, $0.baseAddress, Int64(batch), workspace, nil) } }
                XCTAssertEqual(status, FLOWC_OK, "\(key) batch \(batch)")
                XCTAssertTrue((0..<guardFloats).allSatisfy { sentinel[$0] == -1234.5 }, "\(key) batch \(batch): written past flowc_workspace_size")
                XCTAssertTrue(out[batch].isNaN, "\(key) batch \(batch): written past the output")
                XCTAssertEqual(Array(out[..<batch]), try CompiledModel(path: path).logProb(x), "\(key) batch \(batch)")
                let sample = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_sample")), to: Sample.self)
                let sampleBytes = Int(workspaceSize(FLOWC_ENTRY_SAMPLE, Int64(batch)))
                let sampleSpace = UnsafeMutableRawPointer.allocate(byteCount: sampleBytes + 4 * guardFloats, alignment: 64)
                defer { sampleSpace.deallocate() }
                let sampleSentinel = (sampleSpace + sampleBytes).bindMemory(to: Float.self, capacity: guardFloats)
                for i in 0..<guardFloats { sampleSentinel[i] = -1234.5 }
                var drawn = [Float](repeating: .nan, count: batch * width), logdet = [Float](repeating: .nan, count: batch)
                XCTAssertEqual(sample(x, &drawn, &logdet, Int64(batch), sampleSpace, nil), FLOWC_OK, "\(key) batch \(batch): sample")
                XCTAssertTrue((0..<guardFloats).allSatisfy { sampleSentinel[$0] == -1234.5 }, "\(key) batch \(batch): the sample wrote past flowc_workspace_size")
                XCTAssertEqual(drawn, try CompiledModel(path: path).sample(noise: x), "\(key) batch \(batch): sample")
                x.withUnsafeBufferPointer { xs in
                    let x = xs.baseAddress!, scratch = workspace.assumingMemoryBound(to: Float.self)
                    out.withUnsafeMutableBufferPointer { o in
                        XCTAssertEqual(logProb(x, o.baseAddress, 0, workspace, nil), FLOWC_ERROR_BAD_BATCH, "\(key): batch 0")
                        XCTAssertEqual(logProb(x, UnsafeMutablePointer(mutating: x) + 1, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "\(key): out over x")
                        XCTAssertEqual(logProb(x, scratch + 3, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "\(key): out inside the workspace")
                        XCTAssertEqual(logProb(scratch + 5, o.baseAddress, Int64(batch), workspace, nil), FLOWC_ERROR_OVERLAP, "\(key): x inside the workspace")
                    }
                }
            }
        }
    }

    /// The composed entry points on a flow with a closed form: x ↦ 2x + 1 over the diagonal
    /// Gaussian N(μ, σ²), μ = (0.5, -1), σ = (2, 0.25). log p(x) = Σᵢ log N(2xᵢ + 1; μᵢ, σᵢ²) +
    /// 2 ln 2 (flowc_forward, then the base density); sample(ε) = ((μ + σε) − 1)/2 with the
    /// inverse's log-det 2 ln ½ (the base's transform, then flowc_inverse). f32 code against f64
    /// formulas: within 1e-5 + 1e-5·|b| (a few float roundings of values up to ~30). The sample
    /// rejects non-finite noise and overlapping buffers as the other entry points do.
    func testComposedEntryPointsMatchTheClosedForm() throws {
        let weights = TestFiles.path("composed-base.safetensors")
        try SafetensorsFile.write([(name: "mu", shape: [2], values: [0.5, -1]), (name: "sigma", shape: [2], values: [2, 0.25])], to: weights)
        let model = try Elaborator.elaborate(text: """
        model affine {
          input x: f32[B, 2]
          base normal(loc="mu", scale="sigma")
          flow { return x * 2.0 + 1.0 }
        }
        """, path: "affine.flow", options: .init(weightsPath: weights))
        let path = TestFiles.path("composed-affine.so")
        try ArtifactCompiler.compile(model, output: path)
        let compiled = try CompiledModel(path: path)
        let (mu, sigma) = ([0.5, -1.0], [2.0, 0.25])
        let x: [Double] = [0.3, -0.7, 2, 1.5, -3, 0.25]
        let expectedLogProb = (0..<3).map { row in
            (0..<2).map { i -> Double in
                let u = (2 * x[2 * row + i] + 1 - mu[i]) / sigma[i]
                return -0.5 * u * u - log(sigma[i]) - 0.5 * log(2 * Double.pi)
            }.reduce(0, +) + 2 * log(2.0)
        }
        let logProb = Closeness.compare(try compiled.logProb(x.map { Float($0) }).map(Double.init), expectedLogProb, atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(logProb.passes, "log_prob: \(logProb)")
        let handle = try XCTUnwrap(dlopen(path, RTLD_NOW))
        defer { dlclose(handle) }
        typealias Entry = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?,
                                          UnsafePointer<UnsafePointer<Float>?>?) -> Int32
        let sample = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_sample")), to: Entry.self)
        let workspaceSize = unsafeBitCast(try XCTUnwrap(dlsym(handle, "flowc_workspace_size")), to: (@convention(c) (Int32, Int64) -> UInt64).self)
        let eps: [Float] = [1, -2, 0, 0.5, 3, -0.125]
        let workspace = UnsafeMutableRawPointer.allocate(byteCount: Int(workspaceSize(FLOWC_ENTRY_SAMPLE, 3)), alignment: 64)
        defer { workspace.deallocate() }
        var drawn = [Float](repeating: .nan, count: 6), logdet = [Float](repeating: .nan, count: 3)
        XCTAssertEqual(sample(eps, &drawn, &logdet, 3, workspace, nil), FLOWC_OK)
        let expectedSample = eps.indices.map { i in (mu[i % 2] + sigma[i % 2] * Double(eps[i]) - 1) / 2 }
        let drawnCheck = Closeness.compare(drawn.map(Double.init), expectedSample, atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(drawnCheck.passes, "sample: \(drawnCheck)")
        let logdetCheck = Closeness.compare(logdet.map(Double.init), Array(repeating: 2 * log(0.5), count: 3), atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(logdetCheck.passes, "sample's log-det: \(logdetCheck)")
        XCTAssertEqual(sample([1, .nan, 0, 0, 0, 0], &drawn, &logdet, 3, workspace, nil), FLOWC_ERROR_NONFINITE_INPUT)
        XCTAssertEqual(sample(eps, &drawn, &logdet, 0, workspace, nil), FLOWC_ERROR_BAD_BATCH)
        drawn.withUnsafeMutableBufferPointer { d in
            XCTAssertEqual(sample(eps, d.baseAddress, d.baseAddress! + 5, 3, workspace, nil), FLOWC_ERROR_OVERLAP, "logdet over x's last value")
            XCTAssertEqual(sample(eps, d.baseAddress, &logdet, 3, UnsafeMutableRawPointer(d.baseAddress! + 4), nil), FLOWC_ERROR_OVERLAP, "the workspace over x")
        }
    }

    /// Foreign, truncated and wrong-version shared objects are clear errors, never crashes.
    func testBadArtifactsAreClearErrors() throws {
        let dir = TestFiles.path("bad")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func cc(_ source: String, _ name: String) throws -> String {
            try source.write(toFile: "\(dir)/\(name).c", atomically: true, encoding: .utf8)
            let r = try ProcessResult.run("/usr/bin/env", ["cc", "-shared", "-fPIC", "-o", "\(dir)/\(name).so", "\(dir)/\(name).c"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return "\(dir)/\(name).so"
        }
        let foreign = try cc("int answer(void) { return 42; }", "foreign")
        let future = try cc("unsigned flowc_abi_version(void) { return 99; }", "future")
        let real = try Data(contentsOf: URL(fileURLWithPath: try Self.artifact("c_realnvp2")))
        try real.prefix(real.count / 3).write(to: URL(fileURLWithPath: "\(dir)/truncated.so"))
        let cases: [(String, String)] = [
            (foreign, "not a Flowc model (no symbol flowc_abi_version)"),
            (future, "compiled for Flowc ABI version 99, this runtime reads version 3"),
            ("\(dir)/truncated.so", "not a loadable shared object (truncated"),
            ("\(dir)/foreign.c", "not a loadable shared object (no ELF header)"),
            ("\(dir)/missing.so", "no such file"),
        ]
        for (path, expected) in cases {
            XCTAssertThrowsError(try CompiledModel(path: path)) { XCTAssertTrue("\($0)".contains(expected), "\(path): \($0)") }
            let cli = try ProcessResult.run(Repository.flowc, ["info", path])
            XCTAssertEqual(cli.status, 1, cli.stderr)
            XCTAssertTrue(cli.stderr.contains(expected), cli.stderr)
        }
    }
}

/// The Jacobi inverse compiles to a loop that stops early, with the interpreter's semantics.
final class CompiledJacobiTests: XCTestCase {
    func testJacobiLoopMatchesInterpreterAndFixture() throws {
        let text = """
        import "std/zuko.flow"
        param D = dim("base.loc", 0)
        param K = count_indexed("transform.transforms.{}.order")
        model maf_jacobi {
          input x: f32[B, D]
          base normal(loc="base.loc", scale="base.scale")
          inverse jacobi(tolerance=1e-6)
          flow {
            for k in 0..<K { x = zuko_maf_step(x, "transform.transforms.{k}", 3) }
            return x
          }
        }
        """
        let weights = Repository.fixture("b_maf.safetensors")
        let model = try Elaborator.elaborate(text: text, path: Repository.path("examples/reference/maf_jacobi.flow"), options: .init(weightsPath: weights))
        let path = TestFiles.path("jacobi.so")
        try ArtifactCompiler.compile(model, output: path)
        let compiled = try CompiledModel(path: path)
        let fixture = try ReferenceFixture("b_maf")
        let noise = try fixture.tensor("noise")
        let inverse = try compiled.inverse(noise.values.map { Float($0) })
        let interpreted = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: try WeightStore(path: weights), precision: .f32).run([noise])
        // compiled vs interpreted 1e-4 + 1e-4|b|; vs the fixture's sample likewise
        XCTAssertTrue(Closeness.compare(inverse.x.map(Double.init), interpreted[0].values, atol: 1e-4, rtol: 1e-4).passes)
        XCTAssertTrue(Closeness.compare(inverse.logdet.map(Double.init), interpreted[1].values, atol: 1e-4, rtol: 1e-4).passes)
        let c = Closeness.compare(inverse.x.map(Double.init), try fixture.tensor("sample").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }
}

/// --external-weights: the .so holds no weight data; the runtime reads and checks the file.
final class ExternalWeightsTests: XCTestCase {
    func testExternalWeightsGiveTheSameResultsAndBadFilesAreErrors() throws {
        let dir = TestFiles.path("external")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = "\(dir)/c_realnvp64.safetensors"
        try? FileManager.default.removeItem(atPath: weights)
        try FileManager.default.copyItem(atPath: Repository.fixture("c_realnvp64.safetensors"), toPath: weights)
        let model = try Elaborator.elaborate(path: Repository.referenceSpec("c_realnvp64"), options: .init(weightsPath: weights))
        try ArtifactCompiler.compile(model, options: .init(externalWeights: true), output: "\(dir)/external.so")
        let size = try FileManager.default.attributesOfItem(atPath: "\(dir)/external.so")[.size] as! Int
        XCTAssertLessThan(size, 200_000, "the 985 kB of weights must not be embedded")
        let embedded = try CompiledModel(path: try CompiledModelTests.artifact("c_realnvp64"))
        let external = try CompiledModel(path: "\(dir)/external.so")    // finds the weights next to it
        XCTAssertEqual(external.metadata.externalWeightFile, "c_realnvp64.safetensors")
        let x = try ReferenceFixture("c_realnvp64").tensor("x").values.map { Float($0) }
        // Not bit-identical: the embedded model's products run the packed-weight microkernel, the
        // external one calls sgemm on the mmapped weights; the two sum the K = 128 products of each
        // hidden unit in different orders (f32 rounding ≈ K·2⁻²⁴ ≈ 1e-5 relative on a hidden unit;
        // log_prob sums 64 such terms of size ~10, hence 1e-4 absolute and relative).
        let logProbs = Closeness.compare(try external.logProb(x).map(Double.init), try embedded.logProb(x).map(Double.init), atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(logProbs.passes, "log_prob: \(logProbs)")
        let samples = Closeness.compare(try external.sample(count: 5, seed: 3).map(Double.init), try embedded.sample(count: 5, seed: 3).map(Double.init), atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(samples.passes, "sample: \(samples)")
        // another model's weights, a modified copy, a missing file
        let modified = "\(dir)/modified.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
        bytes[bytes.count - 7] ^= 1
        try bytes.write(to: URL(fileURLWithPath: modified))
        let cases: [(String?, String)] = [
            (Repository.fixture("c_realnvp2.safetensors"), "weight file has 553728 bytes, the model was compiled with a 985352-byte"),
            (modified, "checksum"),
            ("\(dir)/missing.safetensors", "external weight file not found"),
        ]
        for (file, expected) in cases {
            XCTAssertThrowsError(try CompiledModel(path: "\(dir)/external.so", weights: file)) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
            let cli = try ProcessResult.run(Repository.flowc, ["info", "\(dir)/external.so", "--weights", file!])
            XCTAssertEqual(cli.status, 1)
            XCTAssertTrue(cli.stderr.contains(expected), cli.stderr)
        }
    }
}

/// The IR/std flows that no fixture covers, and the default example, compiled against the
/// interpreter on every entry point (1e-4 + 1e-4·|b|, as CompiledModelTests).
final class CompiledStandardLibraryTests: XCTestCase {
    func testEveryEntryPointMatchesTheInterpreter() throws {
        let models: [(String, Model)] = [
            ("std_mix", try TestModels.StandardMix.model()),
            ("glow_multiscale", try TestModels.GlowMultiscale.model()),
            ("examples/default", try Elaborator.elaborate(path: Repository.path("examples/default/realnvp2.flow"))),
        ]
        for (name, model) in models {
            let path = TestFiles.path("std-\(name.replacingOccurrences(of: "/", with: "_")).so")
            try ArtifactCompiler.compile(model, output: path)
            let compiled = try CompiledModel(path: path)
            let store = try WeightStore(path: model.weightsPath!)
            let type = model.flow.type(of: model.flow.inputs[0])
            let x = Philox.normals(seed: 8, firstRow: 0, rows: 40, perRow: type.elementsPerSample).map { 1.5 * $0 }
            let input = Tensor(shape: type.shape(batch: 40), values: x.map { Double(Float($0)) })
            func interpret(_ entry: EntryPoints.Entry, _ t: Tensor) throws -> [Tensor] {
                try Interpreter(graph: try EntryPoints.graph(entry, of: model), weights: store, precision: .f32).run([t])
            }
            func check(_ what: String, _ a: [Float], _ b: Tensor) {
                let c = Closeness.compare(a.map(Double.init), b.values, atol: 1e-4, rtol: 1e-4)
                XCTAssertTrue(c.passes, "\(name) \(what): \(c)")
            }
            let xf = input.values.map { Float($0) }
            let forward = try compiled.forward(xf), expected = try interpret(.forward, input)
            check("z", forward.z, expected[0])
            check("logdet", forward.logdet, expected[1])
            check("log_prob", try compiled.logProb(xf), try interpret(.logProb, input)[0])
            let latent = model.flow.type(of: model.flow.outputs[0])
            let z = Tensor(shape: latent.shape(batch: 40), values: forward.z.map(Double.init))
            let inverse = try compiled.inverse(forward.z), expectedInverse = try interpret(.inverse, z)
            check("inverse x", inverse.x, expectedInverse[0])
            check("inverse logdet", inverse.logdet, expectedInverse[1])
        }
    }
}

/// The compiled samplers of velocity and mean-velocity models against the fixtures
/// (1e-4 + 1e-4·|b|, as ODESamplerTests).
final class CompiledSamplerTests: XCTestCase {
    func testCompiledSamplersReproduceTheFixtures() throws {
        let cases: [(String, ODESampler, Int, String)] = [
            ("e_fm", .euler, 8, "sample_euler"), ("e_fm", .euler, 1, "sample_euler_1"), ("e_fm", .midpoint, 8, "sample_midpoint"),
            ("e_fm", .rk4ThreeEighths, 8, "sample_rk4"), ("e_fm", .rk4Classic, 8, "sample_rk4_classic"),
            ("f_meanflow", .meanflow, 1, "sample_1step"), ("f_meanflow", .meanflow, 2, "sample_2step"),
        ]
        for (key, method, steps, name) in cases {
            let fixture = try ReferenceFixture(key)
            let path = TestFiles.path("sampler-\(name).so")
            try ArtifactCompiler.compile(try fixture.model(), options: .init(sampler: SamplerSettings(method: method, steps: steps)), output: path)
            let model = try CompiledModel(path: path)
            XCTAssertEqual(model.metadata.entries, key == "e_fm" ? ["log_prob", "sample", "field"] : ["sample", "field"])
            let x = try model.sample(noise: try fixture.tensor("noise").values.map { Float($0) })
            let c = Closeness.compare(x.map(Double.init), try fixture.tensor(name).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(name): \(c)")
            if key == "f_meanflow" {
                XCTAssertThrowsError(try model.logProb([0, 0])) { XCTAssertTrue("\($0)".contains("has no log_prob entry point"), "\($0)") }
            }
        }
    }
}

/// The continuous-flow likelihood compiled: equal to the interpreter's within 1e-4 + 1e-4·|b|.
final class CompiledCNFTests: XCTestCase {
    func testCompiledLikelihoodMatchesTheInterpreter() throws {
        let fixture = try ReferenceFixture("e_fm")
        let model = try fixture.model()
        let path = TestFiles.path("cnf.so")
        try ArtifactCompiler.compile(model, output: path)
        let compiled = try CompiledModel(path: path)
        XCTAssertEqual(compiled.metadata.entries, ["log_prob", "sample", "field"])
        let x = try fixture.tensor("x")
        let expected = try Interpreter(graph: try EntryPoints.graph(.logProb, of: model), weights: try WeightStore(path: model.weightsPath!), precision: .f32).run([x])[0]
        let c = Closeness.compare(try compiled.logProb(x.values.map { Float($0) }).map(Double.init), expected.values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }
}
