import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// The exact continuous-flow log-likelihood of the 2-D flow-matching field against a brute-force
/// f64 reference: RK4 with 400 steps on (x, L) with the divergence from a central-difference
/// Jacobian (h = 1e-5), all in the interpreter. RK4's error at 400 steps is ~1e-10 and the
/// finite differences' ~1e-10, so the 1e-4 tolerance measures Flowc's 32-step solve.
final class CNFLikelihoodTests: XCTestCase {
    func testExactLikelihoodMatchesBruteForce() throws {
        let f = try ReferenceFixture("e_fm")
        let model = try f.model()
        let store = try WeightStore(path: model.weightsPath!)
        let rows = 4
        let x = Array(try f.tensor("x").values.prefix(2 * rows))
        let graph = try EntryPoints.graph(.logProb, of: model)
        let flowc = try Interpreter(graph: graph, weights: store, precision: .f64).run([Tensor(shape: [rows, 2], values: x)])[0].values

        let velocity = try Interpreter(graph: model.flow, weights: store, precision: .f64)
        // one call evaluates v at each point and at the ±h perturbations of each coordinate
        func field(_ points: [Double], _ t: Double) throws -> (v: [Double], divergence: [Double]) {
            let h = 1e-5
            var batch: [Double] = []
            for r in 0..<rows {
                let p = Array(points[(2 * r)..<(2 * r + 2)])
                batch += p
                for i in 0..<2 { for s in [h, -h] { var q = p; q[i] += s; batch += q } }
            }
            let n = batch.count / 2
            let out = try velocity.run([Tensor(shape: [n, 2], values: batch), Tensor(shape: [n, 1], repeating: t)])[0].values
            var v: [Double] = [], divergence: [Double] = []
            for r in 0..<rows {
                let base = 5 * r
                v += Array(out[(2 * base)..<(2 * base + 2)])
                var d = 0.0
                for i in 0..<2 { d += (out[2 * (base + 1 + 2 * i) + i] - out[2 * (base + 2 + 2 * i) + i]) / (2 * h) }
                divergence.append(d)
            }
            return (v, divergence)
        }
        let steps = 400
        let h = -1.0 / Double(steps)              // from t = 1 (data) to t = 0 (noise)
        var state = x, change = [Double](repeating: 0, count: rows)
        for k in 0..<steps {
            let t = 1 + Double(k) * h
            func shifted(_ k: [Double], _ c: Double) -> [Double] { zip(state, k).map { $0 + c * $1 } }
            let a = try field(state, t), b = try field(shifted(a.v, h / 2), t + h / 2)
            let c = try field(shifted(b.v, h / 2), t + h / 2), d = try field(shifted(c.v, h), t + h)
            state = state.indices.map { state[$0] + h / 6 * (a.v[$0] + 2 * b.v[$0] + 2 * c.v[$0] + d.v[$0]) }
            change = change.indices.map { change[$0] + h / 6 * (a.divergence[$0] + 2 * b.divergence[$0] + 2 * c.divergence[$0] + d.divergence[$0]) }
        }
        for r in 0..<rows {
            let z = Array(state[(2 * r)..<(2 * r + 2)])
            let reference = -0.5 * (z[0] * z[0] + z[1] * z[1]) - log(2 * Double.pi) + change[r]
            XCTAssertEqual(flowc[r], reference, accuracy: 1e-4, "row \(r)")
        }
    }
}
