@testable import FlowPasses
import FlowIR
import FlowInterpreter
import FlowRandom
import FlowTestSupport
import XCTest

/// AttentionWeightFolding as IR in → IR out: which products a single-head attention keeps, when
/// it does not fold, and that the folded graph computes what the original computes (the original
/// graph, interpreted in f64, is the oracle).
final class AttentionWeightFoldingTests: XCTestCase {
    /// `count` standard normals (scaled) from a fixed stream, as an IR list literal.
    func literal(_ count: Int, seed: UInt64, scale: Double = 0.5) -> String {
        "[" + Philox.normals(seed: seed, firstRow: 0, rows: 1, perRow: count).map { String(scale * $0) }.joined(separator: ", ") + "]"
    }

    /// x [B, 5, 3] → h [B, 5, 4] → a pre-LN attention layer with a residual, TarFlow's shape,
    /// with q, k, v and the attention written by `attention` (given `a` = LN(h) and h).
    func layer(_ attention: String, outputs: String = "h + linear(o, wp, bp)") -> String {
        """
            wi = const(\(literal(12, seed: 1)), shape=[4, 3])
            h = linear(x, wi)
            a = layernorm(h)
            wqkv = const(\(literal(48, seed: 2)), shape=[12, 4])
            bqkv = const(\(literal(12, seed: 3)), shape=[12])
            wp = const(\(literal(16, seed: 4)), shape=[4, 4])
            bp = const(\(literal(4, seed: 5)), shape=[4])
        \(attention)
            return \(outputs)
        """
    }

    static let fused = """
            q, k, v = split(linear(a, wqkv, bqkv), axis=2, sizes=[4, 4, 4])
            o = attention(q, k, v, heads=1, causal=1)
        """

    func graph(_ body: String) throws -> Graph {
        try Elaborator.elaborate(text: "model t {\n  input x: f32[B, 5, 3]\n  flow {\n\(body)\n  }\n}\n", path: "t.flow").flow
    }

    /// The batched `linear` nodes, by their result's channels.
    func linearWidths(_ g: Graph) -> [Int] {
        g.nodes.filter { $0.op == "linear" && g.type(of: $0.results[0]).batched }.map { g.type(of: $0.results[0]).dims.last! }
    }

    /// Folded and original graphs interpreted in f64 on the same random batch of 3. In exact
    /// arithmetic they are equal (a per-query constant dropped from the scores, weights summing
    /// to 1 moved through the projection); in f64 the products are summed in another order and
    /// the folded matrices rounded once, O(10) ulps of values of size ~1: 1e-12.
    func assertSameOutputs(_ original: Graph, _ folded: Graph, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = Tensor(shape: [3, 5, 3], values: Philox.normals(seed: 7, firstRow: 0, rows: 3, perRow: 15))
        let expected = try Interpreter(graph: original, weights: nil, precision: .f64).run([x])
        let actual = try Interpreter(graph: folded, weights: nil, precision: .f64).run([x])
        for (a, e) in zip(actual, expected) {
            let closeness = Closeness.compare(a.values, e.values, atol: 1e-12, rtol: 1e-12)
            XCTAssertTrue(closeness.passes, "\(closeness)", file: file, line: line)
        }
    }

    func testFusedProjectionFoldsToTwoProducts() throws {
        let original = try graph(layer(Self.fused))
        XCTAssertEqual(linearWidths(original), [4, 12, 4])
        let folded = try AttentionWeightFolding.run(original)
        // x → h, then one product of LN(h) for [q' | v'] (4 + 4 channels); no output projection
        XCTAssertEqual(linearWidths(folded), [4, 8])
        // the keys are LN(h) itself
        let attention = try XCTUnwrap(folded.nodes.first { $0.op == "attention" })
        let keys = folded.producers()[attention.operands[1]].map { folded.nodes[$0].op }
        XCTAssertEqual(keys, "layernorm")
        try assertSameOutputs(original, folded)
        // nothing left to fold
        XCTAssertEqual(try AttentionWeightFolding.run(folded), folded)
    }

    func testSeparateProjectionsOfDifferentInputsFold() throws {
        // cross-attention without causal mask: queries from LN(h), keys and values from h, each
        // its own linear (q and v read different inputs: two products, q' and v')
        let separate = """
                q = linear(a, slice(wqkv, axis=0, start=0, end=4), slice(bqkv, axis=0, start=0, end=4))
                k = linear(h, slice(wqkv, axis=0, start=4, end=8), slice(bqkv, axis=0, start=4, end=8))
                v = linear(h, slice(wqkv, axis=0, start=8, end=12))
                o = attention(q, k, v, heads=1, causal=0)
            """
        let original = try graph(layer(separate))
        let folded = try AttentionWeightFolding.run(original)
        XCTAssertEqual(linearWidths(folded), [4, 4, 4])
        XCTAssertFalse(folded.nodes.contains { $0.op == "split" })
        try assertSameOutputs(original, folded)
    }

    func testNoFoldWhereItWouldAddWork() throws {
        // two heads: each head's WkᵀWq would be 4 × 4, twice the work of q and k
        let twoHeads = try graph(layer(Self.fused.replacingOccurrences(of: "heads=1", with: "heads=2")))
        XCTAssertEqual(try AttentionWeightFolding.run(twoHeads), twoHeads)
        // k read by another op: the qkv product stays, so folding would only add q' and v'
        let keysReadTwice = try graph(layer(Self.fused, outputs: "h + linear(o, wp, bp) + k"))
        XCTAssertEqual(try AttentionWeightFolding.run(keysReadTwice), keysReadTwice)
        // the attention's output read without the projection too
        let outputReadTwice = try graph(layer(Self.fused, outputs: "linear(o, wp, bp) + o"))
        XCTAssertEqual(try AttentionWeightFolding.run(outputReadTwice), outputReadTwice)
        // a projection to other channels than the attention's
        let wide = try graph(layer(Self.fused.replacingOccurrences(of: "o = attention", with: "wq = const(\(literal(20, seed: 6)), shape=[5, 4])\n    o = attention"),
                                   outputs: "linear(o, wq)"))
        XCTAssertEqual(try AttentionWeightFolding.run(wide), wide)
    }

    /// TarFlow (the fixture's model: C = 64, one head), folded before the derivations: every
    /// attention of log_prob, of the inverse's token-by-token decoding and of the score reads
    /// the layernorm's output as its keys (decoding: the cache, a concat of them), and no product
    /// reads an attention's output.
    func testTarFlowEntryPointsUseTheFoldedAttention() throws {
        let model = try ReferenceFixture("g_tarflow").model()
        for entry in [EntryPoints.Entry.logProb, .inverse, .score] {
            let g = try EntryPoints.graph(entry, of: model)
            let producers = g.producers()
            func op(_ v: ValueID) -> String? { producers[v].map { g.nodes[$0].op } }
            /// The values a key operand is made of, through the cache's concats.
            func parts(_ v: ValueID) -> [ValueID] {
                guard let p = producers[v], g.nodes[p].op == "concat" else { return [v] }
                return g.nodes[p].operands.flatMap(parts)
            }
            let attentions = g.nodes.filter { $0.op == "attention" }
            XCTAssertFalse(attentions.isEmpty, "\(entry)")
            for attention in attentions {
                XCTAssertEqual(Set(parts(attention.operands[1]).map(op)), ["layernorm"], "\(entry)")
            }
            XCTAssertFalse(g.nodes.contains { $0.op == "linear" && op($0.operands[0]) == "attention" }, "\(entry)")
        }
    }
}
