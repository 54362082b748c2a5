import FlowIR

/// Forward-mode differentiation: appends to a graph the tangent of its outputs along a tangent
/// of one input (a Jacobian-vector product J·t), op by op with the rules below (the derivative
/// of each op's definition in IR/OPS.md). Values that do not depend on the differentiated input
/// have zero tangent and cost nothing.
public enum JVPPass {
    /// Returns the tangents of `outputs` (in `g`) given the tangent value `tangent` of `input`.
    public static func tangents(_ g: inout Graph, of outputs: [ValueID], input: ValueID, tangent: ValueID,
                                nodes: Range<Int>? = nil) throws -> [ValueID] {
        var t: [ValueID: ValueID] = [input: tangent]
        let range = nodes ?? 0..<g.nodes.count
        for index in range {
            let node = g.nodes[index]
            let ts = node.operands.map { t[$0] }
            guard ts.contains(where: { $0 != nil }) else { continue }
            let results = try rule(&g, node, ts)
            for (r, v) in zip(node.results, results) { t[r] = v }
        }
        return try outputs.map { v in
            if let tv = t[v] { return tv }
            return try g.apply("broadcast_like", [try g.constant(0, at: .synthetic("jvp")), v], at: .synthetic("jvp"))
        }
    }

    /// Elementwise ops of one operand: their Jacobian is diagonal, so the tangent rule applied to a
    /// cotangent is the cotangent rule (used by `VJPPass`).
    static let unaryElementwise: Set<String> = [
        "neg", "exp", "expm1", "log", "log1p", "sqrt", "square", "tanh", "atanh", "sigmoid", "logit", "softplus", "relu",
        "abs", "leaky_relu", "silu", "gelu", "erf", "sin", "cos",
    ]

