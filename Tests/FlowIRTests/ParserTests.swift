@testable import FlowIR
import XCTest

final class ParserTests: XCTestCase {
    func parse(_ text: String) throws -> SourceFile { try Parser.parse(text, file: "t.flow") }

    func testParsesItemsStatementsAndPrecedence() throws {
        let file = try parse("""
        import "std/mlp.flow"
        param D = 2 + 3 * 4   # comment
        fn f(x, k) {
          for i in 0..<k { x = exp(x) }
          if k == 2 { return x } else { return -x }
        }
        model m {
          input x: f32[B, D]
          base normal
          flow {
            a, b = split(x, axis=1, sizes=[1, 13])
            return f(concat(a, b, axis=1), 2)
          }
        }
        """)
        XCTAssertEqual(file.imports.map(\.0), ["std/mlp.flow"])
        guard case .binary("+", .integer(2, _), .binary("*", .integer(3, _), .integer(4, _), _), _) = file.params[0].1 else {
            return XCTFail("precedence: expected 2 + (3 * 4), got \(file.params[0].1)")
        }
        XCTAssertEqual(file.functions.map(\.name), ["f"])
        XCTAssertEqual(file.functions[0].parameters, ["x", "k"])
        XCTAssertEqual(file.models[0].inputs.map(\.0), ["x"])
        XCTAssertEqual(file.models[0].flow?.count, 2)
    }

    func testErrorsCarryFileLineColumn() {
        let cases: [(String, String)] = [
            ("model m {\n  input x: f32[B, 2]\n  flow { return x $ }\n}", "t.flow:3:19: error: unexpected character '$'"),
            ("param = 3", "t.flow:1:7: error: expected a name after 'param'"),
            ("model m {\n  inputs x: f32[B]\n}", "t.flow:2:3: error: unknown model item 'inputs'"),
            ("fn f(x, x) { return x }", "t.flow:1:9: error: parameter 'x' is declared twice"),
            ("param A = 1.5e", "t.flow:1:11: error: malformed number"),
            ("model m { flow { return exp(x, axis=1, axis=2) } }", "t.flow:1:40: error: argument 'axis' is given twice"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try parse(text), text) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "got \(error), expected prefix \(expected)")
            }
        }
    }

    func testNewlinesInsideParenthesesContinueTheExpression() throws {
        let file = try parse("param A = max_of(\n  1,\n  2)\n")
        guard case .call("max_of", let args, _, _) = file.params[0].1 else { return XCTFail() }
        XCTAssertEqual(args.count, 2)
    }
}
