import FlowIR

/// Tokens (rows along axis 1 of a batched [B, T, ...] value) that no output reads are not
/// computed. An autoregressive conditioner is shifted one token later before it is used
/// (TarFlow: p = slice(pad(proj_out(h), before 1), end T)), so its last token is never read;
/// through causal attention (query t reads keys ≤ t) and the row-wise ops around it (linear,
/// layernorm, elementwise, splits of the channels), neither is that token's row of any layer
/// before it: 1/T of the Transformer's work, 1/16 of TarFlow's at 16 tokens.
///
/// A backward pass finds, for every sequence value, how many leading rows its users read
/// (`demand`); a forward pass rebuilds each op with a rule below on those rows, slicing an
/// operand when it has more rows than the op needs. An op without a rule reads its operands
/// whole, so the result is exact for any graph: every rule computes the same rows of its
/// result from the same rows of its operands.
///
/// Rules (result demand d rows):
/// - row-wise ops (elementwise, `linear`, `layernorm`, `split`/`concat`/`slice`/`pad`/`gather`
///   along another axis): d rows of each sequence operand; a broadcast operand whose axis
///   aligned with the rows has length T (a position embedding [T, C]) is sliced to d;
/// - causal `attention` with as many queries as keys: d rows of q, k and v;
/// - `slice` along the rows (step 1) from s: rows s ..< s + d of the operand;
/// - `pad` along the rows with `before` p (d > p): rows 0 ..< min(T, d − p) of the operand;
/// - `gather` along the rows: the operand up to the largest of the first d indices.
public enum RowPrefixNarrowing {
    /// How an op reads its operands when d rows of its results are read: per operand, the
    /// (full-rank) axis and count of leading entries read (nil: read whole), and the op's
    /// attributes for a result of d rows.
    struct Narrowed {
        var operands: [(axis: Int, rows: Int)?]
        var attributes: [String: Attribute]
    }

    /// A value with rows to narrow: batched, with a token axis and at least one axis after it.
    static func rows(of type: TensorType) -> Int? {
        type.batched && type.dims.count >= 2 ? type.dims[0] : nil
    }

    /// The rows of `node`'s results that are read (the most of any result), and whether the node
    /// is dead: every result a sequence value of which no row is read.
    static func rowsRead(_ node: Node, _ demand: [ValueID: Int], in g: Graph) -> (rows: Int, sequence: Bool, dead: Bool) {
        let d = node.results.map { demand[$0] ?? 0 }.max() ?? 0
        let sequence = !node.results.isEmpty && node.results.allSatisfy { rows(of: g.type(of: $0)) != nil }
        return (d, sequence, sequence && d == 0)
    }

    public static func run(_ input: Graph) throws -> Graph {
        var g = input
        g.bodies = try input.bodies.map { try run($0) }
        let demand = demands(in: g)
        // every sequence read whole: nothing to narrow or drop, the graph as it is (most rounds
        // of Simplify, which runs this pass until nothing changes)
        let whole = g.nodes.allSatisfy { node in node.results.allSatisfy { r in rows(of: g.type(of: r)).map { demand[r] == $0 } ?? true } }
        if whole { return g }
        var out = Graph()
        out.bodies = g.bodies
        var map: [ValueID: ValueID] = [:]
        for (v, name) in zip(g.inputs, g.inputNames) { map[v] = out.addInput(name: name, type: g.type(of: v)) }
        /// The mapped value `v` with its first `count` entries along `axis`, sliced when it has more.
        func leading(_ v: ValueID, axis: Int, count: Int, at location: SourceLocation) throws -> ValueID {
            let mapped = map[v]!, type = out.type(of: mapped)
            guard let size = type.size(ofAxis: axis), size > count else { return mapped }
            return try out.append("slice", [mapped], ["axis": .int(axis), "start": .int(0), "end": .int(count), "step": .int(1)], at: location)[0]
        }
        for node in g.nodes {
            let (d, _, dead) = rowsRead(node, demand, in: g)
            if dead { continue }
            let narrowed = rule(node, rows: d, in: g)
            let attributes = narrowed?.attributes ?? node.attributes
            if node.op == "slice", let slice = narrowed, let (_, count) = slice.operands[0], g.axis(of: node) == 1 {
                // a slice of the rows reads its operand as it is (no slice of a slice); one that
                // keeps all of it is dropped
                let operand = map[node.operands[0]]!
                if case .int(0)? = attributes["start"], out.type(of: operand).size(ofAxis: 1) == count {
                    map[node.results[0]] = operand
                } else {
                    map[node.results[0]] = try out.append("slice", [operand], attributes, at: node.location)[0]
                }
                continue
            }
            var operands: [ValueID] = []
            for (i, operand) in node.operands.enumerated() {
                if let (axis, count) = narrowed?.operands[i] {
                    operands.append(try leading(operand, axis: axis, count: count, at: node.location))
                } else {
                    operands.append(map[operand]!)
                }
            }
            let results = try out.append(node.op, operands, attributes, at: node.location)
            for (r, n) in zip(node.results, results) { map[r] = n }
        }
        out.outputs = g.outputs.map { map[$0]! }
        try Verifier.verify(out)
        return out
    }

