import FlowIR

/// Derives ln |det ∂z/∂x| per sample and appends it to the forward graph, whose outputs
/// become (z, logdet). The log-determinant is the sum, over the steps of the inversion walk,
/// of each undone op's log-derivative in the undone operand: the walk recovers the input one
/// op at a time from values already known, so the Jacobian is block triangular in that order
/// and its determinant is the product of the diagonal blocks' determinants.
public enum LogDetPass {
    public static func run(_ forward: Graph, weights: WeightStore? = nil) throws -> Graph {
        let analysis = try InvertibilityAnalysis.analyze(forward, weights: weights)
        let steps = analysis.flatMap { $0.causal?.steps ?? [$0] }
        var g = forward
        let z = g.outputs[0]
        let at = SourceLocation.synthetic("logdet")
        var total: ValueID?
        for step in steps {
            guard let operand = step.operand, let rule = InverseRule.table[g.nodes[step.node].op] else { continue }
            let node = g.nodes[step.node]
            let term: ValueID
            switch try rule.logDerivative(&g, node, operand) {
            case .zero: continue
            case .perSample(let v): term = v
            case .elementwise(let t): term = try sumPerSample(&g, t, over: g.type(of: node.results[0]), at: node.location)
            }
            total = try total.map { try g.apply("add", [$0, term], at: at) } ?? term
        }
        // A [B] result even when every term is shared by the batch (or there is none).
        let zType = g.type(of: z)
        let zSum = try g.apply("sum", [z], ["axes": .ints(Array(1..<zType.rank))], at: at)
        let logdet = try g.apply("broadcast_like", [try total ?? g.constant(0, at: at), zSum], at: at)
        g.outputs = [z, logdet]
        try Verifier.verify(g)
        return g
    }

    /// Σ over one sample of t broadcast to `result`'s shape: sum t's static axes, times the
    /// number of times broadcasting repeats each element.
    static func sumPerSample(_ g: inout Graph, _ t: ValueID, over result: TensorType, at: SourceLocation) throws -> ValueID {
        let type = g.type(of: t)
        let first = type.batched ? 1 : 0
        var s = type.rank > first ? try g.apply("sum", [t], ["axes": .ints(Array(first..<type.rank))], at: at) : t
        let repeats = result.elementsPerSample / type.elementsPerSample
        if repeats != 1 { s = try g.apply("mul", [s, try g.constant(Double(repeats), at: at)], at: at) }
        return s
    }
}
