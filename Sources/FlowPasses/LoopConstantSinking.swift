import FlowIR

/// Moves the compile-time constants a `fixed_point` loop captures into its body: a captured
/// operand that does not depend on the graph's inputs (a weight, or something computed from
/// weights alone) is recomputed inside the body instead of passed in as an extra input. The
/// body then sees its weights as constants, so simplification folds them and code generation
/// packs them for the GEMM microkernel, as it does for the same weights outside the loop.
///
///     v = weight("w");  u' = fixed_point(u, x, v; body: (u, x, w) -> f(u, x, w))
///  →  u' = fixed_point(u, x; body: (u, x) -> f(u, x, weight("w")))
public enum LoopConstantSinking {
    public static func run(_ input: Graph) throws -> Graph {
        var g = input
        let dependsOnInput = g.valuesDependingOnInputs()
        let producers = g.producers()
        var bodyUses: [Int: Int] = [:]
        for node in g.nodes where node.op == "fixed_point" {
            if case .int(let b)? = node.attributes["body"] { bodyUses[b, default: 0] += 1 }
        }
        for index in g.nodes.indices where g.nodes[index].op == "fixed_point" {
            let node = g.nodes[index]
            guard case .int(let bodyIndex)? = node.attributes["body"] else { continue }
            let sinkable = node.operands.indices.dropFirst().filter {
                !dependsOnInput.contains(node.operands[$0]) && isPlainConstant(node.operands[$0], in: g, producers: producers)
            }
            if sinkable.isEmpty { continue }
            let body = g.bodies[bodyIndex]
            var sunk = Graph()
            var arguments: [ValueID] = []
            var operands: [ValueID] = []
            for (i, operand) in node.operands.enumerated() where !sinkable.contains(i) {
                arguments.append(sunk.addInput(name: body.inputNames[i], type: body.type(of: body.inputs[i])))
                operands.append(operand)
            }
            var cloned: [ValueID: ValueID] = [:]
            for i in sinkable {
                arguments.insert(try clone(node.operands[i], from: g, producers: producers, into: &sunk, cloned: &cloned), at: i)
            }
            sunk.outputs = try sunk.inline(body, arguments: arguments)
            try Verifier.verify(sunk)
            var target = bodyIndex
            if bodyUses[bodyIndex, default: 0] > 1 {   // another loop still runs the original body
                target = g.bodies.count
                g.bodies.append(sunk)
            } else {
                g.bodies[bodyIndex] = sunk
            }
            g.nodes[index].operands = operands
            g.nodes[index].attributes["body"] = .int(target)
        }
        try Verifier.verify(g)
        return g
    }

    /// Whether v is computed by ordinary ops only (no region op) down to its sources.
    static func isPlainConstant(_ v: ValueID, in g: Graph, producers: [Int?]) -> Bool {
        var stack = [v], seen = Set<ValueID>()
        while let top = stack.popLast() {
            guard seen.insert(top).inserted else { continue }
            guard let p = producers[top] else { return false }   // an input
            if g.nodes[p].op == "fixed_point" { return false }
            stack += g.nodes[p].operands
        }
        return true
    }

    /// Copies the nodes computing `v` in `g` into `target` (once each); returns v's copy.
    static func clone(_ v: ValueID, from g: Graph, producers: [Int?], into target: inout Graph, cloned: inout [ValueID: ValueID]) throws -> ValueID {
        if let c = cloned[v] { return c }
        let node = g.nodes[producers[v]!]
        let operands = try node.operands.map { try clone($0, from: g, producers: producers, into: &target, cloned: &cloned) }
        let results = try target.append(node.op, operands, node.attributes, at: node.location)
        for (r, c) in zip(node.results, results) { cloned[r] = c }
        return cloned[v]!
    }
}
