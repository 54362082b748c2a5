import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// Every derived entry point of every reference model against the fixtures made by zuko and
/// PyTorch, from specs that contain no inverse and no log-det. Tolerances as MODELS.md suggests
/// for an f32 re-implementation: logdet, log_prob 1e-3 + 1e-5·|b|; samples and inverses
/// 1e-4 + 1e-4·|b|.
final class DerivedEntryPointTests: XCTestCase {
    static let keys = ["a_nsf", "b_maf", "c_realnvp2", "c_realnvp64", "d_glow"]

    func run(_ entry: EntryPoints.Entry, _ key: String, _ input: Tensor, precision: Precision = .f32) throws -> [Tensor] {
        let model = try ReferenceFixture(key).model()
        let graph = try EntryPoints.graph(entry, of: model)
        return try Interpreter(graph: graph, weights: try WeightStore(path: Repository.fixture("\(key).safetensors")), precision: precision).run([input])
    }

    func assertClose(_ a: Tensor, _ b: Tensor, atol: Double, rtol: Double, _ what: String) {
        XCTAssertEqual(a.shape, b.shape, what)
        let c = Closeness.compare(a.values, b.values, atol: atol, rtol: rtol)
        XCTAssertTrue(c.passes, "\(what): \(c)")
    }

    func testLogDetAndLogProb() throws {
        for key in Self.keys {
            let f = try ReferenceFixture(key)
            let forward = try run(.forward, key, try f.tensor("x"))
            assertClose(forward[0], try f.tensor("z"), atol: 1e-4, rtol: 1e-4, "\(key) z")
            assertClose(forward[1], try f.tensor("logdet"), atol: 1e-3, rtol: 1e-5, "\(key) logdet")
            assertClose(try run(.logProb, key, try f.tensor("x"))[0], try f.tensor("log_prob"), atol: 1e-3, rtol: 1e-5, "\(key) log_prob")
        }
    }

    func testSampleIsInverseOfNoiseAndInverseRecoversX() throws {
        for key in Self.keys {
            let f = try ReferenceFixture(key)
            let sample = try run(.sample, key, try f.tensor("noise"))
            assertClose(sample[0], try f.tensor("sample"), atol: 1e-4, rtol: 1e-4, "\(key) sample")
            let back = try run(.inverse, key, try f.tensor("z"))
            assertClose(back[0], try f.tensor("x"), atol: 1e-4, rtol: 1e-4, "\(key) inverse(z)")
            // the inverse's log-det is minus the forward log-det at the recovered point (f32 sums: 1e-3)
            assertClose(back[1], Tensor(shape: [16], values: try f.tensor("logdet").values.map { -$0 }), atol: 1e-3, rtol: 1e-5, "\(key) inverse logdet")
        }
    }

    /// `sample(seed, n)` equals `inverse(noise(seed, n))` whatever the batch split, and the
    /// temperature scales the noise.
    func testSampleIsIndependentOfTheBatchSplit() throws {
        let model = try ReferenceFixture("c_realnvp2").model()
        let inverse = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: try WeightStore(path: model.weightsPath!), precision: .f32)
        let all = try inverse.run([Tensor(shape: [10, 2], values: EntryPoints.noise(of: model, seed: 9, firstRow: 0, rows: 10, temperature: 0.7))])[0]
        let head = try inverse.run([Tensor(shape: [4, 2], values: EntryPoints.noise(of: model, seed: 9, firstRow: 0, rows: 4, temperature: 0.7))])[0]
        let tail = try inverse.run([Tensor(shape: [6, 2], values: EntryPoints.noise(of: model, seed: 9, firstRow: 4, rows: 6, temperature: 0.7))])[0]
        // The noise is identical; the samples agree to a few f32 ulps (1e-6·(1 + |x|)) because
        // OpenBLAS blocks sgemm differently for different batch sizes, changing the rounding.
        let c = Closeness.compare(head.values + tail.values, all.values, atol: 1e-6, rtol: 1e-6)
        XCTAssertTrue(c.passes, "\(c)")
        XCTAssertEqual(EntryPoints.noise(of: model, seed: 9, firstRow: 0, rows: 3, temperature: 0.5),
                       EntryPoints.noise(of: model, seed: 9, firstRow: 0, rows: 3, temperature: 1).map { $0 * 0.5 })
    }

    /// The autoregressive log-dets against the brute-force Jacobian (as LogDetTests does for
    /// the coupling models): 1e-6 relative in f64.
    func testAutoregressiveLogDetEqualsFiniteDifferenceJacobian() throws {
        for key in ["a_nsf", "b_maf"] {
            let f = try ReferenceFixture(key)
            let model = try f.model()
            let store = try WeightStore(path: Repository.fixture("\(key).safetensors"))
            let flow = try Interpreter(graph: model.flow, weights: store, precision: .f64)
            let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f64)
            let x = try f.tensor("x")
            for row in [0, 1, 2, 7] {
                let point = Array(x.values[(row * 8)..<((row + 1) * 8)])
                let derived = try forward.run([Tensor(shape: [1, 8], values: point)])[1].values[0]
                let oracle = try BruteForce.logAbsDetJacobian(flow, shape: [8], at: point)
                XCTAssertEqual(derived, oracle, accuracy: 1e-6 + 1e-6 * abs(oracle), "\(key) row \(row)")
            }
        }
    }
}
