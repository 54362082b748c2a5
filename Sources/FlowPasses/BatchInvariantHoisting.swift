import FlowIR

/// Work that is the same for every sample is done once per call, not once per row. A sampler
/// feeds the network the step's time as `broadcast_like(t, x)`: the same value on every row.
/// MeanFlow's time embeddings (sin and cos of t and t − r) and the first layer's share of them
/// were computed for each of the batch's rows; e_fm's concat(x, t) put t in every row.
///
/// A batched value that is `broadcast_like(u, like)` of an unbatched u (and a `like` with only
/// unit axes, so the broadcast keeps u's shape) is *invariant*; the ops below compute an
/// invariant result from the unbatched operands instead (the constant folder then evaluates
/// what depends on constants only), and an invariant value is broadcast again only where a
/// per-row op reads it:
/// - elementwise ops whose operands are invariant or unbatched: op(u₁, u₂) broadcast;
/// - `concat` of invariant values, `linear` of an invariant x: the same on the u's;
/// - `linear(concat(parts), W, b)` along the last axis with some parts invariant: the per-row
///   parts through their columns of W, the invariant ones folded into the bias,
///   x·Wᵀ + b = x_r·W_rᵀ + (u·W_uᵀ + b) (W_r, W_u: W's columns of the parts, in order).
public enum BatchInvariantHoisting {
    /// An invariant value: `unbatched` broadcast along the batch of `like`.
    struct Invariant { var unbatched: ValueID; var like: ValueID }

    static let elementwise = OpCatalog.unaryElementwise.union(OpCatalog.binaryElementwise)

