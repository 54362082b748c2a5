import FlowIR

/// Single-head attention between constant affine maps does two of its four products at compile
/// time. For `r = linear(attention(q, k, v, heads=1), Wp, bp)` with q = Wq·x_q + b_q,
/// k = Wk·x_k + b_k, v = Wv·x_v + b_v (each a `linear` of constant weights, or a part of one
/// `linear` cut by `split` along the channels, as a fused qkv projection is):
///
/// - scores: q_t·k_s = x_kₛ·(Wkᵀ(Wq·x_qₜ + b_q)) + q_t·b_k. The second term is the same for every
///   key s of query t, and softmax over s is unchanged by adding a constant to all of a query's
///   scores, so it drops: the scores are q'_t·x_kₛ with q' = (WkᵀWq)·x_q + Wkᵀb_q and the keys
///   are x_k itself (no product);
/// - values: Wp·Σₛ αₜₛ(Wv·x_vₛ + b_v) + b_p = Σₛ αₜₛ((WpWv)·x_vₛ + Wp·b_v + b_p), since each
///   query's weights αₜₛ sum to 1, so the output projection moves onto the values.
///
/// So r = attention(q', x_k, v', heads=1) with v' = (WpWv)·x_v + (Wp·b_v + b_p): per token two
/// C×C products (q', v') instead of four (q, k, v, Wp), 1/6 of a pre-LN Transformer layer's
/// multiply-adds with an MLP of expansion 4 (TarFlow: 10C² instead of 12C² per token). The folded
/// matrices are constant expressions, evaluated in f64 at compile time; q' and v' share one
/// `linear` when they read the same x. The scale 1/√d stays: d = C = the channels of x_k, which
/// must equal the channels of q (checked).
///
/// Runs on a flow before its derivations (`EntryPoints`: the inverse's token-by-token decoding
/// then caches x_k and v' instead of k and v) and in every round of `Simplify`.
///
/// Folds only when it removes work: one head (with H heads each head's WkᵀWq is C×C, H times
/// the work of q and k), and every q, k, v and the attention output used by nothing else (a
/// derivative graph that reads q, k or v keeps them all).
public enum AttentionWeightFolding {
    /// An affine map of the channels: rows `rows` of `linear(input, weight, bias)`.
    struct Affine {
        var input: ValueID
        var weight: ValueID
        var bias: ValueID?
        var rows: Range<Int>?
        /// The values computed for it that die with the fold (the linear's result, the split's).
        var intermediates: [ValueID]
        /// The split that cut it out of a wider linear (a user of the intermediates to allow).
        var split: Int?
    }

    /// One attention node that folds, with its output projection.
    struct Site {
        var q: Affine, k: Affine, v: Affine
        var attention: Node
        var projection: Node
    }

    public static func run(_ input: Graph) throws -> Graph {
        var g = input
        g.bodies = try input.bodies.map { try run($0) }
        let sites = findSites(in: g)
        if sites.isEmpty { return g }
        var out = Graph()
        out.bodies = g.bodies
        var map: [ValueID: ValueID] = [:]
        for (v, name) in zip(g.inputs, g.inputNames) { map[v] = out.addInput(name: name, type: g.type(of: v)) }
        for (index, node) in g.nodes.enumerated() {
            if let site = sites[index] {
                map[node.results[0]] = try emit(site, in: &out, map: map)
                continue
            }
            let results = out.appendCopy(of: node, operands: node.operands.map { map[$0]! }, resultTypes: node.results.map { g.type(of: $0) })
            for (r, n) in zip(node.results, results) { map[r] = n }
        }
        out.outputs = g.outputs.map { map[$0]! }
        try Verifier.verify(out)
        return Simplify.eliminateDeadCode(out)
    }

    /// A `linear` node's bias operand, if it has one.
    static func bias(of linear: Node) -> ValueID? { linear.operands.count > 2 ? linear.operands[2] : nil }

