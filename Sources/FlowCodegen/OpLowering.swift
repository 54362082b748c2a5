import CLLVM
import FlowIR

/// The loop nest of each op: elementwise maps over the output's full shape with per-operand
/// strides (0 where an operand is broadcast), matrix products through `cblas_sgemm`, data
/// movement as strided copies, reductions and normalisations along an axis, the spline per
/// element. Scalar math is in `ScalarMath`.
struct OpLowering {
    let f: FunctionLowering
    var b: IRBuilder { f.b }
    var g: Graph { f.graph }

    init(function: FunctionLowering) { self.f = function }

    // MARK: shapes

    /// Static full shape with 1 in place of the batch (used for strides only).
    func staticShape(_ v: ValueID) -> [Int] { (g.type(of: v).batched ? [1] : []) + g.type(of: v).dims }

    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// C-order strides of value v, the batch axis striding over one sample.
    func strides(_ v: ValueID) -> [Int] {
        let t = g.type(of: v)
        return t.batched ? [t.elementsPerSample] + OpLowering.strides(t.dims) : OpLowering.strides(t.dims)
    }

    /// Strides that read operand v at each index of `output`'s full shape (NumPy broadcasting,
    /// right-aligned): 0 along axes where v has size 1 (or that v lacks) and the output does not;
    /// an unbatched operand never moves along the batch axis.
    func broadcastStrides(_ v: ValueID, to output: ValueID) -> [Int] {
        let vt = g.type(of: v), ot = g.type(of: output)
        let outDims: [Int?] = (ot.batched ? [nil] : []) + ot.dims.map { Optional($0) }   // nil: the batch axis
        let vDims: [Int?] = (vt.batched ? [nil] : []) + vt.dims.map { Optional($0) }
        let own = strides(v)
        let pad = outDims.count - vDims.count
        var result = [Int](repeating: 0, count: outDims.count)
        for i in 0..<vDims.count {
            let moves = vDims[i] == nil || vDims[i]! != 1 || outDims[i + pad] == 1
            result[i + pad] = moves ? own[i] : 0
        }
        return result
    }

    func resolvedAxis(_ node: Node, _ v: ValueID, _ key: String = "axis") -> Int {
        guard case .int(let a)? = node.attributes[key] else { fatalError("\(node.op) \(key) verified") }
        return a < 0 ? a + g.type(of: v).rank : a
    }

    func int(_ node: Node, _ key: String) -> Int {
        guard case .int(let v)? = node.attributes[key] else { fatalError("\(node.op) \(key) verified") }
        return v
    }

    // MARK: dispatch

    mutating func emit(_ kernel: Kernel) throws {
        switch kernel.body {
        case .single(let node): try emit(node)
        case .fused(let nodes): try fused(nodes, output: kernel.outputs[0])
        case .gemm(let node, let epilogue) where node.op == "conv2d": try conv2d(node, epilogue: epilogue, output: kernel.outputs[0])
        case .gemm(let node, let epilogue): try gemm(node, epilogue: epilogue, output: kernel.outputs[0])
        case .productPair(let lead, let first, let firstEpilogue, let second, let secondEpilogue):
            try productPair(lead: lead.first.map { ($0, Array(lead.dropFirst())) }, first: (first, firstEpilogue), second: (second, secondEpilogue), outputs: kernel.outputs)
        }
    }

    /// The scalar code of one elementwise node, given its operands' values.
    static func scalar(_ node: Node, _ b: IRBuilder, _ x: [IRBuilder.Value]) -> IRBuilder.Value {
        if let unary = ScalarMath.unary[node.op] { return unary(b, x[0]) }
        if let binary = ScalarMath.binary[node.op] { return binary(b, x[0], x[1]) }
        switch node.op {
        case "leaky_relu":
            guard case .float(let slope)? = node.attributes["slope"] else { fatalError("slope verified") }
            return b.select(b.fcmp(LLVMRealOGE, x[0], b.f32(0)), x[0], b.fmul(x[0], b.f32(slope)))
        case "select":
            return b.select(b.fcmp(LLVMRealUNE, x[0], b.f32(0)), x[1], x[2])
        default:
            fatalError("\(node.op) is not elementwise")
        }
    }