    public static func run(_ input: Graph) throws -> Graph {
        // no broadcast of an unbatched value: no invariant to start from, the graph as it is
        // (most rounds of Simplify, which runs this pass until nothing changes)
        guard input.nodes.contains(where: { $0.op == "broadcast_like" && !input.type(of: $0.operands[0]).batched }) else {
            var same = input
            same.bodies = try input.bodies.map { try run($0) }
            return same
        }
        var out = Graph()
        out.bodies = try input.bodies.map { try run($0) }
        var map: [ValueID: ValueID] = [:]
        var invariant: [ValueID: Invariant] = [:]     // keyed by values of `input`
        var broadcast: [ValueID: ValueID] = [:]       // input value → its materialised broadcast in `out`
        /// concat(parts) along the last axis with invariant and per-row parts (input values).
        var mixedConcat: [ValueID: [ValueID]] = [:]
        for (v, name) in zip(input.inputs, input.inputNames) { map[v] = out.addInput(name: name, type: input.type(of: v)) }

        /// `v` as a value of `out`: an invariant one broadcast to the batch (once).
        func operand(_ v: ValueID, at location: SourceLocation) throws -> ValueID {
            guard let i = invariant[v] else { return map[v]! }
            if let made = broadcast[v] { return made }
            let made = try out.apply("broadcast_like", [i.unbatched, i.like], at: location)
            guard out.type(of: made) == input.type(of: v) else {
                throw FlowError("internal: broadcast of a batch-invariant value has type \(out.type(of: made)), expected \(input.type(of: v))", at: location)
            }
            broadcast[v] = made
            return made
        }
        /// The unbatched value standing for operand `v` (invariant or unbatched), if any.
        func unbatched(_ v: ValueID) -> ValueID? {
            if let i = invariant[v] { return i.unbatched }
            return input.type(of: v).batched ? nil : map[v]!
        }

        for node in input.nodes {
            let result = input.type(of: node.results[0])
            if node.results.count == 1, result.batched, let hoisted = try hoist(node, result: result) {
                invariant[node.results[0]] = hoisted
                continue
            }
            if node.op == "linear", let parts = mixedConcat[node.operands[0]], node.operands.count >= 2, !input.type(of: node.operands[1]).batched,
               node.operands.count == 2 || !input.type(of: node.operands[2]).batched {
                map[node.results[0]] = try foldIntoBias(node, parts: parts)
                continue
            }
            if node.op == "concat", result.batched, input.axis(of: node) == result.rank - 1,
               node.operands.contains(where: { invariant[$0] != nil }), node.operands.contains(where: { invariant[$0] == nil }) {
                mixedConcat[node.results[0]] = node.operands
            }
            let operands = try node.operands.map { try operand($0, at: node.location) }
            let results = try out.append(node.op, operands, node.attributes, at: node.location)
            for (r, n) in zip(node.results, results) { map[r] = n }
        }
        out.outputs = try input.outputs.map { try operand($0, at: .synthetic("batch invariants")) }
        try Verifier.verify(out)
        return out

        /// The invariant result of `node`, computed on unbatched operands; nil when it is not invariant.
        func hoist(_ node: Node, result: TensorType) throws -> Invariant? {
            if node.op == "broadcast_like" {
                let (x, shape) = (input.type(of: node.operands[0]), input.type(of: node.operands[1]))
                guard !x.batched, x.dims == result.dims, shape.batched, shape.dims.allSatisfy({ $0 == 1 }), shape.dims.count <= x.dims.count else { return nil }
                // the batch comes from `like`, itself perhaps invariant (then from its own)
                let like = invariant[node.operands[1]]?.like ?? map[node.operands[1]]!
                return Invariant(unbatched: map[node.operands[0]]!, like: like)
            }
            guard elementwise.contains(node.op) || node.op == "concat" || node.op == "linear" else { return nil }
            // linear hoists for an invariant x (its weight and bias are unbatched anyway)
            guard node.op != "linear" || invariant[node.operands[0]] != nil else { return nil }
            var like: ValueID?
            var operands: [ValueID] = []
            for v in node.operands {
                guard let u = unbatched(v) else { return nil }
                if like == nil, let i = invariant[v] { like = i.like }
                operands.append(u)
            }
            guard let like else { return nil }   // no invariant operand: an op of unbatched values only
            var attributes = node.attributes
            if node.op == "concat" {
                guard let axis = input.axis(of: node), axis >= 1 else { return nil }
                attributes["axis"] = .int(axis - 1)
            }
            // the op on the unbatched operands must have the per-row shape (a dead node otherwise)
            guard let computed = try? out.apply(node.op, operands, attributes, at: node.location),
                  out.type(of: computed).dims == result.dims else { return nil }
            return Invariant(unbatched: computed, like: like)
        }

        /// linear(concat(parts), W, b) with invariant parts u and per-row parts x:
        /// linear(concat(x), W_x, linear(concat(u), W_u, b)).
        func foldIntoBias(_ node: Node, parts: [ValueID]) throws -> ValueID {
            let at = node.location
            var (rowColumns, invariantColumns, rowParts, invariantParts) = ([Int](), [Int](), [ValueID](), [ValueID]())
            var column = 0
            for part in parts {
                let width = input.type(of: part).dims.last!
                if let i = invariant[part] {
                    invariantColumns += column..<(column + width)
                    invariantParts.append(i.unbatched)
                } else {
                    rowColumns += column..<(column + width)
                    rowParts.append(map[part]!)
                }
                column += width
            }
            let w = map[node.operands[1]]!
            let rowX = rowParts.count == 1 ? rowParts[0] : try out.apply("concat", rowParts, ["axis": .int(-1)], at: at)
            let u = invariantParts.count == 1 ? invariantParts[0] : try out.apply("concat", invariantParts, ["axis": .int(-1)], at: at)
            let rowW = try out.apply("gather", [w], ["axis": .int(1), "indices": .ints(rowColumns)], at: at)
            let invariantW = try out.apply("gather", [w], ["axis": .int(1), "indices": .ints(invariantColumns)], at: at)
            let bias = try out.apply("linear", [u, invariantW] + (node.operands.count == 3 ? [map[node.operands[2]]!] : []), at: at)
            return try out.apply("linear", [rowX, rowW, bias], at: at)
        }
    }
}
