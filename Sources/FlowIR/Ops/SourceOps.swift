/// Ops with no tensor operands: weights, constants, index ramps.
enum SourceOps {
    static let family = "Sources"

    static var definitions: [OpDefinition] {
        [
            OpDefinition("weight", family: family, operands: 0...0,
                         attributes: [AttributeSpec("name", .string), AttributeSpec("shape", .shape)], positional: ["name"],
                         summary: "a named tensor of the weight file (`name` or `w.name`); bool and int tensors read as 0/1 and integers",
                         shapes: "the file's shape (checked against `shape` when given)", pytorch: "state_dict()[name]") { c in
                guard case .shape(let batched, let dims)? = c.attributes["shape"] else {
                    throw c.error("weight needs a shape (resolved from the weight file)")
                }
                guard !batched else { throw c.error("weights cannot have the batch dimension B") }
                return [TensorType(c.dtype, batched: false, dims)]
            },
            OpDefinition("const", family: family, operands: 0...0,
                         attributes: [AttributeSpec("values", .floats), AttributeSpec("shape", .shape, default: .shape(batched: false, []))],
                         positional: ["values"],
                         summary: "a constant: one value filled over `shape`, or one value per element in C order",
                         shapes: "`shape` (unbatched)", pytorch: "torch.full / torch.tensor") { c in
                guard case .shape(let batched, let dims)? = c.attributes["shape"], !batched else {
                    throw c.error("constants cannot have the batch dimension B")
                }
                let values = c.attributes["values"].flatMap { if case .floats(let v) = $0 { return v } else { return nil } } ?? []
                let count = dims.reduce(1, *)
                guard values.count == 1 || values.count == count else {
                    throw c.error("\(values.count) values do not fill shape \(dims) (\(count) elements)")
                }
                return [TensorType(c.dtype, batched: false, dims)]
            },
            OpDefinition("iota", family: family, operands: 0...0, attributes: [AttributeSpec("shape", .shape), AttributeSpec("axis", .int, default: .int(0))],
                         positional: ["shape"],
                         summary: "the index along `axis` at every position", shapes: "`shape` (unbatched)",
                         pytorch: "torch.arange(n) broadcast along axis") { c in
                guard case .shape(let batched, let dims)? = c.attributes["shape"], !batched else {
                    throw c.error("iota cannot have the batch dimension B")
                }
                _ = try c.axis(c.int("axis"), rank: dims.count)
                return [TensorType(c.dtype, batched: false, dims)]
            },
            OpDefinition("fixed_point", family: "Regions", operands: 1...Int.max,
                         attributes: [AttributeSpec("body", .int), AttributeSpec("sweeps", .int), AttributeSpec("tolerance", .float, default: .float(0))],
                         summary: "u ← body(u, c…) from u = initial, `sweeps` times, or until no element moves by more than tolerance·(1 + |u|) (tolerance > 0)",
                         shapes: "operands (initial, captured…) match the body's inputs; result: initial's type",
                         pytorch: "a Python loop (zuko's MAF inverse, TarFlow's Jacobi decoding)") { c in
                guard c.int("sweeps") >= 1, c.float("tolerance") >= 0 else { throw c.error("sweeps must be ≥ 1 and tolerance ≥ 0") }
                return [c.operands[0]]
            },
            OpDefinition("eye", family: family, operands: 0...0, attributes: [AttributeSpec("n", .int)], positional: ["n"],
                         summary: "identity matrix", shapes: "[n, n]", pytorch: "torch.eye(n)") { c in
                guard c.int("n") >= 1 else { throw c.error("n must be ≥ 1") }
                return [TensorType(c.dtype, batched: false, [c.int("n"), c.int("n")])]
            },
        ]
    }
}
