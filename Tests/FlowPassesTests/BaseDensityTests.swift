import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// Base densities: the diagonal Gaussian against its closed form, and sampling through it.
final class BaseDensityTests: XCTestCase {
    static let spec = """
    model g {
      input x: f64[B, 2]
      base normal(loc="mu", scale="sigma")
      flow {
        return x * 2.0 + 1.0
      }
    }
    """

    func model() throws -> Model {
        let path = TestFiles.path("base.safetensors")
        try SafetensorsFile.write([(name: "mu", shape: [2], values: [0.5, -1]), (name: "sigma", shape: [2], values: [2, 0.25])], to: path)
        return try Elaborator.elaborate(text: Self.spec, path: "g.flow", options: .init(weightsPath: path))
    }

    /// log p(x) = Σ log N(2x + 1; μ, σ²) + 2 ln 2, in f64 (1e-12).
    func testDiagonalGaussianLogProbMatchesClosedForm() throws {
        let m = try model()
        let x: [Double] = [0.3, -0.7, 2, 1.5]
        let lp = try Interpreter(graph: try EntryPoints.graph(.logProb, of: m), weights: try WeightStore(path: m.weightsPath!), precision: .f64)
            .run([Tensor(shape: [2, 2], values: x)])[0]
        let mu = [0.5, -1.0], sigma = [2.0, 0.25]
        let expected = (0..<2).map { row in
            (0..<2).map { i -> Double in
                let z = 2 * x[row * 2 + i] + 1, u = (z - mu[i]) / sigma[i]
                return -0.5 * u * u - log(sigma[i]) - 0.5 * log(2 * Double.pi)
            }.reduce(0, +) + 2 * log(2.0)
        }
        XCTAssertEqual(lp.values[0], expected[0], accuracy: 1e-12)
        XCTAssertEqual(lp.values[1], expected[1], accuracy: 1e-12)
    }

    /// sample(ε) = f⁻¹(μ + σ ε) = ((μ + σ ε) - 1) / 2, exactly.
    func testSampleMapsNoiseThroughTheBase() throws {
        let m = try model()
        let eps: [Double] = [1, -2, 0, 0.5]
        let x = try Interpreter(graph: try EntryPoints.graph(.sample, of: m), weights: try WeightStore(path: m.weightsPath!), precision: .f64)
            .run([Tensor(shape: [2, 2], values: eps)])[0]
        let mu = [0.5, -1.0], sigma = [2.0, 0.25]
        let expected: [Double] = eps.indices.map { i in (mu[i % 2] + sigma[i % 2] * eps[i] - 1) / 2 }
        XCTAssertEqual(x.values, expected)
    }

    func testBaseWeightOfWrongShapeIsAnError() throws {
        let path = TestFiles.path("base-bad.safetensors")
        try SafetensorsFile.write([(name: "mu", shape: [3], values: [0, 0, 0]), (name: "sigma", shape: [2], values: [1, 1])], to: path)
        XCTAssertThrowsError(try Elaborator.elaborate(text: Self.spec, path: "g.flow", options: .init(weightsPath: path))) { error in
            XCTAssertEqual("\(error)", "g.flow:3:3: error: base loc 'mu' has shape [3], which does not broadcast to one sample [2]")
        }
    }
}
