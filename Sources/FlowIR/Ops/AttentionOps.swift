/// Multi-head scaled dot-product attention with the causal mask as part of the op, so that the
/// derivation passes see which tokens each output reads; and the guidance marker.
enum AttentionOps {
    static let family = "Attention"

    static var definitions: [OpDefinition] {
        [
            OpDefinition("attention", family: family, operands: 3...3,
                         attributes: [AttributeSpec("heads", .int), AttributeSpec("causal", .int, default: .int(1)),
                                      AttributeSpec("temperature", .float, default: .float(1))],
                         summary: "per head m (channels m·d ..< (m+1)·d, d = C/heads): o_t = Σ_s softmax_s(q_t·k_s/(√d·temperature)) v_s over s ≤ t + S − T (causal=1) or all s (causal=0); with fewer queries than keys (T < S, a decoding step over a key/value cache) query t is position t + S − T",
                         shapes: "q [B, T, C], k, v [B, S, C] with T ≤ S → [B, T, C]; C divisible by heads",
                         pytorch: "F.scaled_dot_product_attention(q, k, v, is_causal=causal) on [B, heads, T, d] views") { c in
                let (q, k, v) = (c.operands[0], c.operands[1], c.operands[2])
                guard q.batched, q.dims.count == 2 else { throw c.error("q must be batched tokens [B, T, C]") }
                guard k == v, k.batched, k.dims.count == 2, k.dims[1] == q.dims[1], k.dtype == q.dtype, k.dims[0] >= q.dims[0] else {
                    throw c.error("k and v must be [B, S, C] with the channels of q and at least its tokens")
                }
                let heads = c.int("heads")
                guard heads >= 1, q.dims[1] % heads == 0 else { throw c.error("heads = \(heads) does not divide the \(q.dims[1]) channels") }
                guard [0, 1].contains(c.int("causal")) else { throw c.error("causal must be 0 or 1") }
                guard c.float("temperature") > 0 else { throw c.error("temperature must be > 0") }
                return [q]
            },
            OpDefinition("guided", family: family, operands: 1...1, attributes: [AttributeSpec("name", .string, default: .string(""))],
                         positional: ["name"],
                         summary: "the identity, marking a conditioner output for classifier-free guidance: a guided sample replaces it by x_c + g·(x_c − x_∅) (TarFlow guides a and b)",
                         shapes: "same as x", pytorch: "x") { c in [c.operands[0]] },
        ]
    }
}
