import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRuntime
import FlowTestSupport
import XCTest

/// STARFlow (`examples/reference/g_starflow.flow`, IR/std/starflow.flow) against the fixture made by
/// apple/ml-starflow's own model class (Tests/Fixtures/oracles/g_starflow_fixture.py): SOS token,
/// softplus scale, soft clip, 2-D RoPE, deep-shallow blocks. z and samples within 1e-4 + 1e-4·|b|,
/// log-dets within 1e-3 + 1e-5·|b| (MODELS.md's tolerances), interpreted and compiled.
final class StarFlowTests: XCTestCase {
    func testFixtureInterpretedAndCompiled() throws {
        let f = try ReferenceFixture("g_starflow")
        let model = try f.model()
        let store = try WeightStore(path: model.weightsPath!)
        func check(_ values: [Double], _ name: String, atol: Double, rtol: Double, _ what: String) throws {
            let c = Closeness.compare(values, try f.tensor(name).values, atol: atol, rtol: rtol)
            XCTAssertTrue(c.passes, "\(what) \(name): \(c)")
        }
        let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f32).run([try f.tensor("x")])
        try check(forward[0].values, "z", atol: 1e-4, rtol: 1e-4, "interpreted")
        try check(forward[1].values, "logdet_sum", atol: 1e-3, rtol: 1e-5, "interpreted")
        let inverse = try EntryPoints.graph(.inverse, of: model)
        XCTAssertTrue(inverse.nodes.filter { $0.op == "attention" }.allSatisfy { inverse.type(of: $0.operands[0]).dims[0] == 1 }, "decoded token by token")
        try check(try Interpreter(graph: inverse, weights: store, precision: .f32).run([try f.tensor("noise")])[0].values, "sample", atol: 1e-4, rtol: 1e-4, "interpreted")

        let path = TestFiles.path("starflow.so")
        try ArtifactCompiler.compile(model, output: path)
        let compiled = try CompiledModel(path: path)
        let (z, logdet) = try compiled.forward(try f.tensor("x").values.map { Float($0) })
        try check(z.map(Double.init), "z", atol: 1e-4, rtol: 1e-4, "compiled")
        try check(logdet.map(Double.init), "logdet_sum", atol: 1e-3, rtol: 1e-5, "compiled")
        try check(try compiled.sample(noise: try f.tensor("noise").values.map { Float($0) }).map(Double.init), "sample", atol: 1e-4, rtol: 1e-4, "compiled")
    }
}
