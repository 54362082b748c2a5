/// Ops that move data without arithmetic: reshape, transpose, slice, concat, split, gather, pad.
enum ShapeOps {
    static let family = "Shape and data movement"

    static var definitions: [OpDefinition] {
        [
            OpDefinition("reshape", family: family, operands: 1...1, attributes: [AttributeSpec("shape", .shape)],
                         positional: ["shape"], summary: "same elements in C order, new static dimensions",
                         shapes: "product of static dims unchanged; B stays B", pytorch: "x.reshape(shape)") { c in
                let x = c.operands[0]
                guard case .shape(let batched, let dims)? = c.attributes["shape"] else { fatalError("validated") }
                guard batched == x.batched else {
                    throw c.error("shape must \(x.batched ? "" : "not ")start with B, as x does\(x.batched ? "" : " not")")
                }
                guard dims.allSatisfy({ $0 >= 1 }), dims.reduce(1, *) == x.elementsPerSample else {
                    throw c.error("cannot reshape \(x.elementsPerSample) elements per sample into \(dims)")
                }
                return [TensorType(x.dtype, batched: batched, dims)]
            },
            OpDefinition("transpose", family: family, operands: 1...1, attributes: [AttributeSpec("perm", .ints)],
                         positional: ["perm"], summary: "permutes axes: result axis i is x's axis perm[i]",
                         shapes: "permuted; the batch axis must stay axis 0", pytorch: "x.permute(perm)") { c in
                let x = c.operands[0]
                let perm = c.ints("perm")
                guard perm.sorted() == Array(0..<x.rank) else { throw c.error("perm \(perm) is not a permutation of 0..<\(x.rank)") }
                if x.batched && perm[0] != 0 { throw c.error("perm must keep the batch axis first (perm[0] = 0)") }
                let full = (x.batched ? [0] : []) + x.dims
                let dims = perm.map { full[$0] }
                return [TensorType(x.dtype, batched: x.batched, Array(dims.dropFirst(x.batched ? 1 : 0)))]
            },
            OpDefinition("slice", family: family, operands: 1...1,
                         attributes: [AttributeSpec("axis", .int), AttributeSpec("start", .int, default: .int(0)),
                                      AttributeSpec("end", .int, default: .int(Int.max)), AttributeSpec("step", .int, default: .int(1))],
                         summary: "x[..., start:end:step, ...] along `axis` (Python semantics, step > 0)",
                         shapes: "axis shrinks to the slice's length (≥ 1)", pytorch: "x[:, start:end:step]") { c in
                let x = c.operands[0]
                let a = try c.axis(c.int("axis"), rank: x.rank)
                try c.requireStatic(a, of: x, "slice")
                guard c.int("step") >= 1 else { throw c.error("step must be ≥ 1") }
                let n = PythonSlice.indices(size: x.size(ofAxis: a)!, start: c.int("start"), end: c.int("end"), step: c.int("step")).count
                guard n >= 1 else { throw c.error("the slice is empty") }
                var t = x
                t.dims[a - (x.batched ? 1 : 0)] = n
                return [t]
            },
            OpDefinition("concat", family: family, operands: 1...Int.max, attributes: [AttributeSpec("axis", .int)],
                         summary: "joins the operands along `axis`", shapes: "equal except along axis",
                         pytorch: "torch.cat(xs, dim=axis)") { c in
                let first = c.operands[0]
                let a = try c.axis(c.int("axis"), rank: first.rank)
                try c.requireStatic(a, of: first, "concat")
                let i = a - (first.batched ? 1 : 0)
                var total = 0
                for t in c.operands {
                    var u = t, f = first
                    guard t.rank == first.rank, t.batched == first.batched else { throw c.error("operands differ in rank or batching") }
                    u.dims[i] = 0; f.dims[i] = 0
                    guard u == f else { throw c.error("operands differ outside axis \(a)") }
                    total += t.dims[i]
                }
                var t = first
                t.dims[i] = total
                return [t]
            },
            OpDefinition("split", family: family, operands: 1...1, attributes: [AttributeSpec("axis", .int), AttributeSpec("sizes", .ints)],
                         summary: "cuts x along `axis` into consecutive pieces of the given sizes (one result each)",
                         shapes: "sizes sum to the axis length", pytorch: "torch.split(x, sizes, dim=axis)") { c in
                let x = c.operands[0]
                let a = try c.axis(c.int("axis"), rank: x.rank)
                try c.requireStatic(a, of: x, "split")
                let sizes = c.ints("sizes")
                let i = a - (x.batched ? 1 : 0)
                guard sizes.allSatisfy({ $0 >= 1 }), sizes.reduce(0, +) == x.dims[i] else {
                    throw c.error("sizes \(sizes) must be positive and sum to \(x.dims[i])")
                }
                return sizes.map { var t = x; t.dims[i] = $0; return t }
            },
            OpDefinition("gather", family: family, operands: 1...1, attributes: [AttributeSpec("axis", .int), AttributeSpec("indices", .ints)],
                         summary: "picks positions `indices` (constants) along `axis`, in that order",
                         shapes: "axis length becomes indices.count", pytorch: "x[:, indices]") { c in
                let x = c.operands[0]
                let a = try c.axis(c.int("axis"), rank: x.rank)
                try c.requireStatic(a, of: x, "gather")
                let i = a - (x.batched ? 1 : 0)
                let indices = c.ints("indices")
                guard !indices.isEmpty else { throw c.error("indices are empty") }
                if let bad = indices.first(where: { $0 < 0 || $0 >= x.dims[i] }) {
                    throw c.error("index \(bad) out of range 0..<\(x.dims[i])")
                }
                var t = x
                t.dims[i] = indices.count
                return [t]
            },
            OpDefinition("broadcast_like", family: family, operands: 2...2,
                         summary: "x broadcast to the shape of x and `like` together (values from x only)",
                         shapes: "broadcast of x and like", pytorch: "x.expand_as(like)") { c in
                [try Broadcasting.result(c.operands, c)]
            },
            OpDefinition("pad", family: family, operands: 1...1,
                         attributes: [AttributeSpec("axis", .int), AttributeSpec("before", .int, default: .int(0)),
                                      AttributeSpec("after", .int, default: .int(0)), AttributeSpec("value", .float, default: .float(0))],
                         summary: "adds `before` and `after` entries equal to `value` along `axis`",
                         shapes: "axis grows by before + after", pytorch: "F.pad(x, (before, after), value=value) on the last axis") { c in
                let x = c.operands[0]
                let a = try c.axis(c.int("axis"), rank: x.rank)
                try c.requireStatic(a, of: x, "pad")
                guard c.int("before") >= 0, c.int("after") >= 0 else { throw c.error("before and after must be ≥ 0") }
                var t = x
                t.dims[a - (x.batched ? 1 : 0)] += c.int("before") + c.int("after")
                return [t]
            },
        ]
    }
}

/// Python slice semantics shared by shape inference and the interpreter: negative indices count
/// from the end, out-of-range bounds clamp, step > 0.
public enum PythonSlice {
    public static func indices(size: Int, start: Int, end: Int, step: Int) -> [Int] {
        func clamp(_ v: Int) -> Int { v < 0 ? max(v + size, 0) : min(v, size) }
        let s = clamp(start), e = clamp(end)
        return s < e ? Array(stride(from: s, to: e, by: step)) : []
    }
}
