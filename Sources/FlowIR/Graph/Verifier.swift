/// Checks a graph independently of how it was built: SSA form (each value defined once, before
/// use), every op known, attributes valid, and every recorded type equal to what shape inference
/// derives from the operands. Passes run it on their output.
public enum Verifier {
    public static func verify(_ graph: Graph) throws {
        for body in graph.bodies { try verify(body) }
        var defined = [Bool](repeating: false, count: graph.valueCount)
        let dtype = graph.inputs.first.map { graph.type(of: $0).dtype } ?? .f32
        for v in graph.inputs {
            guard v < graph.valueCount, !defined[v] else {
                throw FlowError("graph input \(v) is invalid or declared twice", at: .synthetic("verifier"))
            }
            defined[v] = true
        }
        for node in graph.nodes {
            for (i, v) in node.operands.enumerated() {
                guard v >= 0, v < graph.valueCount, defined[v] else {
                    throw FlowError("\(node.op): operand \(i) is used before it is defined", at: node.location)
                }
            }
            let (types, attributes) = try OpCatalog.infer(op: node.op, operands: node.operands.map(graph.type(of:)),
                                                          attributes: node.attributes, dtype: dtype, at: node.location)
            guard attributes == node.attributes || node.attributes.allSatisfy({ attributes[$0.key] == $0.value }) else {
                throw FlowError("\(node.op): attributes changed under validation", at: node.location)
            }
            guard types.count == node.results.count else {
                throw FlowError("\(node.op) produces \(types.count) result(s) but the node lists \(node.results.count)", at: node.location)
            }
            if node.op == "fixed_point" {
                guard case .int(let index)? = node.attributes["body"], index >= 0, index < graph.bodies.count else {
                    throw FlowError("fixed_point: body=\(node.attributes["body"].map { "\($0)" } ?? "?") does not name one of the \(graph.bodies.count) bodies", at: node.location)
                }
                let body = graph.bodies[index]
                let expected = body.inputs.map(body.type(of:))
                let given = node.operands.map(graph.type(of:))
                guard expected == given, body.outputs.count == 1, body.type(of: body.outputs[0]) == given[0] else {
                    throw FlowError("fixed_point: operands \(given) do not match body \(index)'s inputs \(expected) and output", at: node.location)
                }
            }
            for (r, t) in zip(node.results, types) {
                guard r >= 0, r < graph.valueCount, !defined[r] else {
                    throw FlowError("\(node.op): result value \(r) is defined twice", at: node.location)
                }
                guard graph.type(of: r) == t else {
                    throw FlowError("\(node.op): result recorded as \(graph.type(of: r)) but its operands give \(t)", at: node.location)
                }
                defined[r] = true
            }
        }
        guard !graph.outputs.isEmpty else { throw FlowError("graph has no outputs", at: .synthetic("verifier")) }
        for v in graph.outputs where !(v >= 0 && v < graph.valueCount && defined[v]) {
            throw FlowError("graph output \(v) is never defined", at: .synthetic("verifier"))
        }
    }
}
