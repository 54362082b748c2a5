import FlowIR

/// Derives the inverse graph z → (x, ln |det ∂x/∂z|) from the forward graph by replaying the
/// steps of `InvertibilityAnalysis`: each undone op computes its unknown operand from its result
/// and its known operands (`InverseRule.invert`); values the forward graph computes from known
/// values (a coupling's conditioner) are recomputed on demand; slices and gathers collect the
/// pieces of their operand until they cover it. The inverse's log-det is minus the sum of the
/// undone ops' log-derivatives, evaluated at the recovered values.
public enum InversePass {
    /// With `guidance`, the inverse of a class-conditional flow's sample with classifier-free
    /// guidance (token-decodable causal blocks only).
    public static func run(_ forward: Graph, weights: WeightStore? = nil, causal: CausalInverseMode = .sequential, guidance: FlowGuidance? = nil) throws -> Graph {
        let steps = try InvertibilityAnalysis.analyze(forward, weights: weights)
        var builder = InverseBuilder(forward: forward, causal: causal)
        builder.guidance = guidance
        for step in steps { try builder.replay(step) }
        return try builder.finish()
    }
}

/// The state of one inverse derivation: the graph being built and where each forward value
/// lives in it.
struct InverseBuilder {
    let forward: Graph
    let producers: [Int?]
    var g = Graph()
    /// forward value → inverse-graph value
    var map: [ValueID: ValueID] = [:]
    /// Pieces of partly recovered values: forward value → axis → (indices, inverse-graph value) in order.
    var pieces: [ValueID: [Int: [([Int], ValueID)]]] = [:]
    var logDerivativeTotal: ValueID?
    let at = SourceLocation.synthetic("inverse")
    let causal: CausalInverseMode
    var guidance: FlowGuidance?
    /// For a loop body: values of the enclosing graph it may capture as extra inputs,
    /// the block values it must compute itself, and what it captured (enclosing ids, in order).
    var enclosing: [ValueID: ValueID] = [:]
    var ownValues: Set<ValueID> = []
    var captures: [ValueID] = []
    /// For a Jacobi chunk body: the enclosing graph, and its values captured so far.
    var outerGraph: Graph?
    var capturedOuter: [ValueID: ValueID] = [:]

    init(forward: Graph, causal: CausalInverseMode) {
        self.forward = forward
        self.producers = forward.producers()
        self.causal = causal
        let z = g.addInput(name: "z", type: forward.type(of: forward.outputs[0]))
        map[forward.outputs[0]] = z
        // context inputs (a class label) are inputs of the inverse too
        for (v, name) in zip(forward.inputs.dropFirst(), forward.inputNames.dropFirst()) { map[v] = g.addInput(name: name, type: forward.type(of: v)) }
    }

    /// A builder for one sweep of a causal block, as the body of a `fixed_point` loop.
    init(sweepOf block: CausalBlock, forward: Graph, enclosing: [ValueID: ValueID]) {
        self.forward = forward
        self.producers = forward.producers()
        self.causal = .sequential
        self.enclosing = enclosing
        self.ownValues = block.values.union([block.source])
        map[block.source] = g.addInput(name: "u", type: forward.type(of: block.source))
    }

    /// A builder for one Jacobi sweep on a chunk of `tokens` tokens of a token-decodable block, as
    /// the body of a `fixed_point` loop: its input is the chunk of u; values of the enclosing
    /// graph `outer` are captured as extra inputs when used.
    init(chunkOf block: CausalBlock, tokens: Int, forward: Graph, enclosing: [ValueID: ValueID], outer: Graph) {
        self.forward = forward
        self.producers = forward.producers()
        self.causal = .sequential
        self.enclosing = enclosing
        self.ownValues = block.values.union([block.source])
        self.outerGraph = outer
        var type = forward.type(of: block.source)
        type.dims[0] = tokens
        _ = g.addInput(name: "u", type: type)
    }

    /// A value of the enclosing graph as an input of this body (once per value).
    mutating func capture(_ outer: ValueID) -> ValueID {
        guard let outerGraph else { return outer }
        if let v = capturedOuter[outer] { return v }
        let v = g.addInput(name: "c\(captures.count)", type: outerGraph.type(of: outer))
        captures.append(outer)
        capturedOuter[outer] = v
        return v
    }