    /// A chain of elementwise nodes in one loop over the output; external operands broadcast.
    /// sin and cos are TrigonometricMath's straight-line code; if any element is outside its
    /// range, the loop runs again with libm's (the kernel's inputs are never its output).
    func fused(_ nodes: [Node], output: ValueID) throws {
        let produced = Set(nodes.flatMap(\.results))
        var external: [ValueID] = []
        for n in nodes { for v in n.operands where !produced.contains(v) && !external.contains(v) { external.append(v) } }
        let trigonometric = nodes.contains { $0.op == "sin" || $0.op == "cos" }
        let outOfRange = trigonometric ? b.variable("out_of_range", type: b.i1) : nil
        if let outOfRange { LLVMBuildStore(b.builder, LLVMConstInt(b.i1, 0, 0), outOfRange) }
        func chain(precise: Bool) throws {
            try elementwise(external: external, output: output) { b, loaded in
                var values = loaded
                for n in nodes {
                    let operands = n.operands.map { values[$0]! }
                    if !precise, let outOfRange, n.op == "sin" || n.op == "cos" {
                        let (value, outside) = TrigonometricMath.evaluate(b, operands[0], cosine: n.op == "cos")
                        LLVMBuildStore(b.builder, LLVMBuildOr(b.builder, LLVMBuildLoad2(b.builder, b.i1, outOfRange, "")!, outside, "")!, outOfRange)
                        values[n.results[0]] = value
                    } else {
                        values[n.results[0]] = OpLowering.scalar(n, b, operands)
                    }
                }
                return values[output]!
            }
        }
        try chain(precise: false)
        guard let outOfRange else { return }
        let again = b.block("trig_precise"), done = b.block("trig_done")
        b.condBranch(LLVMBuildLoad2(b.builder, b.i1, outOfRange, "")!, again, done)
        b.position(at: again)
        try chain(precise: true)
        b.branch(done)
        b.position(at: done)
    }

    /// out[i] = f(external operands broadcast to out's shape at i): a flat loop when no operand
    /// is broadcast, else one loop per axis (the last one contiguous).
    func elementwise(external: [ValueID], output out: ValueID, _ scalar: (IRBuilder, [ValueID: IRBuilder.Value]) -> IRBuilder.Value) throws {
        let outAddress = f.address(out)
        let addresses = external.map { f.address($0) }
        if external.allSatisfy({ g.type(of: $0) == g.type(of: out) }) {
            let count = b.mul(g.type(of: out).batched ? f.batch : b.i64(1), b.i64(g.type(of: out).elementsPerSample))
            b.loop(count) { i in
                var loaded: [ValueID: IRBuilder.Value] = [:]
                for (v, a) in zip(external, addresses) { loaded[v] = b.load(a, i) }
                b.store(scalar(b, loaded), outAddress, i)
            }
            return
        }
        let (extents, allStrides) = mergingContiguousAxes(extents: f.extents(out), shape: staticShape(out),
                                                         strides: [strides(out)] + external.map { broadcastStrides($0, to: out) })
        b.loops(extents) { index in
            var loaded: [ValueID: IRBuilder.Value] = [:]
            for (v, (a, s)) in zip(external, zip(addresses, allStrides.dropFirst())) { loaded[v] = b.load(a, b.offset(index, s)) }
            b.store(scalar(b, loaded), outAddress, b.offset(index, allStrides[0]))
        }
    }

    /// The loops of a map over `extents` (static sizes `shape`, the batch axis's any) reading
    /// each of `strides`: an axis merges into the next when every stride steps over it as over
    /// a block of the next (stride[a] = stride[a+1]·extent[a+1], a broadcast's 0 = 0 included),
    /// so the innermost loop is as long as the memory allows. A [B, 2, 4, 4] map adding a scalar
    /// becomes [B, 32]: as four loops, the vectoriser left its 4-trip inner loop scalar (d_glow's
    /// sigmoid, 10% of its batch-256 call).
    func mergingContiguousAxes(extents: [IRBuilder.Value], shape: [Int], strides: [[Int]]) -> (extents: [IRBuilder.Value], strides: [[Int]]) {
        var extents = extents, shape = shape, strides = strides
        for axis in stride(from: shape.count - 2, through: 0, by: -1) {
            let inner = shape[axis + 1]
            guard strides.allSatisfy({ $0[axis] == $0[axis + 1] * inner }) else { continue }
            // the outer axis may be the batch, whose extent is known at run time only
            extents[axis] = b.mul(extents[axis], extents[axis + 1])
            shape[axis] *= inner
            extents.remove(at: axis + 1)
            shape.remove(at: axis + 1)
            for i in strides.indices { strides[i][axis] = strides[i][axis + 1]; strides[i].remove(at: axis + 1) }
        }
        return (extents, strides)
    }

