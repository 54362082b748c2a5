import FlowIR

/// Where each value of an entry point lives: a function parameter, a constant global, or a
/// slice of the caller's workspace. Workspace slices are planned by liveness (first fit over
/// [definition, last use] intervals) in two regions: values of fixed size at fixed offsets,
/// then batched values at offset `batch · perSampleOffset` past them, so the workspace for a
/// batch is `fixedFloats + batch · perSampleFloats` floats. `reshape` results alias their operand;
/// the members of a decoding cache chain (CacheChains) share their first member's buffer, which
/// holds the chain's capacity per sample.
struct MemoryPlan {
    enum Location: Hashable {
        case parameter(Int)
        case constant(ValueID)
        /// floats from the workspace start: fixed + batch · perSample
        case workspace(fixed: Int, perSample: Int)
    }

    var locations: [ValueID: Location] = [:]
    /// The value whose storage a value shares (reshape aliases, cache chain members), itself otherwise.
    var root: [ValueID: ValueID] = [:]
    /// A cache chain's first member → floats per sample of the chain's buffer (CacheChains).
    var capacity: [ValueID: Int] = [:]
    var fixedFloats = 0
    var perSampleFloats = 0

    /// Every slice is rounded to 16 floats (64 bytes) so that batched offsets stay aligned.
    static func rounded(_ n: Int) -> Int { (n + 15) / 16 * 16 }

    /// Plans the values the kernels write, in kernel order: a kernel reads all its inputs and
    /// writes its outputs at one time step, so an output never shares memory with an input.
    /// A value touched inside one of `regions` (kernel ranges two threads run row by row,
    /// RowParallelRegions) is live through the whole region: one thread may be at the region's
    /// first kernel while the other is at its last.
    /// `chains`: the cache chains' members → first members, and their capacities (CacheChains).
    init(graph g: Graph, kernels: [Kernel], constants: Set<ValueID>, outputParameters: [ValueID: Int], inputParameters: [ValueID: Int],
         regions: [Range<Int>] = [], chains: CacheChains.Marked? = nil) {
        capacity = chains?.capacity ?? [:]
        for (v, p) in inputParameters { locations[v] = .parameter(p); root[v] = v }
        for v in constants { locations[v] = .constant(v); root[v] = v }
        // (a folded constant is its own storage, even when a reshape made it)
        for node in g.nodes where node.op == "reshape" && !constants.contains(node.results[0]) { root[node.results[0]] = node.operands[0] }
        var lastUse: [ValueID: Int] = [:]
        var definition: [ValueID: Int] = [:]
        func rootOf(_ v: ValueID) -> ValueID {
            var r = v
            while let next = root[r], next != r { r = next }
            return r
        }
        for (k, kernel) in kernels.enumerated() {
            for v in kernel.inputs { lastUse[rootOf(v)] = k }
            for v in kernel.outputs {
                let shared = chains?.roots[v] ?? v
                root[v] = shared
                if shared == v { definition[v] = k }
            }
        }
        for (v, _) in root { root[v] = rootOf(v) }
        for v in g.outputs { lastUse[rootOf(v)] = kernels.count }
        for (v, p) in outputParameters where root[v] == v && locations[v] == nil { locations[v] = .parameter(p) }
        func widened(_ interval: (start: Int, end: Int)) -> (start: Int, end: Int) {
            var (start, end) = interval
            for r in regions {
                if r.contains(start) { start = r.lowerBound }
                if r.contains(end) { end = r.upperBound - 1 }
            }
            return (start, end)
        }
        // first fit, separately for the fixed and the batched region
        var placed: [(start: Int, end: Int, offset: Int, size: Int, batched: Bool)] = []
        for (v, defined) in definition.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) where locations[v] == nil {
            let type = g.type(of: v)
            let size = MemoryPlan.rounded(capacity[v] ?? type.elementsPerSample)
            let (start, end) = widened((defined, lastUse[v] ?? defined))
            let busy = placed.filter { $0.batched == type.batched && $0.start <= end && start <= $0.end }
                .map { ($0.offset, $0.offset + $0.size) }.sorted { $0.0 < $1.0 }
            var offset = 0
            for (a, b) in busy where offset + size > a { offset = max(offset, b) }
            placed.append((start, end, offset, size, type.batched))
            if type.batched {
                perSampleFloats = max(perSampleFloats, offset + size)
            } else {
                fixedFloats = max(fixedFloats, offset + size)
            }
            locations[v] = type.batched ? .workspace(fixed: -1, perSample: offset) : .workspace(fixed: offset, perSample: 0)
        }
        // batched slices start after the fixed region
        for (v, l) in locations {
            if case .workspace(let fixed, let perSample) = l, fixed == -1 { locations[v] = .workspace(fixed: fixedFloats, perSample: perSample) }
        }
    }

    func location(_ v: ValueID) -> Location { locations[root[v] ?? v]! }

    /// The first kernel that would write one of its outputs over one of its inputs, with the
    /// two values; nil when none does, as planned. Kernels' pointers are `noalias` on this
    /// (KernelCache.pointersDoNotAlias). Batched slices overlap when their per-sample ranges
    /// do (a slice is `fixed + batch · perSample` for `batch · size` floats); a parameter only
    /// with itself (the entry point rejects callers' overlapping buffers).
    func firstOverlap(in kernels: [Kernel], graph g: Graph) -> (kernel: Int, input: ValueID, output: ValueID)? {
        /// Where a value's floats are compared: the batched or the fixed part of the workspace
        /// (by float offset), or a parameter or constant of its own.
        enum Region: Equatable { case batchedWorkspace, fixedWorkspace, elsewhere(Location) }
        func extent(_ v: ValueID) -> (region: Region, floats: Range<Int>) {
            switch location(v) {
            case .workspace(let fixed, let perSample):
                let size = MemoryPlan.rounded(capacity[root[v] ?? v] ?? g.type(of: v).elementsPerSample)
                return g.type(of: v).batched ? (.batchedWorkspace, perSample..<(perSample + size)) : (.fixedWorkspace, fixed..<(fixed + size))
            case let other: return (.elsewhere(other), 0..<1)
            }
        }
        for (index, kernel) in kernels.enumerated() {
            for output in kernel.outputs {
                let written = extent(output)
                // (a cache chain's members share their buffer by design: CacheChains)
                for input in kernel.inputs where !(root[input] == root[output] && capacity[root[output] ?? output] != nil) {
                    let read = extent(input)
                    if read.region == written.region && read.floats.overlaps(written.floats) { return (index, input, output) }
                }
            }
        }
        return nil
    }
}
