import FlowIR
import FlowInterpreter
import FlowPasses
import FlowSolvers
import FlowTestSupport
import XCTest

/// The unrolled samplers against the fixtures made by flow_matching + torchdiffeq (model e)
/// and by MeanFlow's sampling formulas (model f), within 1e-4 + 1e-4·|b| (MODELS.md: the trained
/// field amplifies a perturbation at most ~8x over 8 RK4 steps).
final class ODESamplerTests: XCTestCase {
    func sample(_ key: String, _ method: ODESampler, _ steps: Int) throws -> Tensor {
        let f = try ReferenceFixture(key)
        let model = try f.model()
        let graph = try EntryPoints.graph(.sample, of: model, sampler: SamplerSettings(method: method, steps: steps))
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

/// Time grids: endpoints, monotonicity, EDM crowding, and errors for bad custom grids.
final class TimeGridTests: XCTestCase {
    func testGrids() throws {
        XCTAssertEqual(try TimeGrid.uniform.times(start: 0, end: 1, steps: 4), [0, 0.25, 0.5, 0.75, 1])
        let edm = try TimeGrid.edm(rho: 7).times(start: 1, end: 0, steps: 4)
        XCTAssertEqual(edm.first, 1)
        XCTAssertEqual(edm.last, 0)
        XCTAssertEqual(Double(edm[1]), pow(0.75, 7), accuracy: 1e-7)       // σ = (1 − k/N)^ρ, noise at 1
        XCTAssertLessThan(edm[3] - edm[4], edm[0] - edm[1])                 // steps shrink toward the data
        XCTAssertEqual(try TimeGrid.edm(rho: 1).times(start: 0, end: 1, steps: 4), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertThrowsError(try TimeGrid.custom([0, 0.5, 0.4, 1]).times(start: 0, end: 1, steps: 3))
        XCTAssertThrowsError(try TimeGrid.custom([0, 1]).times(start: 0, end: 1, steps: 2))
    }

    /// Euler on a custom grid equal to the uniform one gives the uniform result exactly.
    func testCustomGridMatchesUniform() throws {
        let f = try ReferenceFixture("e_fm")
        let model = try f.model()
        let store = try WeightStore(path: model.weightsPath!)
        let uniform = try Interpreter(graph: try EntryPoints.graph(.sample, of: model, sampler: SamplerSettings(method: .euler, steps: 4)), weights: store, precision: .f32).run([try f.tensor("noise")])[0]
        let custom = try Interpreter(graph: try EntryPoints.graph(.sample, of: model, sampler: SamplerSettings(method: .euler, steps: 4, grid: .custom([0, 0.25, 0.5, 0.75, 1]))), weights: store, precision: .f32).run([try f.tensor("noise")])[0]
        XCTAssertEqual(uniform.values, custom.values)
    }
}
