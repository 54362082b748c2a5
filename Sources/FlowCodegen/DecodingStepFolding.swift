import FlowIR

/// Token-by-token decoding repeats the same few ops at every position: the attention of one
/// query over a key/value cache that grows by a token per step, the slice that reads token i,
/// the concat that appends to the cache — TarFlow's sampler had 16 kernels of each, differing
/// only in that position. The position is only an offset, a length or a loop bound, so one
/// kernel serves them all: its own graph types the varying axis as one token (attention keys,
/// the cache operand of a concat) or starts the slice at 0, its node carries
/// `positionAttribute`, and the caller passes the position as the kernel's `extent` argument:
///
///     attention(q, k: [B, S, C], v)      extent = S (the key count)
///     slice(x, axis=1, start=i, end=i+n) extent = i (the first index)
///     concat(cache: [B, t, C], new, axis=1) extent = t (the cache length)
enum DecodingStepFolding {
    /// Marks a node whose position is the kernel's `extent` argument.
    static let positionAttribute = "position_at_run_time"

    struct Folded {
        var kernel: Kernel
        var graph: Graph
        /// The position the caller passes.
        var extent: Int
    }

    static func fold(_ k: Kernel, in g: Graph) -> Folded? {
        guard case .single(let node) = k.body, k.outputs.count == 1, node.results.count == 1 else { return nil }
        var types = (k.inputs + k.outputs).map { g.type(of: $0) }
        var attributes = node.attributes
        let extent: Int
        switch node.op {
        case "attention":
            let keys = g.type(of: node.operands[1])
            guard keys.batched, keys.dims.count == 2, keys == g.type(of: node.operands[2]) else { return nil }
            for (i, v) in k.inputs.enumerated() where v == node.operands[1] || v == node.operands[2] { types[i].dims[0] = 1 }
            extent = keys.dims[0]
        case "slice":
            let x = g.type(of: node.operands[0])
            guard x.batched, case .int(let axis)? = node.attributes["axis"], axis == 1 || axis == 1 - x.rank,
                  case .int(1)? = node.attributes["step"], let size = x.size(ofAxis: 1),
                  case .int(let start)? = node.attributes["start"], case .int(let end)? = node.attributes["end"] else { return nil }
            let indices = PythonSlice.indices(size: size, start: start, end: end, step: 1)
            guard let first = indices.first else { return nil }
            attributes["start"] = .int(0)
            attributes["end"] = .int(indices.count)
            extent = first
        case "concat":
            let (cache, output) = (g.type(of: node.operands[0]), g.type(of: node.results[0]))
            guard node.operands.count == 2, cache.batched, g.type(of: node.operands[1]).batched, cache.dims.count >= 2,
                  case .int(let axis)? = node.attributes["axis"], axis == 1 || axis == 1 - output.rank,
                  k.inputs == node.operands else { return nil }
            types[0].dims[0] = 1
            types[types.count - 1].dims[0] = 1 + g.type(of: node.operands[1]).dims[0]
            extent = cache.dims[0]
        default:
            return nil
        }
        attributes[positionAttribute] = .int(1)
        var folded = Graph()
        let inputs = k.inputs.indices.map { folded.addInput(name: "p\($0)", type: types[$0]) }
        let output = folded.newValue(types[types.count - 1])
        let operands = node.operands.map { v in inputs[k.inputs.firstIndex(of: v)!] }
        let foldedNode = Node(op: node.op, operands: operands, attributes: attributes, results: [output], location: node.location)
        folded.nodes = [foldedNode]
        folded.outputs = [output]
        return Folded(kernel: Kernel(body: .single(foldedNode), inputs: inputs, outputs: [output]), graph: folded, extent: extent)
    }
}