    /// The folding sites by the index of their output projection's node.
    static func findSites(in g: Graph) -> [Int: Site] {
        let producers = g.producers()
        let dependsOnInput = g.valuesDependingOnInputs()
        let users = g.uses().map { $0.map(\.node) }
        let outputs = Set(g.outputs)
        func constant(_ v: ValueID?) -> Bool { v.map { !dependsOnInput.contains($0) } ?? true }
        /// Whether a `linear` node's weight and bias are compile-time constants.
        func constantMap(_ linear: Node) -> Bool { constant(linear.operands[1]) && constant(bias(of: linear)) }

        /// `v` as rows of a constant linear map of an input-dependent value.
        func affine(_ v: ValueID) -> Affine? {
            guard let p = producers[v] else { return nil }
            var node = g.nodes[p], rows: Range<Int>? = nil, intermediates = [v], split: Int? = nil
            if node.op == "split" {
                let operand = g.type(of: node.operands[0])
                guard g.axis(of: node) == operand.rank - 1, case .ints(let sizes)? = node.attributes["sizes"],
                      let index = node.results.firstIndex(of: v), let linear = producers[node.operands[0]] else { return nil }
                let start = sizes[..<index].reduce(0, +)
                rows = start..<(start + sizes[index])
                intermediates = node.results + [node.operands[0]]
                split = p
                node = g.nodes[linear]
            }
            guard node.op == "linear", constantMap(node) else { return nil }
            return Affine(input: node.operands[0], weight: node.operands[1], bias: bias(of: node), rows: rows, intermediates: intermediates, split: split)
        }

        var sites: [Int: Site] = [:]
        for (index, node) in g.nodes.enumerated() where node.op == "linear" && node.operands.count >= 2 {
            guard let a = producers[node.operands[0]], g.nodes[a].op == "attention", case .int(1)? = g.nodes[a].attributes["heads"],
                  constantMap(node) else { continue }
            let attention = g.nodes[a]
            let output = attention.results[0]
            guard users[output] == [index], !outputs.contains(output),
                  let q = affine(attention.operands[0]), let k = affine(attention.operands[1]), let v = affine(attention.operands[2]) else { continue }
            // the keys become x_k: its channels must be the attention's (same scale 1/√C), and the
            // projection square, so that q', x_k and v' have the channels of q
            let channels = g.type(of: attention.operands[0]).dims.last!
            guard g.type(of: k.input).dims.last == channels, g.type(of: node.results[0]) == g.type(of: output) else { continue }
            // q, k, v and what computed them: read by the attention (and the splits) only
            let allowed = Set([a] + [q, k, v].compactMap(\.split))
            let intermediates = Set([q, k, v].flatMap(\.intermediates))
            guard intermediates.allSatisfy({ users[$0].allSatisfy(allowed.contains) && !outputs.contains($0) }) else { continue }
            sites[index] = Site(q: q, k: k, v: v, attention: attention, projection: node)
        }
        return sites
    }

    /// The folded attention for `site` appended to `out`: the constant matrices, q' and v', the
    /// attention on (q', x_k, v'). Returns the value that replaces the projection's result.
    static func emit(_ site: Site, in out: inout Graph, map: [ValueID: ValueID]) throws -> ValueID {
        let at = site.projection.location
        /// The rows of an affine map's weight (a matrix) or bias (a vector) that it uses.
        func rows(_ value: ValueID, _ range: Range<Int>?) throws -> ValueID {
            guard let range else { return map[value]! }
            return try out.append("slice", [map[value]!], ["axis": .int(0), "start": .int(range.lowerBound), "end": .int(range.upperBound), "step": .int(1)], at: at)[0]
        }
        let transposeK = try out.append("transpose", [try rows(site.k.weight, site.k.rows)], ["perm": .ints([1, 0])], at: at)[0]
        // q' = (WkᵀWq)·x_q + Wkᵀ·b_q
        let qWeight = try out.append("matmul", [transposeK, try rows(site.q.weight, site.q.rows)], at: at)[0]
        let qBias = try site.q.bias.map { try out.append("linear", [try rows($0, site.q.rows), transposeK], at: at)[0] }
        // v' = (WpWv)·x_v + (Wp·b_v + b_p)
        let projectionWeight = map[site.projection.operands[1]]!
        let projectionBias = bias(of: site.projection).map { map[$0]! }
        let vWeight = try out.append("matmul", [projectionWeight, try rows(site.v.weight, site.v.rows)], at: at)[0]
        let vBias = try site.v.bias.map { try out.append("linear", [try rows($0, site.v.rows), projectionWeight] + (projectionBias.map { [$0] } ?? []), at: at)[0] }
            ?? projectionBias
        let channels = out.type(of: qWeight).dims[0]
        let q: ValueID, v: ValueID
        if site.q.input == site.v.input {
            // one product for both: [q' | v'] = [WkᵀWq; WpWv]·x + [b_q'; b_v']
            func zeros() throws -> ValueID {
                try out.append("const", [], ["values": .floats(Array(repeating: 0, count: channels)), "shape": .shape(batched: false, [channels])], at: at)[0]
            }
            let weight = try out.append("concat", [qWeight, vWeight], ["axis": .int(0)], at: at)[0]
            let bias = qBias == nil && vBias == nil ? nil : try out.append("concat", [try qBias ?? zeros(), try vBias ?? zeros()], ["axis": .int(0)], at: at)[0]
            let both = try out.append("linear", [map[site.q.input]!, weight] + (bias.map { [$0] } ?? []), at: at)[0]
            let last = out.type(of: both).rank - 1
            let parts = try out.append("split", [both], ["axis": .int(last), "sizes": .ints([channels, channels])], at: at)
            (q, v) = (parts[0], parts[1])
        } else {
            q = try out.append("linear", [map[site.q.input]!, qWeight] + (qBias.map { [$0] } ?? []), at: at)[0]
            v = try out.append("linear", [map[site.v.input]!, vWeight] + (vBias.map { [$0] } ?? []), at: at)[0]
        }
        return try out.append("attention", [q, map[site.k.input]!, v], site.attention.attributes, at: site.attention.location)[0]
    }
}
