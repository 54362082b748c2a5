import FlowIR

/// Reverse-mode differentiation: appends to a graph the gradient of a per-sample scalar with
/// respect to a batched input (samples are independent, so the gradient of Σ_b out_b is each
/// sample's own gradient). Cotangents flow from the output back through the ops that depend on
/// the input, op by op with the rules below; a unary elementwise op's cotangent rule is its
/// tangent rule (its Jacobian is diagonal), taken from `JVPPass`. Constant operands (weights)
/// get no cotangent.
public enum VJPPass {
    public static func gradient(_ g: inout Graph, of output: ValueID, withRespectTo input: ValueID) throws -> ValueID {
        let at = SourceLocation.synthetic("vjp")
        var dependsOnInput: Set<ValueID> = [input]
        for node in g.nodes where node.operands.contains(where: dependsOnInput.contains) { dependsOnInput.formUnion(node.results) }
        var leadsToOutput: Set<ValueID> = [output]
        let forwardNodes = g.nodes.count
        for node in g.nodes[0..<forwardNodes].reversed() where node.results.contains(where: leadsToOutput.contains) {
            leadsToOutput.formUnion(node.operands)
        }
        var cotangent: [ValueID: ValueID] = [output: try g.apply("broadcast_like", [try g.constant(1, at: at), output], at: at)]
        for index in stride(from: forwardNodes - 1, through: 0, by: -1) {
            let node = g.nodes[index]
            let results = node.results.map { cotangent[$0] }
            guard results.contains(where: { $0 != nil }), node.operands.contains(where: { dependsOnInput.contains($0) && leadsToOutput.contains($0) }) else { continue }
            let wanted = node.operands.map { dependsOnInput.contains($0) && leadsToOutput.contains($0) }
            let contributions = try rule(&g, node, results, wanted)
            for (operand, contribution) in zip(node.operands, contributions) {
                guard let contribution, dependsOnInput.contains(operand) else { continue }
                cotangent[operand] = try cotangent[operand].map { try g.apply("add", [$0, contribution], at: at) } ?? contribution
            }
        }
        return try cotangent[input] ?? g.apply("broadcast_like", [try g.constant(0, at: at), input], at: at)
    }

