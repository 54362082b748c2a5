import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowSolvers
import FlowTestSupport
import XCTest

/// Compiled attention against the interpreter (1e-4 + 1e-4·|b|, f32 both): a TarFlow with two
/// heads per layer, and a non-causal attention field.
final class CompiledTarFlowTests: XCTestCase {
    func testTwoHeadTarFlowMatchesTheInterpreter() throws {
        let model = try TestModels.RandomTarFlow.model(channels: 128, blocks: 2, layers: 1, image: (1, 8, 2), seed: 4)
        let path = TestFiles.path("tarflow2.so")
        let listing = try XCTUnwrap(try ArtifactCompiler.compile(model, output: path, listing: .kernels))
        // the inverse decodes 16 tokens per block: tokens 2 … 14 of each block are one loop over
        // a table of arguments (CallRerolling; token 1 starts the caches, CacheChains), so the
        // round trip below runs through those loops
        let inverse = try XCTUnwrap(listing.range(of: "flowc_inverse:")).lowerBound
        let loops = listing[inverse...].matches(of: try Regex("one loop, ([0-9]+) repetitions")).map { Int($0.output[1].substring!)! }
        XCTAssertEqual(loops.filter { $0 >= 13 }.count, 2, listing)
        let compiled = try CompiledModel(path: path)
        let x = Philox.normals(seed: 3, firstRow: 0, rows: 5, perRow: 64)
        let store = try WeightStore(path: model.weightsPath!)
        let expected = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f32).run([Tensor(shape: [5, 1, 8, 8], values: x)])
        let (z, logdet) = try compiled.forward(x.map { Float($0) })
        XCTAssertTrue(Closeness.compare(z.map(Double.init), expected[0].values, atol: 1e-4, rtol: 1e-4).passes)
        XCTAssertTrue(Closeness.compare(logdet.map(Double.init), expected[1].values, atol: 1e-4, rtol: 1e-4).passes)
        let back = try compiled.inverse(z).x
        let c = Closeness.compare(back.map(Double.init), x, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "round trip: \(c)")
    }

    /// Jacobi iteration on chunks of 4 tokens compiled (a `fixed_point` loop per chunk, earlier
    /// chunks from the cache) reproduces the fixture's samples (1e-4 + 1e-4·|b|).
    func testChunkedJacobiCompiled() throws {
        let f = try ReferenceFixture("g_tarflow")
        var model = try f.model()
        model.causalInverse = .jacobi(tolerance: 1e-7, chunk: 4)
        let path = TestFiles.path("tarflow-jacobi.so")
        try ArtifactCompiler.compile(model, output: path)
        let x = try CompiledModel(path: path).sample(noise: try f.tensor("noise").values.map { Float($0) })
        let c = Closeness.compare(x.map(Double.init), try f.tensor("sample").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }

    /// (an average-velocity field here; a velocity field with attention, whose likelihood would
    /// need a JVP rule for it, compiles without log_prob)
    func testNonCausalAttentionField() throws {
        let velocity = try Elaborator.elaborate(text: """
        model attend_v {
          input x: f32[B, 6, 4]
          input t: f32[B, 1]
          kind velocity(noise_at=0)
          flow { return attention(x, x, x, heads=2, causal=0) }
        }
        """, path: Repository.path("Tests/attend_v.flow"))
        let velocityPath = TestFiles.path("attend-v.so")
        try ArtifactCompiler.compile(velocity, output: velocityPath)
        XCTAssertEqual(try CompiledModel(path: velocityPath).metadata.entries, ["sample", "field"])
        try assertAttentionFieldMatchesTheInterpreter(name: "attend", tokens: 6, channels: 4, causal: false, steps: 2)
    }

    /// An average-velocity field attention(x, x·0.5, x) over `tokens` × `channels` in two heads,
    /// compiled, sampled from 3 noise rows in `steps` MeanFlow steps and compared with the
    /// interpreter's: 1e-4 + 1e-4·|b|, as everywhere (f32 sums over the keys of O(1) values, in
    /// another order).
    private func assertAttentionFieldMatchesTheInterpreter(name: String, tokens: Int, channels: Int, causal: Bool, steps: Int) throws {
        let spec = """
        model \(name) {
          input x: f32[B, \(tokens), \(channels)]
          input r: f32[B, 1]
          input t: f32[B, 1]
          kind mean_velocity(noise_at=1)
          flow { return attention(x, x * 0.5, x, heads=2, causal=\(causal ? 1 : 0)) }
        }
        """
        let model = try Elaborator.elaborate(text: spec, path: Repository.path("Tests/\(name).flow"))
        let path = TestFiles.path("\(name).so")
        try ArtifactCompiler.compile(model, output: path)
        let noise = Philox.normals(seed: 6, firstRow: 0, rows: 3, perRow: tokens * channels).map { Float($0) }
        let settings = SamplerSettings(method: .meanflow, steps: steps)
        let (x, _) = try CompiledModel(path: path).solve(noise: noise, settings: settings)
        let (expected, _) = try ODESolve.sample(try InterpretedField(model: model), noise: noise, settings: settings)
        let c = Closeness.compare(x.map(Double.init), expected.map(Double.init), atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(name): \(c)")
    }

    /// A causal attention over 20 keys with heads of 16 channels: the scores of the later
    /// queries fill two 16-lane vectors (the second partly −∞), and the weighted sum runs in
    /// vector registers.
    func testCausalAttentionOverMoreKeysThanOneVector() throws {
        try assertAttentionFieldMatchesTheInterpreter(name: "attend_long", tokens: 20, channels: 32, causal: true, steps: 1)
    }

    /// The class-conditional TarFlow compiled: z with labels and unconditional, and the guided
    /// sample compiled in (guidance 2 on a and b, annealed, attention temperature 0.8), against apple/ml-tarflow's fixture
    /// (1e-4 + 1e-4·|b|, as everywhere).
    func testConditionalTarFlowWithCompiledGuidance() throws {
        let f = try ReferenceFixture("g_tarflow_cond")
        let model = try f.model()
        let floats = { (name: String) in try f.tensor(name).values.map { Float($0) } }
        let labels = try f.tensor("y").values.map { Int($0) }
        for (guidance, sampleName) in [(nil, "sample"), (FlowGuidance(scale: 2, annealed: true, attentionTemperature: 0.8), "sample_annealed")] as [(FlowGuidance?, String)] {
            let path = TestFiles.path("tarflow-cond-\(sampleName).so")
            var options = ArtifactCompiler.Options()
            options.guidance = guidance
            try ArtifactCompiler.compile(model, options: options, output: path)
            let compiled = try CompiledModel(path: path)
            XCTAssertEqual(compiled.metadata.classes, 10)
            let x = try compiled.sample(noise: try floats("noise"), labels: labels)
            let c = Closeness.compare(x.map(Double.init), try f.tensor(sampleName).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(sampleName): \(c)")
            guard guidance == nil else { continue }
            for (rowLabels, name) in [(labels as [Int]?, "z"), (nil, "z_uncond")] {
                let (z, logdet) = try compiled.forward(try floats("x"), labels: rowLabels)
                let cz = Closeness.compare(z.map(Double.init), try f.tensor(name).values, atol: 1e-4, rtol: 1e-4)
                XCTAssertTrue(cz.passes, "\(name): \(cz)")
                // log_prob (flowc_forward on the packed rows of x and label, then the base
                // density) against log N(z; 0, I) + logdet in f64 from this forward's z
                let n = z.count / logdet.count
                let expected = logdet.indices.map { row in
                    -0.5 * z[row * n ..< (row + 1) * n].reduce(0) { $0 + Double($1) * Double($1) } - 0.5 * Double(n) * log(2 * Double.pi) + Double(logdet[row])
                }
                let lp = Closeness.compare(try compiled.logProb(try floats("x"), labels: rowLabels).map(Double.init), expected, atol: 1e-4, rtol: 1e-5)
                XCTAssertTrue(lp.passes, "log_prob with \(name)'s labels: \(lp)")
            }
            XCTAssertThrowsError(try compiled.logProb(try floats("x"), labels: Array(repeating: 11, count: 16))) {
                XCTAssertTrue("\($0)".contains("label 11 of row 0 is outside 0..<10"), "\($0)")
            }
        }
    }

    /// The compiled score equals the interpreter's (1e-4 + 1e-4·|b|), and `--denoise σ` appends
    /// x + σ²·∇ log p(x) to the sample: equal to the plain sample plus σ² times the compiled score
    /// at it (1e-4 + 1e-4·|b|: two f32 evaluations of the same formula).
    func testScoreAndDenoisedSample() throws {
        let f = try ReferenceFixture("g_tarflow")
        let model = try f.model()
        let plainPath = TestFiles.path("tarflow-score.so")
        var scoring = ArtifactCompiler.Options()
        scoring.score = true
        try ArtifactCompiler.compile(model, options: scoring, output: plainPath)
        let plain = try CompiledModel(path: plainPath)
        XCTAssertTrue(plain.metadata.entries.contains("score"))
        let x = try f.tensor("x")
        let expected = try Interpreter(graph: try EntryPoints.graph(.score, of: model), weights: try WeightStore(path: model.weightsPath!), precision: .f32).run([x])[0]
        let score = try plain.score(x.values.map { Float($0) })
        let c = Closeness.compare(score.map(Double.init), expected.values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "score: \(c)")

        let sigma = 0.3
        let denoisedPath = TestFiles.path("tarflow-denoise.so")
        var options = ArtifactCompiler.Options()
        options.denoise = sigma
        try ArtifactCompiler.compile(model, options: options, output: denoisedPath)
        let denoising = try CompiledModel(path: denoisedPath)
        let noise = try f.tensor("noise").values.map { Float($0) }
        let samples = try plain.sample(noise: noise)
        let step = try plain.score(samples)
        let manual = zip(samples, step).map { Double($0) + sigma * sigma * Double($1) }
        let d = Closeness.compare(try denoising.sample(noise: noise).map(Double.init), manual, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(d.passes, "denoised: \(d)")
        XCTAssertGreaterThan(Closeness.compare(manual, samples.map(Double.init), atol: 0, rtol: 0).maxAbsoluteError, 1e-2, "the step moves the samples")
    }
}