    mutating func emit(_ node: Node) throws {
        let out = node.results[0]
        if KernelPlanner.elementwise.contains(node.op) { return try fused([node], output: out) }
        switch node.op {
        case "broadcast_like":
            let x = node.operands[0]
            try elementwise(external: [x], output: out) { _, loaded in loaded[x]! }
        case "reshape":
            break   // an alias of its operand (MemoryPlan)
        case "linear", WeightPacking.op: try gemm(node, epilogue: [], output: out)
        case "matmul": try matmul(node)
        case "transpose":
            guard case .ints(let perm)? = node.attributes["perm"] else { fatalError("perm verified") }
            let s = strides(node.operands[0])
            try copy(from: node.operands[0], sourceStrides: perm.map { s[$0] }, to: out)
        case "slice", "gather":
            let x = node.operands[0]
            let axis = resolvedAxis(node, x)
            var s = strides(x)
            if node.op == "slice" {
                let size = g.type(of: x).size(ofAxis: axis)!
                let indices = PythonSlice.indices(size: size, start: int(node, "start"), end: int(node, "end"), step: int(node, "step"))
                // a decoding step's slice starts at the kernel's extent argument (DecodingStepFolding)
                let first = node.attributes[DecodingStepFolding.positionAttribute] != nil ? f.kernelExtent! : b.i64(indices[0])
                let base = b.mul(first, b.i64(s[axis]))
                s[axis] *= int(node, "step")
                try copy(from: x, sourceStrides: s, sourceBase: base, to: out)
            } else {
                guard case .ints(let indices)? = node.attributes["indices"] else { fatalError("indices verified") }
                try copy(from: x, sourceStrides: s, to: out, gather: (axis, indices))
            }
        case "split":
            let x = node.operands[0]
            let axis = resolvedAxis(node, x)
            let s = strides(x)
            var start = 0
            for r in node.results {
                try copy(from: x, sourceStrides: s, sourceBase: b.i64(start * s[axis]), to: r)
                start += g.type(of: r).size(ofAxis: axis)!
            }
        case "concat" where node.attributes[DecodingStepFolding.positionAttribute] != nil || node.attributes[CacheChains.capacityAttribute] != nil:
            try appendToCache(node)
        case "concat":
            let axis = resolvedAxis(node, out)
            let outStrides = strides(out)
            var start = 0
            for x in node.operands {
                try copy(from: x, sourceStrides: strides(x), to: out, destinationBase: start * outStrides[axis], shapeOf: x)
                start += g.type(of: x).size(ofAxis: axis)!
            }
        case "pad":
            let x = node.operands[0]
            let axis = resolvedAxis(node, x)
            guard case .float(let value)? = node.attributes["value"] else { fatalError("pad value verified") }
            try fill(out, with: value)
            try copy(from: x, sourceStrides: strides(x), to: out, destinationBase: int(node, "before") * strides(out)[axis], shapeOf: x)
        case "sum", "mean", "amax": try reduce(node)
        case "softmax", "cumsum": try alongAxis(node)
        case "layernorm": try layernorm(node)
        case "attention": try attention(node)
        case "conv2d": try conv2d(node, epilogue: [], output: out)
        case "fixed_point": try fixedPoint(node)
        case "rq_spline", "rq_spline_inverse", "rq_spline_logderiv": try SplineLowering(ops: self).emit(node)
        default:
            throw FlowError("the compiler cannot lower '\(node.op)' yet (it runs in the interpreter: flowc run)", at: node.location)
        }
    }
}
