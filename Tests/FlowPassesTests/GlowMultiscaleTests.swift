import FlowIR
import FlowRandom
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// A two-level Glow on 8x8x1 written with IR/std/glow.flow (squeeze, steps, split with the
/// learned conditional prior, top prior), with random weights: invertible with no special case,
/// and its derived log-det equals the brute-force Jacobian over all 64 dimensions.
final class GlowMultiscaleTests: XCTestCase {
    /// 1e-6 relative in f64, as LogDetTests.
    func testLogDetEqualsFiniteDifferenceJacobian() throws {
        let model = try TestModels.GlowMultiscale.model()
        let store = try WeightStore(path: model.weightsPath!)
        let flow = try Interpreter(graph: model.flow, weights: store, precision: .f64)
        let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f64)
        let x = Philox.normals(seed: 5, firstRow: 0, rows: 2, perRow: 64).map { 0.5 * $0 }
        for row in 0..<2 {
            let point = Array(x[(row * 64)..<((row + 1) * 64)])
            let derived = try forward.run([Tensor(shape: [1, 1, 8, 8], values: point)])[1].values[0]
            let oracle = try BruteForce.logAbsDetJacobian(flow, shape: [1, 8, 8], at: point)
            XCTAssertEqual(derived, oracle, accuracy: 1e-6 + 1e-6 * abs(oracle), "row \(row)")
        }
    }
}
