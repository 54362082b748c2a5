import FlowIR
import XCTest

/// The verifier checks graphs built by hand, independently of the elaborator.
final class VerifierTests: XCTestCase {
    let at = SourceLocation(file: "g.flow", line: 7, column: 3)

    func testAcceptsWellTypedGraph() throws {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4]))
        let y = try g.apply("exp", [x], at: at)
        g.outputs = [y]
        XCTAssertNoThrow(try Verifier.verify(g))
    }

    func testRejectsWrongRecordedType() throws {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4]))
        let bogus = g.newValue(TensorType(.f32, batched: true, [5]))
        g.nodes.append(Node(op: "exp", operands: [x], results: [bogus], location: at))
        g.outputs = [bogus]
        XCTAssertThrowsError(try Verifier.verify(g)) { error in
            XCTAssertEqual("\(error)", "g.flow:7:3: error: exp: result recorded as f32[B, 5] but its operands give f32[B, 4]")
        }
    }

    func testRejectsUseBeforeDefinition() throws {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4]))
        let later = g.newValue(TensorType(.f32, batched: true, [4]))
        let y = g.newValue(TensorType(.f32, batched: true, [4]))
        g.nodes.append(Node(op: "add", operands: [x, later], results: [y], location: at))
        g.nodes.append(Node(op: "exp", operands: [x], results: [later], location: at))
        g.outputs = [y]
        XCTAssertThrowsError(try Verifier.verify(g)) { error in
            XCTAssertEqual("\(error)", "g.flow:7:3: error: add: operand 1 is used before it is defined")
        }
    }

    func testShapeErrorsNameOpLineAndShapes() {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4, 3]))
        let w = g.newValue(TensorType(.f32, batched: false, [5, 2]))
        XCTAssertThrowsError(try g.apply("matmul", [x, w], at: at)) { error in
            XCTAssertEqual("\(error)", "g.flow:7:3: error: matmul(f32[B, 4, 3], f32[5, 2]): inner dimensions differ: 3 vs 5")
        }
        XCTAssertThrowsError(try g.apply("add", [x, w], at: at)) { error in
            XCTAssertEqual("\(error)", "g.flow:7:3: error: add(f32[B, 4, 3], f32[5, 2]): shapes do not broadcast (axis 1 of the result)")
        }
    }

    func testBroadcastingKeepsBatchLeading() throws {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4, 3]))
        let c = try g.apply("const", [], ["values": .floats([1]), "shape": .shape(batched: false, [1, 4, 1])], at: at)
        let product = try g.apply("mul", [x, c], at: at)
        XCTAssertEqual(g.type(of: product), TensorType(.f32, batched: true, [4, 3]))
        let d = try g.apply("const", [], ["values": .floats([1]), "shape": .shape(batched: false, [2, 1, 1, 1])], at: at)
        XCTAssertThrowsError(try g.apply("mul", [x, d], at: at)) { error in
            XCTAssertTrue("\(error)".contains("broadcasting would move the batch dimension B away from axis 0"), "\(error)")
        }
    }
}
