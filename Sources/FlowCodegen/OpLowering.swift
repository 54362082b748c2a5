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
        case .gemm(let node, let epilogue): try gemm(node, epilogue: epilogue, output: kernel.outputs[0])
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
    func fused(_ nodes: [Node], output: ValueID) throws {
        let produced = Set(nodes.flatMap(\.results))
        var external: [ValueID] = []
        for n in nodes { for v in n.operands where !produced.contains(v) && !external.contains(v) { external.append(v) } }
        try elementwise(external: external, output: output) { b, loaded in
            var values = loaded
            for n in nodes { values[n.results[0]] = OpLowering.scalar(n, b, n.operands.map { values[$0]! }) }
            return values[output]!
        }
    }

    /// out[i] = f(external operands broadcast to out's shape at i): a flat loop when no operand
    /// is broadcast, else one loop per axis (the last one contiguous).
    func elementwise(external: [ValueID], output out: ValueID, _ scalar: (IRBuilder, [ValueID: IRBuilder.Value]) -> IRBuilder.Value) throws {
        let outAddress = f.address(out)
        let addresses = external.map { f.address($0) }
        if external.allSatisfy({ g.type(of: $0) == g.type(of: out) }) {
            let count = b.mul(g.type(of: out).batched ? f.batch : b.i64(1), b.i64(g.type(of: out).elementsPerSample))
            try b.loop(count) { i in
                var loaded: [ValueID: IRBuilder.Value] = [:]
                for (v, a) in zip(external, addresses) { loaded[v] = b.load(a, i) }
                b.store(scalar(b, loaded), outAddress, i)
            }
            return
        }
        let operandStrides = external.map { broadcastStrides($0, to: out) }
        let outStrides = strides(out)
        try b.loops(f.extents(out)) { index in
            var loaded: [ValueID: IRBuilder.Value] = [:]
            for (v, (a, s)) in zip(external, zip(addresses, operandStrides)) { loaded[v] = b.load(a, b.offset(index, s)) }
            b.store(scalar(b, loaded), outAddress, b.offset(index, outStrides))
        }
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
        case "linear": try gemm(node, epilogue: [], output: out)
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
                let base = indices[0] * s[axis]
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
                try copy(from: x, sourceStrides: s, sourceBase: start * s[axis], to: r)
                start += g.type(of: r).size(ofAxis: axis)!
            }
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
        case "conv2d": try conv2d(node)
        case "fixed_point": try fixedPoint(node)
        case "rq_spline", "rq_spline_inverse", "rq_spline_logderiv": try SplineLowering(ops: self).emit(node)
        default:
            throw FlowError("the compiler cannot lower '\(node.op)' yet (it runs in the interpreter: flowc run)", at: node.location)
        }
    }

    // MARK: elementwise

    /// Sets every element of v to `value`.
    func fill(_ v: ValueID, with value: Double) throws {
        let address = f.address(v)
        let count = b.mul(g.type(of: v).batched ? f.batch : b.i64(1), b.i64(g.type(of: v).elementsPerSample))
        try b.loop(count) { i in b.store(b.f32(value), address, i) }
    }

    /// Copies a strided view of `source` into `destination` (or into a sub-block of it shaped
    /// like `shapeOf`): element at index i of the iteration shape reads source at
    /// sourceBase + Σ i·sourceStrides (or the gather table along one axis) and writes
    /// destination at destinationBase + Σ i·destinationStrides.
    func copy(from source: ValueID, sourceStrides: [Int], sourceBase: Int = 0, to destination: ValueID,
              destinationBase: Int = 0, shapeOf: ValueID? = nil, gather: (axis: Int, indices: [Int])? = nil) throws {
        let iteration = shapeOf ?? destination
        let src = f.address(source), dst = f.address(destination)
        let dstStrides = strides(destination)
        var table: IRBuilder.Value?
        if let gather { table = b.constantIndexArray(gather.indices, name: "gather") }
        try b.loops(f.extents(iteration)) { index in
            var s = sourceStrides
            var base = b.i64(sourceBase)
            if let gather, let table {
                s[gather.axis] = 0
                base = b.add(base, b.mul(b.loadIndex(table, index[gather.axis]), b.i64(sourceStrides[gather.axis])))
            }
            b.store(b.load(src, b.offset(index, s, base: base)), dst, b.offset(index, dstStrides, base: b.i64(destinationBase)))
        }
    }

    // MARK: matrix products

    static let rowMajor = 101, noTrans = 111, trans = 112

    func sgemm(_ a: IRBuilder.Value, _ bMatrix: IRBuilder.Value, _ c: IRBuilder.Value, m: IRBuilder.Value, n: Int, k: Int, transposeB: Bool) {
        let i32 = b.i32
        let type = b.functionType(b.void, [i32, i32, i32, i32, i32, i32, b.f32, b.pointer, i32, b.pointer, i32, b.f32, b.pointer, i32])
        let sgemm = b.declare("cblas_sgemm", type)
        let m32 = LLVMBuildTrunc(b.builder, m, i32, "")!
        _ = b.call(sgemm, type, [b.i32(OpLowering.rowMajor), b.i32(OpLowering.noTrans), b.i32(transposeB ? OpLowering.trans : OpLowering.noTrans),
                                 m32, b.i32(n), b.i32(k), b.f32(1), a, b.i32(k), bMatrix, b.i32(transposeB ? k : n), b.f32(0), c, b.i32(n)])
    }

    /// Products with at most this many rows, in and out widths ≤ 64, use generated loops (no
    /// BLAS call overhead for batch-1 calls); larger ones call cblas_sgemm.
    static let smallRows = 8, smallWidth = 64

    /// y = x·Wᵀ + b, then the epilogue chain applied in place, row by row.
    func gemm(_ node: Node, epilogue: [Node], output: ValueID) throws {
        let x = node.operands[0], w = node.operands[1]
        let (n, k) = (g.type(of: w).dims[0], g.type(of: w).dims[1])
        let rowsPerSample = g.type(of: x).elementsPerSample / k
        let rows = g.type(of: x).batched ? b.mul(f.batch, b.i64(rowsPerSample)) : b.i64(rowsPerSample)
        let y = f.address(output), xs = f.address(x), ws = f.address(w)
        let bias = node.operands.count == 3 ? f.address(node.operands[2]) : nil
        let linearResult = node.results[0]
        // epilogue operands other than the product, broadcast over y's shape
        let produced = Set(([node] + epilogue).flatMap(\.results))
        var external: [ValueID] = []
        for e in epilogue { for v in e.operands where !produced.contains(v) && !external.contains(v) { external.append(v) } }
        let externalStrides = external.map { broadcastStrides($0, to: output) }
        let externalAddresses = external.map { f.address($0) }
        /// the epilogue on one element: row r (flat over the leading axes), column j
        func finish(_ value: IRBuilder.Value, _ r: IRBuilder.Value, _ j: IRBuilder.Value) -> IRBuilder.Value {
            var values: [ValueID: IRBuilder.Value] = [linearResult: bias.map { b.fadd(value, b.load($0, j)) } ?? value]
            if !external.isEmpty {
                // leading index of row r in y's full shape: y is [lead..., n] in C order
                let flat = b.add(b.mul(r, b.i64(n)), j)
                let extents = g.type(of: output).shape(batch: 1)
                for (v, (a, s)) in zip(external, zip(externalAddresses, externalStrides)) {
                    if g.type(of: v) == g.type(of: output) { values[v] = b.load(a, flat); continue }
                    // unflatten `flat` over y's shape to apply v's broadcast strides
                    var offset = b.i64(0)
                    var rest = flat
                    for axis in stride(from: extents.count - 1, through: 0, by: -1) {
                        let size = axis == 0 && g.type(of: output).batched ? nil : extents[axis]
                        let index = size.map { LLVMBuildSRem(b.builder, rest, b.i64($0), "")! } ?? rest
                        if s[axis] != 0 { offset = b.add(offset, b.mul(index, b.i64(s[axis]))) }
                        if let size { rest = LLVMBuildSDiv(b.builder, rest, b.i64(size), "")! }
                    }
                    values[v] = b.load(a, offset)
                }
            }
            for e in epilogue { values[e.results[0]] = OpLowering.scalar(e, b, e.operands.map { values[$0]! }) }
            return values[epilogue.last?.results[0] ?? linearResult]!
        }
        let small = b.block("small"), large = b.block("large"), done = b.block("done")
        let fits = n <= OpLowering.smallWidth && k <= OpLowering.smallWidth
        b.condBranch(fits ? LLVMBuildICmp(b.builder, LLVMIntSLE, rows, b.i64(OpLowering.smallRows), "")! : LLVMConstInt(b.i1, 0, 0), small, large)
        // small: dot products in generated loops, epilogue fused
        b.position(at: small)
        try b.loop(rows) { r in
            try b.loop(b.i64(n)) { j in
                let acc = b.variable("dot")
                b.write(b.f32(0), acc)
                try b.loop(b.i64(k)) { t in
                    // reassociation lets LLVM vectorise the dot product (as BLAS kernels do)
                    let product = b.fmul(b.load(xs, b.add(b.mul(r, b.i64(k)), t)), b.load(ws, b.add(b.mul(j, b.i64(k)), t)))
                    let sum = b.fadd(b.read(acc), product)
                    let flags = LLVMFastMathFlags(LLVMFastMathAllowReassoc | LLVMFastMathAllowContract)
                    LLVMSetFastMathFlags(product, flags)
                    LLVMSetFastMathFlags(sum, flags)
                    b.write(sum, acc)
                }
                b.store(finish(b.read(acc), r, j), y, b.add(b.mul(r, b.i64(n)), j))
            }
        }
        b.branch(done)
        // large: sgemm, then the epilogue in place
        b.position(at: large)
        sgemm(xs, ws, y, m: rows, n: n, k: k, transposeB: true)
        if bias != nil || !epilogue.isEmpty {
            try b.loop(rows) { r in
                try b.loop(b.i64(n)) { j in
                    let at = b.add(b.mul(r, b.i64(n)), j)
                    b.store(finish(b.load(y, at), r, j), y, at)
                }
            }
        }
        b.branch(done)
        b.position(at: done)
    }

    /// [..., M, K] × [..., K, N]: one sgemm per leading index (a batched [B, K] is one M = B product).
    func matmul(_ node: Node) throws {
        let a = node.operands[0], bm = node.operands[1], out = node.results[0]
        let at = g.type(of: a), bt = g.type(of: bm)
        let k = at.dims.last!, n = bt.dims.last!
        if at.rank == 2 && at.batched && !bt.batched {
            sgemm(f.address(a), f.address(bm), f.address(out), m: f.batch, n: n, k: k, transposeB: false)
            return
        }
        let m = at.size(ofAxis: at.rank - 2)!
        let lead = Array(f.extents(out).dropLast(2))
        let outStrides = strides(out), aStrides = broadcastStrides(a, to: out), bStrides = broadcastStrides(bm, to: out)
        // leading strides of a and b: their matrices' offsets along the output's leading axes
        let aLead = Array(aStrides.dropLast(2)), bLead = Array(bStrides.dropLast(2)), oLead = Array(outStrides.dropLast(2))
        try b.loops(lead) { index in
            let pa = b.element(f.address(a), b.offset(index, aLead)), pb = b.element(f.address(bm), b.offset(index, bLead))
            let pc = b.element(f.address(out), b.offset(index, oLead))
            sgemm(pa, pb, pc, m: b.i64(m), n: n, k: k, transposeB: false)
        }
    }

    // MARK: reductions and normalisation

    func reduce(_ node: Node) throws {
        let x = node.operands[0], out = node.results[0]
        guard case .ints(let rawAxes)? = node.attributes["axes"] else { fatalError("axes verified") }
        let axes = Set(rawAxes.map { $0 < 0 ? $0 + g.type(of: x).rank : $0 })
        let isMax = node.op == "amax"
        try fill(out, with: isMax ? -Double.infinity : 0)
        // strides into out for each axis of x: 0 along reduced axes
        var kept = staticShape(x)
        for a in axes { kept[a] = 1 }
        let keptStrides = OpLowering.strides(kept)
        let outIndexStrides = kept.indices.map { axes.contains($0) ? 0 : keptStrides[$0] }
        let xStrides = strides(x)
        let src = f.address(x), dst = f.address(out)
        // the batch axis is never reduced: out's batch stride is its per-sample size
        var outStrides = outIndexStrides
        if g.type(of: x).batched { outStrides[0] = g.type(of: out).elementsPerSample }
        try b.loops(f.extents(x)) { index in
            let o = b.offset(index, outStrides)
            let v = b.load(src, b.offset(index, xStrides))
            let acc = b.load(dst, o)
            b.store(isMax ? b.intrinsic("llvm.maxnum", [acc, v]) : b.fadd(acc, v), dst, o)
        }
        if node.op == "mean" {
            let n = Double(axes.map { g.type(of: x).size(ofAxis: $0)! }.reduce(1, *))
            let count = b.mul(g.type(of: out).batched ? f.batch : b.i64(1), b.i64(g.type(of: out).elementsPerSample))
            try b.loop(count) { i in b.store(b.fdiv(b.load(dst, i), b.f32(n)), dst, i) }
        }
    }

    /// softmax (max-shifted) and cumsum along one axis, line by line.
    func alongAxis(_ node: Node) throws {
        let x = node.operands[0], out = node.results[0]
        let axis = resolvedAxis(node, x)
        let extents = f.extents(x)
        let s = strides(x)
        let length = g.type(of: x).size(ofAxis: axis)!
        let src = f.address(x), dst = f.address(out)
        var outer = extents
        outer.remove(at: axis)
        var outerStrides = s
        outerStrides.remove(at: axis)
        let step = s[axis]
        try b.loops(outer) { index in
            let base = b.offset(index, outerStrides)
            func at(_ i: IRBuilder.Value) -> IRBuilder.Value { b.add(base, b.mul(i, b.i64(step))) }
            if node.op == "cumsum" {
                let acc = b.variable("acc")
                LLVMBuildStore(b.builder, b.f32(0), acc)
                try b.loop(b.i64(length)) { i in
                    let v = b.fadd(LLVMBuildLoad2(b.builder, b.f32, acc, "")!, b.load(src, at(i)))
                    LLVMBuildStore(b.builder, v, acc)
                    b.store(v, dst, at(i))
                }
            } else {
                let m = b.variable("max"), total = b.variable("total")
                LLVMBuildStore(b.builder, b.f32(-Double.infinity), m)
                LLVMBuildStore(b.builder, b.f32(0), total)
                try b.loop(b.i64(length)) { i in
                    LLVMBuildStore(b.builder, b.intrinsic("llvm.maxnum", [LLVMBuildLoad2(b.builder, b.f32, m, "")!, b.load(src, at(i))]), m)
                }
                let mx = LLVMBuildLoad2(b.builder, b.f32, m, "")!
                try b.loop(b.i64(length)) { i in
                    let e = ScalarMath.exp(b, b.fsub(b.load(src, at(i)), mx))
                    b.store(e, dst, at(i))
                    LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, total, "")!, e), total)
                }
                let t = LLVMBuildLoad2(b.builder, b.f32, total, "")!
                try b.loop(b.i64(length)) { i in b.store(b.fdiv(b.load(dst, at(i)), t), dst, at(i)) }
            }
        }
    }

    /// (x - mean)/√(var + eps)·weight + bias over the last axis (biased variance).
    func layernorm(_ node: Node) throws {
        let x = node.operands[0], out = node.results[0]
        guard case .float(let eps)? = node.attributes["eps"] else { fatalError("eps verified") }
        let n = g.type(of: x).dims.last!
        let rows = b.mul(g.type(of: x).batched ? f.batch : b.i64(1), b.i64(g.type(of: x).elementsPerSample / n))
        let src = f.address(x), dst = f.address(out)
        let weight = node.operands.count > 1 ? f.address(node.operands[1]) : nil
        let bias = node.operands.count > 2 ? f.address(node.operands[2]) : nil
        try b.loop(rows) { r in
            let base = b.mul(r, b.i64(n))
            let sum = b.variable("sum"), squares = b.variable("sq")
            LLVMBuildStore(b.builder, b.f32(0), sum)
            LLVMBuildStore(b.builder, b.f32(0), squares)
            try b.loop(b.i64(n)) { j in
                LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, sum, "")!, b.load(src, b.add(base, j))), sum)
            }
            let mean = b.fdiv(LLVMBuildLoad2(b.builder, b.f32, sum, "")!, b.f32(Double(n)))
            try b.loop(b.i64(n)) { j in
                let d = b.fsub(b.load(src, b.add(base, j)), mean)
                LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, squares, "")!, b.fmul(d, d)), squares)
            }
            let variance = b.fdiv(LLVMBuildLoad2(b.builder, b.f32, squares, "")!, b.f32(Double(n)))
            let scale = b.fdiv(b.f32(1), b.intrinsic("llvm.sqrt", [b.fadd(variance, b.f32(eps))]))
            try b.loop(b.i64(n)) { j in
                var v = b.fmul(b.fsub(b.load(src, b.add(base, j)), mean), scale)
                if let weight { v = b.fmul(v, b.load(weight, j)) }
                if let bias { v = b.fadd(v, b.load(bias, j)) }
                b.store(v, dst, b.add(base, j))
            }
        }
    }

    /// u ← body(u, captured…) from u = initial, at most `sweeps` times, stopping once no element
    /// moved by more than tolerance·(1 + |u|) (tolerance > 0): the interpreter's semantics.
    /// The next iterate and the body's workspace live in the kernel's scratch.
    func fixedPoint(_ node: Node) throws {
        guard case .int(let index)? = node.attributes["body"], case .int(let sweeps)? = node.attributes["sweeps"],
              case .float(let tolerance)? = node.attributes["tolerance"], let body = f.bodies[index], let scratch = f.kernelScratch,
              let weights = f.kernelWeights else {
            fatalError("fixed_point lowered with its body")
        }
        let u = node.results[0], type = g.type(of: u)
        let samples: IRBuilder.Value = type.batched ? f.batch! : b.i64(1)
        let count = b.mul(samples, b.i64(type.elementsPerSample))
        let current = f.address(u), initial = f.address(node.operands[0])
        let next = scratch
        let bodyWorkspace = b.element(scratch, b.mul(samples, b.i64(2 * MemoryPlan.rounded(type.elementsPerSample))))
        try b.loop(count) { i in b.store(b.load(initial, i), current, i) }
        let sweep = b.variable("sweep", type: b.i64), moved = b.variable("moved", type: b.i1)
        LLVMBuildStore(b.builder, b.i64(0), sweep)
        let header = b.block("sweep"), run = b.block("run"), exit = b.block("converged")
        b.branch(header)
        b.position(at: header)
        let s = LLVMBuildLoad2(b.builder, b.i64, sweep, "")!
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLT, s, b.i64(sweeps), "")!, run, exit)
        b.position(at: run)
        let captured = node.operands.dropFirst().map { f.address($0) }
        _ = b.call(body.function, body.type, [current] + captured + [next, f.batch!, bodyWorkspace, weights])
        LLVMBuildStore(b.builder, LLVMConstInt(b.i1, 0, 0), moved)
        try b.loop(count) { i in
            let old = b.load(current, i), new = b.load(next, i)
            let limit = b.fmul(b.f32(tolerance), b.fadd(b.f32(1), b.intrinsic("llvm.fabs", [old])))
            let far = b.fcmp(LLVMRealUGT, b.intrinsic("llvm.fabs", [b.fsub(new, old)]), limit)
            LLVMBuildStore(b.builder, LLVMBuildOr(b.builder, LLVMBuildLoad2(b.builder, b.i1, moved, "")!, far, "")!, moved)
            b.store(new, current, i)
        }
        LLVMBuildStore(b.builder, b.add(s, b.i64(1)), sweep)
        let stop: IRBuilder.Value = tolerance > 0 ? LLVMBuildNot(b.builder, LLVMBuildLoad2(b.builder, b.i1, moved, "")!, "")! : LLVMConstInt(b.i1, 0, 0)!
        b.condBranch(stop, exit, header)
        b.position(at: exit)
    }

    /// NCHW cross-correlation with zero padding, by direct loops.
    func conv2d(_ node: Node) throws {
        let x = node.operands[0], w = node.operands[1], out = node.results[0]
        let (c, h, wd) = (g.type(of: x).size(ofAxis: 1)!, g.type(of: x).size(ofAxis: 2)!, g.type(of: x).size(ofAxis: 3)!)
        let wdims = g.type(of: w).dims
        let (o, kh, kw) = (wdims[0], wdims[2], wdims[3])
        let (oh, ow) = (g.type(of: out).size(ofAxis: 2)!, g.type(of: out).size(ofAxis: 3)!)
        let stride = int(node, "stride"), padding = int(node, "padding")
        let src = f.address(x), weights = f.address(w), dst = f.address(out)
        let bias = node.operands.count > 2 ? f.address(node.operands[2]) : nil
        let samples: IRBuilder.Value = g.type(of: x).batched ? f.batch! : b.i64(1)
        try b.loops([samples, b.i64(o), b.i64(oh), b.i64(ow)]) { index in
            let (n, oc, i, j) = (index[0], index[1], index[2], index[3])
            let acc = b.variable("acc")
            LLVMBuildStore(b.builder, bias.map { b.load($0, oc) } ?? b.f32(0), acc)
            try b.loops([b.i64(c), b.i64(kh), b.i64(kw)]) { k in
                let y = b.sub(b.add(b.mul(i, b.i64(stride)), k[1]), b.i64(padding))
                let xc = b.sub(b.add(b.mul(j, b.i64(stride)), k[2]), b.i64(padding))
                let inside = LLVMBuildAnd(b.builder,
                    LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntSGE, y, b.i64(0), ""), LLVMBuildICmp(b.builder, LLVMIntSLT, y, b.i64(h), ""), ""),
                    LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntSGE, xc, b.i64(0), ""), LLVMBuildICmp(b.builder, LLVMIntSLT, xc, b.i64(wd), ""), ""), "")!
                let yes = b.block("in"), done = b.block("next")
                b.condBranch(inside, yes, done)
                b.position(at: yes)
                let wv = b.load(weights, b.offset([oc, k[0], k[1], k[2]], [c * kh * kw, kh * kw, kw, 1]))
                let xv = b.load(src, b.offset([n, k[0], y, xc], [c * h * wd, h * wd, wd, 1]))
                LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, acc, "")!, b.fmul(wv, xv)), acc)
                b.branch(done)
                b.position(at: done)
            }
            b.store(LLVMBuildLoad2(b.builder, b.f32, acc, "")!, dst, b.offset([n, oc, i, j], [o * oh * ow, oh * ow, ow, 1]))
        }
    }
}
