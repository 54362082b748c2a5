import FlowIR

/// A set of element positions of one sample of a tensor, as bits: positions 0 ..< 64 in one word
/// held inline, the rest in an array that stays empty (no heap storage) when the capacity is at
/// most 64 — a value's dependencies are one set per element, and TarFlow's and most
/// autoregressive flows' sources have at most 64 positions.
struct PositionSet: Equatable {
    private var low: UInt64 = 0
    /// positions 64 ... , 64 per word
    private var high: [UInt64]

    init(capacity: Int) { high = capacity > 64 ? [UInt64](repeating: 0, count: (capacity - 1) / 64) : [] }

    mutating func insert(_ i: Int) {
        if i < 64 { low |= 1 << UInt64(i) } else { high[(i >> 6) - 1] |= 1 << UInt64(i & 63) }
    }
    func contains(_ i: Int) -> Bool {
        i < 64 ? low & (1 << UInt64(i)) != 0 : high[(i >> 6) - 1] & (1 << UInt64(i & 63)) != 0
    }
    mutating func formUnion(_ other: PositionSet) {
        low |= other.low
        for i in high.indices { high[i] |= other.high[i] }
    }
    var isEmpty: Bool { low == 0 && high.allSatisfy { $0 == 0 } }
    var members: [Int] {
        var out: [Int] = []
        for (w, word) in ([low] + high).enumerated() where word != 0 {
            for b in 0..<64 where word & (1 << UInt64(b)) != 0 { out.append(w * 64 + b) }
        }
        return out
    }
}

/// Which elements of a source value u each element of a downstream value depends on, within
/// one sample, read off the graph structurally: the exact zero pattern of constant matrices
/// (MADE masks, evaluated at compile time) and the index maps of shape ops. Ops without a rule
/// are treated conservatively (every output element depends on every input element).
struct DependencyAnalysis {
    let graph: Graph
    let source: ValueID
    let width: Int
    private(set) var evaluator: ConstantEvaluator
    /// per value in the block: per element of one sample, the positions of `source` it depends on
    private(set) var deps: [ValueID: [PositionSet]] = [:]

    init(graph: Graph, source: ValueID, evaluator: ConstantEvaluator) {
        self.graph = graph
        self.source = source
        self.width = graph.type(of: source).elementsPerSample
        self.evaluator = evaluator
        var identity: [PositionSet] = []
        for i in 0..<width { var s = PositionSet(capacity: width); s.insert(i); identity.append(s) }
        deps[source] = identity
    }

    func of(_ v: ValueID) -> [PositionSet]? { deps[v] }

    private func empty(_ count: Int) -> [PositionSet] { Array(repeating: PositionSet(capacity: width), count: count) }

