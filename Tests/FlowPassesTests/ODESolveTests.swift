import FlowIR
import FlowInterpreter
import FlowPasses
import FlowSolvers
import FlowTestSupport
import XCTest

/// The solvers over interpreted fields: closed-form solutions, per-sample step control,
/// guidance by its formula, and agreement with the unrolled samplers.
final class ODESolveTests: XCTestCase {
    /// dx/dt = −x³ from t = 0 to 1: x(1) = x0 / √(1 + 2·x0²). Elementwise, so every sample is
    /// its own ODE, and a large |x0| is stiffer (the field's slope −3x² is larger).
    static let cubicSpec = """
    model cubic {
      input x: f32[B, 1]
      input t: f32[B, 1]
      kind velocity(noise_at=0)
      flow { return 0.0 - x * x * x }
    }
    """

    func cubic(_ precision: Precision) throws -> InterpretedField {
        try InterpretedField(model: try Elaborator.elaborate(text: Self.cubicSpec, path: Repository.path("Tests/cubic.flow")), precision: precision)
    }

    func dopri5(rtol: Double, atol: Double, maxSteps: Int = 10_000) -> SamplerSettings {
        var s = SamplerSettings(method: .dopri5, steps: 1)
        (s.rtol, s.atol, s.maxSteps) = (rtol, atol, maxSteps)
        return s
    }

