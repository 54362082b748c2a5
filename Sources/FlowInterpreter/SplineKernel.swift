import Foundation

/// The monotonic rational-quadratic spline of Durkan et al. (2019), eq. 4 (value) and eq. 5
/// (derivative), in the form zuko and nflows evaluate it. Bin k is the one with
/// xk[k] < x ≤ xk[k+1]; outside (xk[0], xk[K]] the map is the identity with log-derivative 0.
/// ξ is clamped to [0, 1], so rounding at a knot cannot leave the bin.
enum SplineKernel {
    /// The bin of one element: its knots (x0, y0), (x1, y1) and slopes d0, d1.
    struct Bin {
        var x0, x1, y0, y1, d0, d1: Double
        var width: Double { x1 - x0 }
        var height: Double { y1 - y0 }
        var slope: Double { height / width }
    }

    /// The bin k with edges[k] < v ≤ edges[k+1] among element i's knots (edges: xk forward,
    /// yk inverse), or nil outside the knots or for an empty bin: the identity tails.
    static func bin(of v: Double, element i: Int, edges: Tensor, _ xk: Tensor, _ yk: Tensor, _ dk: Tensor) -> Bin? {
        let knots = xk.shape.last!
        let base = (i % (xk.count / knots)) * knots          // knots may be shared by the whole batch
        var below = 0
        for j in 0..<knots where edges.values[base + j] < v { below += 1 }
        let k = below - 1
        guard k >= 0 && k < knots - 1 else { return nil }
        let b = Bin(x0: xk.values[base + k], x1: xk.values[base + k + 1], y0: yk.values[base + k], y1: yk.values[base + k + 1],
                    d0: dk.values[base + k], d1: dk.values[base + k + 1])
        return b.width > 0 && b.height > 0 ? b : nil
    }

    /// Returns (y, ln|dy/dx|) for every element of x.
    static func evaluate(_ x: Tensor, _ xk: Tensor, _ yk: Tensor, _ dk: Tensor) -> (Tensor, Tensor) {
        var y = x.values
        var logDerivative = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            guard let b = bin(of: x.values[i], element: i, edges: xk, xk, yk, dk) else { continue }
            let s = b.slope
            let xi = min(max((x.values[i] - b.x0) / b.width, 0), 1)
            let t = xi * (1 - xi)
            let denominator = s + (b.d0 + b.d1 - 2 * s) * t
            y[i] = b.y0 + b.height * (s * xi * xi + b.d0 * t) / denominator
            let numerator = s * s * (2 * s * t + b.d0 * (1 - xi) * (1 - xi) + b.d1 * xi * xi)
            logDerivative[i] = log(numerator) - 2 * log(denominator)
        }
        return (Tensor(shape: x.shape, values: y), Tensor(shape: x.shape, values: logDerivative))
    }

    /// x = spline⁻¹(y): bin k with yk[k] < y ≤ yk[k+1]; ξ is the root in [0, 1] of
    /// a ξ² + b ξ + c = 0 with a = h(s - d0) + y'(d0 + d1 - 2s), b = h d0 - y'(d0 + d1 - 2s),
    /// c = -s y' (y' = y - y0, h = y1 - y0), taken as 2c / (-b - √(b² - 4ac)), which has no
    /// cancellation because b ≥ 0 wherever the discriminant's root matters (Durkan et al. eq. 6–8).
    static func inverse(_ y: Tensor, _ xk: Tensor, _ yk: Tensor, _ dk: Tensor) -> Tensor {
        var x = y.values
        for i in 0..<y.count {
            guard let b = bin(of: y.values[i], element: i, edges: yk, xk, yk, dk) else { continue }
            let s = b.slope
            let shifted = y.values[i] - b.y0
            let curvature = b.d0 + b.d1 - 2 * s
            let qa = b.height * (s - b.d0) + shifted * curvature
            let qb = b.height * b.d0 - shifted * curvature
            let qc = -s * shifted
            let root = max(qb * qb - 4 * qa * qc, 0).squareRoot()
            let denominator = -qb - root
            let xi = denominator == 0 ? 0 : min(max(2 * qc / denominator, 0), 1)
            x[i] = b.x0 + xi * b.width
        }
        return Tensor(shape: y.shape, values: x)
    }
}