    /// Per-sample C-order strides.
    private static func strides(_ dims: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: dims.count)
        var acc = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) { s[i] = acc; acc *= dims[i] }
        return s
    }

    /// Maps each element of `out` to the element of `dims` broadcasting to it (right-aligned).
    private static func broadcastSource(_ dims: [Int], to out: [Int]) -> [Int] {
        let count = out.reduce(1, *)
        let pad = out.count - dims.count
        let inStrides = strides(dims), outStrides = strides(out)
        return (0..<count).map { flat in
            var offset = 0
            for d in 0..<out.count {
                let index = (flat / outStrides[d]) % out[d]
                let k = d - pad
                if k >= 0 && dims[k] != 1 { offset += index * inStrides[k] }
            }
            return offset
        }
    }

    /// Propagates dependencies through `node` (operands outside the block depend on nothing).
    mutating func propagate(_ node: Node) throws {
        let outTypes = node.results.map { graph.type(of: $0) }
        let operandDeps = node.operands.map { deps[$0] }
        guard operandDeps.contains(where: { $0 != nil }) else { return }
        let out = outTypes[0].dims
        let count = outTypes[0].elementsPerSample
        func axisIndex(_ raw: Int, _ t: TensorType) -> Int { (raw < 0 ? raw + t.rank : raw) - (t.batched ? 1 : 0) }
        var result = empty(count)
        switch node.op {
        case _ where Self.elementwise.contains(node.op):
            // broadcast_like takes only its shape from the second operand
            for (i, d) in operandDeps.enumerated() where !(node.op == "broadcast_like" && i == 1) {
                guard let d else { continue }
                let map = Self.broadcastSource(graph.type(of: node.operands[i]).dims, to: out)
                for e in 0..<count { result[e].formUnion(d[map[e]]) }
            }
        case "reshape":
            result = operandDeps[0]!
        case "transpose":
            guard case .ints(let perm)? = node.attributes["perm"] else { return }
            let x = graph.type(of: node.operands[0])
            let p = x.batched ? perm.dropFirst().map { $0 - 1 } : perm
            let inStrides = Self.strides(x.dims), outStrides = Self.strides(out)
            for e in 0..<count {
                var offset = 0
                for d in 0..<out.count { offset += ((e / outStrides[d]) % out[d]) * inStrides[p[d]] }
                result[e] = operandDeps[0]![offset]
            }
        case "slice", "gather", "pad", "split", "concat":
            try propagateIndexMap(node, operandDeps)
            return
        case "linear" where operandDeps[1] == nil && (node.operands.count < 3 || operandDeps[2] == nil):
            let w = try evaluator.value(node.operands[1])
            let (n, k) = (w.shape[0], w.shape[1])
            let x = operandDeps[0]!
            // an output whose weight row has no zero reads the whole input row: that union is
            // computed once per row and shared (most products are dense; MADE's are masked)
            let dense = (0..<n).map { o in (0..<k).allSatisfy { w.values[o * k + $0] != 0 } }
            for row in 0..<(count / n) {
                var whole: PositionSet?
                for o in 0..<n {
                    if dense[o] {
                        if whole == nil {
                            whole = PositionSet(capacity: width)
                            for j in 0..<k { whole!.formUnion(x[row * k + j]) }
                        }
                        result[row * n + o] = whole!
                    } else {
                        for j in 0..<k where w.values[o * k + j] != 0 { result[row * n + o].formUnion(x[row * k + j]) }
                    }
                }
            }
        case "sum", "mean", "amax", "softmax", "cumsum", "layernorm":
            // union along the reduced / normalised axes
            let x = graph.type(of: node.operands[0])
            var axes: [Int]
            switch node.attributes["axes"] ?? node.attributes["axis"] {
            case .ints(let a)?: axes = a.map { axisIndex($0, x) }
            case .int(let a)?: axes = [axisIndex(a, x)]
            default: axes = [x.dims.count - 1]
            }
            var kept = x.dims
            for a in axes { kept[a] = 1 }
            let toKept = Self.broadcastSource(kept, to: x.dims)
            var lines = empty(kept.reduce(1, *))
            for e in 0..<x.elementsPerSample { lines[toKept[e]].formUnion(operandDeps[0]![e]) }
            let fromKept = Self.broadcastSource(kept, to: out)
            let keptCount = kept.reduce(1, *)
            for e in 0..<count { result[e] = lines[out.reduce(1, *) == keptCount ? e : fromKept[e]] }
            // layernorm's weight and bias are constants: they add no dependency

        case "attention":
            // o[t, head m] reads q[t, head m] and k, v[s, head m] for s ≤ t (all s when not causal)
            guard case .int(let heads)? = node.attributes["heads"], case .int(let causal)? = node.attributes["causal"] else { return }
            let (tokens, channels) = (out[0], out[1])
            guard graph.type(of: node.operands[1]).dims[0] == tokens else {
                // a decoding step over a cache: every output reads everything (conservative)
                var all = PositionSet(capacity: width)
                for d in operandDeps { d?.forEach { all.formUnion($0) } }
                result = Array(repeating: all, count: count)
                break
            }
            let d = channels / heads
            func union(_ operand: Int, _ t: Int, _ m: Int) -> PositionSet {
                var s = PositionSet(capacity: width)
                if let o = operandDeps[operand] { for j in 0..<d { s.formUnion(o[t * channels + m * d + j]) } }
                return s
            }
            for m in 0..<heads {
                var keysAndValues = PositionSet(capacity: width)
                if causal == 0 { for s in 0..<tokens { keysAndValues.formUnion(union(1, s, m)); keysAndValues.formUnion(union(2, s, m)) } }
                for t in 0..<tokens {
                    if causal != 0 { keysAndValues.formUnion(union(1, t, m)); keysAndValues.formUnion(union(2, t, m)) }
                    var reads = union(0, t, m)
                    reads.formUnion(keysAndValues)
                    for j in 0..<d { result[t * channels + m * d + j] = reads }
                }
            }
        case "rq_spline", "rq_spline_inverse", "rq_spline_logderiv":
            if let x = operandDeps[0] { result = x }
            for d in operandDeps.dropFirst() {
                guard let d else { continue }
                let knots = d.count / count
                for e in 0..<count { for k in 0..<knots { result[e].formUnion(d[e * knots + k]) } }
            }
        default:
            var all = PositionSet(capacity: width)
            for d in operandDeps { d?.forEach { all.formUnion($0) } }
            result = Array(repeating: all, count: count)
        }
        deps[node.results[0]] = result
        if node.results.count > 1 { for r in node.results.dropFirst() { deps[r] = Array(repeating: result.reduce(into: PositionSet(capacity: width)) { $0.formUnion($1) }, count: graph.type(of: r).elementsPerSample) } }
    }

    static let elementwise: Set<String> = [
        "neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "tanh", "atanh", "sigmoid", "logit",
        "softplus", "relu", "gelu", "silu", "erf", "sin", "cos", "leaky_relu", "add", "sub", "mul", "div", "pow", "max", "min",
        "lt", "le", "gt", "ge", "eq", "ne", "select", "broadcast_like", "guided",
    ]

    /// slice, gather, pad, split, concat: each output element copies one input element (or none).
    private mutating func propagateIndexMap(_ node: Node, _ operandDeps: [[PositionSet]?]) throws {
        guard case .int(let rawAxis)? = node.attributes["axis"] else { return }
        let x = graph.type(of: node.operands[0])
        let axis = (rawAxis < 0 ? rawAxis + x.rank : rawAxis) - (x.batched ? 1 : 0)
        func around(_ dims: [Int]) -> (Int, Int, Int) { (dims[..<axis].reduce(1, *), dims[axis], dims[(axis + 1)...].reduce(1, *)) }
        /// builds an output from (operand index, position along axis) per output position
        func gatherFrom(_ sources: [(Int, Int)?], outDims: [Int]) -> [PositionSet] {
            let (outer, length, inner) = around(outDims)
            var result = empty(outer * length * inner)
            for o in 0..<outer {
                for (p, source) in sources.enumerated() {
                    guard let (operand, q) = source, let d = operandDeps[operand] else { continue }
                    let inDims = graph.type(of: node.operands[operand]).dims
                    let (_, inLength, _) = around(inDims)
                    for j in 0..<inner { result[(o * length + p) * inner + j] = d[(o * inLength + q) * inner + j] }
                }
            }
            return result
        }
        switch node.op {
        case "slice", "gather":
            guard let (_, indices) = node.selection(in: graph) else { return }
            deps[node.results[0]] = gatherFrom(indices.map { (0, $0) }, outDims: graph.type(of: node.results[0]).dims)
        case "pad":
            guard case .int(let before)? = node.attributes["before"] else { return }
            let outDims = graph.type(of: node.results[0]).dims
            deps[node.results[0]] = gatherFrom((0..<outDims[axis]).map { p in p >= before && p < before + x.dims[axis] ? (0, p - before) : nil }, outDims: outDims)
        case "concat":
            var sources: [(Int, Int)?] = []
            for (i, v) in node.operands.enumerated() { sources += (0..<graph.type(of: v).dims[axis]).map { (i, $0) } }
            deps[node.results[0]] = gatherFrom(sources, outDims: graph.type(of: node.results[0]).dims)
        case "split":
            var start = 0
            for r in node.results {
                let dims = graph.type(of: r).dims
                deps[r] = gatherFrom((0..<dims[axis]).map { (0, start + $0) }, outDims: dims)
                start += dims[axis]
            }
        default: return
        }
    }
}
