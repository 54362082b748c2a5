@testable import FlowPasses
import FlowIR
import FlowInterpreter
import FlowTestSupport
import XCTest

/// Each simplification as IR in → IR out.
final class SimplifyTests: XCTestCase {
    func simplified(_ body: String, input: String = "f32[B, 4]") throws -> String {
        let model = try Elaborator.elaborate(text: "model t {\n  input x: \(input)\n  flow {\n\(body)\n  }\n}\n", path: "t.flow")
        return Printer.body(try Simplify.run(model.flow), indent: "")
    }

    func testEachAlgebraicRuleFires() throws {
        let cases: [(String, String)] = [
            ("exp(log(x))", "exp∘log"), ("log(exp(x))", "log∘exp"), ("neg(neg(x))", "neg∘neg"),
            ("sigmoid(logit(x))", "sigmoid∘logit"), ("logit(sigmoid(x))", "logit∘sigmoid"), ("tanh(atanh(x))", "tanh∘atanh"),
            ("expm1(log1p(x))", "expm1∘log1p"), ("log1p(expm1(x))", "log1p∘expm1"),
            ("x * 1.0", "x·1"), ("1.0 * x", "x·1"), ("x + 0.0", "x+0"), ("0.0 + x", "x+0"), ("x - 0.0", "x-0"), ("x / 1.0", "x/1"),
            ("reshape(transpose(transpose(reshape(x, [B, 2, 2]), [0, 2, 1]), [0, 2, 1]), [B, 4])", "transpose∘transpose"),
            ("reshape(reshape(x, [B, 2, 2]), [B, 4])", "reshape∘reshape"),
            ("log(abs(exp(x)))", "|positive|"),
        ]
        for (expr, rule) in cases {
            let out = try simplified("    return \(expr)")
            // everything cancels: the flow returns its input (a reshape pair leaves nothing either)
            XCTAssertEqual(out, "return x\n", "\(rule): \(expr)")
        }
    }

    func testRulesKeepBroadcastingResults() throws {
        // x·1 with a [B, 1] x and a [4] one broadcasts to [B, 4]: not an identity
        XCTAssertEqual(try simplified("    return x * const([1.0], shape=[4])", input: "f32[B, 1]"), """
            v0: f32[4] = const(values=[1.0], shape=[4])
            v1: f32[B, 4] = mul(x, v0)
            return v1

            """)
    }

    func testCommonSubexpressionsAndDeadCode() throws {
        XCTAssertEqual(try simplified("    a = exp(x)\n    unused = sin(x)\n    b = exp(x)\n    return a + b"), """
            v0: f32[B, 4] = exp(x)
            v1: f32[B, 4] = add(v0, v0)
            return v1

            """)
    }

    func testConstantSubgraphsFoldToLiterals() throws {
        // ln|det diag(2, 3)| = ln 6, and the 2x2 inverse, are computed at compile time
        let out = try simplified("    m = diag(const([2.0, 3.0], shape=[2]))\n    return linear(x, matrix_inverse(m)) + logabsdet(m)", input: "f32[B, 2]")
        XCTAssertEqual(out, """
            v0: f32[2, 2] = const(values=[0.5, 0.0, 0.0, 0.3333333333333333], shape=[2, 2])
            v1: f32[B, 2] = linear(x, v0)
            v2: f32[] = const(values=[1.791759469228055])
            v3: f32[B, 2] = add(v1, v2)
            return v3

            """)
    }

    /// Simplification never changes what a derived graph computes (f64, exact up to the
    /// reassociation of folded constants: 1e-12).
    func testDerivedGraphsComputeTheSameAfterSimplification() throws {
        let fixture = try ReferenceFixture("d_glow")
        let model = try fixture.model()
        let store = try WeightStore(path: model.weightsPath!)
        let raw = try InversePass.run(model.flow, weights: store)
        let simple = try Simplify.run(raw, weights: store)
        XCTAssertLessThan(simple.nodes.count, raw.nodes.count)
        let noise = try fixture.tensor("noise")
        let a = try Interpreter(graph: raw, weights: store, precision: .f64).run([noise])
        let b = try Interpreter(graph: simple, weights: store, precision: .f64).run([noise])
        for (x, y) in zip(a, b) {
            let c = Closeness.compare(y.values, x.values, atol: 1e-12, rtol: 1e-12)
            XCTAssertTrue(c.passes, "\(c)")
        }
    }
}
