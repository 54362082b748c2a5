import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import XCTest

/// The reference specs reproduce the fixtures made by zuko and plain PyTorch.
/// Tolerances are the ones MODELS.md suggests for an f32 re-implementation, from the spread
/// seen between torch, ONNX Runtime and JAX on the same weights: z within 1e-4 + 1e-4·|b|;
/// logdet and log_prob within 1e-3 + 1e-5·|b| (sums of 8–64 log-terms of size ~1).
final class ReferenceFixtureTests: XCTestCase {
    static let keys = ["a_nsf", "b_maf", "c_realnvp2", "c_realnvp64", "d_glow", "g_tarflow", "g_starflow"]

    func testForwardMapReproducesFixtureZ() throws {
        for key in Self.keys {
            let fixture = try ReferenceFixture(key)
            let model = try fixture.model()
            for precision in [Precision.f32, .f64] {
                let z = try Interpreter(model: model, precision: precision).run([try fixture.tensor("x")])[0]
                let expected = try fixture.tensor("z")
                XCTAssertEqual(z.shape, expected.shape, key)
                let c = Closeness.compare(z.values, expected.values, atol: 1e-4, rtol: 1e-4)
                XCTAssertTrue(c.passes, "\(key) z (\(precision)): \(c)")
            }
        }
    }

    func testLogDetAndLogProbMatchFixtures() throws {
        // The affine-coupling and Glow models; the autoregressive ones need the causal analysis.
        for key in ["c_realnvp2", "c_realnvp64", "d_glow"] {
            let fixture = try ReferenceFixture(key)
            let model = try fixture.model()
            let store = try WeightStore(path: Repository.fixture("\(key).safetensors"))
            let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f32)
                .run([try fixture.tensor("x")])
            let logdet = Closeness.compare(forward[1].values, try fixture.tensor("logdet").values, atol: 1e-3, rtol: 1e-5)
            XCTAssertTrue(logdet.passes, "\(key) logdet: \(logdet)")
            let logProb = try Interpreter(graph: try EntryPoints.graph(.logProb, of: model), weights: store, precision: .f32)
                .run([try fixture.tensor("x")])[0]
            let lp = Closeness.compare(logProb.values, try fixture.tensor("log_prob").values, atol: 1e-3, rtol: 1e-5)
            XCTAssertTrue(lp.passes, "\(key) log_prob: \(lp)")
        }
    }

    /// The per-transform intermediate outputs match too, so a mismatch would be located.
    func testIntermediateOutputsOfRealNVPMatch() throws {
        let fixture = try ReferenceFixture("c_realnvp64")
        for k in [1, 4] {
            let model = try fixture.model(params: ["K": Double(k)])
            let out = try Interpreter(model: model, precision: .f32).run([try fixture.tensor("x")])[0]
            let c = Closeness.compare(out.values, try fixture.tensor("aux.t\(k - 1).out").values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "after \(k) couplings: \(c)")
        }
    }
}
