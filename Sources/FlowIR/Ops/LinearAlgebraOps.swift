/// Matrix products, convolution and small matrix constructions.
enum LinearAlgebraOps {
    static let family = "Linear algebra"

    static func matrixOnly(_ c: InferenceContext, _ t: TensorType) throws -> (Int, Int) {
        guard !t.batched, t.dims.count == 2 else { throw c.error("expects an unbatched matrix [n, m]") }
        return (t.dims[0], t.dims[1])
    }

    static var definitions: [OpDefinition] {
        [
            OpDefinition("matmul", family: family, operands: 2...2,
                         summary: "matrix product over the last two axes; leading axes broadcast",
                         shapes: "[..., M, K] × [..., K, N] → [..., M, N]; M may be B for a batched [B, K]",
                         pytorch: "torch.matmul(a, b)") { c in
                let (a, b) = (c.operands[0], c.operands[1])
                guard a.rank >= 2, b.rank >= 2 else { throw c.error("both operands need rank ≥ 2") }
                let k = a.size(ofAxis: a.rank - 1)
                let kb = b.size(ofAxis: b.rank - 2)
                guard let n = b.size(ofAxis: b.rank - 1), k != nil, kb != nil else {
                    throw c.error("the contracted and column axes must be static, not B")
                }
                guard k == kb else { throw c.error("inner dimensions differ: \(k!) vs \(kb!)") }
                // Broadcast the leading axes plus M (treated as part of a's batch shape).
                let aLead = TensorType(a.dtype, batched: a.batched, Array(a.dims.dropLast()))
                let bLead = TensorType(b.dtype, batched: b.batched, Array(b.dims.dropLast(2)) + [1])
                var lead = try Broadcasting.result([aLead, bLead], c)
                lead.dims.append(n)
                return [lead]
            },
            OpDefinition("linear", family: family, operands: 2...3,
                         summary: "x·Wᵀ + b over the last axis (PyTorch layout: W is [out, in])",
                         shapes: "x [..., in], W [out, in], b [out] → [..., out]", pytorch: "F.linear(x, W, b)") { c in
                let x = c.operands[0]
                let (n, k) = try matrixOnly(c, c.operands[1])
                guard let last = x.dims.last, last == k else {
                    throw c.error("x's last axis must equal W's in-features \(k)")
                }
                if c.operands.count == 3, c.operands[2].batched || c.operands[2].dims != [n] {
                    throw c.error("bias must have shape [\(n)]")
                }
                return [TensorType(try c.sameDType(), batched: x.batched, x.dims.dropLast() + [n])]
            },
            OpDefinition("conv2d", family: family, operands: 2...3,
                         attributes: [AttributeSpec("stride", .int, default: .int(1)), AttributeSpec("padding", .int, default: .int(0))],
                         summary: "2-D cross-correlation, NCHW, zero padding",
                         shapes: "x [B, C, H, W], w [O, C, kh, kw], b [O] → [B, O, (H+2p-kh)/s+1, (W+2p-kw)/s+1]",
                         pytorch: "F.conv2d(x, w, b, stride, padding)") { c in
                let (x, w) = (c.operands[0], c.operands[1])
                guard x.rank == 4 else { throw c.error("x must be NCHW (rank 4)") }
                guard !w.batched, w.dims.count == 4 else { throw c.error("weight must be an unbatched [O, C, kh, kw]") }
                let channels = x.size(ofAxis: 1)!
                guard w.dims[1] == channels else { throw c.error("weight expects \(w.dims[1]) input channels, x has \(channels)") }
                let s = c.int("stride"), p = c.int("padding")
                guard s >= 1, p >= 0 else { throw c.error("stride must be ≥ 1 and padding ≥ 0") }
                if c.operands.count == 3, c.operands[2].batched || c.operands[2].dims != [w.dims[0]] {
                    throw c.error("bias must have shape [\(w.dims[0])]")
                }
                let h = x.size(ofAxis: 2)!, wd = x.size(ofAxis: 3)!
                let oh = (h + 2 * p - w.dims[2]) / s + 1, ow = (wd + 2 * p - w.dims[3]) / s + 1
                guard h + 2 * p >= w.dims[2], wd + 2 * p >= w.dims[3] else { throw c.error("kernel larger than the padded input") }
                let spatial = [w.dims[0], oh, ow]
                return [TensorType(try c.sameDType(), batched: x.batched, x.batched ? spatial : [x.dims[0]] + spatial)]
            },
            OpDefinition("tril", family: family, operands: 1...1, attributes: [AttributeSpec("k", .int, default: .int(0))],
                         positional: ["k"], summary: "keeps entries with col - row ≤ k, zeroes the rest",
                         shapes: "same as x (rank ≥ 2)", pytorch: "torch.tril(x, k)") { c in
                guard c.operands[0].rank >= 2 else { throw c.error("needs rank ≥ 2") }
                return [c.operands[0]]
            },
            OpDefinition("triu", family: family, operands: 1...1, attributes: [AttributeSpec("k", .int, default: .int(0))],
                         positional: ["k"], summary: "keeps entries with col - row ≥ k, zeroes the rest",
                         shapes: "same as x (rank ≥ 2)", pytorch: "torch.triu(x, k)") { c in
                guard c.operands[0].rank >= 2 else { throw c.error("needs rank ≥ 2") }
                return [c.operands[0]]
            },
            OpDefinition("logabsdet", family: family, operands: 1...1,
                         summary: "ln |det A| of a square matrix (LU with partial pivoting in f64; -inf if singular)",
                         shapes: "[n, n] (unbatched) → []", pytorch: "torch.linalg.slogdet(A).logabsdet") { c in
                let (n, m) = try matrixOnly(c, c.operands[0])
                guard n == m else { throw c.error("needs a square matrix") }
                return [TensorType(c.operands[0].dtype, batched: false, [])]
            },
            OpDefinition("matrix_inverse", family: family, operands: 1...1,
                         summary: "A⁻¹ by Gauss–Jordan elimination with partial pivoting in f64; a singular matrix is an error",
                         shapes: "[n, n] (unbatched)", pytorch: "torch.linalg.inv(A)") { c in
                let (n, m) = try matrixOnly(c, c.operands[0])
                guard n == m else { throw c.error("needs a square matrix") }
                return [c.operands[0]]
            },
            OpDefinition("diag", family: family, operands: 1...1, summary: "square matrix with v on its diagonal",
                         shapes: "[n] → [n, n] (unbatched)", pytorch: "torch.diag(v)") { c in
                let v = c.operands[0]
                guard !v.batched, v.dims.count == 1 else { throw c.error("expects an unbatched vector [n]") }
                return [TensorType(v.dtype, batched: false, [v.dims[0], v.dims[0]])]
            },
        ]
    }
}
