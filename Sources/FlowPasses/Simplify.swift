import FlowIR
import FlowInterpreter

/// Simplification after derivation: constants captured by loops moved into their bodies
/// (`LoopConstantSinking`), algebraic identities (`SimplifyRules`), common
/// subexpression elimination, folding of small constant subgraphs (log-determinants and inverses
/// of constant matrices become literals, evaluated in f64), work that is the same for every
/// sample done once (`BatchInvariantHoisting`), single-head attention's key and output products
/// folded into its query and value products (`AttentionWeightFolding`), tokens no output reads
/// left uncomputed (`RowPrefixNarrowing`) and dead code elimination, repeated until nothing
/// changes.
public enum Simplify {
    /// Constants with at most this many elements are folded into `const` literals.
    public static let foldLimit = 64

    public static func run(_ input: Graph, weights: WeightStore? = nil) throws -> Graph {
        var g = try LoopConstantSinking.run(input)
        for _ in 0..<8 {
            let before = g.nodes.count
            g = try rewrite(g, weights: weights)
            g = try BatchInvariantHoisting.run(g)
            g = try AttentionWeightFolding.run(g)
            g = try RowPrefixNarrowing.run(g)
            g = eliminateDeadCode(g)
            if g.nodes.count == before { break }
        }
        try Verifier.verify(g)
        return g
    }

    /// One pass over the nodes: rewrite rules, constant folding, CSE; builds a fresh graph.
    static func rewrite(_ g: Graph, weights: WeightStore?) throws -> Graph {
        var context = SimplifyRules.Context(graph: Graph())
        var map: [ValueID: ValueID] = [:]
        for (v, name) in zip(g.inputs, g.inputNames) { map[v] = context.graph.addInput(name: name, type: g.type(of: v)) }
        var dependsOnInput = Set(g.inputs)
        var seen: [ExpressionKey: [ValueID]] = [:]
        var evaluator = ConstantEvaluator(graph: g, weights: weights)
        for node in g.nodes {
            var mapped = node
            mapped.operands = node.operands.map { map[$0]! }
            let isConstant = !node.operands.contains(where: dependsOnInput.contains)
            if !isConstant { for r in node.results { dependsOnInput.insert(r) } }
            // algebraic identities
            context.resultType = g.type(of: node.results[0])
            if node.results.count == 1, let replacement = SimplifyRules.apply(mapped, in: context) {
                map[node.results[0]] = replacement
                continue
            }
            // fold small constants that are not already literals or named weights
            let resultType = g.type(of: node.results[0])
            if isConstant, node.results.count == 1, !["const", "weight"].contains(node.op), !resultType.batched,
               resultType.elementsPerSample <= foldLimit {
                let value = try evaluator.value(node.results[0])
                let literal = try context.graph.append("const", [], ["values": .floats(value.values), "shape": .shape(batched: false, resultType.dims)], at: node.location)
                map[node.results[0]] = literal[0]
                context.producers[literal[0]] = context.graph.nodes.last
                continue
            }
            // common subexpressions
            let key = ExpressionKey(op: node.op, operands: mapped.operands, attributes: node.attributes)
            if let previous = seen[key] {
                for (r, p) in zip(node.results, previous) { map[r] = p }
                continue
            }
            // operands of the same types (rewrites keep types): the node's result types hold
            let sameTypes = zip(mapped.operands, node.operands).allSatisfy { context.graph.type(of: $0) == g.type(of: $1) }
            let results = sameTypes
                ? context.graph.appendCopy(of: node, operands: mapped.operands, resultTypes: node.results.map { g.type(of: $0) })
                : try context.graph.append(node.op, mapped.operands, node.attributes, at: node.location)
            for (r, p) in zip(node.results, results) { map[r] = p; context.producers[p] = context.graph.nodes.last }
            seen[key] = results
        }
        context.graph.outputs = g.outputs.map { map[$0]! }
        context.graph.bodies = try g.bodies.map { try run($0, weights: weights) }
        return context.graph
    }

    /// Drops nodes none of whose results reach an output.
    public static func eliminateDeadCode(_ g: Graph) -> Graph {
        var live = Set(g.outputs)
        var keep = [Bool](repeating: false, count: g.nodes.count)
        for (i, node) in g.nodes.enumerated().reversed() where node.results.contains(where: live.contains) {
            keep[i] = true
            live.formUnion(node.operands)
        }
        var out = g
        out.nodes = g.nodes.enumerated().filter { keep[$0.offset] }.map(\.element)
        return out
    }
}
