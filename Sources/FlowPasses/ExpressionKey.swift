import FlowIR

/// What makes two nodes compute the same value, for common-subexpression elimination: the op,
/// the operands and the attributes, floats compared bit for bit (0.0 and -0.0 stay apart; a NaN
/// equals the same NaN). Hashing it costs a few words per node, not the text of its attributes
/// (a `const` node's values printed anew on every pass of Simplify was a tenth of its time).
struct ExpressionKey: Hashable {
    let op: String
    let operands: [ValueID]
    let attributes: [String: Attribute]

    static func == (a: ExpressionKey, b: ExpressionKey) -> Bool {
        guard a.op == b.op, a.operands == b.operands, a.attributes.count == b.attributes.count else { return false }
        return a.attributes.allSatisfy { key, value in b.attributes[key].map { identical(value, $0) } ?? false }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(op)
        hasher.combine(operands)
        for key in attributes.keys.sorted() {
            hasher.combine(key)
            switch attributes[key]! {
            case .int(let i): hasher.combine(i)
            case .float(let d): hasher.combine(d.bitPattern)
            case .ints(let v): hasher.combine(v)
            case .floats(let v): hasher.combine(v.count); for d in v { hasher.combine(d.bitPattern) }
            case .string(let s): hasher.combine(s)
            case .shape(let batched, let dims): hasher.combine(batched); hasher.combine(dims)
            }
        }
    }

    static func identical(_ a: Attribute, _ b: Attribute) -> Bool {
        switch (a, b) {
        case (.float(let x), .float(let y)): return x.bitPattern == y.bitPattern
        case (.floats(let x), .floats(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern }
        default: return a == b
        }
    }
}
