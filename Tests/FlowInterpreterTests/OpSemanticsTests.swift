import FlowIR
import FlowInterpreter
import FlowTestSupport
import Foundation
import XCTest

/// Each op against values worked out by hand or a closed form, in f64 (exact to ~1e-15, so
/// the tolerance is 1e-12) unless a test says otherwise.
final class OpSemanticsTests: XCTestCase {
    /// Runs `body` (IR text returning one tensor) on input x in f64.
    func run(_ body: String, input: Tensor, precision: Precision = .f64) throws -> Tensor {
        let dims = input.shape.dropFirst().map(String.init).joined(separator: ", ")
        let text = "model t {\n  input x: f64[B, \(dims)]\n  flow {\n\(body)\n  }\n}\n"
        let model = try Elaborator.elaborate(text: text, path: "t.flow")
        return try Interpreter(graph: model.flow, weights: nil, precision: precision).run([input])[0]
    }

    func assertValues(_ t: Tensor, _ expected: [Double], tolerance: Double = 1e-12, _ message: String = "", line: UInt = #line) {
        let c = Closeness.compare(t.values, expected, atol: tolerance, rtol: tolerance)
        XCTAssertTrue(c.passes, "\(message) \(c): got \(t.values)", line: line)
    }

    let row = Tensor(shape: [1, 4], values: [-2, -0.5, 0.5, 3])

