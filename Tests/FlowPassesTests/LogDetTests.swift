import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// The derived log-determinant against a brute-force oracle: the Jacobian of the interpreted
/// flow by central differences in f64, its log |det| by LU with partial pivoting.
final class LogDetTests: XCTestCase {
    /// ln |det J| of `flow` at one point x (flat, one sample), with step h.
    static func bruteForceLogDet(_ flow: Interpreter, shape: [Int], x: [Double], h: Double = 1e-5) throws -> Double {
        let n = x.count
        var jacobian = [Double](repeating: 0, count: n * n)
        // All 2n perturbed copies in one batch.
        var batch: [Double] = []
        for j in 0..<n {
            for sign in [1.0, -1.0] {
                var p = x
                p[j] += sign * h
                batch += p
            }
        }
        let out = try flow.run([Tensor(shape: [2 * n] + shape, values: batch)])[0].values
        for j in 0..<n {
            for i in 0..<n {
                jacobian[i * n + j] = (out[(2 * j) * n + i] - out[(2 * j + 1) * n + i]) / (2 * h)
            }
        }
        var m = jacobian, total = 0.0
        for c in 0..<n {
            var p = c
            for r in c..<n where abs(m[r * n + c]) > abs(m[p * n + c]) { p = r }
            if p != c { for k in 0..<n { m.swapAt(c * n + k, p * n + k) } }
            total += log(abs(m[c * n + c]))
            for r in (c + 1)..<n {
                let f = m[r * n + c] / m[c * n + c]
                for k in c..<n { m[r * n + k] -= f * m[c * n + k] }
            }
        }
        return total
    }

    /// Within 1e-6 relative (plus 1e-6 absolute for values near 0): central differences with
    /// h = 1e-5 have truncation error ~h²·|f'''| ≈ 1e-10 and rounding ~1e-16/h ≈ 1e-11 per entry.
    func testDerivedLogDetEqualsFiniteDifferenceJacobian() throws {
        for key in ["c_realnvp2", "c_realnvp64", "d_glow"] {
            let fixture = try ReferenceFixture(key)
            let model = try fixture.model()
            let store = try WeightStore(path: Repository.fixture("\(key).safetensors"))
            let flow = try Interpreter(graph: model.flow, weights: store, precision: .f64)
            let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f64)
            let x = try fixture.tensor("x")
            let shape = Array(x.shape.dropFirst())
            let n = shape.reduce(1, *)
            for row in [0, 1, 5] {
                let point = Array(x.values[(row * n)..<((row + 1) * n)])
                let derived = try forward.run([Tensor(shape: [1] + shape, values: point)])[1].values[0]
                let oracle = try Self.bruteForceLogDet(flow, shape: shape, x: point)
                XCTAssertEqual(derived, oracle, accuracy: 1e-6 + 1e-6 * abs(oracle), "\(key) row \(row)")
            }
        }
    }
}
