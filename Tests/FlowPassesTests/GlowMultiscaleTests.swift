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
    static let spec = """
    import "std/glow.flow"

    param K = 2

    model glow_multiscale {
      input x: f32[B, 1, 8, 8]
      base normal
      flow {
        h = squeeze2x2(x)
        for k in 0..<K { h = glow_step(h, "levels.0.steps.{k}") }
        h, e1 = split_prior(h, "levels.0.prior")
        h = squeeze2x2(h)
        for k in 0..<K { h = glow_step(h, "levels.1.steps.{k}") }
        return concat(flatten(e1), flatten(top_prior(h, "top")), axis=1)
      }
    }
    """

    static func weights(seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
        var state = seed
        func uniform(_ n: Int, _ bound: Double) -> [Double] {
            (0..<n).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Double(state >> 11) / Double(1 << 53) * 2 - 1) * bound
            }
        }
        var out: [(name: String, shape: [Int], values: [Double])] = []
        func add(_ name: String, _ shape: [Int], _ values: [Double]) { out.append((name, shape, values)) }
        for (level, c) in [(0, 4), (1, 8)] {
            for k in 0..<2 {
                let p = "levels.\(level).steps.\(k)"
                add("\(p).actnorm.loc", [1, c, 1, 1], uniform(c, 0.3))
                add("\(p).actnorm.logs", [1, c, 1, 1], uniform(c, 0.3))
                // a cyclic-shift permutation matrix
                add("\(p).invconv.w_p", [c, c], (0..<(c * c)).map { ($0 / c + k + 1) % c == $0 % c ? 1 : 0 })
                add("\(p).invconv.sign_s", [c], (0..<c).map { $0 % 2 == 0 ? 1 : -1 })
                add("\(p).invconv.log_s", [c], uniform(c, 0.2))
                add("\(p).invconv.w_l", [c, c], uniform(c * c, 0.3))
                add("\(p).invconv.w_u", [c, c], uniform(c * c, 0.3))
                let hidden = 8
                add("\(p).coupling.net.0.weight", [hidden, c / 2, 3, 3], uniform(hidden * c / 2 * 9, 1 / Double(c / 2 * 9).squareRoot()))
                add("\(p).coupling.net.0.bias", [hidden], uniform(hidden, 0.1))
                add("\(p).coupling.net.2.weight", [hidden, hidden, 1, 1], uniform(hidden * hidden, 1 / Double(hidden).squareRoot()))
                add("\(p).coupling.net.2.bias", [hidden], uniform(hidden, 0.1))
                add("\(p).coupling.net.4.weight", [c, hidden, 3, 3], uniform(c * hidden * 9, 0.05))
                add("\(p).coupling.net.4.bias", [c], uniform(c, 0.1))
            }
        }
        add("levels.0.prior.weight", [4, 2, 3, 3], uniform(72, 0.1))
        add("levels.0.prior.bias", [4], uniform(4, 0.1))
        add("levels.0.prior.logs", [1, 4, 1, 1], uniform(4, 0.1))
        add("top.mean", [1, 8, 2, 2], uniform(32, 0.5))
        add("top.logs", [1, 8, 2, 2], uniform(32, 0.3))
        return out
    }

    static func model() throws -> Model {
        let path = NSTemporaryDirectory() + "flowc-glow-ms-\(getpid()).safetensors"
        try SafetensorsFile.write(weights(seed: 11), to: path)
        return try Elaborator.elaborate(text: spec, path: Repository.path("Tests/glow_multiscale.flow"), options: .init(weightsPath: path))
    }

    /// 1e-6 relative in f64, as LogDetTests.
    func testLogDetEqualsFiniteDifferenceJacobian() throws {
        let model = try Self.model()
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
