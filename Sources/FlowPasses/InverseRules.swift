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

/// Per-op rules for undoing an op in one operand: where it is invertible, how to compute the
/// operand back from the result, and its log-derivative there. Ops not listed are not invertible
/// (relu, abs, reductions, ...). The structural ops (slice, gather, concat, split) are handled
/// by the passes themselves. Every rule builds graph code over a node whose operand and result
/// ids live in the graph being built; each formula is the inverse or the log-derivative of the
/// op's forward definition (IR/OPS.md).
struct InverseRule: Sendable {
    typealias Build = @Sendable (inout Graph, Node, Int) throws -> ValueID

    /// Operand positions in which the op is invertible, given every other operand is known.
    var positions: @Sendable (Node, Graph) -> [Int]
    /// The operand at the given position, from the result and the other operands.
    var invert: Build
    /// The log-derivative terms, built as new nodes.
    var logDerivative: @Sendable (inout Graph, Node, Int) throws -> LogDerivative
    /// Why the op cannot be inverted in other positions (for error messages).
    var note: String = ""

    /// A unary elementwise bijection: a = f⁻¹(y), with ln |f'(a)| (nil: 0).
    static func unary(inverse: @escaping @Sendable (inout Graph, ValueID, SourceLocation) throws -> ValueID,
                      logDerivative: @escaping @Sendable (inout Graph, ValueID, ValueID, SourceLocation) throws -> ValueID?) -> InverseRule {
        InverseRule(positions: { _, _ in [0] }, invert: { g, node, _ in
            try inverse(&g, node.results[0], node.location)
        }, logDerivative: { g, node, _ in
            guard let t = try logDerivative(&g, node.operands[0], node.results[0], node.location) else { return .zero }
            return .elementwise(t)
        })
    }

    /// True when operand `position` is not broadcast by the op (each of its elements reaches its own result element).
    static func unbroadcast(_ node: Node, _ g: Graph, _ position: Int) -> Bool {
        g.type(of: node.operands[position]) == g.type(of: node.results[0])
    }