    /// Cotangents of a node's operands (nil where not wanted) from its results' cotangents (nil: zero).
    static func rule(_ g: inout Graph, _ n: Node, _ ct: [ValueID?], _ wanted: [Bool]) throws -> [ValueID?] {
        let at = n.location
        func op(_ name: String, _ operands: [ValueID], _ attributes: [String: Attribute] = [:]) throws -> ValueID {
            try g.apply(name, operands, attributes, at: at)
        }
        func c(_ v: Double) throws -> ValueID { try g.constant(v, at: at) }
        let y = n.results[0]
        /// the cotangent of the (first) result, zero when absent
        func bar(_ i: Int = 0) throws -> ValueID { try ct[i] ?? op("broadcast_like", [try c(0), n.results[i]]) }
        /// a result-shaped cotangent summed back to operand i's shape (undoing broadcasting)
        func reduced(_ v: ValueID, _ i: Int) throws -> ValueID? { wanted[i] ? try unbroadcast(&g, v, to: n.operands[i], at: at) : nil }
        func perOperand(_ f: (Int) throws -> ValueID?) rethrows -> [ValueID?] { try n.operands.indices.map { wanted[$0] ? try f($0) : nil } }
        let ybar = try bar()
        switch n.op {
        case "add": return try perOperand { try reduced(ybar, $0) }
        case "sub": return try perOperand { try reduced($0 == 0 ? ybar : try op("neg", [ybar]), $0) }
        case "mul": return try perOperand { try reduced(try op("mul", [ybar, n.operands[1 - $0]]), $0) }
        case "div":                                   // ∂(a/b) = ȳ/b, −ȳ·y/b
            return try perOperand { i in
                i == 0 ? try reduced(try op("div", [ybar, n.operands[1]]), 0)
                    : try reduced(try op("neg", [try op("div", [try op("mul", [ybar, y]), n.operands[1]])]), 1)
            }
        case "guided", "broadcast_like":
            return try perOperand { $0 == 0 ? try reduced(ybar, 0) : nil }
        case _ where JVPPass.unaryElementwise.contains(n.op):
            return [try JVPPass.rule(&g, n, [ybar])[0]]
        case "linear":                                // x̄ = ȳ·W (W is [out, in])
            guard !wanted.dropFirst().contains(true) else { throw FlowError("the gradient through a linear layer's weight is not supported", at: at) }
            return [try op("matmul", [ybar, n.operands[1]]), nil, nil].prefix(n.operands.count).map { $0 }
        case "matmul":                                // ā = ȳ·bᵀ, b̄ = aᵀ·ȳ
            func transposed(_ v: ValueID) throws -> ValueID {
                let rank = g.type(of: v).rank
                var perm = Array(0..<rank)
                perm.swapAt(rank - 1, rank - 2)
                return try op("transpose", [v], ["perm": .ints(perm)])
            }
            return try perOperand { i in
                i == 0 ? try reduced(try op("matmul", [ybar, try transposed(n.operands[1])]), 0)
                    : try reduced(try op("matmul", [try transposed(n.operands[0]), ybar]), 1)
            }
        case "reshape":
            return [try op("reshape", [ybar], ["shape": .shape(batched: g.type(of: n.operands[0]).batched, g.type(of: n.operands[0]).dims)])]
        case "transpose":
            guard case .ints(let perm)? = n.attributes["perm"] else { fatalError("perm verified") }
            var inverse = perm
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [try op("transpose", [ybar], ["perm": .ints(inverse)])]
        case "slice", "gather":
            // scatter back: the selected positions get ȳ, the others 0 (a permutation gathers back)
            guard let (axis, indices) = n.selection(in: g), let size = g.type(of: n.operands[0]).size(ofAxis: axis) else { fatalError("static selection") }
            if Set(indices).count == size && indices.count == size {
                var inverse = indices
                for (i, p) in indices.enumerated() { inverse[p] = i }
                return [try op("gather", [ybar], ["axis": .int(axis), "indices": .ints(inverse)])]
            }
            guard Set(indices).count == indices.count else { throw FlowError("the gradient of a selection that repeats positions is not supported", at: at) }
            // ȳ with one zero appended along the axis; position p takes ȳ's entry that selected it, or that zero
            let padded = try op("pad", [ybar], ["axis": .int(axis), "before": .int(0), "after": .int(1), "value": .float(0)])
            var source = [Int](repeating: indices.count, count: size)
            for (i, p) in indices.enumerated() { source[p] = i }
            return [try op("gather", [padded], ["axis": .int(axis), "indices": .ints(source)])]
        case "pad":
            guard case .int(let before)? = n.attributes["before"] else { fatalError("pad verified") }
            let axis = resolvedAxis(n, g)
            let size = g.type(of: n.operands[0]).size(ofAxis: axis)!
            return [try op("slice", [ybar], ["axis": .int(axis), "start": .int(before), "end": .int(before + size)])]
        case "concat":
            let axis = resolvedAxis(n, g)
            var start = 0
            return try n.operands.map { v in
                let size = g.type(of: v).size(ofAxis: axis)!
                defer { start += size }
                return try op("slice", [ybar], ["axis": .int(axis), "start": .int(start), "end": .int(start + size)])
            }
        case "split":
            let axis = resolvedAxis(n, g)
            return [try op("concat", try n.results.indices.map { try bar($0) }, ["axis": .int(axis)])]
        case "sum", "mean":
            guard case .ints(let rawAxes)? = n.attributes["axes"] else { fatalError("axes verified") }
            let x = g.type(of: n.operands[0])
            let axes = rawAxes.map { $0 < 0 ? $0 + x.rank : $0 }
            var kept = x.dims
            for a in axes { kept[a - (x.batched ? 1 : 0)] = 1 }
            var back = try op("broadcast_like", [try op("reshape", [ybar], ["shape": .shape(batched: x.batched, kept)]), n.operands[0]])
            if n.op == "mean" { back = try op("mul", [back, try c(Double(kept.reduce(1, *)) / Double(x.elementsPerSample))]) }
            return [back]
        case "softmax":                               // x̄ = y·(ȳ − Σ ȳ·y)
            let axis = resolvedAxis(n, g)
            let total = try op("sum", [try op("mul", [ybar, y])], ["axes": .ints([axis]), "keepdims": .int(1)])
            return [try op("mul", [y, try op("sub", [ybar, total])])]
        case "layernorm":                             // x̄ = (ĝ − mean ĝ − x̂·mean(ĝ·x̂))/σ with ĝ = ȳ·w
            guard !wanted.dropFirst().contains(true) else { throw FlowError("the gradient through layernorm's weight is not supported", at: at) }
            guard case .float(let eps)? = n.attributes["eps"] else { fatalError("eps verified") }
            let x = n.operands[0]
            let last = g.type(of: x).rank - 1
            func mean(_ v: ValueID) throws -> ValueID { try op("mean", [v], ["axes": .ints([last]), "keepdims": .int(1)]) }
            let centered = try op("sub", [x, try mean(x)])
            let inverseSigma = try op("rsqrt", [try op("add", [try mean(try op("square", [centered])), try c(eps)])])
            let normalized = try op("mul", [centered, inverseSigma])
            let scaled = n.operands.count > 1 ? try op("mul", [ybar, n.operands[1]]) : ybar
            let inner = try op("sub", [try op("sub", [scaled, try mean(scaled)]), try op("mul", [normalized, try mean(try op("mul", [scaled, normalized]))])])
            return [try op("mul", [inner, inverseSigma]), nil, nil].prefix(n.operands.count).map { $0 }
        case "attention":
            return try AttentionGradient.cotangents(&g, n, ybar, wanted)
        default:
            throw FlowError("no gradient rule for '\(n.op)' (reverse-mode differentiation of this op is not supported)", at: at)
        }
    }

    static func resolvedAxis(_ n: Node, _ g: Graph) -> Int {
        guard case .int(let a)? = n.attributes["axis"] else { fatalError("axis verified") }
        return a < 0 ? a + g.type(of: n.operands[0]).rank : a
    }

    /// A cotangent of a broadcast result summed back to `operand`'s shape.
    static func unbroadcast(_ g: inout Graph, _ v: ValueID, to operand: ValueID, at: SourceLocation) throws -> ValueID {
        let (from, to) = (g.type(of: v), g.type(of: operand))
        if from == to { return v }
        guard to.batched else { throw FlowError("internal: an input-dependent operand without the batch axis", at: at) }
        // right-aligned: extra leading per-sample axes and axes of size 1 in the operand are summed
        let pad = from.dims.count - to.dims.count
        let axes = from.dims.indices.filter { i in i < pad || (to.dims[i - pad] == 1 && from.dims[i] != 1) }.map { $0 + 1 }
        let summed = axes.isEmpty ? v : try g.apply("sum", [v], ["axes": .ints(axes), "keepdims": .int(1)], at: at)
        return try g.apply("reshape", [summed], ["shape": .shape(batched: true, to.dims)], at: at)
    }
}
