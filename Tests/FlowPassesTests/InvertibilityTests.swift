import FlowIR
import FlowPasses
import XCTest

/// Non-invertible programs are rejected with the op, its line and the reason; invertible ones
/// built from any mix of invertible primitives are accepted with no per-layer special case.
final class InvertibilityTests: XCTestCase {
    func analyze(_ body: String, input: String = "f32[B, 4]") throws -> [InversionStep] {
        let text = "model t {\n  input x: \(input)\n  flow {\n\(body)\n  }\n}\n"
        return try InvertibilityAnalysis.analyze(try Elaborator.elaborate(text: text, path: "t.flow").flow)
    }

    func testRejectsNonInvertiblePrograms() {
        let cases: [(String, String)] = [
            ("    return x - x * 2.0", "t.flow:4:14: error: sub(f32[B, 4], f32[B, 4]) is not invertible: operand 0 and operand 1 both depend on the input"),
            ("    return relu(x)", "t.flow:4:12: error: relu(f32[B, 4]) is not invertible on the path from input to output: relu maps every negative input to 0"),
            ("    return abs(x) + 1.0", "abs maps x and -x to the same value"),
            ("    return silu(x)", "silu is not monotonic"),
            ("    return concat(slice(x, axis=1, start=0, end=2), slice(x, axis=1, start=0, end=2), axis=1)", "keeps only part of a f32[B, 4] value (axis 1: 2 of 4"),
            ("    return leaky_relu(x, 0.0)", "leaky_relu needs slope > 0"),
            ("    return linear(x, const([1.0], shape=[3, 4]), const([0.0], shape=[3]))", "the flow maps f32[B, 4] to f32[B, 3]; a bijection"),
            ("    return x * sum(x, [1], keepdims=1)", "t.flow:4:14: error: mul(f32[B, 4], f32[B, 1]) is not invertible: operand 0 and operand 1 both depend on the input"),
            ("    a = slice(x, axis=1, start=0, end=2)\n    b = slice(x, axis=1, start=2)\n    return concat(a, b * exp(b), axis=1)", "t.flow:6:24: error: mul(f32[B, 2], f32[B, 2]) is not invertible"),
            ("    return reshape(sum(reshape(x, [B, 2, 2]), [2]) * const([1.0, 1.0], shape=[2]), [B, 2])", "the flow maps f32[B, 4] to f32[B, 2]"),
            ("    return x + exp(slice(x, axis=1, start=0, end=1))", "t.flow:4:14: error: add(f32[B, 4], f32[B, 1]) is not invertible"),
            ("    return linear(x, const([1.0], shape=[4, 4]) + iota([4, 4], axis=0))", "t.flow:4:12: error: linear(f32[B, 4], f32[4, 4]) is not invertible: its 4x4 weight matrix is singular"),
            // MADE whose mask lets position i read itself: y = x·exp(W x) with a diagonal-inclusive mask
            ("    return x * exp(linear(x, tril(const([0.5], shape=[4, 4]))))", "t.flow:4:14: error: mul(f32[B, 4], f32[B, 4]) is not invertible as an autoregressive step: the conditioner of position i reads position i itself"),
        ]
        for (body, expected) in cases {
            XCTAssertThrowsError(try analyze(body), body) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(body)\n  got: \(error)\n  want: \(expected)")
            }
        }
    }

    func testSingularOneByOneConvolutionIsRejected() {
        XCTAssertThrowsError(try analyze("    return conv2d(x, const([1.0, 2.0, 2.0, 4.0], shape=[2, 2, 1, 1]))", input: "f32[B, 2, 2, 2]")) { error in
            XCTAssertEqual("\(error)", "t.flow:4:12: error: conv2d(f32[B, 2, 2, 2], f32[2, 2, 1, 1]) is not invertible: its 2x2 weight matrix is singular")
        }
    }

    /// A hand-written autoregressive affine step (strictly lower-triangular conditioner) is found
    /// causal with no special case: 4 positions in a chain need 4 sweeps.
    func testHandWrittenAutoregressiveStepIsCausal() throws {
        let steps = try analyze("    return x * exp(linear(x, tril(const([0.5], shape=[4, 4]), -1))) + tanh(linear(x, tril(const([0.3], shape=[4, 4]), -1)))")
        let blocks = steps.compactMap(\.causal)
        XCTAssertEqual(blocks.count, 1)
        XCTAssertEqual(blocks.first?.sweeps, 4)
    }

    func testAcceptsCouplingWrittenInlineAndElementwiseChains() throws {
        // An additive (NICE) coupling with the halves swapped, then a chain of bijections.
        let steps = try analyze("""
            a = slice(x, axis=1, start=0, end=2)
            b = slice(x, axis=1, start=2)
            y = concat(b + tanh(a) * 3.0, a, axis=1)
            return sigmoid(leaky_relu(exp(y) - 1.0, 0.5) * 2.0)
        """)
        XCTAssertFalse(steps.isEmpty)
    }
}