    /// The inverse-graph value of a known forward value, recomputing forward ops as needed.
    mutating func materialize(_ value: ValueID) throws -> ValueID {
        if let v = map[value] { return v }
        var stack = [value]
        while let top = stack.last {
            if map[top] != nil { stack.removeLast(); continue }
            if !ownValues.contains(top), let outer = enclosing[top] {
                map[top] = g.addInput(name: "c\(captures.count)", type: forward.type(of: top))
                captures.append(outer)
                stack.removeLast()
                continue
            }
            guard let p = producers[top] else {
                throw FlowError("internal: the inverse needs forward value \(top) before it is recovered", at: at)
            }
            let node = forward.nodes[p]
            let missing = node.operands.filter { map[$0] == nil }
            if missing.isEmpty {
                let results = try g.append(node.op, node.operands.map { map[$0]! }, node.attributes, at: node.location)
                for (r, v) in zip(node.results, results) { map[r] = v }
                stack.removeLast()
            } else {
                stack += missing
            }
        }
        return map[value]!
    }

    mutating func replay(_ step: InversionStep) throws {
        if let block = step.causal { return try replayCausal(block) }
        try undo(step, withLogDerivative: true)
    }

    /// An autoregressive block: the fixed-point iteration u ← f⁻¹(y; c(u)) from u = 0, unrolled
    /// for the block's number of sweeps, after which it is exact (zuko's MAF inverse does the
    /// same D passes). The log-derivative comes from the last sweep, whose conditioner values
    /// are already exact.
    mutating func replayCausal(_ block: CausalBlock) throws {
        _ = try materialize(block.output)
        var chunked: (Int, Double)?
        if case .jacobi(let tolerance, let chunk?) = causal { chunked = (chunk, tolerance) }
        if case .sequential = causal, enclosing.isEmpty { chunked = (1, 0) }
        if let (chunk, tolerance) = chunked, enclosing.isEmpty {
            // token by token with a key/value cache when the block allows it (TarFlow), or Jacobi
            // on chunks of tokens with the earlier chunks cached
            let (savedGraph, savedMap, savedTotal) = (g, map, logDerivativeTotal)
            do { return try decodeTokens(block, chunk: chunk, tolerance: tolerance) } catch let e as TokenDecoder.Unsupported {
                if guidance != nil {
                    throw FlowError("guided sampling needs an autoregressive block that decodes token by token; this one does not (\(e.reason))", at: forward.nodes[producers[block.output]!].location)
                }
                (g, map, logDerivativeTotal) = (savedGraph, savedMap, savedTotal)
            }
        } else if guidance != nil {
            throw FlowError("guided sampling needs the sequential inverse (token decoding), not Jacobi iteration", at: at)
        }
        var guess = try zeros(like: forward.type(of: block.source))
        var sequentialSweeps = block.sweeps
        if case .jacobi(let tolerance, _) = causal {
            // The loop runs at most sweeps - 1 times; one more sweep below adds the log-det.
            if block.sweeps > 1 {
                var sweep = InverseBuilder(sweepOf: block, forward: forward, enclosing: map)
                for step in block.steps { try sweep.undo(step, withLogDerivative: false) }
                sweep.g.outputs = [sweep.map[block.source]!]
                let body = g.bodies.count
                g.bodies.append(sweep.g)
                guess = try g.apply("fixed_point", [guess] + sweep.captures,
                                    ["body": .int(body), "sweeps": .int(block.sweeps - 1), "tolerance": .float(tolerance)], at: at)
            }
            sequentialSweeps = 1
        }
        for sweep in 0..<sequentialSweeps {
            for v in block.values { map.removeValue(forKey: v) }
            map[block.source] = guess
            for step in block.steps { try undo(step, withLogDerivative: sweep == sequentialSweeps - 1) }
            guess = map[block.source]!
        }
        for v in block.values { map.removeValue(forKey: v) }
        map[block.source] = guess
    }

    /// A batched tensor of zeros of the given type.
    mutating func zeros(like type: TensorType) throws -> ValueID {
        let z = g.inputs[0]
        let zType = g.type(of: z)
        let perSample = try g.apply("sum", [z], ["axes": .ints(Array(1..<zType.rank)), "keepdims": .int(1)], at: at)
        let column = try g.apply("reshape", [perSample], ["shape": .shape(batched: true, Array(repeating: 1, count: type.dims.count))], at: at)
        let zero = try g.apply("const", [], ["values": .floats([0]), "shape": .shape(batched: false, type.dims)], at: at)
        return try g.apply("broadcast_like", [zero, column], at: at)
    }

