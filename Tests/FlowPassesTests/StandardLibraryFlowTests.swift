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
    static let spec = """
    import "std/coupling.flow"
    import "std/nflows.flow"
    import "std/permutations.flow"

    model std_mix {
      input x: f32[B, 6]
      flow {
        x = additive_coupling(x, "add", 2, "tanh")
        x = reverse_features(x)
        x = affine_coupling(x, "aff", 2, "relu")
        x = permute_features(x, [2, 0, 4, 1, 5, 3])
        xa = slice(x, axis=1, start=0, end=3)
        xb = slice(x, axis=1, start=3)
        p = reshape(mlp(xa, "spl", 2, "relu"), [B, 3, 11])
        return concat(xa, nflows_spline(xb, p, 4, 3.0), axis=1)
      }
    }
    """

    /// Deterministic pseudo-random weights with PyTorch's default Linear initialisation,
    /// U(-1/√fan_in, 1/√fan_in) for weights and biases, from a seed; the spline network's last
    /// layer is scaled by 0.1 (flows are initialised near the identity). With the plain scale
    /// some random splines get slopes near nflows' minimum 1e-3 and the map's condition number
    /// reaches 1e4, which no f32 round trip survives to 1e-4.
    static func weights(seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
        var state = seed
        func uniform(_ n: Int, bound: Double) -> [Double] {
            (0..<n).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Double(state >> 11) / Double(1 << 53) * 2 - 1) * bound
            }
        }
        let h = 8
        let layers: [(String, Int, Int)] = [("add.0", 3, h), ("add.2", h, 3), ("aff.0", 3, h), ("aff.2", h, 6), ("spl.0", 3, h), ("spl.2", h, 33)]
        return layers.flatMap { name, fanIn, fanOut in
            let bound = (name == "spl.2" ? 0.1 : 1) / Double(fanIn).squareRoot()
            return [(name: "\(name).weight", shape: [fanOut, fanIn], values: uniform(fanOut * fanIn, bound: bound)),
                    (name: "\(name).bias", shape: [fanOut], values: uniform(fanOut, bound: bound))]
        }
    }

    func testInvertibleAndLogDetMatchesJacobian() throws {
        let path = NSTemporaryDirectory() + "flowc-std-\(getpid()).safetensors"
        try SafetensorsFile.write(Self.weights(seed: 7), to: path)
        let model = try Elaborator.elaborate(text: Self.spec, path: Repository.path("Tests/std_mix.flow"), options: .init(weightsPath: path))
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
