import FlowIR
import FlowInterpreter
import FlowTestSupport
import Foundation
import XCTest

/// The rational-quadratic spline against its defining properties (Durkan et al. 2019, §3.1):
/// it interpolates the knots with the given slopes, is monotonic, is the identity outside the
/// knot range, never gives NaN, and its log-derivative equals a finite difference.
final class SplineTests: XCTestCase {
    // Knots shared by every sample: x ∈ [-2, 2] in 3 bins, y ∈ [-2, 2], slopes 1 at the ends.
    let xk = [-2.0, -0.5, 1.0, 2.0], yk = [-2.0, 0.5, 1.0, 2.0], dk = [1.0, 2.5, 0.3, 1.0]

    func spline(_ values: [Double], logDerivative: Bool = false) throws -> [Double] {
        let c = { (v: [Double]) in "const([\(v.map { Attribute.format($0) }.joined(separator: ", "))], shape=[1, 4])" }
        let op = logDerivative ? "rq_spline_logderiv" : "rq_spline"
        let text = "model s {\n  input x: f64[B, 1]\n  flow {\n    return \(op)(x, \(c(xk)), \(c(yk)), \(c(dk)))\n  }\n}\n"
        let model = try Elaborator.elaborate(text: text, path: "s.flow")
        return try Interpreter(graph: model.flow, weights: nil, precision: .f64)
            .run([Tensor(shape: [values.count, 1], values: values)])[0].values
    }

    func testInterpolatesKnotsAndIsIdentityOutside() throws {
        // At an inner knot the value is the knot's y (to rounding: 1e-12).
        let y = try spline([-0.5, 1.0, 2.0, -3, 7.5, -2.0])
        let c = Closeness.compare(y, [0.5, 1.0, 2.0, -3, 7.5, -2.0], atol: 1e-12, rtol: 1e-12)
        XCTAssertTrue(c.passes, "\(c) \(y)")
        XCTAssertEqual(try spline([-3, 7.5], logDerivative: true), [0, 0])
    }

    func testMonotonicAndFiniteEverywhere() throws {
        let xs = stride(from: -2.5, through: 2.5, by: 0.001).map { $0 } + [-1e30, 1e30, -2.0.nextUp, 2.0.nextDown, -0.5.nextUp]
        let ys = try spline(xs)
        let ld = try spline(xs, logDerivative: true)
        XCTAssertTrue(ys.allSatisfy(\.isFinite) && ld.allSatisfy(\.isFinite))
        let sweep = Array(ys.prefix(5001))
        for i in 1..<sweep.count { XCTAssertGreaterThan(sweep[i], sweep[i - 1], "not increasing at x = \(xs[i])") }
    }

    /// ln dy/dx against a central difference with h = 1e-6 in f64 (truncation error ~h² y''' ≈ 1e-11,
    /// rounding ~1e-16/h = 1e-10), compared within 1e-6 relative.
    func testLogDerivativeMatchesFiniteDifference() throws {
        let xs = [-1.9, -1.2, -0.6, -0.4, 0.0, 0.7, 0.99, 1.01, 1.5, 1.95]
        let h = 1e-6
        let plus = try spline(xs.map { $0 + h }), minus = try spline(xs.map { $0 - h })
        let numeric = zip(plus, minus).map { log(($0 - $1) / (2 * h)) }
        let analytic = try spline(xs, logDerivative: true)
        let c = Closeness.compare(analytic, numeric, atol: 1e-6, rtol: 1e-6)
        XCTAssertTrue(c.passes, "\(c)")
    }
}
