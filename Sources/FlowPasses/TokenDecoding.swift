import FlowIR

/// Sequential decoding of a causal block token by token, with a key/value cache: the inverse of
/// a Transformer autoregressive step (TarFlow) in O(T) token evaluations instead of T sweeps of
/// the whole conditioner over all T tokens.
///
/// At token t the block's values are computed only at t ("token slices"), from the slices of
/// their operands: token-wise ops (linear, layernorm, elementwise, splits along features) map
/// slices to slices; `attention` reads the query at t and the keys and values of tokens 0 … t —
/// the slices computed so far, which are the cache; a shift along the tokens (pad + slice) reads
/// an earlier token's slice. Then the block's elementwise steps are undone at t, recovering u_t.
/// Any other op, or a read of a token not yet recovered, makes the block not token-decodable and
/// the sweeps of `replayCausal` are used instead.
struct TokenDecoder {
    /// Why a block cannot be decoded token by token.
    struct Unsupported: Error { var reason: String }

    let forward: Graph
    let block: CausalBlock
    let producers: [Int?]
    let tokens: Int
    /// Classifier-free guidance of the sample (nil: none).
    let guidance: FlowGuidance?
    /// Forward values computed from the context inputs (the label) alone: recomputed with the
    /// null label on the unconditional branch of a guided sample.
    let contextDependent: Set<ValueID>
    /// Ops that act on each token separately (their axis attributes never name the token axis,
    /// checked in `supports`).
    static let tokenwise: Set<String> = DependencyAnalysis.elementwise.union(["linear", "layernorm", "softmax", "sum", "mean", "amax", "split", "slice", "concat", "gather", "pad"])

    init(forward: Graph, block: CausalBlock, guidance: FlowGuidance?) throws {
        self.forward = forward
        self.block = block
        self.producers = forward.producers()
        self.guidance = guidance
        // values of the label alone (not of x): the class embedding; values that also depend on
        // x are either block values (recomputed anyway) or known values shared by both branches
        var context = Set(forward.inputs.dropFirst()), data: Set<ValueID> = [forward.inputs[0]]
        for node in forward.nodes {
            if node.operands.contains(where: data.contains) { data.formUnion(node.results) }
            if node.operands.contains(where: context.contains) { context.formUnion(node.results) }
        }
        contextDependent = context.subtracting(data)
        let u = forward.type(of: block.source)
        guard u.batched, u.dims.count >= 2 else { throw Unsupported(reason: "the source has no token axis") }
        tokens = u.dims[0]
        for v in block.values {
            guard let p = producers[v] else { continue }
            try supports(forward.nodes[p])
        }
    }

    /// The token axis (full-rank index 1) of a value: block values all have it (a shift may
    /// change its length); a known value has it when its per-sample axis 0 has the source's length.
    func tokenAxis(_ v: ValueID) -> Int? {
        let t = forward.type(of: v)
        guard t.batched, t.dims.count >= 2 else { return nil }
        return block.values.contains(v) || t.dims[0] == tokens ? 1 : nil
    }

    func supports(_ node: Node) throws {
        for r in node.results where block.values.contains(r) && tokenAxis(r) == nil {
            throw Unsupported(reason: "\(node.op) produces a value without the token axis")
        }
        if node.op == "attention" || node.op == "guided" { return }
        guard Self.tokenwise.contains(node.op) else { throw Unsupported(reason: "\(node.op) is not token-wise") }
        let rank = forward.type(of: node.results[0]).rank
        for key in ["axis", "axes"] {
            switch node.attributes[key] {
            case .int(let a)?:
                if (a < 0 ? a + rank : a) == 1 && !["pad", "slice", "gather", "concat"].contains(node.op) {
                    throw Unsupported(reason: "\(node.op) acts along the token axis")
                }
            case .ints(let axes)?:
                if axes.contains(where: { ($0 < 0 ? $0 + rank : $0) == 1 }) { throw Unsupported(reason: "\(node.op) reduces over the tokens") }
            default: break
            }
        }
    }
}

