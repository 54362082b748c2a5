import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import XCTest

/// The unrolled samplers against the fixtures made by flow_matching + torchdiffeq (model e)
/// and by MeanFlow's sampling formulas (model f), within 1e-4 + 1e-4·|b| (MODELS.md: the trained
/// field amplifies a perturbation at most ~8x over 8 RK4 steps).
final class ODESamplerTests: XCTestCase {
    func sample(_ key: String, _ method: ODESampler, _ steps: Int) throws -> Tensor {
        let f = try ReferenceFixture(key)
        let model = try f.model()
        let graph = try EntryPoints.graph(.sample, of: model, sampler: (method, steps))
        return try Interpreter(graph: graph, weights: try WeightStore(path: model.weightsPath!), precision: .f32).run([try f.tensor("noise")])[0]
    }

    func testFlowMatchingSamplersReproduceTorchdiffeq() throws {
        let f = try ReferenceFixture("e_fm")
        for (method, steps, name) in [(ODESampler.euler, 8, "sample_euler"), (.euler, 1, "sample_euler_1"), (.midpoint, 8, "sample_midpoint"),
                                      (.rk4ThreeEighths, 8, "sample_rk4"), (.rk4Classic, 8, "sample_rk4_classic")] {
            let c = Closeness.compare(try sample("e_fm", method, steps).values, try f.tensor(name).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(name): \(c)")
        }
    }

    func testMeanFlowOneAndTwoSteps() throws {
        let f = try ReferenceFixture("f_meanflow")
        for (steps, name) in [(1, "sample_1step"), (2, "sample_2step")] {
            let c = Closeness.compare(try sample("f_meanflow", .meanflow, steps).values, try f.tensor(name).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(name): \(c)")
        }
    }

    /// Heun is second order: halving the step divides its error against a fine RK4 reference by
    /// about 4 (asserted > 3), on the smooth trained field.
    func testHeunConvergesAtSecondOrder() throws {
        let reference = try sample("e_fm", .rk4Classic, 64)
        func error(_ steps: Int) throws -> Double { Closeness.compare(try sample("e_fm", .heun, steps).values, reference.values, atol: 0, rtol: 0).maxAbsoluteError }
        let ratio = try error(8) / error(16)
        XCTAssertGreaterThan(ratio, 3, "error ratio \(ratio)")
    }
}
