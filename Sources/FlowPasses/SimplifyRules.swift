import FlowIR

/// Algebraic identities, one rule per line: the pattern, the replacement, and the algebra.
/// A rule fires only when the replacement has exactly the node's type (no broadcast lost).
enum SimplifyRules {
    typealias Rule = (name: String, match: @Sendable (Node, Context) -> ValueID?)

    /// The graph being built and the node producing each of its values.
    struct Context {
        var graph: Graph
        var producers: [ValueID: Node] = [:]
        /// Type of the result of the node being rewritten (whose result id is not in `graph` yet).
        var resultType = TensorType(.f32, batched: false, [])
        func type(of v: ValueID) -> TensorType { graph.type(of: v) }
    }

    static let rules: [Rule] = [
        ("exp∘log", { n, g in inner(n, g, "exp", "log") }),          // exp(ln x) = x
        ("log∘exp", { n, g in inner(n, g, "log", "exp") }),          // ln(eˣ) = x
        ("neg∘neg", { n, g in inner(n, g, "neg", "neg") }),          // -(-x) = x
        ("sigmoid∘logit", { n, g in inner(n, g, "sigmoid", "logit") }), // σ(logit x) = x
        ("logit∘sigmoid", { n, g in inner(n, g, "logit", "sigmoid") }), // logit(σ x) = x
        ("tanh∘atanh", { n, g in inner(n, g, "tanh", "atanh") }),    // tanh(artanh x) = x
        ("expm1∘log1p", { n, g in inner(n, g, "expm1", "log1p") }),  // e^(ln(1+x)) - 1 = x
        ("log1p∘expm1", { n, g in inner(n, g, "log1p", "expm1") }),  // ln(1 + eˣ - 1) = x
        ("|positive|", { n, g in                                      // |eˣ| = eˣ, |σ(x)| = σ(x), |softplus(x)| = softplus(x)
            guard n.op == "abs", let p = producer(n.operands[0], g), ["exp", "sigmoid", "softplus"].contains(p.op) else { return nil }
            return same(n.operands[0], n, g)
        }),
        ("x·1", { n, g in n.op == "mul" ? identityOperand(n, g, unit: 1) : nil }),   // x·1 = 1·x = x
        ("x+0", { n, g in n.op == "add" ? identityOperand(n, g, unit: 0) : nil }),   // x + 0 = 0 + x = x
        ("x-0", { n, g in n.op == "sub" && isScalar(n.operands[1], g, 0) ? same(n.operands[0], n, g) : nil }), // x - 0 = x
        ("x/1", { n, g in n.op == "div" && isScalar(n.operands[1], g, 1) ? same(n.operands[0], n, g) : nil }), // x / 1 = x
        ("transpose∘transpose", transposeOfTranspose),               // (xᵖ)^q = x when q∘p = id
        ("guided", { n, g in n.op == "guided" ? same(n.operands[0], n, g) : nil }), // a guidance marker is x outside guided sampling
        ("reshape to own shape", { n, g in n.op == "reshape" ? same(n.operands[0], n, g) : nil }), // reshape(x, shape(x)) = x
        ("reshape∘reshape", { n, g in                                 // reshape(reshape(x)) = x when shapes agree
            guard n.op == "reshape", let p = producer(n.operands[0], g), p.op == "reshape" else { return nil }
            return same(p.operands[0], n, g)
        }),
    ]

    /// The first rule that fires, as the value that replaces the node's result.
    static func apply(_ node: Node, in g: Context) -> ValueID? {
        for rule in rules { if let v = rule.match(node, g) { return v } }
        return nil
    }

    /// The names of the rules that would fire on a node (for tests).
    static func firing(_ node: Node, in g: Context) -> [String] { rules.filter { $0.match(node, g) != nil }.map(\.name) }

    static func producer(_ v: ValueID, _ g: Context) -> Node? { g.producers[v] }

    /// outer(inner(x)) → x
    static func inner(_ n: Node, _ g: Context, _ outer: String, _ innerOp: String) -> ValueID? {
        guard n.op == outer, let p = producer(n.operands[0], g), p.op == innerOp else { return nil }
        return same(p.operands[0], n, g)
    }

    static func same(_ v: ValueID, _ n: Node, _ g: Context) -> ValueID? {
        g.type(of: v) == g.resultType ? v : nil
    }

    /// A `const` holding a single value equal to `value`.
    static func isScalar(_ v: ValueID, _ g: Context, _ value: Double) -> Bool {
        guard let p = producer(v, g), p.op == "const", case .floats(let values)? = p.attributes["values"] else { return false }
        return values.allSatisfy { $0 == value }
    }

    static func identityOperand(_ n: Node, _ g: Context, unit: Double) -> ValueID? {
        if isScalar(n.operands[1], g, unit), let v = same(n.operands[0], n, g) { return v }
        if isScalar(n.operands[0], g, unit), let v = same(n.operands[1], n, g) { return v }
        return nil
    }

    static func transposeOfTranspose(_ n: Node, _ g: Context) -> ValueID? {
        guard n.op == "transpose", let p = producer(n.operands[0], g), p.op == "transpose",
              case .ints(let outer)? = n.attributes["perm"], case .ints(let innerPerm)? = p.attributes["perm"] else { return nil }
        let composed = outer.map { innerPerm[$0] }
        return composed == Array(0..<composed.count) ? same(p.operands[0], n, g) : nil
    }
}
