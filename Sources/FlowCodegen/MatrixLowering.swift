import CLLVM
import FlowIR

/// Matrix products (sgemm, small generated products with fused epilogues) and convolution.
extension OpLowering {
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

    /// y = x·Wᵀ + b, then the epilogue chain applied in place, row by row. `linear_packed` runs the
    /// generated microkernel; `linear` small products generated dot-product loops, larger sgemm.
    func gemm(_ node: Node, epilogue: [Node], output: ValueID) throws {
        let x = node.operands[0], w = node.operands[1]
        let packed = node.op == WeightPacking.op   // w is then the packed Wᵀ [K, N16]
        let wdims = g.type(of: w).dims
        let (n, k) = packed ? (g.type(of: node.results[0]).dims.last!, wdims[0]) : (wdims[0], wdims[1])
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
        /// y = finish(y) element by element, after a product that wrote y.
        func epilogueInPlace() throws {
            guard bias != nil || !epilogue.isEmpty else { return }
            try b.loop(rows) { r in
                try b.loop(b.i64(n)) { j in
                    let at = b.add(b.mul(r, b.i64(n)), j)
                    b.store(finish(b.load(y, at), r, j), y, at)
                }
            }
        }
        if packed {
            try packedProduct(x: xs, packed: ws, y: y, rows: rows, n: n, k: k, paddedWidth: wdims[1])
            try epilogueInPlace()
            return
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
                    b.reassociable(product, sum)
                    b.write(sum, acc)
                }
                b.store(finish(b.read(acc), r, j), y, b.add(b.mul(r, b.i64(n)), j))
            }
        }
        b.branch(done)
        // large: sgemm, then the epilogue in place
        b.position(at: large)
        sgemm(xs, ws, y, m: rows, n: n, k: k, transposeB: true)
        try epilogueInPlace()
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

    /// NCHW cross-correlation with zero padding, per sample as a product: the sample's patches
    /// (im2col) P[(c, u, v), (i, j)] = x[c, i·s + u − p, j·s + v − p] (0 outside) go to the kernel's
    /// scratch, rows padded to 16 columns; then y[o, (i, j)] = W[o, (c, u, v)] · P by the GEMM
    /// microkernel (W [O, C·kh·kw] is already the left matrix; pixels are the vector lanes);
    /// then the bias.
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
        let pixels = oh * ow, rowWidth = OpLowering.im2colRowWidth(pixels), depth = c * kh * kw
        guard let patches = f.kernelScratch else { throw FlowError("internal: conv2d lowered without scratch", at: node.location) }
        try b.loop(samples) { n in
            try b.loops([b.i64(c), b.i64(kh), b.i64(kw), b.i64(oh), b.i64(ow)]) { index in
                let (channel, u, v, i, j) = (index[0], index[1], index[2], index[3], index[4])
                let y = b.sub(b.add(b.mul(i, b.i64(stride)), u), b.i64(padding))
                let xc = b.sub(b.add(b.mul(j, b.i64(stride)), v), b.i64(padding))
                let inside = LLVMBuildAnd(b.builder,
                    LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntSGE, y, b.i64(0), ""), LLVMBuildICmp(b.builder, LLVMIntSLT, y, b.i64(h), ""), ""),
                    LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntSGE, xc, b.i64(0), ""), LLVMBuildICmp(b.builder, LLVMIntSLT, xc, b.i64(wd), ""), ""), "")!
                // clamped so the load stays inside the image; the select discards it outside
                let yy = b.select(inside, y, b.i64(0)), xx = b.select(inside, xc, b.i64(0))
                let value = b.load(src, b.offset([n, channel, yy, xx], [c * h * wd, h * wd, wd, 1]))
                let row = b.offset([channel, u, v], [kh * kw, kw, 1])
                b.store(b.select(inside, value, b.f32(0)), patches, b.add(b.mul(row, b.i64(rowWidth)), b.add(b.mul(i, b.i64(ow)), j)))
            }
            let y = b.element(dst, b.mul(n, b.i64(o * pixels)))
            try packedProduct(x: weights, packed: patches, y: y, rows: b.i64(o), n: pixels, k: depth, paddedWidth: rowWidth)
            if let bias {
                try b.loops([b.i64(o), b.i64(pixels)]) { index in
                    let at = b.add(b.mul(index[0], b.i64(pixels)), index[1])
                    b.store(b.fadd(b.load(y, at), b.load(bias, index[0])), y, at)
                }
            }
        }
    }

    /// Columns of one im2col row: the output pixels rounded up to whole vectors.
    static func im2colRowWidth(_ pixels: Int) -> Int { (pixels + lanes - 1) / lanes * lanes }

    /// Scratch floats a conv2d needs for one sample's patches.
    static func im2colFloats(_ node: Node, _ g: Graph) -> Int {
        let w = g.type(of: node.operands[1]).dims, out = g.type(of: node.results[0])
        return w[1] * w[2] * w[3] * im2colRowWidth(out.size(ofAxis: 2)! * out.size(ofAxis: 3)!)
    }
}