    /// Within 1e-5·(1 + |x|) of the closed form at rtol = atol = 1e-7 (the global error stays
    /// within ~10x the local tolerance on this contracting ODE); stiffer samples take more steps.
    func testDopri5MatchesTheClosedFormWithPerSampleSteps() throws {
        let x0: [Float] = [0.1, 0.5, -1, 2, -4, 10]
        let (x, report) = try ODESolve.sample(try cubic(.f32), noise: x0, settings: dopri5(rtol: 1e-7, atol: 1e-7))
        let exact = x0.map { Double($0) / (1 + 2 * Double($0) * Double($0)).squareRoot() }
        let c = Closeness.compare(x.map(Double.init), exact, atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(c.passes, "\(c)")
        XCTAssertTrue(report.unfinished.isEmpty)
        let steps = zip(report.acceptedSteps, report.rejectedSteps).map { $0 + $1 }
        XCTAssertLessThan(steps[0], steps[5], "per-sample control: \(report.acceptedSteps) accepted, \(report.rejectedSteps) rejected")
        XCTAssertNotEqual(Set(report.acceptedSteps).count, 1, "all samples took the same steps: \(report.acceptedSteps)")
    }

    /// A sample's trajectory does not depend on the others in its batch: solved alone it gives
    /// the same value bit for bit (the field is elementwise, so batching changes no rounding).
    func testSamplesAreIndependentOfTheirBatch() throws {
        let field = try cubic(.f64)
        let x0: [Float] = [0.3, -7, 1.5, 12]
        let settings = dopri5(rtol: 1e-6, atol: 1e-6)
        let (together, report) = try ODESolve.sample(field, noise: x0, settings: settings)
        for (i, v) in x0.enumerated() {
            let (alone, single) = try ODESolve.sample(field, noise: [v], settings: settings)
            XCTAssertEqual(alone[0], together[i], "sample \(i)")
            XCTAssertEqual(single.acceptedSteps[0], report.acceptedSteps[i])
        }
    }

    /// The step budget: samples that hit it come back unfinished with their last (finite) state.
    func testStepBudgetReturnsTheLastState() throws {
        let (x, report) = try ODESolve.sample(try cubic(.f64), noise: [0.5, 30], settings: dopri5(rtol: 1e-9, atol: 1e-9, maxSteps: 3))
        XCTAssertEqual(report.unfinished, [0, 1])
        XCTAssertTrue(x.allSatisfy(\.isFinite))
        XCTAssertNotEqual(Double(x[0]), 0.5 / 1.5.squareRoot(), accuracy: 1e-9)
    }

    /// The fixed-step solver over the interpreted network equals the unrolled sampler graphs
    /// (and so the torchdiffeq fixtures) within 1e-5·(1 + |x|): the solver keeps its state in
    /// f64 between network calls, the unrolled graph in f32.
    func testFixedStepSolverMatchesTheUnrolledSamplers() throws {
        let f = try ReferenceFixture("e_fm")
        let model = try f.model()
        let field = try InterpretedField(model: model)
        let noise = try f.tensor("noise")
        for method in [ODESampler.euler, .midpoint, .heun, .rk4Classic, .rk4ThreeEighths] {
            let settings = SamplerSettings(method: method, steps: 8)
            let unrolled = try Interpreter(graph: try EntryPoints.graph(.sample, of: model, sampler: settings), weights: try WeightStore(path: model.weightsPath!), precision: .f32).run([noise])[0]
            let (x, report) = try ODESolve.sample(field, noise: noise.values.map { Float($0) }, settings: settings)
            let c = Closeness.compare(x.map(Double.init), unrolled.values, atol: 1e-5, rtol: 1e-5)
            XCTAssertTrue(c.passes, "\(method): \(c)")
            XCTAssertEqual(report.evaluatedRows, 16 * 8 * method.evaluationsPerStep)
        }
        let mf = try ReferenceFixture("f_meanflow")
        for (steps, name) in [(1, "sample_1step"), (2, "sample_2step")] {
            let (x, _) = try ODESolve.sample(try InterpretedField(model: try mf.model()), noise: try mf.tensor("noise").values.map { Float($0) },
                                             settings: SamplerSettings(method: .meanflow, steps: steps))
            let c = Closeness.compare(x.map(Double.init), try mf.tensor(name).values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(name): \(c)")
        }
    }

    /// Classifier-free guidance by its formula: one Euler step from t = 0 to 1 is
    /// x + (1 + w)·v(x, 0 | c) − w·v(x, 0 | ∅), with v evaluated directly by the interpreter.
    /// Tolerance 1e-5·(1 + |x|): the solver combines in f64, the direct check in f64 from f32 values.
    func testGuidanceFollowsItsFormula() throws {
        let model = try TestModels.ConditionalVelocity.model()
        let interpreter = try Interpreter(model: model, precision: .f32)
        let noise: [Float] = [0.3, -1.2, 2.0, 0.5, -0.7, 0.1]
        let labels = [0, 2, 1]
        let w = 2.5
        var settings = SamplerSettings(method: .euler, steps: 1)
        settings.guidance = w
        let (x, report) = try ODESolve.sample(try InterpretedField(model: model), noise: noise, labels: labels, settings: settings)
        XCTAssertEqual(report.evaluatedRows, 6, "conditional and unconditional rows in one batch of 2B")
        func v(_ label: Int) throws -> [Double] {
            try interpreter.run([Tensor(shape: [3, 2], values: noise.map(Double.init)), Tensor(shape: [3, 1], repeating: 0),
                                 Tensor(shape: [3, 1], values: labels.map { _ in Double(label) })])[0].values
        }
        let conditional = try interpreter.run([Tensor(shape: [3, 2], values: noise.map(Double.init)), Tensor(shape: [3, 1], repeating: 0),
                                               Tensor(shape: [3, 1], values: labels.map(Double.init))])[0].values
        let unconditional = try v(3)
        let expected = (0..<6).map { Double(noise[$0]) + (1 + w) * conditional[$0] - w * unconditional[$0] }
        let c = Closeness.compare(x.map(Double.init), expected, atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(c.passes, "\(c)")
        // without labels the null label is used: the unconditional field
        let (plain, _) = try ODESolve.sample(try InterpretedField(model: model), noise: noise, settings: SamplerSettings(method: .euler, steps: 1))
        let cu = Closeness.compare(plain.map(Double.init), (0..<6).map { Double(noise[$0]) + unconditional[$0] }, atol: 1e-5, rtol: 1e-5)
        XCTAssertTrue(cu.passes, "\(cu)")
    }

    func testRequestsThatDoNotFitTheModelAreErrors() throws {
        let fm = try InterpretedField(model: try ReferenceFixture("e_fm").model())
        var guided = SamplerSettings(method: .euler, steps: 2)
        guided.guidance = 1
        let cases: [(VectorField, [Int]?, SamplerSettings, String)] = [
            (fm, nil, guided, "guidance needs a class-conditional model"),
            (fm, [0], SamplerSettings(method: .euler, steps: 2), "class labels given to an unconditional model"),
            (fm, nil, SamplerSettings(method: .meanflow, steps: 1), "method meanflow does not apply to a velocity model; use rk4-38"),
            (fm, nil, dopri5(rtol: 0, atol: 0), "rtol and atol must be finite, ≥ 0 and not both 0"),
            (try InterpretedField(model: try TestModels.ConditionalVelocity.model()), [4], SamplerSettings(method: .euler, steps: 1),
             "class label 4 of sample 0 is outside 0..<3 (or 3 for the null class)"),
        ]
        for (field, labels, settings, message) in cases {
            XCTAssertThrowsError(try ODESolve.sample(field, noise: [0, 0], labels: labels, settings: settings)) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
    }
}
