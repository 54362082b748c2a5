@testable import FlowPasses
import FlowIR
import FlowInterpreter
import FlowRandom
import FlowTestSupport
import XCTest

/// BatchInvariantHoisting as IR in → IR out: what is computed once instead of per row, and that
/// the rewritten graph computes what the original computes (the original, interpreted in f64,
/// is the oracle).
final class BatchInvariantHoistingTests: XCTestCase {
    func graph(_ body: String) throws -> Graph {
        try Elaborator.elaborate(text: "model t {\n  input x: f32[B, 2]\n  flow {\n\(body)\n  }\n}\n", path: "t.flow").flow
    }

    func hoisted(_ g: Graph) throws -> Graph { Simplify.eliminateDeadCode(try BatchInvariantHoisting.run(g)) }

    /// Ops of `g` with a batched result, by name.
    func batchedOps(_ g: Graph) -> [String] { g.nodes.filter { g.type(of: $0.results[0]).batched }.map(\.op) }

    /// Both graphs in f64 on the same batch of 5 rows. Folding the invariant columns into the
    /// bias sums x·W_xᵀ + (u·W_uᵀ + b) instead of (x, u)·Wᵀ + b: the same terms in another order,
    /// so the outputs agree to rounding, 1e-12 (relative, and absolute near 0).
    func assertSameOutputs(_ original: Graph, _ rewritten: Graph, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = Tensor(shape: [5, 2], values: Philox.normals(seed: 9, firstRow: 0, rows: 5, perRow: 2))
        let expected = try Interpreter(graph: original, weights: nil, precision: .f64).run([x])[0].values
        let actual = try Interpreter(graph: rewritten, weights: nil, precision: .f64).run([x])[0].values
        let closeness = Closeness.compare(actual, expected, atol: 1e-12, rtol: 1e-12)
        XCTAssertTrue(closeness.passes, "\(closeness)", file: file, line: line)
    }

    /// A sampler step's shape: the time broadcast to the batch, its sinusoidal embedding, and
    /// the first layer of the network on concat(x, embedding).
    let timeConditioned = """
            t = broadcast_like(const([0.25], shape=[1]), sum(x, axes=[1], keepdims=1))
            a = t * const([1.0, 2.0], shape=[2])
            e = concat(sin(a), cos(a), axis=1)
            w = const([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8], shape=[3, 6])
            return silu(linear(concat(x, e, axis=1), w, const([0.5, -0.5, 0.0], shape=[3])))
        """

    func testTimeEmbeddingIsComputedOnceAndFoldedIntoTheBias() throws {
        let original = try graph(timeConditioned)
        XCTAssertEqual(batchedOps(original).filter { ["sin", "cos", "mul"].contains($0) }.count, 3)
        let rewritten = try hoisted(original)
        // per row: the row sum that gave the batch (unused now), the product on x's 2 columns, silu
        XCTAssertFalse(batchedOps(rewritten).contains { ["sin", "cos", "mul", "concat", "broadcast_like"].contains($0) }, "\(batchedOps(rewritten))")
        let product = try XCTUnwrap(rewritten.nodes.first { $0.op == "linear" && rewritten.type(of: $0.results[0]).batched })
        XCTAssertEqual(rewritten.type(of: product.operands[0]).description, "f32[B, 2]")
        XCTAssertEqual(rewritten.type(of: product.operands[1]).dims, [3, 2])
        // the embedding's contribution is an unbatched bias: u·W_uᵀ + b
        XCTAssertFalse(rewritten.type(of: product.operands[2]).batched)
        try assertSameOutputs(original, rewritten)
        // and Simplify reaches the same per-row work (its constant folder evaluates the bias)
        XCTAssertFalse(batchedOps(try Simplify.run(original)).contains { ["sin", "cos", "concat"].contains($0) })
    }

    func testPerRowValuesStayPerRow() throws {
        // x + t is per row; t broadcast along [B, 2] (not t's own shape) is not tracked; an
        // invariant value read by a per-row op is broadcast once for it
        let original = try graph("""
                t = broadcast_like(const([0.25], shape=[1]), sum(x, axes=[1], keepdims=1))
                wide = broadcast_like(const([0.5], shape=[1]), x)
                return exp(x + t) + sin(wide) + sin(t) + cos(t)
            """)
        let rewritten = try hoisted(original)
        let perRow = batchedOps(rewritten)
        XCTAssertEqual(perRow.filter { $0 == "exp" }.count, 1)
        XCTAssertEqual(perRow.filter { $0 == "sin" }.count, 1, "sin(wide) per row, sin(t) once")
        XCTAssertFalse(perRow.contains("cos"))
        try assertSameOutputs(original, rewritten)
    }
}
