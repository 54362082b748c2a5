import FlowIR

/// One unit of generated code: what to compute, apart from how (OpLowering emits the loops).
struct Kernel {
    enum Body {
        /// One op on its own (data movement, reductions, convolution, splines, ...).
        case single(Node)
        /// A chain of elementwise ops, each consuming the previous result: one loop, the
        /// intermediate values stay in registers.
        case fused([Node])
        /// x·Wᵀ (the microkernel, sgemm, or generated loops for small products) or a convolution,
        /// with the bias and a chain of elementwise ops applied in the epilogue.
        case gemm(Node, epilogue: [Node])
        /// Two packed products of an MLP, the second reading only the first's result, split
        /// over two threads with one hand-over (ProductPairs). Outputs: [second's, first's], then
        /// the lead's when there is one: a small product before them (and its epilogue) that
        /// both threads compute, `lead` empty or [product] + epilogue.
        case productPair(lead: [Node], Node, firstEpilogue: [Node], Node, secondEpilogue: [Node])
    }

    var body: Body
    /// Values the kernel reads from memory, in order (its first parameters).
    var inputs: [ValueID]
    /// Values it writes.
    var outputs: [ValueID]

    var nodes: [Node] {
        switch body {
        case .single(let n): return [n]
        case .fused(let ns): return ns
        case .gemm(let n, let epilogue): return [n] + epilogue
        case .productPair(let lead, let first, let firstEpilogue, let second, let secondEpilogue): return lead + [first] + firstEpilogue + [second] + secondEpilogue
        }
    }

    /// A one-line summary for `flowc compile --emit-kernels`; `registers`: the target's, which
    /// set the microkernel's tile.
    func describe(_ g: Graph, names: (ValueID) -> String, registers: RegisterFile) -> String {
        let out = outputs.map { "\(names($0)): \(g.type(of: $0))" }.joined(separator: ", ")
        let inside = Set(nodes.flatMap(\.results))
        func operand(_ v: ValueID) -> String { inside.contains(v) ? "·" : names(v) }
        let chain = nodes.map { n in "\(n.op)(\(n.operands.map(operand).joined(separator: ", ")))" }.joined(separator: " → ")
        switch body {
        case .single(let node):
            guard case .int(let capacity)? = node.attributes[CacheChains.capacityAttribute] else { return "\(out) = \(chain)" }
            let how = node.attributes[CacheChains.inPlaceAttribute] != nil ? "appends its new tokens in place to" : "starts"
            return "\(out) = \(chain): \(how) a cache of \(capacity) floats per sample (CacheChains)"
        case .fused(let ns): return "\(out) = fused \(ns.count) elementwise ops in one loop: \(chain)"
        case .gemm(let n, let epilogue):
            let columns = OpLowering.lanes * OpLowering.tileWidth(rows: OpLowering.tileRows, split: nil, registers: registers, tallest: OpLowering.tileRows)
            let product = n.op == WeightPacking.op ? "GEMM microkernel (\(OpLowering.tileRows)×\(columns) register tiles, packed Wᵀ)"
                : n.op == "conv2d" ? "im2col over groups of samples + GEMM microkernel" : "sgemm / small-matmul loops"
            return "\(out) = \(product), epilogue of \(epilogue.count) ops: \(chain)"
        case .productPair(let lead, _, _, _, _):
            return "\(out) = two GEMM microkernels, one hand-over: \(lead.isEmpty ? "" : "both halves compute the small first product, then ")each half computes its columns of the next product and its input half of the last, then y = sum of the halves + epilogue: \(chain)"
        }
    }
}

/// Groups the input-dependent nodes of a graph into kernels: a chain of elementwise ops whose
/// intermediate results have no other use becomes one loop, and such a chain after a `linear` or
/// `conv2d` becomes its epilogue. Values inside a kernel are never stored.
enum KernelPlanner {
    static let elementwise: Set<String> = Set(ScalarMath.unary.keys).union(ScalarMath.binary.keys).union(["leaky_relu", "select"])

    /// How many operands read each value, a graph output counting 2 (it is always stored): a
    /// value used once may stay inside the kernel that uses it.
    static func useCounts(_ g: Graph) -> [Int] {
        var uses = [Int](repeating: 0, count: g.valueCount)
        for node in g.nodes { for v in node.operands { uses[v] += 1 } }
        for v in g.outputs { uses[v] += 2 }
        return uses
    }

    static func plan(_ g: Graph, dependsOnInput: Set<ValueID>) -> [Kernel] {
        let uses = useCounts(g)
        var kernels: [Kernel] = []
        var current: [Node] = []
        var head: Node?          // the linear of a gemm kernel

        func flush() {
            guard !current.isEmpty || head != nil else { return }
            let group = (head.map { [$0] } ?? []) + current
            let produced = Set(group.flatMap(\.results))
            var inputs: [ValueID] = []
            for n in group { for v in n.operands where !produced.contains(v) && !inputs.contains(v) { inputs.append(v) } }
            let outputs = [group.last!.results[0]]
            if let head { kernels.append(Kernel(body: .gemm(head, epilogue: current), inputs: inputs, outputs: outputs)) } else {
                kernels.append(Kernel(body: .fused(current), inputs: inputs, outputs: outputs))
            }
            current = []
            head = nil
        }

        for node in g.nodes where node.operands.contains(where: dependsOnInput.contains) {
            if node.op == "reshape" { continue }   // an alias of its operand: no code
            let tail = current.last?.results[0] ?? head?.results[0]
            if elementwise.contains(node.op), let tail, uses[tail] == 1, node.operands.contains(tail),
               g.type(of: node.results[0]) == g.type(of: tail) {
                current.append(node)
                continue
            }
            flush()
            if node.op == "linear" || node.op == WeightPacking.op || node.op == "conv2d" {
                head = node
            } else if elementwise.contains(node.op) {
                current = [node]
            } else {
                kernels.append(Kernel(body: .single(node), inputs: node.operands, outputs: node.results))
            }
        }
        flush()
        return kernels
    }
}
