import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowTestSupport
import XCTest

/// ∇ₓ log p(x) by reverse-mode differentiation against central differences of log p in f64
/// (step 1e-5: truncation ~1e-10·|∂³|, rounding ~1e-11/1e-5; bound 1e-6·(1 + |g|)).
final class ScoreTests: XCTestCase {
    func check(_ model: Model, _ inputs: [Tensor], _ what: String) throws {
        let store = try model.weightsPath.map { try WeightStore(path: $0) }
        let score = try Interpreter(graph: try EntryPoints.graph(.score, of: model), weights: store, precision: .f64).run(inputs)[0]
        let logProb = try Interpreter(graph: try EntryPoints.graph(.logProb, of: model), weights: store, precision: .f64)
        let x = inputs[0]
        let n = x.count / x.shape[0]
        for row in 0..<min(2, x.shape[0]) {
            for i in stride(from: 0, to: n, by: max(1, n / 12)) {
                func at(_ delta: Double) throws -> Double {
                    var shifted = Tensor(shape: [1] + Array(x.shape.dropFirst()), values: Array(x.values[(row * n)..<((row + 1) * n)]))
                    shifted.values[i] += delta
                    let context = inputs.dropFirst().map { t in Tensor(shape: [1] + Array(t.shape.dropFirst()), values: Array(t.values[(row * (t.count / t.shape[0]))..<((row + 1) * (t.count / t.shape[0]))])) }
                    return try logProb.run([shifted] + context)[0].values[0]
                }
                let h = 1e-5
                let numeric = (try at(h) - at(-h)) / (2 * h)
                let derived = score.values[row * n + i]
                XCTAssertEqual(derived, numeric, accuracy: 1e-6 * (1 + abs(numeric)), "\(what) row \(row) element \(i)")
            }
        }
    }

    func testTarFlowScore() throws {
        let f = try ReferenceFixture("g_tarflow")
        try check(try f.model(), [Tensor(shape: [2, 1, 8, 8], values: Array(try f.tensor("x").values.prefix(128)))], "g_tarflow")
        let c = try ReferenceFixture("g_tarflow_cond")
        try check(try c.model(), [Tensor(shape: [2, 1, 8, 8], values: Array(try c.tensor("x").values.prefix(128))), Tensor(shape: [2, 1], values: [3, 10])], "g_tarflow_cond")
    }

    func testCouplingAndAutoregressiveScores() throws {
        for key in ["c_realnvp2", "b_maf"] {
            let f = try ReferenceFixture(key)
            let x = try f.tensor("x")
            let n = x.count / x.shape[0]
            try check(try f.model(), [Tensor(shape: [2, n], values: Array(x.values.prefix(2 * n)))], key)
        }
    }
}
