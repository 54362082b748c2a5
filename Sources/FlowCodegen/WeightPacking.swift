import FlowIR

/// Lays out the constant weight of every `linear` for the generated GEMM microkernel: W [N, K]
/// (PyTorch's out × in) becomes Wᵀ zero-padded to [K, N16], N16 = N rounded up to 16, so one
/// vector load reads 16 consecutive output columns of one input row. The rewrite is
/// `linear(x, W, b)` → `linear_packed(x, pad(transpose(W)), b)`; the constant folder computes the
/// packed matrix at compile time and embeds it in place of W (W itself is no longer read).
/// `linear_packed` exists only between this rewrite and code generation.
enum WeightPacking {
    static let op = "linear_packed"

    /// The rewritten graph. With external weights, a `linear` reading a weight straight from
    /// the file keeps it (that weight stays mmapped rather than embedded).
    static func pack(_ graph: Graph, keepExternal: Bool) throws -> Graph {
        var g = graph
        let dependsOnInput = g.valuesDependingOnInputs()
        let producers = g.producers()
        var rewritten: [Node] = []
        var cache: [ValueID: ValueID] = [:]   // W → its packed form (a weight shared by several linears is packed once)
        for node in graph.nodes {
            guard node.op == "linear", dependsOnInput.contains(node.operands[0]), !dependsOnInput.contains(node.operands[1]) else {
                rewritten.append(node)
                continue
            }
            let w = node.operands[1]
            let n = g.type(of: w).dims[0]
            // outputs of at most `dotProductWidth` columns (a velocity's N = 2) stay `linear`: per
            // row and output one dot product along K (OpLowering.gemm) instead of K FMAs on a
            // mostly empty vector. TarFlow's proj_out (N = 8) is packed: one partly used vector
            // per row beats a BLAS call (which also allocates) and stays allocation-free.
            if n <= OpLowering.dotProductWidth || keepExternal && producers[w].map({ graph.nodes[$0].op == "weight" }) == true {
                rewritten.append(node)
                continue
            }
            if cache[w] == nil {
                let start = g.nodes.count
                let transposed = try g.apply("transpose", [w], ["perm": .ints([1, 0])], at: node.location)
                let padding = (n + 15) / 16 * 16 - n
                cache[w] = padding == 0 ? transposed : try g.apply("pad", [transposed], ["axis": .int(1), "after": .int(padding)], at: node.location)
                rewritten += g.nodes[start...]
                g.nodes.removeSubrange(start...)
            }
            var packed = node
            packed.op = op
            packed.operands[1] = cache[w]!
            rewritten.append(packed)
        }
        g.nodes = rewritten
        g.bodies = try graph.bodies.map { try pack($0, keepExternal: keepExternal) }
        return g
    }
}
