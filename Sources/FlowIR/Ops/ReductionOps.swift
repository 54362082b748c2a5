/// Reductions over static axes, softmax, cumulative sums and layer normalisation.
enum ReductionOps {
    static let family = "Reductions and normalisation"

    static func reduced(_ c: InferenceContext) throws -> [TensorType] {
        let x = c.operands[0]
        let axes = try c.ints("axes").map { try c.axis($0, rank: x.rank, attribute: "axes") }
        if Set(axes).count != axes.count { throw c.error("axes \(c.ints("axes")) repeat an axis") }
        for a in axes { try c.requireStatic(a, of: x, "a reduction") }
        let keep = c.int("keepdims") != 0
        var dims: [Int] = []
        for (i, d) in x.dims.enumerated() {
            let full = i + (x.batched ? 1 : 0)
            if axes.contains(full) { if keep { dims.append(1) } } else { dims.append(d) }
        }
        return [TensorType(x.dtype, batched: x.batched, dims)]
    }

    static let reductionAttributes = [AttributeSpec("axes", .ints), AttributeSpec("keepdims", .int, default: .int(0))]

    static func sameAlongAxis(_ c: InferenceContext) throws -> [TensorType] {
        let x = c.operands[0]
        let a = try c.axis(c.int("axis"), rank: x.rank)
        try c.requireStatic(a, of: x, c.op)
        return [x]
    }

    static var definitions: [OpDefinition] {
        [
            OpDefinition("sum", family: family, operands: 1...1, attributes: reductionAttributes, positional: ["axes"],
                         summary: "sum over `axes`", shapes: "axes removed (kept as 1 with keepdims=1)",
                         pytorch: "x.sum(dim=axes, keepdim=...)", infer: reduced),
            OpDefinition("mean", family: family, operands: 1...1, attributes: reductionAttributes, positional: ["axes"],
                         summary: "mean over `axes`", shapes: "as sum", pytorch: "x.mean(dim=axes)", infer: reduced),
            OpDefinition("amax", family: family, operands: 1...1, attributes: reductionAttributes, positional: ["axes"],
                         summary: "maximum over `axes`", shapes: "as sum", pytorch: "x.amax(dim=axes)", infer: reduced),
            OpDefinition("softmax", family: family, operands: 1...1, attributes: [AttributeSpec("axis", .int, default: .int(-1))],
                         positional: ["axis"], summary: "e^(x - max) / Σ e^(x - max) along `axis`", shapes: "same as x",
                         pytorch: "torch.softmax(x, dim=axis)", infer: sameAlongAxis),
            OpDefinition("cumsum", family: family, operands: 1...1, attributes: [AttributeSpec("axis", .int, default: .int(-1))],
                         positional: ["axis"], summary: "inclusive prefix sum along `axis`", shapes: "same as x",
                         pytorch: "torch.cumsum(x, dim=axis)", infer: sameAlongAxis),
            OpDefinition("layernorm", family: family, operands: 1...3, attributes: [AttributeSpec("eps", .float, default: .float(1e-5))],
                         summary: "(x - mean)/√(var + eps) over the last axis (biased variance), then ·weight + bias",
                         shapes: "same as x; weight, bias: [last dim]", pytorch: "F.layer_norm(x, (C,), weight, bias, eps)") { c in
                let x = c.operands[0]
                guard let last = x.dims.last else { throw c.error("layernorm needs a static last axis") }
                for p in c.operands.dropFirst() where p.batched || p.dims != [last] {
                    throw c.error("weight and bias must have shape [\(last)]")
                }
                _ = try c.sameDType()
                return [x]
            },
        ]
    }
}
