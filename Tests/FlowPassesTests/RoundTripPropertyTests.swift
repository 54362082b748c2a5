import FlowIR
import FlowRandom
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import Foundation
import XCTest

/// inverse(forward(x)) ≈ x over 1000 random inputs per model, for every model in examples/ and
/// the IR/std flows: within 1e-4·(1 + |x|) in f32 and 1e-10·(1 + |x|) in f64. Inputs are
/// N(0, 2²) like the fixtures, so some fall outside the spline boxes (identity tails).
final class RoundTripPropertyTests: XCTestCase {
    struct Case {
        var name: String
        var model: Model
        var weights: WeightStore?
    }

    static func cases() throws -> [Case] {
        var out: [Case] = []
        for key in DerivedEntryPointTests.keys {
            let model = try ReferenceFixture(key).model()
            out.append(Case(name: key, model: model, weights: try WeightStore(path: model.weightsPath!)))
        }
        let demo = try Elaborator.elaborate(path: Repository.path("examples/default/realnvp2.flow"))
        out.append(Case(name: "examples/default", model: demo, weights: try WeightStore(path: demo.weightsPath!)))
        let path = TestFiles.path("roundtrip-std.safetensors")
        try SafetensorsFile.write(TestModels.StandardMix.weights(seed: 3), to: path)
        let std = try Elaborator.elaborate(text: TestModels.StandardMix.spec, path: Repository.path("Tests/std_mix.flow"), options: .init(weightsPath: path))
        out.append(Case(name: "std_mix", model: std, weights: try WeightStore(path: path)))
        let glow = try TestModels.GlowMultiscale.model()
        out.append(Case(name: "glow_multiscale", model: glow, weights: try WeightStore(path: glow.weightsPath!)))
        return out
    }

    func testInverseOfForwardIsIdentity() throws {
        var report: [String] = []
        for c in try Self.cases() {
            let inputType = c.model.flow.type(of: c.model.flow.inputs[0])
            let count = 1000
            let x = Philox.normals(seed: 2024, firstRow: 0, rows: count, perRow: inputType.elementsPerSample).map { 2 * $0 }
            let inverseGraph = try EntryPoints.graph(.inverse, of: c.model)
            for (precision, bound) in [(Precision.f32, 1e-4), (.f64, 1e-10)] {
                let z = try Interpreter(graph: c.model.flow, weights: c.weights, precision: precision)
                    .run([Tensor(shape: inputType.shape(batch: count), values: x)])[0]
                let back = try Interpreter(graph: inverseGraph, weights: c.weights, precision: precision).run([z])[0]
                var worst = 0.0
                for i in x.indices {
                    let xi = precision == .f32 ? Double(Float(x[i])) : x[i]
                    worst = max(worst, abs(back.values[i] - xi) / (1 + abs(xi)))
                }
                XCTAssertLessThanOrEqual(worst, bound, "\(c.name) \(precision)")
                report.append("\(c.name) \(precision.rawValue): max |x' - x|/(1 + |x|) = \(worst)")
            }
        }
        print("round trip over 1000 inputs:\n  " + report.joined(separator: "\n  "))
    }
}
