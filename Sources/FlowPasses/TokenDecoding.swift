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
    /// Replays a causal block by token decoding — one token at a time (`chunk` nil), or Jacobi
    /// iteration on chunks of `chunk` tokens — and throws `TokenDecoder.Unsupported` (with nothing
    /// built) when the block does not allow it.
    mutating func decodeTokens(_ block: CausalBlock, chunk: Int? = nil, tolerance: Double = 0) throws {
        let decoder = try TokenDecoder(forward: forward, block: block, guidance: guidance)
        var state = TokenState(decoder: decoder)
        let step = max(1, min(chunk ?? 1, decoder.tokens))
        for start in stride(from: 0, to: decoder.tokens, by: step) {
            let range = start..<min(start + step, decoder.tokens)
            state.current = start
            if range.count > 1 {
                // Jacobi sweeps on the chunk, from zeros, until no value moves by more than
                // tolerance·(1 + |u|), at most one sweep per token (then exact)
                let guess = try jacobiChunk(block, range, tolerance: tolerance, &state)
                state.slices[.conditional, default: [:]][block.source, default: [:]][range] = guess
            }
            // the chunk's conditioner from the recovered (or iterated) tokens, its values cached for
            // the later chunks, and the elementwise steps undone: u on the chunk and its log-det
            let recovered = try undoSteps(block, range, &state, logDerivative: true)
            state.slices[.conditional, default: [:]][block.source, default: [:]][range] = recovered
        }
        for v in block.values { map.removeValue(forKey: v) }
        map[block.source] = try slice(block.source, 0..<decoder.tokens, &state, .conditional)
    }

    /// Undoes the block's elementwise steps on a token range; returns u there.
    mutating func undoSteps(_ block: CausalBlock, _ range: Range<Int>, _ state: inout TokenState, logDerivative: Bool) throws -> ValueID {
        let saved = map
        for step in block.steps {
            let node = forward.nodes[step.node]
            for (i, v) in node.operands.enumerated() where i != step.operand && v != block.source {
                map[v] = try slice(v, range, &state, .conditional)
            }
            if step.node == block.steps.first!.node { map[node.results[0]] = try slice(node.results[0], range, &state, .conditional) }
            try undo(step, withLogDerivative: logDerivative)
        }
        guard let recovered = map[block.source] else { throw FlowError("internal: token decoding did not recover the source", at: at) }
        // the full-size values of the enclosing graph again
        for step in block.steps {
            let node = forward.nodes[step.node]
            for v in node.operands + node.results { map[v] = saved[v] }
        }
        map[block.source] = saved[block.source]
        return recovered
    }

    /// A `fixed_point` loop whose body is one Jacobi sweep on the chunk `range`: the conditioner
    /// on the chunk from the guess (earlier tokens from the cache, captured), the steps undone.
    mutating func jacobiChunk(_ block: CausalBlock, _ range: Range<Int>, tolerance: Double, _ state: inout TokenState) throws -> ValueID {
        var body = InverseBuilder(chunkOf: block, tokens: range.count, forward: forward, enclosing: map, outer: g)
        body.guidance = guidance
        var bodyState = TokenState(decoder: state.decoder)
        bodyState.outer = state.slices
        bodyState.current = range.lowerBound
        bodyState.slices[.conditional, default: [:]][block.source, default: [:]][range] = body.g.inputs[0]
        body.g.outputs = [try body.undoSteps(block, range, &bodyState, logDerivative: false)]
        let index = g.bodies.count
        g.bodies.append(body.g)
        var uType = forward.type(of: block.source)
        uType.dims[0] = range.count
        return try g.apply("fixed_point", [try zeros(like: uType)] + body.captures,
                           ["body": .int(index), "sweeps": .int(range.count), "tolerance": .float(tolerance)], at: at)
    }

    /// The two evaluations of a guided sample: with the label, and with the null label (and the
    /// unconditional attention temperature). Unguided decoding uses only the first.
    enum Branch { case conditional, unconditional }

    /// What has been computed: branch → block value → token range → value [B, |range|, …]. In a
    /// Jacobi body, `outer` holds the enclosing graph's pieces (captured when used).
    struct TokenState {
        let decoder: TokenDecoder
        var slices: [Branch: [ValueID: [Range<Int>: ValueID]]] = [:]
        var outer: [Branch: [ValueID: [Range<Int>: ValueID]]] = [:]
        var current = 0

        /// Whether v is computed token by token on this branch: u and the block's values, and on
        /// the unconditional branch also the values of the label alone.
        func recomputed(_ v: ValueID, _ branch: Branch) -> Bool {
            decoder.block.values.contains(v) || v == decoder.block.source || (branch == .unconditional && decoder.contextDependent.contains(v))
        }

        /// Where v's pieces are kept: values shared by both branches (u itself among them) live on
        /// the conditional one.
        func home(_ v: ValueID, _ branch: Branch) -> Branch {
            branch == .unconditional && (decoder.block.values.contains(v) || decoder.contextDependent.contains(v)) ? .unconditional : .conditional
        }
    }

    /// Value v on the token range `r` ([B, |r|, …]) on a branch: assembled from computed pieces,
    /// the missing runs computed from their operands (block values, and on the unconditional
    /// branch the values of the label alone) or sliced from the known full value.
    mutating func slice(_ v: ValueID, _ r: Range<Int>, _ state: inout TokenState, _ branch: Branch) throws -> ValueID {
        let decoder = state.decoder
        let (recomputed, home) = (state.recomputed(v, branch), state.home(v, branch))
        if let s = state.slices[home]?[v]?[r] { return s }
        guard recomputed else { return try knownSlice(v, r, &state, branch) }
        if decoder.tokenAxis(v) == nil && v != decoder.block.source {
            // a value of the label alone without tokens (a class embedding), on the unconditional branch
            if forward.inputs.dropFirst().contains(v) { return try knownSlice(v, r, &state, branch) }
            let whole = try compute(v, r, &state, branch)
            state.slices[home, default: [:]][v, default: [:]][r] = whole
            return whole
        }
        // cover r by computed pieces (own, or the enclosing graph's), computing the gaps
        var parts: [ValueID] = []
        var p = r.lowerBound
        while p < r.upperBound {
            if let (range, value) = try piece(v, at: p, home, &state) {
                let end = min(range.upperBound, r.upperBound)
                parts.append(range == p..<end ? value : try g.apply("slice", [value], ["axis": .int(1), "start": .int(p - range.lowerBound), "end": .int(end - range.lowerBound)], at: at))
                p = end
                continue
            }
            var q = p + 1
            while q < r.upperBound, try piece(v, at: q, home, &state) == nil { q += 1 }
            if v == decoder.block.source {
                throw TokenDecoder.Unsupported(reason: "token \(p) of the source is read before it is recovered (at token \(state.current))")
            }
            parts.append(try compute(v, p..<q, &state, branch))
            p = q
        }
        let result = parts.count == 1 ? parts[0] : try g.apply("concat", parts, ["axis": .int(1)], at: at)
        state.slices[home, default: [:]][v, default: [:]][r] = result
        return result
    }

    /// A computed piece of v holding token p: its range and value (captured from the enclosing graph when it is there).
    mutating func piece(_ v: ValueID, at p: Int, _ home: Branch, _ state: inout TokenState) throws -> (Range<Int>, ValueID)? {
        // the piece reaching furthest (fewest concatenations)
        func best(_ pieces: [Range<Int>: ValueID]?) -> (Range<Int>, ValueID)? {
            pieces?.filter { $0.key.contains(p) }.max { ($0.key.upperBound, -$0.key.lowerBound) < ($1.key.upperBound, -$1.key.lowerBound) }.map { ($0.key, $0.value) }
        }
        if let found = best(state.slices[home]?[v]) { return found }
        guard let (range, value) = best(state.outer[home]?[v]) else { return nil }
        let captured = capture(value)
        state.slices[home, default: [:]][v, default: [:]][range] = captured
        return (range, captured)
    }

    /// A value that is not recomputed: its tokens r when it has the token axis, else whole; on the
    /// unconditional branch, a label input is the null label.
    mutating func knownSlice(_ v: ValueID, _ r: Range<Int>, _ state: inout TokenState, _ branch: Branch) throws -> ValueID {
        if branch == .unconditional, let null = state.decoder.guidance?.nullLabel, forward.inputs.dropFirst().contains(v) {
            let zero = try zeros(like: forward.type(of: v))
            return try g.apply("add", [zero, try g.constant(null, at: at)], at: at)
        }
        let full = try materialize(v)
        let result = try state.decoder.tokenAxis(v).map {
            try g.apply("slice", [full], ["axis": .int($0), "start": .int(r.lowerBound), "end": .int(r.upperBound)], at: at)
        } ?? full
        state.slices[.conditional, default: [:]][v, default: [:]][r] = result
        return result
    }

    /// Block value v on tokens r from its producer's operands.
    mutating func compute(_ v: ValueID, _ r: Range<Int>, _ state: inout TokenState, _ branch: Branch) throws -> ValueID {
        let decoder = state.decoder
        let node = forward.nodes[decoder.producers[v]!]
        let rank = forward.type(of: v).rank
        let tokenAxis = decoder.tokenAxis(v) != nil
        func tokenAxisAttribute() -> Bool {
            guard tokenAxis, case .int(let a)? = node.attributes["axis"] else { return false }
            return (a < 0 ? a + rank : a) == 1
        }
        /// operand on tokens r' (computed on this branch, or known)
        func operand(_ o: ValueID, _ r2: Range<Int>) throws -> ValueID {
            state.recomputed(o, branch) ? try slice(o, r2, &state, branch) : try knownOperand(o, of: node, r2, &state)
        }
        /// a batch-shaped constant of n tokens
        func filler(_ n: Int, _ value: Double) throws -> ValueID {
            var type = forward.type(of: v)
            type.dims[0] = n
            let zero = try zeros(like: type)
            return value == 0 ? zero : try g.apply("add", [zero, try g.constant(value, at: node.location)], at: node.location)
        }
        func joined(_ parts: [ValueID]) throws -> ValueID { parts.count == 1 ? parts[0] : try g.apply("concat", parts, ["axis": .int(1)], at: node.location) }
        let results: [ValueID]
        switch node.op {
        case "attention" where tokenAxis:
            // queries on r; keys and values of tokens 0 … r.upper − 1: the cache and r itself
            var attributes = node.attributes
            if branch == .unconditional, let temperature = decoder.guidance?.attentionTemperature { attributes["temperature"] = .float(temperature) }
            let prefix = 0..<r.upperBound
            results = try g.append("attention", [try operand(node.operands[0], r), try operand(node.operands[1], prefix), try operand(node.operands[2], prefix)], attributes, at: node.location)
        case "guided":
            let mine = try operand(node.operands[0], r)
            guard branch == .conditional, let guidance = decoder.guidance, guidance.applies(to: node) else { results = [mine]; break }
            // x_c + g·(x_c − x_∅), g annealed as g·t/(T − 1) at token t when asked (TarFlow's reverse)
            let scales = r.map { guidance.annealed ? guidance.scale * Double($0) / Double(max(1, decoder.tokens - 1)) : guidance.scale }
            let scale = scales.count == 1 ? try g.constant(scales[0], at: node.location)
                : try g.apply("const", [], ["values": .floats(scales), "shape": .shape(batched: false, [scales.count] + Array(repeating: 1, count: forward.type(of: v).dims.count - 1))], at: node.location)
            let difference = try g.apply("sub", [mine, try slice(node.operands[0], r, &state, .unconditional)], at: node.location)
            results = [try g.apply("add", [mine, try g.apply("mul", [difference, scale], at: node.location)], at: node.location)]
        case "pad" where tokenAxisAttribute():
            guard case .int(let before)? = node.attributes["before"], case .float(let value)? = node.attributes["value"] else { fatalError("pad attributes verified") }
            let inner = before..<(before + forward.type(of: node.operands[0]).dims[0])
            var parts: [ValueID] = []
            if r.lowerBound < inner.lowerBound { parts.append(try filler(min(r.upperBound, inner.lowerBound) - r.lowerBound, value)) }
            let (from, to) = (max(r.lowerBound, inner.lowerBound), min(r.upperBound, inner.upperBound))
            if from < to { parts.append(try operand(node.operands[0], (from - before)..<(to - before))) }
            if r.upperBound > inner.upperBound { parts.append(try filler(r.upperBound - max(r.lowerBound, inner.upperBound), value)) }
            results = [try joined(parts)]
        case "slice" where tokenAxisAttribute(), "gather" where tokenAxisAttribute():
            guard let (_, indices) = node.selection(in: forward) else { fatalError("selection along a static axis") }
            // runs of consecutive source tokens (ascending, or descending as a flip does)
            let picked = r.map { indices[$0] }
            var parts: [ValueID] = []
            var i = 0
            while i < picked.count {
                var j = i + 1
                let up = j < picked.count && picked[j] == picked[i] + 1
                while j < picked.count && picked[j] == picked[j - 1] + (up ? 1 : -1) { j += 1 }
                let low = min(picked[i], picked[j - 1]), high = max(picked[i], picked[j - 1])
                let run = try operand(node.operands[0], low..<(high + 1))
                parts.append(up || j - i == 1 ? run : try g.apply("gather", [run], ["axis": .int(1), "indices": .ints(Array((0..<(j - i)).reversed()))], at: node.location))
                i = j
            }
            results = [try joined(parts)]
        case "concat" where tokenAxisAttribute():
            var parts: [ValueID] = []
            var offset = 0
            for o in node.operands {
                let length = forward.type(of: o).dims[0]
                let (from, to) = (max(r.lowerBound, offset), min(r.upperBound, offset + length))
                if from < to { parts.append(try operand(o, (from - offset)..<(to - offset))) }
                offset += length
            }
            results = [try joined(parts)]
        case "broadcast_like" where tokenAxis:
            // the second operand gives only the shape
            results = [try g.apply("broadcast_like", [try operand(node.operands[0], r), try filler(r.count, 0)], at: node.location)]
        default:
            results = try g.append(node.op, try node.operands.map { try operand($0, r) }, node.attributes, at: node.location)
        }
        let home = state.home(v, branch)
        for (result, value) in zip(node.results, results) where decoder.tokenAxis(result) != nil {
            state.slices[home, default: [:]][result, default: [:]][r] = value
        }
        return results[node.results.firstIndex(of: v)!]
    }

    /// A known operand of a token-wise node on tokens r: sliced along the axis that lines up
    /// with the tokens when it has their full length there, else whole (broadcast).
    mutating func knownOperand(_ v: ValueID, of node: Node, _ r: Range<Int>, _ state: inout TokenState) throws -> ValueID {
        let type = forward.type(of: v), out = forward.type(of: node.results[0])
        if type.batched {
            // per token when it runs along the output's tokens, else whole
            return type.dims.count == out.dims.count && state.decoder.tokenAxis(v) != nil ? try knownSlice(v, r, &state, .conditional) : try materialize(v)
        }
        let full = try materialize(v)
        // right-aligned broadcasting: the output's token axis is per-sample axis 0
        let axis = type.dims.count - out.dims.count
        guard state.decoder.tokenAxis(node.results[0]) != nil, axis >= 0, type.dims[axis] == state.decoder.tokens,
              DependencyAnalysis.elementwise.contains(node.op) else { return full }
        return try g.apply("slice", [full], ["axis": .int(axis), "start": .int(r.lowerBound), "end": .int(r.upperBound)], at: node.location)
    }
}
