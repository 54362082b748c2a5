import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowTestSupport
import XCTest

/// Jacobian-vector products against central finite differences of the interpreter in f64
/// (h = 1e-6: truncation ~h² and rounding ~1e-16/h are both far below the 1e-6 tolerance).
final class JVPTests: XCTestCase {
    func check(_ model: Model, inputs: [Tensor], name: String) throws {
        let store = try model.weightsPath.map { try WeightStore(path: $0) }
        var g = model.flow
        let x = g.inputs[0]
        let tangentInput = g.addInput(name: "tangent", type: g.type(of: x))
        let tangents = try JVPPass.tangents(&g, of: g.outputs, input: x, tangent: tangentInput, nodes: 0..<model.flow.nodes.count)
        g.outputs = tangents
        try Verifier.verify(g)
        let direction = Tensor(shape: inputs[0].shape, values: Philox.normals(seed: 11, firstRow: 0, rows: 1, perRow: inputs[0].count))
        let jvp = try Interpreter(graph: g, weights: store, precision: .f64).run(inputs + [direction])[0]
        let flow = try Interpreter(graph: model.flow, weights: store, precision: .f64)
        let h = 1e-6
        func shifted(_ s: Double) -> [Tensor] {
            [Tensor(shape: inputs[0].shape, values: zip(inputs[0].values, direction.values).map { $0 + s * $1 })] + inputs.dropFirst()
        }
        let plus = try flow.run(shifted(h))[0], minus = try flow.run(shifted(-h))[0]
        let numeric = zip(plus.values, minus.values).map { ($0 - $1) / (2 * h) }
        let c = Closeness.compare(jvp.values, numeric, atol: 1e-6, rtol: 1e-6)
        XCTAssertTrue(c.passes, "\(name): \(c)")
    }

    func testJVPMatchesFiniteDifferences() throws {
        for key in ["c_realnvp64", "d_glow"] {
            let f = try ReferenceFixture(key)
            let x = try f.tensor("x")
            try check(try f.model(), inputs: [Tensor(shape: [2] + Array(x.shape.dropFirst()), values: Array(x.values.prefix(2 * x.count / x.shape[0])))], name: key)
        }
        let fm = try ReferenceFixture("e_fm")
        try check(try fm.model(), inputs: [try fm.tensor("x"), Tensor(shape: [16, 1], values: try fm.tensor("t").values)], name: "e_fm velocity")
    }

    func testUnsupportedOpsAreNamed() throws {
        let model = try Elaborator.elaborate(text: "model m {\n  input x: f32[B, 4]\n  flow { return layernorm(x) }\n}\n", path: "m.flow")
        var g = model.flow
        let t = g.addInput(name: "t", type: g.type(of: g.inputs[0]))
        XCTAssertThrowsError(try JVPPass.tangents(&g, of: g.outputs, input: g.inputs[0], tangent: t)) { error in
            XCTAssertEqual("\(error)", "m.flow:3:17: error: no JVP rule for 'layernorm' (forward-mode differentiation of this op is not supported)")
            // the compiler drops a velocity field's log_prob on this kind of error, not on others
            XCTAssertEqual((error as? FlowError)?.kind, .noForwardModeRule)
        }
    }
}