    func testUnaryOps() throws {
        let x = row.values
        func sigmoid(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
        let table: [(String, (Double) -> Double)] = [
            ("neg(x)", { -$0 }), ("abs(x)", { Swift.abs($0) }), ("exp(x)", exp), ("expm1(x)", expm1),
            ("log1p(abs(x))", { log1p(Swift.abs($0)) }), ("sqrt(abs(x))", { Swift.abs($0).squareRoot() }),
            ("rsqrt(abs(x))", { 1 / Swift.abs($0).squareRoot() }), ("tanh(x)", tanh), ("sigmoid(x)", sigmoid),
            ("softplus(x)", { log(1 + exp($0)) }), ("relu(x)", { max($0, 0) }), ("silu(x)", { $0 * sigmoid($0) }),
            ("gelu(x)", { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }), ("sin(x)", sin), ("cos(x)", cos),
            ("leaky_relu(x, 0.1)", { $0 > 0 ? $0 : 0.1 * $0 }), ("square(x)", { $0 * $0 }),
            ("atanh(x / 4.0)", { atanh($0 / 4) }), ("logit(sigmoid(x))", { $0 }), ("log(exp(x))", { $0 }),
        ]
        for (expr, f) in table {
            assertValues(try run("    return \(expr)", input: row), x.map(f), expr)
        }
        // GELU(1) = 0.8413447460685429 (Φ(1) = 0.8413447460685429, a table value)
        assertValues(try run("    return gelu(x)", input: Tensor(shape: [1, 1], values: [1])), [0.8413447460685429])
    }

    func testSoftplusAndSigmoidStayFiniteAtExtremes() throws {
        let x = Tensor(shape: [1, 2], values: [-1000, 1000])
        assertValues(try run("    return softplus(x)", input: x), [0, 1000])
        assertValues(try run("    return sigmoid(x)", input: x), [0, 1])
    }

    func testBinaryOpsBroadcast() throws {
        let x = Tensor(shape: [2, 2, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        // [B, 2, 3] + [2, 1]: row r of each sample gets 10·(r+1)
        assertValues(try run("    return x + const([10.0, 20.0], shape=[2, 1])", input: x),
                     [11, 12, 13, 24, 25, 26, 17, 18, 19, 30, 31, 32])
        assertValues(try run("    return pow(x, 2.0) - max(x, 6.0) / min(x, 2.0)", input: x),
                     x.values.map { $0 * $0 - max($0, 6) / min($0, 2) })
        assertValues(try run("    return select(gt(x, 6.5), x, neg(x))", input: x), x.values.map { $0 > 6.5 ? $0 : -$0 })
    }

    func testReductionsSoftmaxCumsumLayernorm() throws {
        let x = Tensor(shape: [1, 2, 3], values: [1, 2, 3, 4, 5, 6])
        assertValues(try run("    return reshape(sum(x, [2]), [B, 2, 1]) * const([1.0, 1.0, 1.0], shape=[3])", input: x), [6, 6, 6, 15, 15, 15])
        assertValues(try run("    return mean(x, axes=[1], keepdims=1) + 0.0 * x", input: x), [2.5, 3.5, 4.5, 2.5, 3.5, 4.5])
        assertValues(try run("    return amax(x, axes=[1, 2], keepdims=1) + 0.0 * x", input: x), [6, 6, 6, 6, 6, 6])
        let e = [exp(1.0), exp(2.0), exp(3.0)], total = e.reduce(0, +)
        assertValues(try run("    return softmax(x, axis=-1)", input: x), (e + e).map { $0 / total })
        assertValues(try run("    return cumsum(x, axis=1)", input: x), [1, 2, 3, 5, 7, 9])
        // layernorm over [1, 2, 3]: mean 2, biased variance 2/3
        let s = 1 / (2.0 / 3 + 1e-5).squareRoot()
        assertValues(try run("    return layernorm(x)", input: x), [-s, 0, s, -s, 0, s])
    }

    func testShapeOps() throws {
        let x = Tensor(shape: [1, 2, 3], values: [0, 1, 2, 3, 4, 5])
        assertValues(try run("    return reshape(transpose(x, [0, 2, 1]), [B, 2, 3])", input: x), [0, 3, 1, 4, 2, 5])
        assertValues(try run("    return concat(slice(x, axis=2, start=-1), slice(x, axis=2, start=0, end=2), axis=2)", input: x), [2, 0, 1, 5, 3, 4])
        assertValues(try run("    return gather(x, axis=2, indices=[2, 2, 0]) * const([1.0], shape=[1]) + slice(x, axis=2, start=0, step=1)", input: x),
                     [2, 3, 2, 8, 9, 8])
        let y = try run("    a, b = split(x, axis=2, sizes=[1, 2])\n    return concat(b, a, axis=2)", input: x)
        assertValues(y, [1, 2, 0, 4, 5, 3])
        assertValues(try run("    return slice(pad(x, axis=2, before=1, after=2, value=7.0), axis=2, start=0, step=2)", input: x), [7, 1, 7, 7, 4, 7])
    }

    func testLinearAlgebra() throws {
        let x = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        // linear with W = [[1, 0], [1, 1], [0, 2]], b = [0.5, 0, -1]: rows (x0 + 0.5, x0 + x1, 2 x1 - 1)
        let W = "const([1.0, 0.0, 1.0, 1.0, 0.0, 2.0], shape=[3, 2])", b = "const([0.5, 0.0, -1.0], shape=[3])"
        assertValues(try run("    return linear(x, \(W), \(b))", input: x, precision: .f32), [1.5, 3, 3, 3.5, 7, 7])
        assertValues(try run("    return reshape(matmul(\(W), reshape(x, [B, 2, 1])), [B, 3])", input: x), [1, 3, 4, 3, 7, 8])
        let m = "const([2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0], shape=[3, 3])"
        // det = 2(12 - 1) - 1(4 - 0) = 18
        assertValues(try run("    return x * 0.0 + logabsdet(\(m))", input: x), Array(repeating: log(18.0), count: 4))
        assertValues(try run("    return x * 0.0 + sum(tril(\(m), -1) + triu(\(m), 1) + diag(const([1.0, 1.0, 1.0], shape=[3])) - eye(3), [0, 1])", input: x),
                     Array(repeating: 4, count: 4))  // strict lower part 1 + 1, strict upper 1 + 1
    }

    func testConv2dAgainstDirectSum() throws {
        // 1 sample, 1 channel 3x3 input 1..9; kernel [[0, 1], [2, 3]] with padding 1, stride 2.
        let x = Tensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let y = try run("    return conv2d(x, const([0.0, 1.0, 2.0, 3.0], shape=[1, 1, 2, 2]), const([0.5], shape=[1]), stride=2, padding=1)", input: x)
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        // out[i, j] = 0.5 + Σ k[u, v]·x[2i + u - 1, 2j + v - 1] (zero outside)
        assertValues(y, [0.5 + 3 * 1, 0.5 + 2 * 2 + 3 * 3, 0.5 + 1 * 4 + 3 * 7, 0.5 + 0 * 5 + 1 * 6 + 2 * 8 + 3 * 9])
    }

    func testInputErrors() throws {
        let model = try Elaborator.elaborate(text: "model t {\n input x: f32[B, 2]\n flow { return exp(x) }\n}", path: "t.flow")
        let interpreter = try Interpreter(graph: model.flow, weights: nil, precision: .f32)
        let cases: [(Tensor, String)] = [
            (Tensor(shape: [1, 3], values: [1, 2, 3]), "input 'x' has shape [1, 3]; expected f32[B, 2]"),
            (Tensor(shape: [0, 2], values: []), "batch size 0"),
            (Tensor(shape: [2, 2], values: [1, .nan, 0, 0]), "input 'x' holds nan at index (0, 1); inputs must be finite"),
        ]
        for (input, expected) in cases {
            XCTAssertThrowsError(try interpreter.run([input])) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
    }

    func testOpsOutsideTheirDomainAreLocatedErrors() throws {
        XCTAssertThrowsError(try run("    return log(x)", input: Tensor(shape: [1, 2], values: [1, -1]))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("t.flow:4:12: error: log produced "), text)
            XCTAssertTrue(text.hasSuffix("nan at index (0, 1) from finite operands (input outside the op's domain?)"), text)
        }
    }

    /// Attention by hand: with q = 0 every visible key has weight 1/(count), so the output of
    /// token t is the mean of the visible value rows (tokens ≤ t when causal, all otherwise);
    /// with a large q·k for one key the output is that key's value. Two heads of two channels.
    func testAttention() throws {
        // x: [1, 3, 4] (3 tokens, 4 channels = 2 heads of 2); q = 0, k = x, v = x
        let x = Tensor(shape: [1, 3, 4], values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        let causal = try run("    return attention(x * 0.0, x, x, heads=2, causal=1)", input: x)
        assertValues(causal, [1, 2, 3, 4, 3, 4, 5, 6, 5, 6, 7, 8], "causal: running means")
        let full = try run("    return attention(x * 0.0, x, x, heads=2, causal=0)", input: x)
        assertValues(full, [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8], "non-causal: the mean of all rows")
        // q = 100·x picks, per head, the key with the largest dot product among the visible ones:
        // the last visible token (the keys grow with the token index)
        let sharp = try run("    return attention(x * 100.0, x, x, heads=2, causal=1)", input: x)
        assertValues(sharp, x.values, tolerance: 1e-9, "causal, sharp: each token attends to itself")
    }
}