    /// Rows read of every sequence value: the most any user reads (absent: none). Other values
    /// are not narrowed.
    static func demands(in g: Graph) -> [ValueID: Int] {
        var demand: [ValueID: Int] = [:]
        func read(_ v: ValueID, _ count: Int?) {
            guard let total = rows(of: g.type(of: v)) else { return }
            demand[v] = max(demand[v] ?? 0, min(count ?? total, total))
        }
        for v in g.outputs { read(v, nil) }
        for node in g.nodes.reversed() {
            let (d, sequence, dead) = rowsRead(node, demand, in: g)
            if dead { continue }
            let narrowed = sequence ? rule(node, rows: d, in: g) : nil
            for (i, operand) in node.operands.enumerated() {
                if let (axis, count) = narrowed?.operands[i], axis == 1, g.type(of: operand).batched { read(operand, count) } else { read(operand, nil) }
            }
        }
        return demand
    }

    /// How `node` reads its operands when `d` rows of its results are read (nil: whole).
    static func rule(_ node: Node, rows d: Int, in g: Graph) -> Narrowed? {
        let result = g.type(of: node.results[0])
        guard let total = rows(of: result), d >= 1 else { return nil }
        let operandTypes = node.operands.map { g.type(of: $0) }
        var attributes = node.attributes
        func int(_ name: String, _ fallback: Int) -> Int {
            if case .int(let value)? = node.attributes[name] { return value }
            return fallback
        }
        /// Every sequence operand read for d rows, the others whole.
        func rowWise() -> Narrowed {
            Narrowed(operands: operandTypes.map { rows(of: $0) != nil ? (1, d) : nil }, attributes: attributes)
        }
        switch node.op {
        case _ where OpCatalog.unaryElementwise.contains(node.op):
            return rowWise()
        case _ where OpCatalog.binaryElementwise.contains(node.op):
            // NumPy broadcasting: an operand's axis aligned with the result's rows (axis 1) from
            // the right; narrowed when it has the full T entries there (not 1, not absent)
            return Narrowed(operands: operandTypes.map { t in
                let aligned = 1 - (result.rank - t.rank)
                guard aligned >= 0, t.size(ofAxis: aligned) == total, aligned >= (t.batched ? 1 : 0) else { return nil }
                return (aligned, d)
            }, attributes: attributes)
        case "linear", "layernorm":
            guard let x = rows(of: operandTypes[0]), x == total else { return nil }
            return Narrowed(operands: [(1, d)] + Array(repeating: nil, count: operandTypes.count - 1), attributes: attributes)
        case "attention":
            guard int("causal", 1) == 1, operandTypes[1].dims[0] == total else { return nil }
            return rowWise()
        case "split", "concat":
            guard let a = g.axis(of: node), a >= 2 else { return nil }
            return rowWise()
        case "slice":
            guard let a = g.axis(of: node), int("step", 1) == 1 else { return nil }
            guard a == 1 else { return rowWise() }
            let start = PythonSlice.indices(size: operandTypes[0].dims[0], start: int("start", 0), end: int("end", Int.max), step: 1)[0]
            attributes["start"] = .int(start)
            attributes["end"] = .int(start + d)
            return Narrowed(operands: [(1, start + d)], attributes: attributes)
        case "pad":
            guard let a = g.axis(of: node) else { return nil }
            guard a == 1 else { return rowWise() }
            let before = int("before", 0), read = min(operandTypes[0].dims[0], d - before)
            guard read >= 1 else { return nil }
            attributes["after"] = .int(d - before - read)
            return Narrowed(operands: [(1, read)], attributes: attributes)
        case "gather":
            guard let a = g.axis(of: node), case .ints(let indices)? = node.attributes["indices"] else { return nil }
            guard a == 1 else { return rowWise() }
            let used = Array(indices.prefix(d))
            attributes["indices"] = .ints(used)
            return Narrowed(operands: [(1, used.max()! + 1)], attributes: attributes)
        default:
            return nil
        }
    }
}
