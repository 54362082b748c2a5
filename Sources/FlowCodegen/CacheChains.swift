import FlowIR

/// Token decoding's key/value caches, grown in place. TokenDecoding appends each decoded token to
/// a cache with concat(cache, new) along the tokens, so the step at token t copied the t tokens
/// before it: O(T²) copying for T tokens (memmove took 31% of a 256-token TarFlow's batch-1
/// sample, against 18% for its attentions and 41% for its products; with the chains below the
/// sample takes 0.70x the time).
///
/// A chain c₁ = concat(c₀, n₁), c₂ = concat(c₁, n₂), …, c_m — each member read only as the keys
/// or values of attentions and as the cache of the next concat — lives in one buffer with
/// `capacity` floats per sample, the last member's size: each member is the prefix of every
/// sample's row of it. The first concat copies c₀ and n₁ there; each later one writes only its
/// new tokens after the prefix already in place (`inPlaceAttribute`); the attentions read keys
/// and values with that per-sample stride (`keyCapacityAttribute`, `valueCapacityAttribute`).
/// A chain with any other reader (a graph output, a Jacobi loop that captures the cache) is left
/// as it was.
enum CacheChains {
    /// On a chain's concats: floats per sample of the chain's buffer.
    static let capacityAttribute = "cache_capacity"
    /// On the concats after a chain's first: the cache operand is already in the buffer.
    static let inPlaceAttribute = "cache_in_place"
    /// On attentions: the per-sample stride of keys or values that are a chain's member.
    static let keyCapacityAttribute = "key_capacity", valueCapacityAttribute = "value_capacity"

    struct Marked {
        var graph: Graph
        /// Each chain member → its first member, whose planned buffer they all share.
        var roots: [ValueID: ValueID] = [:]
        /// Each chain's first member → floats per sample of its buffer.
        var capacity: [ValueID: Int] = [:]
    }

    /// Whether `node` appends along the first axis after the batch: concat(cache, new, axis=1)
    /// of batched values.
    static func appends(_ node: Node, in g: Graph) -> Bool {
        guard node.op == "concat", node.operands.count == 2, case .int(let axis)? = node.attributes["axis"] else { return false }
        let out = g.type(of: node.results[0])
        return out.batched && out.dims.count >= 2 && (axis == 1 || axis == 1 - out.rank)
            && node.operands.allSatisfy { g.type(of: $0).batched }
    }

    /// The graph with its chains (of at least two concats) marked.
    static func mark(_ graph: Graph) -> Marked {
        var g = graph
        var marked = Marked(graph: graph)
        let producers = g.producers()
        let uses = g.uses()
        let outputs = Set(g.outputs)
        /// The concat that appends to v, when every reader of v is an attention (keys or values)
        /// or that one concat (as its cache); `.some(nil)` when no concat appends to v.
        func next(_ v: ValueID) -> Int?? {
            guard !outputs.contains(v) else { return nil }
            var appender: Int?
            for use in uses[v] {
                let node = g.nodes[use.node]
                if node.op == "attention" && use.operand >= 1 { continue }
                guard use.operand == 0, appends(node, in: g), appender == nil else { return nil }
                appender = use.node
            }
            return .some(appender)
        }
        for (i, node) in g.nodes.enumerated() where appends(node, in: g) {
            // a chain starts where the cache is not itself an appended member
            if let p = producers[node.operands[0]], appends(g.nodes[p], in: g), next(node.operands[0]) == .some(i) { continue }
            var members = [i]
            var valid = true
            while true {
                guard let following = next(g.nodes[members.last!].results[0]) else { valid = false; break }
                guard let n = following else { break }
                members.append(n)
            }
            guard valid, members.count >= 2 else { continue }
            let root = g.nodes[members[0]].results[0]
            let capacity = g.type(of: g.nodes[members.last!].results[0]).elementsPerSample
            marked.capacity[root] = capacity
            for (position, m) in members.enumerated() {
                let member = g.nodes[m].results[0]
                marked.roots[member] = root
                g.nodes[m].attributes[capacityAttribute] = .int(capacity)
                if position > 0 { g.nodes[m].attributes[inPlaceAttribute] = .int(1) }
                for use in uses[member] where g.nodes[use.node].op == "attention" {
                    g.nodes[use.node].attributes[use.operand == 1 ? keyCapacityAttribute : valueCapacityAttribute] = .int(capacity)
                }
            }
        }
        marked.graph = g
        return marked
    }
}