    static let table: [String: InverseRule] = {
        var t: [String: InverseRule] = [:]
        let binaryPositions: @Sendable (Node, Graph) -> [Int] = { node, g in [0, 1].filter { unbroadcast(node, g, $0) } }
        // y = a + c → a = y - c
        t["add"] = InverseRule(positions: binaryPositions, invert: { g, n, i in
            try op(&g, "sub", [n.results[0], n.operands[1 - i]], n.location)
        }, logDerivative: { _, _, _ in .zero })
        // y = a - c → a = y + c;  y = c - a → a = c - y
        t["sub"] = InverseRule(positions: binaryPositions, invert: { g, n, i in
            i == 0 ? try op(&g, "add", [n.results[0], n.operands[1]], n.location) : try op(&g, "sub", [n.operands[0], n.results[0]], n.location)
        }, logDerivative: { _, _, _ in .zero })
        // y = a·c → a = y / c;  ln|∂y/∂a| = ln|c|
        t["mul"] = InverseRule(positions: binaryPositions, invert: { g, n, i in
            try op(&g, "div", [n.results[0], n.operands[1 - i]], n.location)
        }, logDerivative: { g, n, i in
            .elementwise(try op(&g, "log", [try op(&g, "abs", [n.operands[1 - i]], n.location)], n.location))
        })
        // y = a/c → a = y·c, -ln|c|;  y = c/a → a = c/y, ln|c| - 2 ln|a|
        t["div"] = InverseRule(positions: binaryPositions, invert: { g, n, i in
            i == 0 ? try op(&g, "mul", [n.results[0], n.operands[1]], n.location) : try op(&g, "div", [n.operands[0], n.results[0]], n.location)
        }, logDerivative: { g, n, i in
            let at = n.location
            let logC = try op(&g, "log", [try op(&g, "abs", [n.operands[1 - i]], at)], at)
            if i == 0 { return .elementwise(try op(&g, "neg", [logC], at)) }
            let logA = try op(&g, "log", [try op(&g, "abs", [n.operands[1]], at)], at)
            return .elementwise(try op(&g, "sub", [logC, try op(&g, "mul", [logA, try g.constant(2, at: at)], at)], at))
        })
        t["neg"] = unary(inverse: { g, y, at in try op(&g, "neg", [y], at) }, logDerivative: { _, _, _, _ in nil })
        // exp: a = ln y, ln e^a = a
        t["exp"] = unary(inverse: { g, y, at in try op(&g, "log", [y], at) }, logDerivative: { _, a, _, _ in a })
        t["expm1"] = unary(inverse: { g, y, at in try op(&g, "log1p", [y], at) }, logDerivative: { _, a, _, _ in a })
        // log: a = e^y, ln(1/a) = -ln a
        t["log"] = unary(inverse: { g, y, at in try op(&g, "exp", [y], at) },
                         logDerivative: { g, a, _, at in try op(&g, "neg", [try op(&g, "log", [a], at)], at) })
        t["log1p"] = unary(inverse: { g, y, at in try op(&g, "expm1", [y], at) },
                           logDerivative: { g, a, _, at in try op(&g, "neg", [try op(&g, "log1p", [a], at)], at) })
        // σ'(a) = σ(a)σ(-a): ln σ' = -softplus(-a) - softplus(a)
        t["sigmoid"] = unary(inverse: { g, y, at in try op(&g, "logit", [y], at) }, logDerivative: { g, a, _, at in
            let left = try op(&g, "softplus", [try op(&g, "neg", [a], at)], at)
            return try op(&g, "neg", [try op(&g, "add", [left, try op(&g, "softplus", [a], at)], at)], at)
        })
        // logit'(a) = 1/(a(1 - a))
        t["logit"] = unary(inverse: { g, y, at in try op(&g, "sigmoid", [y], at) }, logDerivative: { g, a, _, at in
            let l = try op(&g, "add", [try op(&g, "log", [a], at), try op(&g, "log1p", [try op(&g, "neg", [a], at)], at)], at)
            return try op(&g, "neg", [l], at)
        })
        // tanh'(a) = 1 - tanh²(a)
        t["tanh"] = unary(inverse: { g, y, at in try op(&g, "atanh", [y], at) }, logDerivative: { g, _, y, at in
            try op(&g, "log1p", [try op(&g, "neg", [try op(&g, "square", [y], at)], at)], at)
        })
        // atanh'(a) = 1/(1 - a²)
        t["atanh"] = unary(inverse: { g, y, at in try op(&g, "tanh", [y], at) }, logDerivative: { g, a, _, at in
            try op(&g, "neg", [try op(&g, "log1p", [try op(&g, "neg", [try op(&g, "square", [a], at)], at)], at)], at)
        })
        // softplus⁻¹(y) = y + ln(1 - e^-y) = y + ln(-expm1(-y)); softplus'(a) = σ(a), ln σ(a) = -softplus(-a)
        t["softplus"] = unary(inverse: { g, y, at in
            let inner = try op(&g, "neg", [try op(&g, "expm1", [try op(&g, "neg", [y], at)], at)], at)
            return try op(&g, "add", [y, try op(&g, "log", [inner], at)], at)
        }, logDerivative: { g, a, _, at in
            try op(&g, "neg", [try op(&g, "softplus", [try op(&g, "neg", [a], at)], at)], at)
        })
        // leaky_relu(a, s) with s > 0: a = leaky_relu(y, 1/s); derivative s for a < 0, else 1
        t["leaky_relu"] = InverseRule(positions: { node, _ in
            guard case .float(let s)? = node.attributes["slope"], s > 0 else { return [] }
            return [0]
        }, invert: { g, n, _ in
            guard case .float(let s)? = n.attributes["slope"] else { fatalError("leaky_relu slope validated") }
            return try op(&g, "leaky_relu", [n.results[0]], ["slope": .float(1 / s)], n.location)
        }, logDerivative: { g, n, _ in
            guard case .float(let s)? = n.attributes["slope"] else { return .zero }
            let at = n.location
            let negative = try op(&g, "lt", [n.operands[0], try g.constant(0, at: at)], at)
            return .elementwise(try op(&g, "mul", [negative, try g.constant(log(s), at: at)], at))
        }, note: "leaky_relu needs slope > 0 to be invertible")
        t["rq_spline"] = InverseRule(positions: { _, _ in [0] }, invert: { g, n, _ in
            try op(&g, "rq_spline_inverse", [n.results[0]] + n.operands.dropFirst(), n.location)
        }, logDerivative: { g, n, _ in
            .elementwise(try op(&g, "rq_spline_logderiv", n.operands, n.location))
        })
        t["reshape"] = InverseRule(positions: { _, _ in [0] }, invert: { g, n, _ in
            let a = g.type(of: n.operands[0])
            return try op(&g, "reshape", [n.results[0]], ["shape": .shape(batched: a.batched, a.dims)], n.location)
        }, logDerivative: { _, _, _ in .zero })
        t["transpose"] = InverseRule(positions: { _, _ in [0] }, invert: { g, n, _ in
            guard case .ints(let perm)? = n.attributes["perm"] else { fatalError("transpose perm validated") }
            var inverse = perm
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return try op(&g, "transpose", [n.results[0]], ["perm": .ints(inverse)], n.location)
        }, logDerivative: { _, _, _ in .zero })
        t["pad"] = InverseRule(positions: { _, _ in [0] }, invert: { g, n, _ in
            guard case .int(let axis)? = n.attributes["axis"], case .int(let before)? = n.attributes["before"] else { fatalError("pad validated") }
            let a = g.type(of: n.operands[0])
            let resolved = axis < 0 ? axis + a.rank : axis
            let length = a.size(ofAxis: resolved)!
            return try op(&g, "slice", [n.results[0]], ["axis": .int(resolved), "start": .int(before), "end": .int(before + length)], n.location)
        }, logDerivative: { _, _, _ in .zero })
        // y = a·Wᵀ + b with W square → a = (y - b)·(W⁻¹)ᵀ; ln |det W| per row
        t["linear"] = InverseRule(positions: { node, g in
            let w = g.type(of: node.operands[1])
            return w.dims.count == 2 && w.dims[0] == w.dims[1] ? [0] : []
        }, invert: { g, n, _ in
            let shifted = n.operands.count == 3 ? try op(&g, "sub", [n.results[0], n.operands[2]], n.location) : n.results[0]
            return try op(&g, "linear", [shifted, try op(&g, "matrix_inverse", [n.operands[1]], n.location)], n.location)
        }, logDerivative: { g, n, _ in
            let rows = g.type(of: n.results[0]).elementsPerSample / g.type(of: n.operands[1]).dims[0]
            return .perSample(try scaledLogAbsDet(&g, n.operands[1], rows, n.location))
        }, note: "linear is invertible only through a square weight matrix")
        // 1x1 convolution by a [C, C, 1, 1] kernel: a = conv(y - b, W⁻¹); H·W·ln |det W|
        t["conv2d"] = InverseRule(positions: { node, g in
            let w = g.type(of: node.operands[1]).dims
            let unit = node.attributes["stride"] == .int(1) && node.attributes["padding"] == .int(0)
            return unit && w.count == 4 && w[0] == w[1] && w[2] == 1 && w[3] == 1 ? [0] : []
        }, invert: { g, n, _ in
            let at = n.location
            let c = g.type(of: n.operands[1]).dims[0]
            var y = n.results[0]
            if n.operands.count == 3 {
                y = try op(&g, "sub", [y, try op(&g, "reshape", [n.operands[2]], ["shape": .shape(batched: false, [c, 1, 1])], at)], at)
            }
            let matrix = try op(&g, "reshape", [n.operands[1]], ["shape": .shape(batched: false, [c, c])], at)
            let kernel = try op(&g, "reshape", [try op(&g, "matrix_inverse", [matrix], at)], ["shape": .shape(batched: false, [c, c, 1, 1])], at)
            return try op(&g, "conv2d", [y, kernel], at)
        }, logDerivative: { g, n, _ in
            let c = g.type(of: n.operands[1]).dims[0]
            let matrix = try op(&g, "reshape", [n.operands[1]], ["shape": .shape(batched: false, [c, c])], n.location)
            let pixels = g.type(of: n.results[0]).elementsPerSample / c
            return .perSample(try scaledLogAbsDet(&g, matrix, pixels, n.location))
        }, note: "conv2d is invertible only as a 1x1 convolution with a square kernel, stride 1, no padding")
        return t
    }()

    static func op(_ g: inout Graph, _ name: String, _ operands: [ValueID], _ at: SourceLocation) throws -> ValueID {
        try g.apply(name, operands, at: at)
    }

    static func op(_ g: inout Graph, _ name: String, _ operands: [ValueID], _ attributes: [String: Attribute], _ at: SourceLocation) throws -> ValueID {
        try g.apply(name, operands, attributes, at: at)
    }

    /// count · ln |det W|
    static func scaledLogAbsDet(_ g: inout Graph, _ w: ValueID, _ count: Int, _ at: SourceLocation) throws -> ValueID {
        let l = try g.apply("logabsdet", [w], at: at)
        return count == 1 ? l : try g.apply("mul", [l, try g.constant(Double(count), at: at)], at: at)
    }
}
