import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRuntime
import FlowSolvers
import FlowTestSupport
import XCTest

/// Samplers chosen at sample time, run by the solver over the compiled network.
final class CompiledSolverTests: XCTestCase {
    func compiled(_ model: Model, _ name: String) throws -> CompiledModel {
        let path = TestFiles.path("solver-\(name).so")
        try ArtifactCompiler.compile(model, output: path)
        return try CompiledModel(path: path)
    }

    /// dopri5 on model e against the f64 oracle (numpy MLP, classic RK4 with 10⁴ steps:
    /// Tests/Fixtures/oracles/e_fm_rk4_reference.py). Solver tolerances 1e-6 land within
    /// 1e-5 + 1e-5·|b| of it (measured worst ratio 0.09); 1e-5 within 1e-4 + 1e-4·|b|
    /// (measured max error 4.3e-5: the global error of 5–7 steps of local error 1e-5). The
    /// step counts are printed for the record.
    func testDopri5ReachesTheReference() throws {
        let fixture = try ReferenceFixture("e_fm")
        let model = try compiled(try fixture.model(), "e_fm")
        let reference = try NpyArray.read(path: Repository.fixture("oracles/e_fm_rk4_10000.npy")).values
        let noise = try fixture.tensor("noise").values.map { Float($0) }
        for (tolerance, bound) in [(1e-5, 1e-4), (1e-6, 1e-5), (1e-7, 1e-5)] {
            var settings = SamplerSettings(method: .dopri5, steps: 1)
            (settings.rtol, settings.atol) = (tolerance, tolerance)
            let (x, report) = try model.sample(noise: noise, settings: settings)
            let c = Closeness.compare(x.map(Double.init), reference, atol: bound, rtol: bound)
            XCTAssertTrue(c.passes, "rtol = atol = \(tolerance): \(c)")
            XCTAssertTrue(report.unfinished.isEmpty)
            print("dopri5 rtol = atol = \(tolerance): max |Δ| vs RK4(10⁴) = \(c.maxAbsoluteError); \(report.summary)")
        }
    }

    /// Every fixed-step method chosen at sample time reproduces the fixtures through the solver
    /// (1e-4 + 1e-4·|b|, as the compiled loops), and the solver's result does not depend on the
    /// thread count (chunks of 64 samples are solved independently).
    func testSampleTimeMethodsReproduceTheFixtures() throws {
        let fixture = try ReferenceFixture("e_fm")
        let model = try compiled(try fixture.model(), "e_fm_fixed")
        XCTAssertEqual(model.compiledSampler, SamplerSettings(method: .rk4ThreeEighths, steps: 8))
        let noise = try fixture.tensor("noise").values.map { Float($0) }
        for (method, steps, name) in [(ODESampler.euler, 8, "sample_euler"), (.midpoint, 8, "sample_midpoint"), (.rk4ThreeEighths, 8, "sample_rk4"),
                                      (.rk4Classic, 8, "sample_rk4_classic"), (.euler, 1, "sample_euler_1")] {
            let (x, _) = try model.solve(noise: noise, settings: SamplerSettings(method: method, steps: steps))
            let c = Closeness.compare(x.map(Double.init), try fixture.tensor(name).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(name): \(c)")
        }
        let settings = SamplerSettings(method: .dopri5, steps: 1)
        model.threads = 1
        let one = try model.sample(count: 200, seed: 4, settings: settings).samples
        model.threads = 2
        XCTAssertEqual(try model.sample(count: 200, seed: 4, settings: settings).samples, one)
    }

    /// Guided, labelled sampling compiled equals the interpreted solver within 1e-5·(1 + |x|)
    /// (fixed steps: the same arithmetic up to f32 rounding in the network).
    func testCompiledGuidanceMatchesTheInterpreter() throws {
        let model = try TestModels.ConditionalVelocity.model()
        let compiledModel = try compiled(model, "cond")
        XCTAssertEqual(compiledModel.fieldLayout, FieldLayout(kind: .velocity, noiseAt: 0, stateWidth: 2, classes: 3))
        var settings = SamplerSettings(method: .heun, steps: 6)
        settings.guidance = 1.5
        let labels = (0..<100).map { $0 % 4 }
        let (x, report) = try compiledModel.sample(count: 100, seed: 9, settings: settings, labels: labels)
        XCTAssertEqual(report.evaluatedRows, 2 * 100 * 6 * 2)
        let noise = EntryPoints.noise(of: model, seed: 9, firstRow: 0, rows: 100, temperature: 1).map { Float($0) }
        let (expected, _) = try ODESolve.sample(try InterpretedField(model: model), noise: noise, labels: labels, settings: settings)
        let c = Closeness.compare(x.map(Double.init), expected.map(Double.init), atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(c.passes, "\(c)")
        XCTAssertThrowsError(try compiledModel.sample(count: 3, seed: 1, settings: settings, labels: [0, 1])) {
            XCTAssertTrue("\($0)".contains("2 class labels for 3 samples"), "\($0)")
        }
    }
}
