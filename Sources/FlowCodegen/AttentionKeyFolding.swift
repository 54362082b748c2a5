import FlowIR

/// Token-by-token decoding attends one query to a key/value cache that grows by a token per
/// step, so TarFlow's sampler has an attention kernel per cache length (16 of them). The key
/// count is only a loop bound and a stride, so one kernel serves every length: the kernel's
/// own graph types the keys and values as one token, its node carries `runtimeKeysAttribute`,
/// and the caller passes the real count as the kernel's `extent` argument.
enum AttentionKeyFolding {
    /// Marks an attention node whose key count is the kernel's `extent` argument.
    static let runtimeKeysAttribute = "keys_at_run_time"

    struct Folded {
        var kernel: Kernel
        var graph: Graph
        /// The key count the caller passes.
        var keys: Int
    }

    static func fold(_ k: Kernel, in g: Graph) -> Folded? {
        guard case .single(let node) = k.body, node.op == "attention", k.outputs.count == 1 else { return nil }
        let (keysType, valuesType) = (g.type(of: node.operands[1]), g.type(of: node.operands[2]))
        guard keysType.batched, keysType.dims.count == 2, keysType == valuesType else { return nil }
        var folded = Graph()
        var map: [ValueID: ValueID] = [:]
        for v in k.inputs {
            var type = g.type(of: v)
            if v == node.operands[1] || v == node.operands[2] { type.dims[0] = 1 }
            map[v] = folded.addInput(name: "p\(map.count)", type: type)
        }
        guard node.operands.allSatisfy({ map[$0] != nil }) else { return nil }
        let output = folded.newValue(g.type(of: node.results[0]))
        var attributes = node.attributes
        attributes[runtimeKeysAttribute] = .int(1)
        let foldedNode = Node(op: node.op, operands: node.operands.map { map[$0]! }, attributes: attributes, results: [output], location: node.location)
        folded.nodes = [foldedNode]
        folded.outputs = [output]
        return Folded(kernel: Kernel(body: .single(foldedNode), inputs: k.inputs.map { map[$0]! }, outputs: [output]),
                      graph: folded, keys: keysType.dims[0])
    }
}
