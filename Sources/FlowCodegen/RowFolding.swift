import FlowIR

/// Row-wise kernels — a product x·Wᵀ with its epilogue, a layernorm, a chain of elementwise
/// ops — do the same to every row of the last axis, so the kernel for [B, 16, 64] is the kernel
/// for [B, 64] called with 16·B rows. Folding the leading per-sample axes into the batch lets
/// TarFlow's 16-token layers and its one-token decoding steps share one function (`KernelCache`
/// keys on types): less code for LLVM to optimise, and no change to what is computed.
///
/// A kernel folds when every batched value it touches has the same leading per-sample axes
/// (of product R, 1 included: [B, 1, 64] is [B, 64] too) and every unbatched operand varies along the last axis only (a bias, a
/// layernorm weight), apart from the product's weight matrix. A `split` along the last axis is
/// row-wise too (qkv into q, k and v): its folded node splits the last axis (-1).
enum RowFolding {
    struct Folded {
        /// The kernel over `graph`'s values: its parameters in the original order.
        var kernel: Kernel
        /// The kernel's own graph: its parameters as inputs ([B, last] when batched), its nodes.
        var graph: Graph
        /// Rows per sample R: the caller passes batch · R as the kernel's batch.
        var rowsPerSample: Int
    }

    static let rowWise: Set<String> = KernelPlanner.elementwise.union(["linear", WeightPacking.op, "layernorm"])

    static func fold(_ k: Kernel, in g: Graph) -> Folded? {
        if case .single(let node) = k.body, node.op == "split" { return splitAlongLastAxis(k, node, in: g) }
        guard k.nodes.allSatisfy({ rowWise.contains($0.op) }), k.outputs.count == 1 else { return nil }
        let out = g.type(of: k.outputs[0])
        guard out.batched, out.dims.count >= 2 else { return nil }
        let leading = Array(out.dims.dropLast())
        let rows = leading.reduce(1, *)
        // the weight matrix of a product: used as a whole, not broadcast over rows
        let matrices = Set(k.nodes.filter { $0.op == "linear" || $0.op == WeightPacking.op }.map { $0.operands[1] })
        let parameters = k.inputs + k.outputs
        var folded = Graph()
        var map: [ValueID: ValueID] = [:]
        for v in parameters {
            let t = g.type(of: v)
            let type: TensorType
            if t.batched {
                guard t.dims.count >= 2, Array(t.dims.dropLast()) == leading else { return nil }
                type = TensorType(t.dtype, batched: true, [t.dims.last!])
            } else if matrices.contains(v) || t.dims.count <= 1 {
                type = t
            } else {
                guard t.dims.dropLast().allSatisfy({ $0 == 1 }) else { return nil }
                type = TensorType(t.dtype, batched: false, [t.dims.last!])
            }
            if k.inputs.contains(v) { map[v] = folded.addInput(name: "p\(map.count)", type: type) }
        }
        // results keep their types with the leading axes folded (`linear_packed` is not an op
        // the catalogue infers: the types are carried over, not re-derived)
        var nodes: [Node] = []
        for node in k.nodes {
            let operands = node.operands.compactMap { map[$0] }
            guard operands.count == node.operands.count else { return nil }
            var results: [ValueID] = []
            for r in node.results {
                let t = g.type(of: r)
                guard t.batched, t.dims.count >= 2, Array(t.dims.dropLast()) == leading else { return nil }
                let v = folded.newValue(TensorType(t.dtype, batched: true, [t.dims.last!]))
                map[r] = v
                results.append(v)
            }
            nodes.append(Node(op: node.op, operands: operands, attributes: node.attributes, results: results, location: node.location))
        }
        folded.nodes = nodes
        folded.outputs = k.outputs.map { map[$0]! }
        let body: Kernel.Body
        switch k.body {
        case .single: body = .single(nodes[0])
        case .fused: body = .fused(nodes)
        case .gemm: body = .gemm(nodes[0], epilogue: Array(nodes.dropFirst()))
        case .productPair: return nil   // two outputs: never reaches here
        }
        return Folded(kernel: Kernel(body: body, inputs: k.inputs.map { map[$0]! }, outputs: k.outputs.map { map[$0]! }),
                      graph: folded, rowsPerSample: rows)
    }

    /// A split of the last axis of a batched [B, leading..., C] value: [B, C] split along -1.
    static func splitAlongLastAxis(_ k: Kernel, _ node: Node, in g: Graph) -> Folded? {
        let x = g.type(of: node.operands[0])
        guard x.batched, x.dims.count >= 2, case .int(let axis)? = node.attributes["axis"], axis == -1 || axis == x.rank - 1 else { return nil }
        let leading = Array(x.dims.dropLast())
        guard node.results.allSatisfy({ g.type(of: $0).batched && Array(g.type(of: $0).dims.dropLast()) == leading }) else { return nil }
        func row(_ t: TensorType) -> TensorType { TensorType(t.dtype, batched: true, [t.dims.last!]) }
        var folded = Graph()
        let input = folded.addInput(name: "p0", type: row(x))
        let results = node.results.map { folded.newValue(row(g.type(of: $0))) }
        var attributes = node.attributes
        attributes["axis"] = .int(-1)
        let split = Node(op: node.op, operands: [input], attributes: attributes, results: results, location: node.location)
        folded.nodes = [split]
        folded.outputs = results
        return Folded(kernel: Kernel(body: .single(split), inputs: [input], outputs: results), graph: folded, rowsPerSample: leading.reduce(1, *))
    }
}
