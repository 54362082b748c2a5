import FlowInterpreter
import Foundation

/// Brute-force oracles for derived quantities.
public enum BruteForce {
    /// ln |det J| of `flow` at one point x (flat, one sample), with step h.
    public static func logAbsDetJacobian(_ flow: Interpreter, shape: [Int], at x: [Double], h: Double = 1e-5) throws -> Double {
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

}
