import FlowIR
import FlowInterpreter
import FlowPasses
import FlowSolvers
import FlowTestSupport
import Foundation
import XCTest

/// Flow-map samplers against closed forms: X(x, s, t) = x·e^{t−s} is the exact flow map of
/// dx/dt = x, so k steps from noise (t = 1) to data (t = 0) give noise·e^{−1} for any k; and
/// Align Your Flow's x + (t − s)·F with a constant F = c adds c·(0 − 1) whatever the steps.
final class FlowMapTests: XCTestCase {
    func run(_ text: String, weights: String? = nil, steps: Int, noise: [Double]) throws -> [Double] {
        let model = try Elaborator.elaborate(text: text, path: Repository.path("Tests/flow_map.flow"), options: .init(weightsPath: weights))
        let graph = try EntryPoints.graph(.sample, of: model, sampler: SamplerSettings(method: .flowmap, steps: steps))
        return try Interpreter(graph: graph, weights: try weights.map { try WeightStore(path: $0) }, precision: .f64)
            .run([Tensor(shape: [noise.count / 2, 2], values: noise)])[0].values
    }

    func testExactFlowMapOfLinearField() throws {
        let text = """
        model exponential {
          input x: f32[B, 2]
          input s: f32[B, 1]
          input t: f32[B, 1]
          kind flow_map(noise_at=1)
          flow { return x * exp(t - s) }
        }
        """
        let noise = [0.5, -1.0, 2.0, 0.25]
        for steps in [1, 3] {
            let x = try run(text, steps: steps, noise: noise)
            for (a, b) in zip(x, noise.map { $0 * exp(-1.0) }) { XCTAssertEqual(a, b, accuracy: 1e-6, "\(steps) steps") }   // f32 grid times
        }
    }

    func testAlignYourFlowParameterisation() throws {
        // F(x, s, t) = c: zero weights, bias c = (0.5, -2)
        let path = TestFiles.path("ayf.safetensors")
        try SafetensorsFile.write([(name: "F.0.weight", shape: [2, 4], values: Array(repeating: 0, count: 8)),
                                   (name: "F.0.bias", shape: [2], values: [0.5, -2])], to: path)
        let text = """
        import "std/time.flow"
        model ayf {
          input x: f32[B, 2]
          input s: f32[B, 1]
          input t: f32[B, 1]
          kind flow_map(noise_at=1)
          flow { return ayf_flow_map(x, s, t, "F", 1, "relu") }
        }
        """
        let noise = [1.0, 1.0, -3.0, 0.0]
        for steps in [1, 4] {
            let x = try run(text, weights: path, steps: steps, noise: noise)
            XCTAssertEqual(x, [0.5, 3.0, -3.5, 2.0], "\(steps) steps")
        }
    }
}
