import FlowIR
import Foundation

/// What an op on the path input → output contributes to ln |det J| when it is undone in one
/// operand `a` (all other operands known): ln |∂y/∂a| per element of y, or a per-sample term
/// for linear maps.
enum LogDerivative {
    /// Volume preserving (shape ops, additions): contributes 0.
    case zero
    /// ln |∂y/∂a| per element; broadcastable to the result's shape.
    case elementwise(ValueID)
    /// Already summed over one sample: shape [] or [B].
    case perSample(ValueID)
}

/// Per-op rules of the inverse analysis: in which operand positions an op can be undone and
/// its log-derivative there. Ops not listed are not invertible (relu, abs, reductions, ...).
/// Each formula is the derivative of the op's forward definition (IR/OPS.md).
struct InverseRule: Sendable {
    /// Operand positions in which the op is invertible, given every other operand is known.
    var positions: @Sendable (Node, Graph) -> [Int]
    /// The log-derivative terms, built as new nodes of `graph` from forward values.
    var logDerivative: @Sendable (inout Graph, Node, Int) throws -> LogDerivative
    /// Why the op cannot be inverted in other positions (for error messages).
    var note: String = ""

    /// A unary elementwise bijection with ln |f'(a)| given as graph code.
    static func unary(_ ld: @escaping @Sendable (inout Graph, ValueID, ValueID, SourceLocation) throws -> ValueID?) -> InverseRule {
        InverseRule(positions: { _, _ in [0] }, logDerivative: { g, node, _ in
            guard let t = try ld(&g, node.operands[0], node.results[0], node.location) else { return .zero }
            return .elementwise(t)
        })
    }

    static let volumePreserving = InverseRule(positions: { node, _ in Array(node.operands.indices) }, logDerivative: { _, _, _ in .zero })

    /// True when `a` is not broadcast by the op (every element of a reaches its own element of y).
    static func unbroadcast(_ node: Node, _ g: Graph, _ position: Int) -> Bool {
        g.type(of: node.operands[position]) == g.type(of: node.results[0])
    }

