import Foundation

/// The monotonic rational-quadratic spline of Durkan et al. (2019), eq. 4 (value) and eq. 5
/// (derivative), in the form zuko and nflows evaluate it. Bin k is the one with
/// xk[k] < x ≤ xk[k+1]; outside (xk[0], xk[K]] the map is the identity with log-derivative 0.
/// ξ is clamped to [0, 1], so rounding at a knot cannot leave the bin.
enum SplineKernel {
    /// Returns (y, ln|dy/dx|) for every element of x.
    static func evaluate(_ x: Tensor, _ xk: Tensor, _ yk: Tensor, _ dk: Tensor) -> (Tensor, Tensor) {
        let knots = xk.shape.last!
        let bins = knots - 1
        let perSample = xk.count / knots          // knots may be shared by the whole batch
        var y = x.values
        var logDerivative = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let v = x.values[i]
            let base = (i % perSample) * knots
            var below = 0
            for j in 0..<knots where xk.values[base + j] < v { below += 1 }
            let k = below - 1
            guard k >= 0 && k < bins else { continue }      // identity tails
            let x0 = xk.values[base + k], x1 = xk.values[base + k + 1]
            let y0 = yk.values[base + k], y1 = yk.values[base + k + 1]
            let d0 = dk.values[base + k], d1 = dk.values[base + k + 1]
            let width = x1 - x0, height = y1 - y0
            guard width > 0 else { continue }
            let s = height / width
            let xi = min(max((v - x0) / width, 0), 1)
            let t = xi * (1 - xi)
            let denominator = s + (d0 + d1 - 2 * s) * t
            y[i] = y0 + height * (s * xi * xi + d0 * t) / denominator
            let numerator = s * s * (2 * s * t + d0 * (1 - xi) * (1 - xi) + d1 * xi * xi)
            logDerivative[i] = log(numerator) - 2 * log(denominator)
        }
        return (Tensor(shape: x.shape, values: y), Tensor(shape: x.shape, values: logDerivative))
    }
}
