import FlowIR

/// Finds an autoregressive block where the plain inverse walk is stuck: a node whose result is
/// known but whose operands all depend on an unknown value u (y = u·exp(a(u)) + b(u) in MAF).
/// The block is accepted when, treating as known every value whose position i depends only on
/// positions of u other than i (the conditioner), the walk reaches u through elementwise
/// bijections, and the conditioner's dependencies between positions have no cycle, so some
/// order of the positions makes the map triangular.
enum CausalBlockFinder {
    /// Ops a causal block may undo on its direct path: each maps position i of u to position i.
    static let elementwiseBijections: Set<String> = [
        "add", "sub", "mul", "div", "neg", "exp", "expm1", "log", "log1p", "sigmoid", "logit", "tanh", "atanh",
        "softplus", "leaky_relu", "rq_spline",
    ]

    static func find(_ g: Graph, known: [Bool], evaluator: inout ConstantEvaluator) throws -> (block: CausalBlock?, failure: FlowError?) {
        let producers = g.producers()
        let consumers = g.uses().map { $0.map(\.node) }
        var failure: FlowError?
        for (index, stuck) in g.nodes.enumerated().reversed() {
            guard stuck.results.allSatisfy({ known[$0] }), stuck.operands.contains(where: { !known[$0] }) else { continue }
            // unknown ancestors of the stuck node
            var ancestors = Set<ValueID>()
            var stack = stuck.operands.filter { !known[$0] }
            while let v = stack.popLast() {
                guard ancestors.insert(v).inserted, let p = producers[v] else { continue }
                stack += g.nodes[p].operands.filter { !known[$0] }
            }
            let inside = ancestors.union(stuck.results)
            let candidates = ancestors.filter { v in consumers[v].filter { c in g.nodes[c].results.contains(where: inside.contains) }.count >= 2 }
            for u in candidates.sorted(by: >) {
                switch try attempt(g, source: u, stuck: index, inside: inside, known: known, producers: producers, evaluator: &evaluator) {
                case .success(let block): return (block, nil)
                case .failure(let error): if failure == nil, let error { failure = error }
                }
            }
        }
        return (nil, failure)
    }

    /// The values downstream of u (u included) that lead to the stuck node.
    static func attempt(_ g: Graph, source u: ValueID, stuck: Int, inside: Set<ValueID>, known: [Bool], producers: [Int?],
                        evaluator: inout ConstantEvaluator) throws -> Attempt {
        var downstream: Set<ValueID> = [u]
        var blockNodes: [Int] = []
        for (i, node) in g.nodes.enumerated() where i <= stuck && node.operands.contains(where: downstream.contains) {
            for r in node.results { downstream.insert(r) }
            if node.results.contains(where: inside.contains) { blockNodes.append(i) }
        }
        let values = Set(blockNodes.flatMap { g.nodes[$0].results }).subtracting(g.nodes[stuck].results)
        for i in blockNodes {
            for v in g.nodes[i].operands where !known[v] && v != u && !values.contains(v) { return .failure(nil) }
        }
        var dependencies = DependencyAnalysis(graph: g, source: u, evaluator: evaluator)
        for i in blockNodes { try dependencies.propagate(g.nodes[i]) }
        evaluator = dependencies.evaluator
        let uType = g.type(of: u)
        /// position of u that element e of v is aligned with, when v's shape extends u's
        func alignment(_ v: ValueID) -> Int? {
            let t = g.type(of: v)
            guard t.batched, t.dims.count >= uType.dims.count, Array(t.dims.prefix(uType.dims.count)) == uType.dims else { return nil }
            return t.elementsPerSample / uType.elementsPerSample
        }
        // the conditioner: aligned values whose position i never depends on u_i
        var conditioner = Set<ValueID>()
        for v in values {
            guard let per = alignment(v), let d = dependencies.of(v) else { continue }
            if d.indices.allSatisfy({ !d[$0].contains($0 / per) }) { conditioner.insert(v) }
        }
        // walk back from the stuck node's result through elementwise bijections
        var known2 = known
        for v in conditioner { known2[v] = true }
        var steps: [InversionStep] = []
        var changed = true
        while changed && !known2[u] {
            changed = false
            for i in blockNodes.reversed() {
                let node = g.nodes[i]
                let unknown = node.operands.indices.filter { !known2[node.operands[$0]] }
                guard node.results.allSatisfy({ known2[$0] }), unknown.count == 1,
                      elementwiseBijections.contains(node.op), let rule = InverseRule.table[node.op],
                      rule.positions(node, g).contains(unknown[0]) else { continue }
                known2[node.operands[unknown[0]]] = true
                steps.append(InversionStep(node: i, operand: unknown[0]))
                changed = true
            }
        }
        let stuckNode = g.nodes[stuck]
        guard known2[u] else {
            let own = values.first { v in
                guard let per = alignment(v), let d = dependencies.of(v) else { return false }
                return stuckNode.operands.contains(v) && d.indices.contains { d[$0].contains($0 / per) } && !d.indices.allSatisfy { d[$0].members == [$0 / per] }
            }
            // Only a conditioner that reads its own position is worth reporting; anything else
            // is not autoregressive at all and the plain walk's diagnosis says more.
            guard own != nil else { return .failure(nil) }
            let shapes = stuckNode.operands.map { g.type(of: $0).description }.joined(separator: ", ")
            return .failure(FlowError("\(stuckNode.op)(\(shapes)) is not invertible as an autoregressive step: the conditioner of position i reads position i itself (a conditioner must read only the positions it does not transform)", at: stuckNode.location))
        }
        // order check: position j → i whenever a conditioner value of position i reads u_j
        let n = uType.elementsPerSample
        var edges = [Set<Int>](repeating: [], count: n)
        for step in steps {
            for v in g.nodes[step.node].operands where conditioner.contains(v) {
                guard let per = alignment(v), let d = dependencies.of(v) else { continue }
                for e in d.indices { for j in d[e].members { edges[e / per].insert(j) } }
            }
        }
        guard let depth = longestChain(edges) else {
            return .failure(FlowError("\(stuckNode.op) is not invertible as an autoregressive step: the positions depend on each other in a cycle", at: stuckNode.location))
        }
        return .success(CausalBlock(source: u, output: stuckNode.results[0], values: values, steps: steps, sweeps: depth + 1))
    }

    enum Attempt {
        case success(CausalBlock)
        case failure(FlowError?)
    }

    /// The longest path in the graph i ← j (j ∈ edges[i]), or nil if it has a cycle.
    static func longestChain(_ edges: [Set<Int>]) -> Int? {
        var depth = [Int?](repeating: nil, count: edges.count)
        var visiting = Set<Int>()
        func visit(_ i: Int) -> Int? {
            if let d = depth[i] { return d }
            guard visiting.insert(i).inserted else { return nil }
            var best = 0
            for j in edges[i] {
                guard let d = visit(j) else { return nil }
                best = max(best, d + 1)
            }
            visiting.remove(i)
            depth[i] = best
            return best
        }
        var longest = 0
        for i in edges.indices {
            guard let d = visit(i) else { return nil }
            longest = max(longest, d)
        }
        return longest
    }
}
