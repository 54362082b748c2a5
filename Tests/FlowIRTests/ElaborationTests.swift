import FlowIR
import FlowTestSupport
import XCTest

final class ElaborationTests: XCTestCase {
    func elaborate(_ text: String, params: [String: Double] = [:], weights: String? = nil) throws -> Model {
        try Elaborator.elaborate(text: text, path: Repository.path("Tests/inline.flow"), options: .init(params: params, weightsPath: weights))
    }

    func testLoopsFunctionsAndParamsUnroll() throws {
        let model = try elaborate("""
        param N = 3
        fn twice(x) { return exp(exp(x)) }
        model m {
          input x: f32[B, 2]
          flow {
            for i in 0..<N { x = twice(x) }
            return x
          }
        }
        """, params: ["N": 4])
        XCTAssertEqual(model.flow.nodes.map(\.op), Array(repeating: "exp", count: 8))
    }

    func testSizesAreReadOffTheWeightFile() throws {
        let model = try ReferenceFixture("c_realnvp64").model()
        XCTAssertEqual(model.flow.type(of: model.flow.inputs[0]), TensorType(.f32, batched: true, [64]))
        // 8 couplings, each with three Linear layers
        XCTAssertEqual(model.flow.nodes.filter { $0.op == "linear" }.count, 24)
    }

    func testMaskIndicesAndInversePermutation() throws {
        // c_realnvp2 coupling 0 keeps feature 0 (mask [true, false]); coupling 1 keeps feature 1.
        let model = try ReferenceFixture("c_realnvp2").model(params: ["K": 2])
        let gathers = model.flow.nodes.filter { $0.op == "gather" }.map { $0.attributes["indices"] }
        XCTAssertEqual(gathers, [.ints([0]), .ints([1]), .ints([0, 1]), .ints([1]), .ints([0]), .ints([1, 0])])
    }

    func testStringInterpolationAndCompileTimeMath() throws {
        let model = try elaborate("""
        param C = log(1e-3)
        model m {
          input x: f32[B, 1]
          flow {
            k = 3
            return x * C + float(2 * k % 4)
          }
        }
        """)
        let consts = model.flow.nodes.filter { $0.op == "const" }.map { $0.attributes["values"] }
        XCTAssertEqual(consts, [.floats([-6.907755278982137]), .floats([2.0])])
    }

    func testUnknownParamOverrideIsAnError() {
        XCTAssertThrowsError(try elaborate("model m {\n input x: f32[B, 1]\n flow { return x }\n}", params: ["Q": 1])) { error in
            XCTAssertTrue("\(error)".contains("the spec has no parameter 'Q'"), "\(error)")
        }
    }

    func testErrorsInsideFunctionsNameTheCallSite() {
        XCTAssertThrowsError(try elaborate("""
        fn bad(x) {
          return reshape(x, [B, 5])
        }
        model m {
          input x: f32[B, 4]
          flow { return bad(x) }
        }
        """)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("inline.flow:2:10: error: reshape(f32[B, 4]): cannot reshape 4 elements per sample into [5]"), text)
            XCTAssertTrue(text.contains("(in 'bad' called at "), text)
            XCTAssertTrue(text.contains("inline.flow:6:17"), text)
        }
    }
}