    static let table: [String: InverseRule] = {
        var t: [String: InverseRule] = [:]
        let elementwiseBinaryPositions: @Sendable (Node, Graph) -> [Int] = { node, g in [0, 1].filter { unbroadcast(node, g, $0) } }
        t["add"] = InverseRule(positions: elementwiseBinaryPositions, logDerivative: { _, _, _ in .zero })
        t["sub"] = t["add"]
        // y = a·c: ln|c|
        t["mul"] = InverseRule(positions: elementwiseBinaryPositions, logDerivative: { g, node, i in
            let c = node.operands[1 - i]
            return .elementwise(try g.apply("log", [try g.apply("abs", [c], at: node.location)], at: node.location))
        })
        // y = a/c: -ln|c|;  y = c/a: ln|c| - 2 ln|a|
        t["div"] = InverseRule(positions: elementwiseBinaryPositions, logDerivative: { g, node, i in
            let at = node.location
            let logC = try g.apply("log", [try g.apply("abs", [node.operands[1 - i]], at: at)], at: at)
            if i == 0 { return .elementwise(try g.apply("neg", [logC], at: at)) }
            let logA = try g.apply("log", [try g.apply("abs", [node.operands[1]], at: at)], at: at)
            return .elementwise(try g.apply("sub", [logC, try g.apply("mul", [logA, try g.constant(2, at: at)], at: at)], at: at))
        })
        t["neg"] = unary { _, _, _, _ in nil }
        t["exp"] = unary { _, a, _, _ in a }                                              // ln e^a = a
        t["expm1"] = unary { _, a, _, _ in a }
        t["log"] = unary { g, a, _, at in try g.apply("neg", [try g.apply("log", [a], at: at)], at: at) }       // -ln a
        t["log1p"] = unary { g, a, _, at in try g.apply("neg", [try g.apply("log1p", [a], at: at)], at: at) }
        // σ'(a) = σ(a) σ(-a): ln σ' = -softplus(-a) - softplus(a)
        t["sigmoid"] = unary { g, a, _, at in
            let left = try g.apply("softplus", [try g.apply("neg", [a], at: at)], at: at)
            return try g.apply("neg", [try g.apply("add", [left, try g.apply("softplus", [a], at: at)], at: at)], at: at)
        }
        // logit'(a) = 1/(a(1-a))
        t["logit"] = unary { g, a, _, at in
            let l = try g.apply("add", [try g.apply("log", [a], at: at), try g.apply("log1p", [try g.apply("neg", [a], at: at)], at: at)], at: at)
            return try g.apply("neg", [l], at: at)
        }
        // tanh'(a) = 1 - y²
        t["tanh"] = unary { g, _, y, at in try g.apply("log1p", [try g.apply("neg", [try g.apply("square", [y], at: at)], at: at)], at: at) }
        // atanh'(a) = 1/(1 - a²)
        t["atanh"] = unary { g, a, _, at in
            try g.apply("neg", [try g.apply("log1p", [try g.apply("neg", [try g.apply("square", [a], at: at)], at: at)], at: at)], at: at)
        }
        // softplus'(a) = σ(a): ln σ(a) = -softplus(-a)
        t["softplus"] = unary { g, a, _, at in
            try g.apply("neg", [try g.apply("softplus", [try g.apply("neg", [a], at: at)], at: at)], at: at)
        }
        // slope for a < 0, else 1
        t["leaky_relu"] = InverseRule(positions: { node, _ in
            guard case .float(let s)? = node.attributes["slope"], s > 0 else { return [] }
            return [0]
        }, logDerivative: { g, node, _ in
            guard case .float(let s)? = node.attributes["slope"] else { return .zero }
            let at = node.location
            let negative = try g.apply("lt", [node.operands[0], try g.constant(0, at: at)], at: at)
            return .elementwise(try g.apply("mul", [negative, try g.constant(log(s), at: at)], at: at))
        }, note: "leaky_relu needs slope > 0 to be invertible")
        t["rq_spline"] = InverseRule(positions: { _, _ in [0] }, logDerivative: { g, node, _ in
            .elementwise(try g.apply("rq_spline_logderiv", node.operands, at: node.location))
        })
        for op in ["reshape", "transpose", "concat", "split", "pad"] {
            t[op] = InverseRule(positions: { node, _ in Array(node.operands.indices) }, logDerivative: { _, _, _ in .zero })
        }
        // x·Wᵀ + b with W square and known: ln |det W| per row.
        t["linear"] = InverseRule(positions: { node, g in
            let w = g.type(of: node.operands[1])
            return w.dims.count == 2 && w.dims[0] == w.dims[1] ? [0] : []
        }, logDerivative: { g, node, _ in
            let rows = g.type(of: node.results[0]).elementsPerSample / g.type(of: node.operands[1]).dims[0]
            return .perSample(try scaledLogAbsDet(&g, node.operands[1], rows, node.location))
        }, note: "linear is invertible only through a square weight matrix")
        // 1x1 convolution by a known [C, C, 1, 1] kernel: H·W·ln |det W|.
        t["conv2d"] = InverseRule(positions: { node, g in
            let w = g.type(of: node.operands[1]).dims
            let unit = node.attributes["stride"] == .int(1) && node.attributes["padding"] == .int(0)
            return unit && w.count == 4 && w[0] == w[1] && w[2] == 1 && w[3] == 1 ? [0] : []
        }, logDerivative: { g, node, _ in
            let c = g.type(of: node.operands[1]).dims[0]
            let matrix = try g.apply("reshape", [node.operands[1]], ["shape": .shape(batched: false, [c, c])], at: node.location)
            let pixels = g.type(of: node.results[0]).elementsPerSample / c
            return .perSample(try scaledLogAbsDet(&g, matrix, pixels, node.location))
        }, note: "conv2d is invertible only as a 1x1 convolution with a square kernel, stride 1, no padding")
        return t
    }()

    /// count · ln |det W|
    static func scaledLogAbsDet(_ g: inout Graph, _ w: ValueID, _ count: Int, _ at: SourceLocation) throws -> ValueID {
        let l = try g.apply("logabsdet", [w], at: at)
        return count == 1 ? l : try g.apply("mul", [l, try g.constant(Double(count), at: at)], at: at)
    }
}
