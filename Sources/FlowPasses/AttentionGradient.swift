import FlowIR

/// The cotangents of `attention(q, k, v)` written with primitive ops on [B, heads, T, d] views:
/// with scores S = Q·Kᵀ·s (s = 1/(√d·temperature), masked positions −10³⁰ so their weight is
/// exactly 0) and P = softmax(S), O = P·V gives V̄ = Pᵀ·Ō, P̄ = Ō·Vᵀ, S̄ = P ⊙ (P̄ − Σ P̄ ⊙ P),
/// Q̄ = S̄·K·s and K̄ = S̄ᵀ·Q·s. The forward op stays fused; only its gradient materialises P.
enum AttentionGradient {
    static func cotangents(_ g: inout Graph, _ n: Node, _ outputBar: ValueID, _ wanted: [Bool]) throws -> [ValueID?] {
        let at = n.location
        func op(_ name: String, _ operands: [ValueID], _ attributes: [String: Attribute] = [:]) throws -> ValueID {
            try g.apply(name, operands, attributes, at: at)
        }
        guard case .int(let heads)? = n.attributes["heads"], case .int(let causal)? = n.attributes["causal"],
              case .float(let temperature)? = n.attributes["temperature"] else { fatalError("attention attributes verified") }
        let (queries, channels) = (g.type(of: n.operands[0]).dims[0], g.type(of: n.operands[0]).dims[1])
        let keys = g.type(of: n.operands[1]).dims[0]
        let d = channels / heads
        let scale = 1 / (Double(d).squareRoot() * temperature)
        /// [B, T, C] → [B, heads, T, d] and back
        func split(_ v: ValueID, _ tokens: Int) throws -> ValueID {
            try op("transpose", [try op("reshape", [v], ["shape": .shape(batched: true, [tokens, heads, d])])], ["perm": .ints([0, 2, 1, 3])])
        }
        func merge(_ v: ValueID, _ tokens: Int) throws -> ValueID {
            try op("reshape", [try op("transpose", [v], ["perm": .ints([0, 2, 1, 3])])], ["shape": .shape(batched: true, [tokens, channels])])
        }
        func transposed(_ v: ValueID) throws -> ValueID { try op("transpose", [v], ["perm": .ints([0, 1, 3, 2])]) }
        let (q, k, v) = (try split(n.operands[0], queries), try split(n.operands[1], keys), try split(n.operands[2], keys))
        var scores = try op("mul", [try op("matmul", [q, try transposed(k)]), try g.constant(scale, at: at)])
        if causal != 0 {
            // query t (position t + S − T) sees keys s ≤ t + S − T
            let mask = (0..<queries).flatMap { t in (0..<keys).map { s in s <= t + keys - queries ? 0.0 : -1e30 } }
            scores = try op("add", [scores, try op("const", [], ["values": .floats(mask), "shape": .shape(batched: false, [queries, keys])])])
        }
        let p = try op("softmax", [scores], ["axis": .int(-1)])
        let oBar = try split(outputBar, queries)
        let pBar = try op("matmul", [oBar, try transposed(v)])
        let total = try op("sum", [try op("mul", [pBar, p])], ["axes": .ints([3]), "keepdims": .int(1)])
        let sBar = try op("mul", [try op("mul", [p, try op("sub", [pBar, total])]), try g.constant(scale, at: at)])
        return [
            wanted[0] ? try merge(try op("matmul", [sBar, k]), queries) : nil,
            wanted[1] ? try merge(try op("matmul", [try transposed(sBar), q]), keys) : nil,
            wanted[2] ? try merge(try op("matmul", [try transposed(p), oBar]), keys) : nil,
        ]
    }
}
