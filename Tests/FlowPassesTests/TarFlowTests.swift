import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowTestSupport
import XCTest

/// TarFlow from `examples/reference/g_tarflow.flow` (IR/std/tarflow.flow) against the fixture made
/// by apple/ml-tarflow's own model class, with the inverse and log-det derived (tolerances as
/// MODELS.md suggests: z and samples 1e-4 + 1e-4·|b|, log-densities 1e-3 + 1e-5·|b|).
final class TarFlowTests: XCTestCase {
    func run(_ model: Model, _ entry: EntryPoints.Entry, _ input: Tensor, _ precision: Precision = .f32) throws -> [Tensor] {
        try Interpreter(graph: try EntryPoints.graph(entry, of: model), weights: try WeightStore(path: model.weightsPath!), precision: precision).run([input])
    }

    func assertClose(_ a: Tensor, _ b: Tensor, atol: Double, rtol: Double, _ what: String) {
        let c = Closeness.compare(a.values, b.values, atol: atol, rtol: rtol)
        XCTAssertTrue(c.passes, "\(what): \(c)")
    }

    func testFixture() throws {
        let f = try ReferenceFixture("g_tarflow")
        let model = try f.model()
        let forward = try run(model, .forward, try f.tensor("x"))
        XCTAssertEqual(forward[0].shape, [16, 16, 4])
        assertClose(forward[0], try f.tensor("z"), atol: 1e-4, rtol: 1e-4, "z")
        assertClose(forward[1], try f.tensor("logdet_sum"), atol: 1e-3, rtol: 1e-5, "logdet (sum)")
        // the library reports the per-dimension mean: Σ/(T·C') = Σ/64
        assertClose(Tensor(shape: [16], values: forward[1].values.map { $0 / 64 }), try f.tensor("logdet"), atol: 1e-5, rtol: 1e-5, "logdet (library mean)")
        assertClose(try run(model, .logProb, try f.tensor("x"))[0], try f.tensor("log_prob"), atol: 1e-3, rtol: 1e-5, "log_prob")
        let sample = try run(model, .sample, try f.tensor("noise"))[0]
        XCTAssertEqual(sample.shape, [16, 1, 8, 8])
        assertClose(sample, try f.tensor("sample"), atol: 1e-4, rtol: 1e-4, "sample")
        assertClose(try run(model, .inverse, try f.tensor("z"))[0], try f.tensor("x"), atol: 1e-4, rtol: 1e-4, "inverse(z)")
        // the first block alone reproduces the library's intermediate output
        let one = try f.model(params: ["NB": 1])
        assertClose(try Interpreter(model: one, precision: .f32).run([try f.tensor("x")])[0], try f.tensor("aux.block0.out"), atol: 1e-4, rtol: 1e-4, "block 0")
    }

    /// The same spec on other widths, head counts, depths, channels and patch sizes: the derived
    /// inverse undoes the forward map (f64: 1e-10·(1 + |x|)) and the derived log-det equals the
    /// brute-force Jacobian (1e-6 relative, as LogDetTests).
    func testOtherSizes() throws {
        for (channels, blocks, layers, image) in [(128, 3, 1, (1, 8, 4)), (64, 2, 2, (2, 4, 2))] {
            let model = try TestModels.RandomTarFlow.model(channels: channels, blocks: blocks, layers: layers, image: image, seed: 3)
            let (c, size, _) = image
            let n = c * size * size
            let x = Tensor(shape: [2, c, size, size], values: Philox.normals(seed: 8, firstRow: 0, rows: 2, perRow: n))
            let forward = try run(model, .forward, x, .f64)
            let back = try run(model, .inverse, forward[0], .f64)[0]
            assertClose(back, x, atol: 1e-10, rtol: 1e-10, "\(channels) channels, \(blocks) blocks: round trip")
            let flow = try Interpreter(graph: model.flow, weights: try WeightStore(path: model.weightsPath!), precision: .f64)
            let oracle = try BruteForce.logAbsDetJacobian(flow, shape: [c, size, size], at: Array(x.values[0..<n]))
            XCTAssertEqual(forward[1].values[0], oracle, accuracy: 1e-6 * (1 + abs(oracle)), "\(channels) channels log-det")
            XCTAssertGreaterThan(abs(oracle), 0.1, "the random flow is not volume preserving")
        }
    }

