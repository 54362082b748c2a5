import FlowCodegen
import FlowIR
import FlowRuntime
import Foundation
import XCTest

/// The generated exp, log, tanh, sigmoid and softplus against f64 (Foundation), in units in
/// the last place of the f32 result: each function compiled as a one-op flow, evaluated on a
/// dense sweep of its range (tanh up to |x| = 8: beyond, f32 tanh is exactly ±1 and the flow's
/// log-det ln(1 - y²) is -inf, which the compiled entry point reports as an error). The bounds
/// asserted are the measured maxima rounded up.
final class PolynomialMathTests: XCTestCase {
    func compiled(_ op: String) throws -> CompiledModel {
        let text = "model m {\n  input x: f32[B, 1]\n  flow { return \(op)(x) }\n}\n"
        let model = try Elaborator.elaborate(text: text, path: "m.flow")
        let path = NSTemporaryDirectory() + "flowc-math-\(getpid())-\(op).so"
        try ArtifactCompiler.compile(model, output: path)
        return try CompiledModel(path: path)
    }

    /// max over inputs of |f32 result − exact| / ulp(exact as f32)
    func ulps(_ op: String, _ inputs: [Float], _ exact: (Double) -> Double) throws -> Double {
        let y = try compiled(op).forward(inputs).z
        var worst = 0.0
        for (x, v) in zip(inputs, y) {
            let e = exact(Double(x))
            if e == 0 { XCTAssertEqual(v, 0, "\(op)(\(x))"); continue }
            let ulp = Double(Float(e).ulp)
            worst = max(worst, abs(Double(v) - e) / ulp)
        }
        return worst
    }

    func testMaximumErrorsInUlps() throws {
        func sweep(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] { (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) } }
        let logInputs = (0..<20000).map { Float(pow(10, -37.5 + 75 * Double($0) / 19999)) } + [Float.leastNormalMagnitude, 1, 2, 0.5, Float(M_E)]
        let results: [(String, Double, Double)] = [
            ("exp", try ulps("exp", sweep(-87, 88, 40001)) { Foundation.exp($0) }, 1),
            ("log", try ulps("log", logInputs) { Foundation.log($0) }, 1),
            ("tanh", try ulps("tanh", sweep(-8, 8, 40001) + sweep(-0.07, 0.07, 2001)) { Foundation.tanh($0) }, 3),
            ("sigmoid", try ulps("sigmoid", sweep(-80, 80, 40001)) { 1 / (1 + Foundation.exp(-$0)) }, 2),
            ("softplus", try ulps("softplus", sweep(-80, 80, 40001)) { Swift.max($0, 0) + Foundation.log1p(Foundation.exp(-Swift.abs($0))) }, 2),
        ]
        for (op, measured, bound) in results {
            XCTAssertLessThanOrEqual(measured, bound, op)
            print("\(op): max error \(String(format: "%.2f", measured)) ulp (bound \(bound))")
        }
    }
}
