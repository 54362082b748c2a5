import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// The flows of IR/std that no reference fixture covers (NICE and tanh-RealNVP couplings,
/// nflows splines, permutations) with random weights: each must be found invertible and its
/// derived log-det must equal the brute-force Jacobian (same tolerance as LogDetTests).
final class StandardLibraryFlowTests: XCTestCase {
    func testInvertibleAndLogDetMatchesJacobian() throws {
        let path = TestFiles.path("std.safetensors")
        try SafetensorsFile.write(TestModels.StandardMix.weights(seed: 7), to: path)
        let model = try Elaborator.elaborate(text: TestModels.StandardMix.spec, path: Repository.path("Tests/std_mix.flow"), options: .init(weightsPath: path))
        let store = try WeightStore(path: path)
        let flow = try Interpreter(graph: model.flow, weights: store, precision: .f64)
        let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f64)
        // Points inside the spline box and in its identity tails (|x| > 3 after the couplings).
        let points: [[Double]] = [[0.1, -0.3, 0.5, 0.7, -1.1, 0.2], [2.5, -2.0, 1.0, 0.0, 0.3, -0.8], [5, -6, 4, 7, -5, 3.5]]
        for p in points {
            let derived = try forward.run([Tensor(shape: [1, 6], values: p)])[1].values[0]
            let oracle = try BruteForce.logAbsDetJacobian(flow, shape: [6], at: p)
            XCTAssertEqual(derived, oracle, accuracy: 1e-6 + 1e-6 * abs(oracle), "\(p)")
        }
    }

    func testNflowsKnotsArePinnedAndSlopesAreOneAtTheEnds() throws {
        let text = """
        import "std/nflows.flow"
        model k {
          input x: f64[B, 2, 4]
          flow {
            xk, yk, dk = nflows_spline_knots(x, x * 2.0, slice(x, axis=2, start=0, end=3), 3.0)
            return concat(xk, dk, axis=2)
          }
        }
        """
        let model = try Elaborator.elaborate(text: text, path: Repository.path("Tests/k.flow"))
        let out = try Interpreter(graph: model.flow, weights: nil, precision: .f64)
            .run([Tensor(shape: [1, 2, 4], values: [0.3, -1, 2, 0.1, 5, -5, 0, 1])])[0]
        for row in 0..<2 {
            let v = Array(out.values[(row * 10)..<((row + 1) * 10)])
            XCTAssertEqual(v[0], -3, accuracy: 1e-15)
            XCTAssertEqual(v[4], 3)                                   // pinned exactly
            for i in 0..<4 { XCTAssertGreaterThanOrEqual(v[i + 1] - v[i], 6 * 1e-3 - 1e-12) }  // min bin width 1e-3 of 2·bound
            XCTAssertEqual(v[5], 1, accuracy: 1e-12)                  // 1e-3 + softplus(ln(e^(1-1e-3) - 1))
            XCTAssertEqual(v[9], 1, accuracy: 1e-12)
        }
    }
}
