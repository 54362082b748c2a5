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

    /// x = spline⁻¹(y): bin k with yk[k] < y ≤ yk[k+1]; ξ is the root in [0, 1] of
    /// a ξ² + b ξ + c = 0 with a = h(s - d0) + y'(d0 + d1 - 2s), b = h d0 - y'(d0 + d1 - 2s),
    /// c = -s y' (y' = y - y0, h = y1 - y0), taken as 2c / (-b - √(b² - 4ac)), which has no
    /// cancellation because b ≥ 0 wherever the discriminant's root matters (Durkan et al. eq. 6–8).
    static func inverse(_ y: Tensor, _ xk: Tensor, _ yk: Tensor, _ dk: Tensor) -> Tensor {
        let knots = xk.shape.last!
        let bins = knots - 1
        let perSample = xk.count / knots
        var x = y.values
        for i in 0..<y.count {
            let v = y.values[i]
            let base = (i % perSample) * knots
            var below = 0
            for j in 0..<knots where yk.values[base + j] < v { below += 1 }
            let k = below - 1
            guard k >= 0 && k < bins else { continue }
            let x0 = xk.values[base + k], x1 = xk.values[base + k + 1]
            let y0 = yk.values[base + k], y1 = yk.values[base + k + 1]
            let d0 = dk.values[base + k], d1 = dk.values[base + k + 1]
            let width = x1 - x0, height = y1 - y0
            guard width > 0, height > 0 else { continue }
            let s = height / width
            let shifted = v - y0
            let curvature = d0 + d1 - 2 * s
            let a = height * (s - d0) + shifted * curvature
            let b = height * d0 - shifted * curvature
            let c = -s * shifted
            let root = max(b * b - 4 * a * c, 0).squareRoot()
            let denominator = -b - root
            let xi = denominator == 0 ? 0 : min(max(2 * c / denominator, 0), 1)
            x[i] = x0 + xi * width
        }
        return Tensor(shape: y.shape, values: x)
    }
}
