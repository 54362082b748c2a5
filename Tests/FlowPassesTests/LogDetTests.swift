import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// The derived log-determinant against a brute-force oracle: the Jacobian of the interpreted
/// flow by central differences in f64, its log |det| by LU with partial pivoting.
final class LogDetTests: XCTestCase {
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
                let oracle = try BruteForce.logAbsDetJacobian(flow, shape: shape, at: point)
                XCTAssertEqual(derived, oracle, accuracy: 1e-6 + 1e-6 * abs(oracle), "\(key) row \(row)")
            }
        }
    }
}