extension InverseBuilder {
    /// Replays a causal block by token decoding; throws `TokenDecoder.Unsupported` (with nothing
    /// built) when the block does not allow it.
    mutating func decodeTokens(_ block: CausalBlock) throws {
        let decoder = try TokenDecoder(forward: forward, block: block, guidance: guidance)
        let saved = map
        var state = TokenState(decoder: decoder)
        for t in 0..<decoder.tokens {
            state.current = t
            // the steps' known operands and the block output at token t, then undo them
            for step in block.steps {
                let node = forward.nodes[step.node]
                for (i, v) in node.operands.enumerated() where i != step.operand && v != block.source {
                    map[v] = try slice(v, t, &state, .conditional)
                }
                if map[node.results[0]] == nil || step.node == block.steps.first!.node { map[node.results[0]] = try slice(node.results[0], t, &state, .conditional) }
                try undo(step, withLogDerivative: true)
            }
            guard let recovered = map[block.source] else { throw FlowError("internal: token decoding did not recover the source", at: at) }
            state.slices[.conditional, default: [:]][block.source, default: [:]][t] = recovered
            // restore the full-size values of the enclosing graph for the next token
            for step in block.steps {
                let node = forward.nodes[step.node]
                for v in node.operands + node.results { map[v] = saved[v] }
            }
        }
        for v in block.values { map.removeValue(forKey: v) }
        let pieces = (0..<decoder.tokens).map { state.slices[.conditional]![block.source]![$0]! }
        map[block.source] = pieces.count == 1 ? pieces[0] : try g.apply("concat", pieces, ["axis": .int(1)], at: at)
    }

    /// The two evaluations of a guided sample: with the label, and with the null label (and the
    /// unconditional attention temperature). Unguided decoding uses only the first.
    enum Branch { case conditional, unconditional }

    /// The slices computed so far: branch → block value → token → value of shape [B, 1, …].
    struct TokenState {
        let decoder: TokenDecoder
        var slices: [Branch: [ValueID: [Int: ValueID]]] = [:]
        var current = 0
        func cached(_ v: ValueID, _ t: Int, _ branch: Branch) -> ValueID? { slices[branch]?[v]?[t] }
    }

