import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import FlowRandom
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

/// Hutchinson's estimator is unbiased: its mean over 1000 probes drawn from seeds 0..<1000 lies
/// within 3 standard errors of the exact divergence's log-likelihood (both with the same 2-step
/// RK4 discretisation, f64); the 1000 probes run as one batch, and a seeded solve equals the
/// batched row of its seed.
final class HutchinsonTests: XCTestCase {
    func testMeanOverSeedsIsWithinThreeStandardErrors() throws {
        let f = try ReferenceFixture("e_fm")
        let model = try f.model()
        let store = try WeightStore(path: model.weightsPath!)
        let x = Array(try f.tensor("x").values.prefix(2))
        let exact = try Interpreter(graph: try CNFLikelihood.logProb(model, steps: 2), weights: store, precision: .f64)
            .run([Tensor(shape: [1, 2], values: x)])[0].values[0]
        let batched = try Interpreter(graph: try CNFLikelihood.logProb(model, steps: 2, divergence: .hutchinsonProbeInput), weights: store, precision: .f64)
        for gaussian in [false, true] {
            let probes = (0..<1000).flatMap { seed -> [Double] in
                let n = Philox.normals(seed: UInt64(seed), firstRow: 0, rows: 1, perRow: 2)
                return gaussian ? n : n.map { $0 < 0 ? -1 : 1 }
            }
            let estimates = try batched.run([Tensor(shape: [1000, 2], values: Array((0..<1000).map { _ in x }.joined())),
                                             Tensor(shape: [1000, 2], values: probes)])[0].values
            let mean = estimates.reduce(0, +) / 1000
            let sd = (estimates.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 999).squareRoot()
            XCTAssertGreaterThan(sd, 0)
            XCTAssertEqual(mean, exact, accuracy: 3 * sd / 1000.0.squareRoot(), gaussian ? "Gaussian" : "Rademacher")
            let seeded = try Interpreter(graph: try CNFLikelihood.logProb(model, steps: 2, divergence: .hutchinson(gaussian: gaussian, seed: 17)),
                                         weights: store, precision: .f64).run([Tensor(shape: [1, 2], values: x)])[0].values[0]
            XCTAssertEqual(seeded, estimates[17], accuracy: 1e-12)
        }
    }
}