    /// Tangents of a node's results from its operands' tangents (nil: zero).
    static func rule(_ g: inout Graph, _ n: Node, _ t: [ValueID?]) throws -> [ValueID] {
        let at = n.location
        func op(_ name: String, _ operands: [ValueID], _ attributes: [String: Attribute] = [:]) throws -> ValueID {
            try g.apply(name, operands, attributes, at: at)
        }
        func c(_ v: Double) throws -> ValueID { try g.constant(v, at: at) }
        let (a, y) = (n.operands.first ?? -1, n.results[0])
        /// the only tangent of a unary op, or of the first operand
        let ta = t.first.flatMap { $0 }
        func scaled(_ factor: ValueID) throws -> [ValueID] { [try op("mul", [ta!, factor])] }
        /// the same op applied to the tangent (linear ops)
        func same(_ operands: [ValueID]) throws -> [ValueID] { try g.append(n.op, operands, n.attributes, at: at) }
        func zeroIfNil(_ v: ValueID?, like: ValueID) throws -> ValueID {
            try v ?? op("broadcast_like", [try c(0), like])
        }
        switch n.op {
        case "add", "sub":
            let (x, z) = (n.operands[0], n.operands[1])
            if let t0 = t[0], let t1 = t[1] { return [try op(n.op, [t0, t1])] }
            if let t0 = t[0] { return [try op("broadcast_like", [t0, z])] }
            let t1 = try op("broadcast_like", [t[1]!, x])
            return n.op == "add" ? [t1] : [try op("neg", [t1])]
        case "mul":                                   // d(ab) = da·b + a·db
            let terms = try [t[0].map { try op("mul", [$0, n.operands[1]]) }, t[1].map { try op("mul", [n.operands[0], $0]) }].compactMap { $0 }
            return [terms.count == 2 ? try op("add", terms) : terms[0]]
        case "div":                                   // d(a/b) = (da − y·db)/b
            let numerator: ValueID
            switch (t[0], t[1]) {
            case (let t0?, let t1?): numerator = try op("sub", [t0, try op("mul", [y, t1])])
            case (let t0?, nil): numerator = t0
            default: numerator = try op("neg", [try op("mul", [y, t[1]!])])
            }
            return [try op("div", [numerator, n.operands[1]])]
        case "neg": return [try op("neg", [ta!])]
        case "guided": return [ta!]
        case "exp": return try scaled(y)
        case "expm1": return try scaled(try op("add", [y, try c(1)]))
        case "log": return [try op("div", [ta!, a])]
        case "log1p": return [try op("div", [ta!, try op("add", [a, try c(1)])])]
        case "sqrt": return [try op("div", [ta!, try op("mul", [y, try c(2)])])]
        case "square": return try scaled(try op("mul", [a, try c(2)]))
        case "tanh": return try scaled(try op("sub", [try c(1), try op("square", [y])]))
        case "atanh": return [try op("div", [ta!, try op("sub", [try c(1), try op("square", [a])])])]
        case "sigmoid": return try scaled(try op("mul", [y, try op("sub", [try c(1), y])]))
        case "logit": return [try op("div", [ta!, try op("mul", [a, try op("sub", [try c(1), a])])])]
        case "softplus": return try scaled(try op("sigmoid", [a]))
        case "relu": return try scaled(try op("gt", [a, try c(0)]))
        case "abs": return try scaled(try op("sub", [try op("mul", [try op("ge", [a, try c(0)]), try c(2)]), try c(1)]))
        case "leaky_relu":
            guard case .float(let s)? = n.attributes["slope"] else { fatalError("slope verified") }
            return try scaled(try op("select", [try op("ge", [a, try c(0)]), try c(1), try c(s)]))
        case "silu":                                  // σ(a)·(1 + a·(1 − σ(a)))
            let s = try op("sigmoid", [a])
            return try scaled(try op("mul", [s, try op("add", [try c(1), try op("mul", [a, try op("sub", [try c(1), s])])])]))
        case "gelu":                                  // Φ(a) + a·φ(a)
            let phi = try op("mul", [try op("exp", [try op("mul", [try op("square", [a]), try c(-0.5)])]), try c(0.3989422804014327)])
            let cdf = try op("mul", [try op("add", [try op("erf", [try op("mul", [a, try c(0.7071067811865476)])]), try c(1)]), try c(0.5)])
            return try scaled(try op("add", [cdf, try op("mul", [a, phi])]))
        case "erf": return try scaled(try op("mul", [try op("exp", [try op("neg", [try op("square", [a])])]), try c(1.1283791670955126)]))
        case "sin": return try scaled(try op("cos", [a]))
        case "cos": return try scaled(try op("neg", [try op("sin", [a])]))
        case "max", "min":                            // the tangent of the operand that wins
            let first = try op(n.op == "max" ? "ge" : "le", [n.operands[0], n.operands[1]])
            return [try op("select", [first, try zeroIfNil(t[0], like: y), try zeroIfNil(t[1], like: y)])]
        case "select":
            return [try op("select", [n.operands[0], try zeroIfNil(t[1], like: y), try zeroIfNil(t[2], like: y)])]
        case "lt", "le", "gt", "ge", "eq", "ne":
            return [try op("broadcast_like", [try c(0), y])]
        case "linear":
            guard t.count < 2 || (t[1] == nil && (t.count < 3 || t[2] == nil)) else {
                throw FlowError("JVP of linear through its weight is not supported", at: at)
            }
            return [try op("linear", [ta!, n.operands[1]])]
        case "matmul":
            let terms = try [t[0].map { try op("matmul", [$0, n.operands[1]]) }, t[1].map { try op("matmul", [n.operands[0], $0]) }].compactMap { $0 }
            return [terms.count == 2 ? try op("add", terms) : terms[0]]
        case "conv2d":
            guard t.count < 2 || t[1] == nil else { throw FlowError("JVP of conv2d through its kernel is not supported", at: at) }
            return [try g.apply("conv2d", [ta!, n.operands[1]], n.attributes, at: at)]   // no bias in a tangent
        case "reshape", "transpose", "slice", "gather", "sum", "mean", "cumsum", "split":
            return try same([ta!])
        case "pad":
            var attributes = n.attributes
            attributes["value"] = .float(0)
            return try g.append("pad", [ta!], attributes, at: at)
        case "concat":
            return try same(try zip(n.operands, t).map { try zeroIfNil($1, like: $0) })
        case "broadcast_like":
            return [try op("broadcast_like", [try zeroIfNil(t[0], like: n.operands[0]), y])]
        case "softmax":                               // y·(t − Σ y·t)
            let product = try op("mul", [y, ta!])
            guard case .int(let axis)? = n.attributes["axis"] else { fatalError("softmax axis verified") }
            let total = try op("sum", [product], ["axes": .ints([axis]), "keepdims": .int(1)])
            return [try op("mul", [y, try op("sub", [ta!, total])])]
        case "rq_spline":
            guard t.dropFirst().allSatisfy({ $0 == nil }) else {
                throw FlowError("JVP of rq_spline through its knots is not supported", at: at, kind: .noForwardModeRule)
            }
            return try scaled(try op("exp", [try op("rq_spline_logderiv", n.operands)]))
        default:
            throw FlowError("no JVP rule for '\(n.op)' (forward-mode differentiation of this op is not supported)", at: at, kind: .noForwardModeRule)
        }
    }
}