    mutating func undo(_ step: InversionStep, withLogDerivative: Bool) throws {
        let node = forward.nodes[step.node]
        switch node.op {
        case "concat":
            guard case .int(let rawAxis)? = node.attributes["axis"] else { fatalError("concat axis validated") }
            let y = try materialize(node.results[0])
            let axis = rawAxis < 0 ? rawAxis + forward.type(of: node.results[0]).rank : rawAxis
            var start = 0
            for operand in node.operands {
                let length = forward.type(of: operand).size(ofAxis: axis)!
                if map[operand] == nil {
                    map[operand] = try g.apply("slice", [y], ["axis": .int(axis), "start": .int(start), "end": .int(start + length)], at: node.location)
                }
                start += length
            }
        case "split":
            guard case .int(let axis)? = node.attributes["axis"] else { fatalError("split axis validated") }
            let parts = try node.results.map { try materialize($0) }
            map[node.operands[0]] = try g.apply("concat", parts, ["axis": .int(axis)], at: node.location)
        case "slice", "gather":
            try collect(node)
        default:
            guard let operand = step.operand, let rule = InverseRule.table[node.op] else {
                throw FlowError("internal: no inverse rule for \(node.op)", at: node.location)
            }
            var mapped = node
            mapped.results = [try materialize(node.results[0])]
            // The unknown operand is a typed placeholder: rules may read its type, never its value.
            let placeholder = g.newValue(forward.type(of: node.operands[operand]))
            mapped.operands = try node.operands.enumerated().map { i, v in i == operand ? placeholder : try materialize(v) }
            let recovered = try rule.invert(&g, mapped, operand)
            map[node.operands[operand]] = recovered
            mapped.operands[operand] = recovered
            if withLogDerivative { try addLogDerivative(rule, mapped, operand) }
        }
    }

    /// A slice or gather recovered some positions of its operand; once they cover the axis,
    /// the operand is the concatenation of the pieces, reordered.
    mutating func collect(_ node: Node) throws {
        let x = node.operands[0]
        guard let (axis, indices) = node.selection(in: forward), let size = forward.type(of: x).size(ofAxis: axis) else {
            fatalError("slice and gather select along a static axis")
        }
        pieces[x, default: [:]][axis, default: []].append((indices, try materialize(node.results[0])))
        guard map[x] == nil, let parts = pieces[x]?[axis] else { return }
        let covered = Set(parts.flatMap(\.0))
        guard covered.count == size else { return }
        // position p of x is taken from the first piece that holds it
        let all = parts.flatMap(\.0)
        var source = [Int](repeating: -1, count: size)
        for (offset, p) in all.enumerated() where source[p] < 0 { source[p] = offset }
        let joined = parts.count == 1 ? parts[0].1 : try g.apply("concat", parts.map(\.1), ["axis": .int(axis)], at: node.location)
        map[x] = source == Array(0..<size) && all.count == size ? joined
            : try g.apply("gather", [joined], ["axis": .int(axis), "indices": .ints(source)], at: node.location)
    }

    mutating func addLogDerivative(_ rule: InverseRule, _ node: Node, _ operand: Int) throws {
        let term: ValueID
        switch try rule.logDerivative(&g, node, operand) {
        case .zero: return
        case .perSample(let v): term = v
        case .elementwise(let t): term = try LogDetPass.sumPerSample(&g, t, over: g.type(of: node.results[0]), at: node.location)
        }
        logDerivativeTotal = try logDerivativeTotal.map { try g.apply("add", [$0, term], at: at) } ?? term
    }

    /// Outputs (x, ln |det ∂x/∂z|) = (x, -Σ ln |forward derivatives|).
    mutating func finish() throws -> Graph {
        guard let x = map[forward.inputs[0]] else {
            throw FlowError("internal: the inverse did not recover the input", at: at)
        }
        let zSum = try g.apply("sum", [g.inputs[0]], ["axes": .ints(Array(1..<g.type(of: g.inputs[0]).rank))], at: at)
        let total = try logDerivativeTotal ?? g.constant(0, at: at)
        let logdet = try g.apply("broadcast_like", [try g.apply("neg", [total], at: at), zSum], at: at)
        g.outputs = [x, logdet]
        try Verifier.verify(g)
        return g
    }
}