    /// Attention without the causal mask makes the conditioner read the token it transforms:
    /// the derivation refuses it with the op and the reason.
    func testNonCausalAttentionIsNotInvertible() throws {
        let spec = try String(contentsOfFile: Repository.path("IR/std/tarflow.flow"), encoding: .utf8)
        XCTAssertTrue(spec.contains("causal=1"))
        let text = try String(contentsOfFile: Repository.referenceSpec("g_tarflow"), encoding: .utf8)
            .replacingOccurrences(of: "import \"std/tarflow.flow\"", with: spec.replacingOccurrences(of: "causal=1", with: "causal=0"))
        let model = try Elaborator.elaborate(text: text, path: Repository.path("examples/reference/g_tarflow_noncausal.flow"), options: .init(weightsPath: Repository.fixture("g_tarflow.safetensors")))

        XCTAssertThrowsError(try EntryPoints.graph(.inverse, of: model)) { error in
            XCTAssertTrue("\(error)".contains("not invertible"), "\(error)")
            print("non-causal TarFlow: \(error)")
        }
    }

    /// The sequential inverse decodes token by token with a key/value cache (every attention of
    /// the inverse has one query); Jacobi iteration over the whole sequence (tolerance 1e-7) gives
    /// the same samples within 1e-5·(1 + |x|), in fewer sweeps than tokens on these flows.
    func testKVCachedSequentialAndJacobiInversesAgree() throws {
        for (channels, blocks, layers, image) in [(64, 2, 2, (1, 8, 2)), (128, 2, 1, (2, 8, 2))] {
            var model = try TestModels.RandomTarFlow.model(channels: channels, blocks: blocks, layers: layers, image: image, seed: 12)
            let store = try WeightStore(path: model.weightsPath!)
            let sequential = try EntryPoints.graph(.inverse, of: model)
            let attentions = sequential.nodes.filter { $0.op == "attention" }
            XCTAssertFalse(attentions.isEmpty)
            XCTAssertTrue(attentions.allSatisfy { sequential.type(of: $0.operands[0]).dims[0] == 1 }, "decoding steps have one query token")
            let latent = model.flow.type(of: model.flow.outputs[0])
            let z = Tensor(shape: latent.shape(batch: 3), values: Philox.normals(seed: 4, firstRow: 0, rows: 3, perRow: latent.elementsPerSample))
            let a = try Interpreter(graph: sequential, weights: store, precision: .f32).run([z])
            model.causalInverse = .jacobi(tolerance: 1e-7)
            var jacobi = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: store, precision: .f32)
            let statistics = RunStatistics()
            jacobi.statistics = statistics
            let b = try jacobi.run([z])
            assertClose(b[0], a[0], atol: 1e-5, rtol: 1e-5, "\(channels) channels: x")
            assertClose(b[1], a[1], atol: 1e-4, rtol: 1e-5, "\(channels) channels: logdet")
            XCTAssertEqual(statistics.sweeps.count, blocks)
            XCTAssertTrue(statistics.sweeps.allSatisfy { $0 < latent.dims[0] }, "sweeps \(statistics.sweeps) of \(latent.dims[0]) tokens")
            print("TarFlow \(channels) channels, \(blocks) blocks: Jacobi sweeps per block \(statistics.sweeps) of \(latent.dims[0]) tokens")
            // Jacobi on chunks of 4 tokens with the earlier chunks from the key/value cache
            // (STARFlow-V): at most 4 sweeps per chunk, the same samples
            model.causalInverse = .jacobi(tolerance: 1e-7, chunk: 4)
            var chunked = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: store, precision: .f32)
            let chunkStatistics = RunStatistics()
            chunked.statistics = chunkStatistics
            let c = try chunked.run([z])
            assertClose(c[0], a[0], atol: 1e-5, rtol: 1e-5, "\(channels) channels, chunks of 4: x")
            assertClose(c[1], a[1], atol: 1e-4, rtol: 1e-5, "\(channels) channels, chunks of 4: logdet")
            XCTAssertEqual(chunkStatistics.sweeps.count, blocks * latent.dims[0] / 4)
            XCTAssertTrue(chunkStatistics.sweeps.allSatisfy { $0 <= 4 })
            print("TarFlow \(channels) channels: Jacobi sweeps per chunk of 4 tokens \(chunkStatistics.sweeps)")
        }
    }
}