    /// Value v at token t ([B, 1, …]) on a branch, computing it from its operands' slices when it
    /// is a block value (or, on the unconditional branch, a value computed from the label), or
    /// slicing the known full value otherwise.
    mutating func slice(_ v: ValueID, _ t: Int, _ state: inout TokenState, _ branch: Branch) throws -> ValueID {
        let decoder = state.decoder
        let recomputed = decoder.block.values.contains(v) || (branch == .unconditional && decoder.contextDependent.contains(v))
        // values shared by both branches live on the conditional one
        let home: Branch = recomputed ? branch : .conditional
        if let s = state.cached(v, t, home) { return s }
        if v == decoder.block.source {
            throw TokenDecoder.Unsupported(reason: "token \(t) of the source is read before it is recovered (at token \(state.current))")
        }
        if branch == .unconditional, let null = decoder.guidance?.nullLabel, forward.inputs.dropFirst().contains(v) {
            // the null label ∅, batch-shaped
            let zero = try zeros(like: forward.type(of: v))
            let result = try g.apply("add", [zero, try g.constant(null, at: at)], at: at)
            state.slices[branch, default: [:]][v, default: [:]][t] = result
            return result
        }
        guard recomputed, let p = decoder.producers[v] else {
            // a known value: its token t if it has the token axis, else the whole value
            let full = try materialize(v)
            let result = try decoder.tokenAxis(v).map { try g.apply("slice", [full], ["axis": .int($0), "start": .int(t), "end": .int(t + 1)], at: at) } ?? full
            state.slices[.conditional, default: [:]][v, default: [:]][t] = result
            return result
        }
        let node = forward.nodes[p]
        let rank = forward.type(of: v).rank
        let tokenAxis = decoder.tokenAxis(v) != nil
        func tokenAxisAttribute() -> Bool {
            guard tokenAxis, case .int(let a)? = node.attributes["axis"] else { return false }
            return (a < 0 ? a + rank : a) == 1
        }
        let results: [ValueID]
        switch node.op {
        case "attention" where tokenAxis:
            // the query at t; keys and values of tokens 0 … t: the cache
            let q = try slice(node.operands[0], t, &state, branch)
            let k = try (0...t).map { try slice(node.operands[1], $0, &state, branch) }
            let vs = try (0...t).map { try slice(node.operands[2], $0, &state, branch) }
            func joined(_ parts: [ValueID]) throws -> ValueID { parts.count == 1 ? parts[0] : try g.apply("concat", parts, ["axis": .int(1)], at: node.location) }
            var attributes = node.attributes
            if branch == .unconditional, let temperature = decoder.guidance?.attentionTemperature { attributes["temperature"] = .float(temperature) }
            results = try g.append("attention", [q, try joined(k), try joined(vs)], attributes, at: node.location)
        case "guided":
            let own = try slice(node.operands[0], t, &state, branch)
            guard branch == .conditional, let guidance = decoder.guidance, guidance.applies(to: node) else { results = [own]; break }
            // x_c + g·(x_c − x_∅), g annealed as g·t/(T − 1) when asked (TarFlow's reverse)
            let scale = guidance.annealed ? guidance.scale * Double(t) / Double(max(1, decoder.tokens - 1)) : guidance.scale
            let unconditional = try slice(node.operands[0], t, &state, .unconditional)
            let difference = try g.apply("sub", [own, unconditional], at: node.location)
            results = [try g.apply("add", [own, try g.apply("mul", [difference, try g.constant(scale, at: node.location)], at: node.location)], at: node.location)]
        case "pad" where tokenAxisAttribute():
            guard case .int(let before)? = node.attributes["before"], case .float(let value)? = node.attributes["value"] else { fatalError("pad attributes verified") }
            let inner = forward.type(of: node.operands[0]).dims[0]
            if t >= before && t < before + inner {
                results = [try slice(node.operands[0], t - before, &state, branch)]
            } else {
                // the padding value at one token, batch-shaped without reading any token
                var type = forward.type(of: v)
                type.dims[0] = 1
                let zero = try zeros(like: type)
                results = [value == 0 ? zero : try g.apply("add", [zero, try g.constant(value, at: node.location)], at: node.location)]
            }
        case "concat" where tokenAxisAttribute():
            // token t is token t − (tokens of the operands before it) of the operand holding it
            var local = t
            var chosen = node.operands[0]
            for operand in node.operands {
                let length = forward.type(of: operand).dims[0]
                chosen = operand
                if local < length { break }
                local -= length
            }
            let ownBranch = decoder.block.values.contains(chosen) || chosen == decoder.block.source
                || (branch == .unconditional && decoder.contextDependent.contains(chosen))
            results = [ownBranch ? try slice(chosen, local, &state, branch) : try knownOperand(chosen, of: node, local, &state)]
        case "broadcast_like" where tokenAxis:
            // the second operand gives only the shape: a batch-shaped zero of one token
            var type = forward.type(of: v)
            type.dims[0] = 1
            let operand = node.operands[0]
            let ownBranch = decoder.block.values.contains(operand) || operand == decoder.block.source
                || (branch == .unconditional && decoder.contextDependent.contains(operand))
            let value = ownBranch ? try slice(operand, t, &state, branch) : try knownOperand(operand, of: node, t, &state)
            results = [try g.apply("broadcast_like", [value, try zeros(like: type)], at: node.location)]
        case "slice" where tokenAxisAttribute(), "gather" where tokenAxisAttribute():
            guard let (_, indices) = node.selection(in: forward) else { fatalError("selection along a static axis") }
            results = [try slice(node.operands[0], indices[t], &state, branch)]
        default:
            let operands = try node.operands.map { operand -> ValueID in
                let ownBranch = decoder.block.values.contains(operand) || operand == decoder.block.source
                    || (branch == .unconditional && decoder.contextDependent.contains(operand))
                if ownBranch { return try slice(operand, t, &state, branch) }
                return try knownOperand(operand, of: node, t, &state)
            }
            results = try g.append(node.op, operands, node.attributes, at: node.location)
        }
        for (r, value) in zip(node.results, results) { state.slices[home, default: [:]][r, default: [:]][t] = value }
        return state.slices[home]![v]![t]!
    }

    /// A known operand of a token-wise node at token t: sliced along the axis that broadcasts
    /// against the token axis when it has the full token length there, else whole.
    mutating func knownOperand(_ v: ValueID, of node: Node, _ t: Int, _ state: inout TokenState) throws -> ValueID {
        let full = try materialize(v)
        let type = forward.type(of: v), out = forward.type(of: node.results[0])
        if type.batched {
            // per token when it runs along the output's tokens, else broadcast whole
            return type.dims.count == out.dims.count && state.decoder.tokenAxis(v) != nil ? try slice(v, t, &state, .conditional) : full
        }
        // right-aligned broadcasting: the output's token axis is per-sample axis 0
        let axis = type.dims.count - out.dims.count
        guard state.decoder.tokenAxis(node.results[0]) != nil, axis >= 0, type.dims[axis] == state.decoder.tokens, DependencyAnalysis.elementwise.contains(node.op) else { return full }
        return try g.apply("slice", [full], ["axis": .int(axis), "start": .int(t), "end": .int(t + 1)], at: node.location)
    }
}
