import FlowIR
import FlowInterpreter

/// Evaluates, at compile time, values that do not depend on the input (weights, masks and
/// what is computed from them only), by running their ancestors in the interpreter in f64.
public struct ConstantEvaluator {
    let graph: Graph
    let weights: WeightStore?
    private var cache: [ValueID: Tensor] = [:]
    private let producers: [Int?]

    public init(graph: Graph, weights: WeightStore?) {
        self.graph = graph
        self.weights = weights
        self.producers = graph.producers()
    }

    public mutating func value(_ v: ValueID) throws -> Tensor {
        if let t = cache[v] { return t }
        // Collect the ancestors of v in graph order.
        var needed = Set<Int>()
        var stack = [v]
        while let top = stack.popLast() {
            guard let p = producers[top] else {
                throw FlowError("internal: constant evaluation reached a graph input", at: .synthetic("constant evaluation"))
            }
            if needed.insert(p).inserted { stack += graph.nodes[p].operands }
        }
        var sub = Graph()
        var map: [ValueID: ValueID] = [:]
        for i in needed.sorted() {
            let node = graph.nodes[i]
            let results = try sub.append(node.op, node.operands.map { map[$0]! }, node.attributes, at: node.location)
            for (r, s) in zip(node.results, results) { map[r] = s }
        }
        sub.outputs = [map[v]!]
        let t = try Interpreter(graph: sub, weights: weights, precision: .f64).run([])[0]
        cache[v] = t
        return t
    }
}
