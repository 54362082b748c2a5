import FlowIR
import FlowInterpreter
import FlowTestSupport
import XCTest

/// The velocity and average-velocity networks reproduce the fixtures' v(x, t) and u(z, r, t)
/// (plain torch, MODELS.md models e and f) within 1e-4 + 1e-4·|b|.
final class VelocityFixtureTests: XCTestCase {
    func column(_ t: Tensor) -> Tensor { Tensor(shape: [t.count, 1], values: t.values) }

    func testFlowMatchingVelocity() throws {
        let f = try ReferenceFixture("e_fm")
        let model = try f.model()
        XCTAssertEqual(model.kind, .velocity(noiseAt: 0))
        let v = try Interpreter(model: model, precision: .f32).run([try f.tensor("x"), column(try f.tensor("t"))])[0]
        let c = Closeness.compare(v.values, try f.tensor("v").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }

    func testMeanFlowAverageVelocity() throws {
        let f = try ReferenceFixture("f_meanflow")
        let model = try f.model()
        XCTAssertEqual(model.kind, .meanVelocity(noiseAt: 1))
        let u = try Interpreter(model: model, precision: .f32).run([try f.tensor("x"), column(try f.tensor("r")), column(try f.tensor("t"))])[0]
        let c = Closeness.compare(u.values, try f.tensor("u").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }
}
