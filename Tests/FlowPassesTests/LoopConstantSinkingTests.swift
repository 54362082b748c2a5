@testable import FlowPasses
import FlowIR
import FlowInterpreter
import XCTest

/// LoopConstantSinking as IR in → IR out: a constant captured by a `fixed_point` loop moves into
/// its body, an input-dependent capture stays, and the loop computes the same (closed form).
final class LoopConstantSinkingTests: XCTestCase {
    /// u ← u/2 + w + c from u = x, 3 sweeps, with w a captured constant and c = 2x an
    /// input-dependent capture: u₃ = x/8 + (1/4 + 1/2 + 1)(w + c).
    func loop() throws -> Graph {
        let at = SourceLocation.synthetic("test")
        var body = Graph()
        let u = body.addInput(name: "u", type: TensorType(.f32, batched: true, [4]))
        let w = body.addInput(name: "w", type: TensorType(.f32, batched: false, [4]))
        let c = body.addInput(name: "c", type: TensorType(.f32, batched: true, [4]))
        let half = try body.apply("mul", [u, try body.constant(0.5, at: at)], at: at)
        body.outputs = [try body.apply("add", [try body.apply("add", [half, w], at: at), c], at: at)]
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4]))
        let weight = try g.apply("const", [], ["values": .floats([1, 2, 3, 4]), "shape": .shape(batched: false, [4])], at: at)
        let scaled = try g.apply("neg", [weight], at: at)
        let twice = try g.apply("mul", [x, try g.constant(2, at: at)], at: at)
        g.bodies = [body]
        g.outputs = [try g.apply("fixed_point", [x, scaled, twice], ["body": .int(0), "sweeps": .int(3), "tolerance": .float(0)], at: at)]
        try Verifier.verify(g)
        return g
    }

    func testConstantCaptureMovesIntoTheBody() throws {
        let sunk = try LoopConstantSinking.run(try loop())
        let loopNode = try XCTUnwrap(sunk.nodes.first { $0.op == "fixed_point" })
        XCTAssertEqual(loopNode.operands.count, 2, "the initial value and the input-dependent capture stay")
        let body = sunk.bodies[0]
        XCTAssertEqual(body.inputNames, ["u", "c"])
        XCTAssertEqual(body.nodes.filter { $0.op == "const" && $0.attributes["values"] == .floats([1, 2, 3, 4]) }.count, 1)
        XCTAssertTrue(body.nodes.contains { $0.op == "neg" }, "what the capture was computed from comes along")

        let x: [Double] = [1, -2, 0.5, 8, 3, 0, -1, 16]
        let out = try Interpreter(graph: sunk, weights: nil, precision: .f64).run([Tensor(shape: [2, 4], values: x)])[0].values
        for (i, value) in out.enumerated() {
            let w = -Double(i % 4 + 1), c = 2 * x[i]
            // exact in f64: every term is a dyadic rational of small numerators
            XCTAssertEqual(value, x[i] / 8 + 1.75 * (w + c), accuracy: 0, "element \(i)")
        }
    }

    func testLoopWithoutConstantCapturesIsUnchanged() throws {
        var g = try loop()
        g = try LoopConstantSinking.run(g)
        XCTAssertEqual(try LoopConstantSinking.run(g), g)
    }
}
