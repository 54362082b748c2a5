@testable import FlowPasses
import FlowIR
import FlowInterpreter
import FlowRandom
import FlowTestSupport
import XCTest

/// RowPrefixNarrowing as IR in → IR out: which ops run on fewer tokens, and that the narrowed
/// graph computes what the original computes (the original graph, interpreted in f64, is the oracle).
final class RowPrefixNarrowingTests: XCTestCase {
    /// A conditioner over 4 tokens of 2 values shifted one token later, TarFlow's shape:
    /// proj + position embedding, layernorm, attention (causal or not), residual GELU,
    /// p = slice(pad(·, before 1), end 4), then an affine step on x.
    func conditioner(causal: Int) -> String {
        """
            w = const([0.5, -0.25, 0.75, 1.0], shape=[2, 2])
            b = const([0.1, -0.2], shape=[2])
            pe = const([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], shape=[4, 2])
            h = linear(x, w, b) + pe
            o = attention(layernorm(h), h, h, heads=1, causal=\(causal))
            q = gelu(o) + h
            p = slice(pad(q, axis=1, before=1), axis=1, end=4)
            return x * exp(p)
        """
    }

    func graph(_ body: String) throws -> Graph {
        try Elaborator.elaborate(text: "model t {\n  input x: f32[B, 4, 2]\n  flow {\n\(body)\n  }\n}\n", path: "t.flow").flow
    }

    /// The result type of the first node with `op` in the printed graph.
    func type(of op: String, in g: Graph) -> String? {
        g.nodes.first { $0.op == op }.map { g.type(of: $0.results[0]).description }
    }

    /// Narrowed and original graphs interpreted in f64 on the same random batch of 3: the rows a
    /// narrowed op keeps are computed by the same arithmetic, so 1e-12 (relative) only allows
    /// for a different summation order in the interpreter's products.
    func assertSameOutputs(_ original: Graph, _ narrowed: Graph, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = Tensor(shape: [3, 4, 2], values: Philox.normals(seed: 3, firstRow: 0, rows: 3, perRow: 8))
        let expected = try Interpreter(graph: original, weights: nil, precision: .f64).run([x])[0].values
        let actual = try Interpreter(graph: narrowed, weights: nil, precision: .f64).run([x])[0].values
        let closeness = Closeness.compare(actual, expected, atol: 0, rtol: 1e-12)
        XCTAssertTrue(closeness.passes, "\(closeness)", file: file, line: line)
    }

    func testShiftedCausalConditionerDropsItsLastToken() throws {
        let original = try graph(conditioner(causal: 1))
        let narrowed = Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(original))
        // token 3's conditioner is never read: the projection, attention and GELU run on 3 tokens
        XCTAssertEqual(type(of: "linear", in: narrowed), "f32[B, 3, 2]")
        XCTAssertEqual(type(of: "attention", in: narrowed), "f32[B, 3, 2]")
        XCTAssertEqual(type(of: "gelu", in: narrowed), "f32[B, 3, 2]")
        // the shift pads 3 rows to 4 and needs no slice; x is read whole by the affine step
        XCTAssertEqual(type(of: "pad", in: narrowed), "f32[B, 4, 2]")
        XCTAssertFalse(narrowed.nodes.contains { $0.op == "slice" && narrowed.type(of: $0.operands[0]).dims[0] == 4 && narrowed.type(of: $0.results[0]).dims[0] == 4 })
        // the position embedding is sliced to the tokens computed
        XCTAssertTrue(narrowed.nodes.contains { $0.op == "slice" && !narrowed.type(of: $0.results[0]).batched && narrowed.type(of: $0.results[0]).dims == [3, 2] })
        try assertSameOutputs(original, narrowed)
        // a second run finds nothing more to narrow
        XCTAssertEqual(Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(narrowed)), narrowed)
    }

    func testNonCausalAttentionReadsEveryToken() throws {
        // query 2 of a non-causal attention reads key 3: the attention keeps 4 queries (their
        // rows are read no further than the rows it returns: its output is narrowed after it)
        let original = try graph(conditioner(causal: 0))
        let narrowed = Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(original))
        XCTAssertEqual(type(of: "attention", in: narrowed), "f32[B, 4, 2]")
        XCTAssertEqual(type(of: "linear", in: narrowed), "f32[B, 4, 2]")
        XCTAssertEqual(type(of: "gelu", in: narrowed), "f32[B, 3, 2]")
        try assertSameOutputs(original, narrowed)
    }

    func testSlicesAndGathersReadOnlyTheirRows() throws {
        // rows 1..<3 of exp(x): exp runs on rows 0..<3; the first two picks of a gather read rows ≤ 2
        let sliced = try graph("    return slice(exp(x), axis=1, start=1, end=3)")
        let narrowedSlice = Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(sliced))
        XCTAssertEqual(type(of: "exp", in: narrowedSlice), "f32[B, 3, 2]")
        try assertSameOutputs(sliced, narrowedSlice)

        let gathered = try graph("    return slice(gather(tanh(x), axis=1, indices=[2, 0, 3, 1]), axis=1, end=2)")
        let narrowedGather = Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(gathered))
        XCTAssertEqual(type(of: "tanh", in: narrowedGather), "f32[B, 3, 2]")
        XCTAssertEqual(type(of: "gather", in: narrowedGather), "f32[B, 2, 2]")
        try assertSameOutputs(gathered, narrowedGather)

        // a reduction over the tokens reads them all
        let summed = try graph("    return sum(exp(x), axes=[1], keepdims=1)")
        XCTAssertEqual(type(of: "exp", in: Simplify.eliminateDeadCode(try RowPrefixNarrowing.run(summed))), "f32[B, 4, 2]")
    }
}
