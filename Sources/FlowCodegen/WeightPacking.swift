import FlowIR

/// Lays out the constant weight of every `linear` for the generated GEMM microkernel: W [N, K]
/// (PyTorch's out × in) becomes Wᵀ [K, N16] (N rounded up to 16 with zero columns) cut into
/// panels of at most 128 columns, each panel's [K, width] block stored row-major, one after
/// another (`OpLowering.PackedLayout`, `layout(n:registers:)`). One vector load reads 16
/// consecutive output columns of one input row, and a register tile's k loop walks one panel:
/// contiguous when the tile is as wide as the panel (a single row's 8 vectors, or 4 with 16 ymm
/// registers, whose panels are then 64 columns: e_fm's batch-1 sample on a Zen 3 core was 14%
/// slower with 4-vector tiles over 128-column panels than with 8-vector tiles that spilled), at
/// a fixed stride otherwise. (Wᵀ row-major, a 1 KB row at N = 256, interleaved the two column
/// halves of a split product: each core's prefetchers fetched the other half too, and RealNVP 64-d's 2.9 MB of
/// weights did not fit one L2. Its batch-1 calls are 23–24% faster this way.) The rewrite is
/// `linear(x, W, b)` → `linear_packed(x, packed, b)`, packed a 1-D tensor built from W by
/// transpose, pad, slice, reshape and concat; the constant folder computes it at compile time
/// and embeds it in place of W (W itself is no longer read). `linear_packed` exists only
/// between this rewrite and code generation.
enum WeightPacking {
    static let op = "linear_packed"
    /// The widest panel: a single row's register tile (`OpLowering.tileWidth`: 8 vectors, 4
    /// with 16 ymm registers). Every tile is 1, 2, 4 or 8 vectors from a multiple of its width (a
    /// narrower last one from a multiple of the full width), so no tile straddles two panels.
    static func widestPanel(_ registers: RegisterFile) -> Int { registers == .zmm32 ? 128 : 64 }

    /// The layout of an N-column product's packed Wᵀ: one panel of N16 ≤ P columns, else
    /// panels of P and a last one of the N16 mod P columns left (P = `widestPanel`).
    static func layout(n: Int, registers: RegisterFile) -> OpLowering.PackedLayout {
        let n16 = (n + 15) / 16 * 16, widest = widestPanel(registers)
        return n16 <= widest ? .init(panelWidth: n16) : .init(panelWidth: widest, lastPanelWidth: n16 % widest)
    }

    /// Wᵀ [K, N16] → its panels, flattened: [full panels · K · P] then [K · L].
    static func panels(of transposed: ValueID, k: Int, registers: RegisterFile, in g: inout Graph, at location: SourceLocation) throws -> ValueID {
        let n16 = g.type(of: transposed).dims[1], layout = layout(n: n16, registers: registers)
        let (p, last) = (layout.panelWidth, layout.lastPanelWidth)
        let full = (n16 - last) / p
        var whole = last == 0 ? transposed : try g.apply("slice", [transposed], ["axis": .int(1), "end": .int(full * p)], at: location)
        whole = try g.apply("reshape", [whole], ["shape": .shape(batched: false, [k, full, p])], at: location)
        whole = try g.apply("transpose", [whole], ["perm": .ints([1, 0, 2])], at: location)   // [full, K, P]
        whole = try g.apply("reshape", [whole], ["shape": .shape(batched: false, [full * k * p])], at: location)
        guard last > 0 else { return whole }
        var rest = try g.apply("slice", [transposed], ["axis": .int(1), "start": .int(full * p)], at: location)   // [K, L]
        rest = try g.apply("reshape", [rest], ["shape": .shape(batched: false, [k * last])], at: location)
        return try g.apply("concat", [whole, rest], ["axis": .int(0)], at: location)
    }

    /// The rewritten graph. With external weights, a `linear` reading a weight straight from
    /// the file keeps it (that weight stays mmapped rather than embedded). `registers`: the
    /// target's, which set the panels' width.
    static func pack(_ graph: Graph, keepExternal: Bool, registers: RegisterFile) throws -> Graph {
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
                let k = g.type(of: w).dims[1], padding = (n + 15) / 16 * 16 - n
                var transposed = try g.apply("transpose", [w], ["perm": .ints([1, 0])], at: node.location)   // [K, N]
                if padding > 0 {
                    transposed = try g.apply("pad", [transposed], ["axis": .int(1), "after": .int(padding)], at: node.location)
                }
                cache[w] = try panels(of: transposed, k: k, registers: registers, in: &g, at: node.location)
                rewritten += g.nodes[start...]
                g.nodes.removeSubrange(start...)
            }
            var packed = node
            packed.op = op
            packed.operands[1] = cache[w]!
            rewritten.append(packed)
        }
        g.nodes = rewritten
        g.bodies = try graph.bodies.map { try pack($0, keepExternal: keepExternal, registers: registers) }
        return g
    }
}
