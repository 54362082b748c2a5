import FlowIR
@testable import FlowPasses
import XCTest

/// Common-subexpression keys: equal exactly when op, operands and attributes are, floats bit for bit.
final class ExpressionKeyTests: XCTestCase {
    func testEqualNodesHaveEqualKeys() {
        let a = ExpressionKey(op: "slice", operands: [3], attributes: ["axis": .int(1), "start": .int(2), "end": .int(3)])
        let b = ExpressionKey(op: "slice", operands: [3], attributes: ["end": .int(3), "start": .int(2), "axis": .int(1)])
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set([a, b]).count, 1)
        XCTAssertNotEqual(a, ExpressionKey(op: "slice", operands: [3], attributes: ["axis": .int(1), "start": .int(3), "end": .int(4)]))
        XCTAssertNotEqual(a, ExpressionKey(op: "slice", operands: [4], attributes: a.attributes))
    }

    func testFloatsCompareBitForBit() {
        func constant(_ v: [Double]) -> ExpressionKey { ExpressionKey(op: "const", operands: [], attributes: ["values": .floats(v), "shape": .shape(batched: false, [v.count])]) }
        // 0.0 == -0.0 as numbers, but 1/x tells them apart: two constants
        XCTAssertNotEqual(constant([0.0]), constant([-0.0]))
        XCTAssertNotEqual(ExpressionKey(op: "leaky_relu", operands: [1], attributes: ["slope": .float(0.0)]),
                          ExpressionKey(op: "leaky_relu", operands: [1], attributes: ["slope": .float(-0.0)]))
        // the same NaN is the same constant (NaN != NaN as numbers)
        XCTAssertEqual(constant([.nan, 1]), constant([.nan, 1]))
        // a list of ints and a shape print alike but are different attributes
        XCTAssertNotEqual(ExpressionKey(op: "reshape", operands: [1], attributes: ["shape": .ints([2, 2])]),
                          ExpressionKey(op: "reshape", operands: [1], attributes: ["shape": .shape(batched: false, [2, 2])]))
    }
}
