import FlowIR

/// Lays out the constant weight of every `linear` for the generated GEMM microkernel: W [N, K]
/// (PyTorch's out × in) becomes Wᵀ [K, N16] (N rounded up to 16 with zero columns) cut into
/// panels of at most 128 columns, each panel's [K, width] block stored row-major, one after
/// another (`OpLowering.PackedLayout`, `layout(n:panel:)`; the width: `panel(registers:)`). One
/// vector load reads 16 consecutive output columns of one input row, and a register tile's k
/// loop walks one panel: contiguous when the tile is as wide as the panel, at a fixed stride
/// otherwise. (Wᵀ row-major, a 1 KB row at N = 256, interleaved the two column halves of a split
/// product: each core's prefetchers fetched the other half too, and RealNVP 64-d's 2.9 MB of
/// weights did not fit one L2. Its batch-1 calls are 23–24% faster in panels.) The rewrite is
/// `linear(x, W, b)` → `linear_packed(x, packed, b)`, packed a 1-D tensor built from W by
/// transpose, pad, slice, reshape and concat; the constant folder computes it at compile time
/// and embeds it in place of W (W itself is no longer read). `linear_packed` exists only
/// between this rewrite and code generation.
enum WeightPacking {
    static let op = "linear_packed"
    /// The panel width P of a model's packed weights (`layout`: one panel of N16 ≤ P columns,
    /// else panels of P and a last one of the N16 mod P columns left); each packed node carries
    /// it as its `panel` attribute (`layout(of:n:)`). Every tile is 1, 2, 4 or 8 vectors from a
    /// multiple of its width (a narrower last one from a multiple of the full width), so no tile
    /// straddles two panels (but in panels of 16 columns, where each vector is a panel:
    /// PackedGemmLowering).
    /// - With 32 zmm registers: 128 columns, a single row's 8-vector tile (`OpLowering.tileWidth`),
    ///   whose k loop then reads 512 contiguous bytes per k.
    /// - With 16 ymm registers: 16 columns, one vector each, so that a 6 × 1 or 2 × 2 tile reads
    ///   each vector's K × 16 weights as one contiguous run. In 64-column panels a 6 × 1 tile's
    ///   K = 256 weights (16 KB, one line per k 256 bytes apart) fall in 16 of the L1's 64 sets,
    ///   8 KB of room: they came from L2 again for each of a chunk's row tiles. Zen 3, blocks of
    ///   calls alternated in one process: batch-256 e_fm sample 0.96–0.97x the time on one
    ///   thread, 0.97x on two; f_meanflow 0.97x; RealNVP 64-d 0.96x in 32-row chunks, 0.98–1.00x
    ///   in its 128-row ones; a_nsf 0.995x. Batch 1, where a single row's 4-vector tile now reads
    ///   4 panels: e_fm 0.94–0.95x on one thread, 0.97–1.03x (noise) on two; RealNVP 64-d,
    ///   f_meanflow and a_nsf 1.00–1.02x on two. (TarFlow's token-wise layers took 16-column
    ///   panels first, where K = 64 was too short a strided stream for the prefetchers: batch-1
    ///   log_prob 0.93x the time on two threads.)
    static func panel(registers: RegisterFile) -> Int { registers == .zmm32 ? 128 : OpLowering.lanes }

    /// Panels of at most `panel` columns for an N-column product.
    static func layout(n: Int, panel: Int) -> OpLowering.PackedLayout {
        let n16 = (n + 15) / 16 * 16
        return n16 <= panel ? .init(panelWidth: n16) : .init(panelWidth: panel, lastPanelWidth: n16 % panel)
    }

    /// The layout of a `linear_packed` node's weights, N columns (its `panel` attribute).
    static func layout(of node: Node, n: Int) -> OpLowering.PackedLayout {
        guard node.op == op, case .int(let panel)? = node.attributes["panel"] else {
            fatalError("\(node.op) is not a product packed by WeightPacking.pack")
        }
        return layout(n: n, panel: panel)
    }

    /// Wᵀ [K, N16] → its panels as `layout` says, flattened: [full panels · K · P] then [K · L].
    static func panels(of transposed: ValueID, k: Int, layout: OpLowering.PackedLayout, in g: inout Graph, at location: SourceLocation) throws -> ValueID {
        let n16 = g.type(of: transposed).dims[1]
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

    /// Whether the rewrite packs `node`: a `linear` of an input-dependent x by a constant W of
    /// more than `OpLowering.dotProductWidth` outputs. Outputs of at most that many columns (a
    /// velocity's N = 2) stay `linear`: per row and output one dot product along K
    /// (OpLowering.gemm) instead of K FMAs on a mostly empty vector. TarFlow's proj_out (N = 8)
    /// is packed: one partly used vector per row beats a BLAS call (which also allocates) and
    /// stays allocation-free.
    static func packs(_ node: Node, in g: Graph, dependsOnInput: Set<ValueID>) -> Bool {
        node.op == "linear" && dependsOnInput.contains(node.operands[0]) && !dependsOnInput.contains(node.operands[1])
            && g.type(of: node.operands[1]).dims[0] > OpLowering.dotProductWidth
    }

    /// The rewritten graph. With external weights, a `linear` reading a weight straight from
    /// the file keeps it (that weight stays mmapped rather than embedded). `panel`: the model's
    /// panel width (`panel(registers:)`).
    static func pack(_ graph: Graph, keepExternal: Bool, panel: Int) throws -> Graph {
        var g = graph
        let dependsOnInput = g.valuesDependingOnInputs()
        let producers = g.producers()
        var rewritten: [Node] = []
        var cache: [ValueID: ValueID] = [:]   // W → its packed form (a weight shared by several linears is packed once)
        for node in graph.nodes {
            // with external weights, a weight read straight from the file stays mmapped
            guard packs(node, in: g, dependsOnInput: dependsOnInput),
                  !(keepExternal && producers[node.operands[1]].map({ graph.nodes[$0].op == "weight" }) == true) else {
                rewritten.append(node)
                continue
            }
            let w = node.operands[1], n = g.type(of: w).dims[0]
            if cache[w] == nil {
                let start = g.nodes.count
                let k = g.type(of: w).dims[1], padding = (n + 15) / 16 * 16 - n
                var transposed = try g.apply("transpose", [w], ["perm": .ints([1, 0])], at: node.location)   // [K, N]
                if padding > 0 {
                    transposed = try g.apply("pad", [transposed], ["axis": .int(1), "after": .int(padding)], at: node.location)
                }
                cache[w] = try panels(of: transposed, k: k, layout: layout(n: n, panel: panel), in: &g, at: node.location)
                rewritten += g.nodes[start...]
                g.nodes.removeSubrange(start...)
            }
            var packed = node
            packed.op = op
            packed.operands[1] = cache[w]!
            packed.attributes["panel"] = .int(panel)
            rewritten.append(packed)
        }
        g.nodes = rewritten
        g.bodies = try graph.bodies.map { try pack($0, keepExternal: keepExternal, panel: panel) }
        return g
    }
}
