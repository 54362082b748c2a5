import CLLVM
import FlowIR

/// Matrix products (sgemm, small generated products with fused epilogues) and convolution.
extension OpLowering {
    static let rowMajor = 101, noTrans = 111, trans = 112
    /// OpenBLAS's product: a module declares it only where a kernel calls it (TargetEmitter then
    /// links OpenBLAS).
    static let sgemmSymbol = "cblas_sgemm"

    func sgemm(_ a: IRBuilder.Value, _ bMatrix: IRBuilder.Value, _ c: IRBuilder.Value, m: IRBuilder.Value, n: Int, k: Int, transposeB: Bool) {
        let i32 = b.i32
        let type = b.functionType(b.void, [i32, i32, i32, i32, i32, i32, b.f32, b.pointer, i32, b.pointer, i32, b.f32, b.pointer, i32])
        let sgemm = b.declare(OpLowering.sgemmSymbol, type)
        let m32 = LLVMBuildTrunc(b.builder, m, i32, "")!
        _ = b.call(sgemm, type, [b.i32(OpLowering.rowMajor), b.i32(OpLowering.noTrans), b.i32(transposeB ? OpLowering.trans : OpLowering.noTrans),
                                 m32, b.i32(n), b.i32(k), b.f32(1), a, b.i32(k), bMatrix, b.i32(transposeB ? k : n), b.f32(0), c, b.i32(n)])
    }

    /// Products with at most this many rows, in and out widths ≤ 64, use generated loops (no
    /// BLAS call overhead for batch-1 calls); larger ones call cblas_sgemm.
    static let smallRows = 8, smallWidth = 64
    /// Products with at most this many outputs always use the generated dot products (at any
    /// row count): for a velocity's N = 2 they are 2·K/16 FMAs per row where the microkernel's
    /// one-vector tile does K (measured: 2.5% of e_fm's and f_meanflow's batch-256 time). Up to
    /// 8 (TarFlow's 64 → 8 output layers): the microkernel's six one-vector tile shapes cost
    /// 15% of the instructions to compile TarFlow (2.77G → 2.36G), for 0–2% of its call time.
    static let dotProductWidth = 8

    /// y = x·Wᵀ + b, then the epilogue chain applied in place, row by row. `linear_packed` runs the
    /// generated microkernel; `linear` small products generated dot-product loops, larger sgemm.
    func gemm(_ node: Node, epilogue: [Node], output: ValueID) throws {
        let x = node.operands[0], w = node.operands[1]
        let packed = node.op == WeightPacking.op   // w is then the packed Wᵀ (WeightPacking.layout)
        let wdims = g.type(of: w).dims
        let (n, k) = packed ? (g.type(of: node.results[0]).dims.last!, g.type(of: x).dims.last!) : (wdims[0], wdims[1])
        let rowsPerSample = g.type(of: x).elementsPerSample / k
        let rows = g.type(of: x).batched ? b.mul(f.batch, b.i64(rowsPerSample)) : b.i64(rowsPerSample)
        let y = f.address(output), xs = f.address(x), ws = f.address(w)
        let epilogueAt = try epilogueFunction(node, epilogue: epilogue, output: output)
        /// the bias and epilogue on one element: row r (flat over the leading axes), column j
        func finish(_ value: IRBuilder.Value, _ r: IRBuilder.Value, _ j: IRBuilder.Value) -> IRBuilder.Value {
            epilogueAt(value, .row(r, column: j), j)
        }
        /// y = finish(y) element by element over columns first ..< last, after a product that wrote y.
        func epilogueInPlace(columns first: IRBuilder.Value? = nil, _ last: IRBuilder.Value? = nil) {
            guard OpLowering.hasFinish(node, epilogue: epilogue) else { return }
            finishInPlace(epilogueAt, y: y, rows: rows, n: n, columns: first, last)
        }
        if packed {
            guard let part = f.kernelPart, let minimumRows = ColumnSplit.minimumRows(k: k, n: n),
                  let splitVector = OpLowering.splitVector(n: n, minimumRows: minimumRows) else {
                try packedProduct(x: xs, packed: ws, y: y, rows: rows, n: n, k: k, layout: WeightPacking.layout(of: node, n: n))
                epilogueInPlace()
                return
            }
            // few rows: the two column halves on two threads (ColumnSplit)
            try ColumnSplit.dispatch(b, rows: rows, minimumRows: minimumRows, part: part, kernelType: LLVMGlobalGetValueType(b.function!)) {
                try packedProduct(x: xs, packed: ws, y: y, rows: rows, n: n, k: k, layout: WeightPacking.layout(of: node, n: n), split: (part, splitVector, minimumRows))
                let middle = b.i64(splitVector * OpLowering.lanes)
                let first = b.select(LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(2), "")!, middle, b.i64(0))
                let last = b.select(LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(1), "")!, middle, b.i64(n))
                epilogueInPlace(columns: first, last)
            }
            return
        }
        /// dot products in generated loops, epilogue fused
        func dotProducts() {
            b.loop(rows) { r in
                b.loop(b.i64(n)) { j in
                    let acc = b.variable("dot")
                    b.write(b.f32(0), acc)
                    b.loop(b.i64(k)) { t in
                        // reassociation lets LLVM vectorise the dot product (as BLAS kernels do)
                        let product = b.fmul(b.load(xs, b.add(b.mul(r, b.i64(k)), t)), b.load(ws, b.add(b.mul(j, b.i64(k)), t)))
                        let sum = b.fadd(b.read(acc), product)
                        b.reassociable(product, sum)
                        b.write(sum, acc)
                    }
                    b.store(finish(b.read(acc), r, j), y, b.add(b.mul(r, b.i64(n)), j))
                }
            }
        }
        /// sgemm, then the epilogue in place
        func blas() {
            sgemm(xs, ws, y, m: rows, n: n, k: k, transposeB: true)
            epilogueInPlace()
        }
        if n <= OpLowering.dotProductWidth { return dotProducts() }
        guard n <= OpLowering.smallWidth && k <= OpLowering.smallWidth else { return blas() }
        let small = b.block("small"), large = b.block("large"), done = b.block("done")
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLE, rows, b.i64(OpLowering.smallRows), "")!, small, large)
        b.position(at: small)
        dotProducts()
        b.branch(done)
        b.position(at: large)
        blas()
        b.branch(done)
        b.position(at: done)
    }

    /// A product's bias and epilogue chain on one element (`epilogueFunction`).
    typealias Epilogue = (IRBuilder.Value, OutputElement, IRBuilder.Value) -> IRBuilder.Value

    /// y[r, j] = finish(y[r, j]), or finish(y[r, j] + addend[r, j]), for every row r and the
    /// columns first ..< last of y [rows, n]: after a product wrote y (ProductPairs: its first
    /// half of the inputs, the addend the second).
    func finishInPlace(_ finish: Epilogue, y: IRBuilder.Value, rows: IRBuilder.Value, n: Int, columns first: IRBuilder.Value? = nil,
                       _ last: IRBuilder.Value? = nil, adding addend: IRBuilder.Value? = nil) {
        b.loop(rows) { r in
            b.loop(b.sub(last ?? b.i64(n), first ?? b.i64(0))) { c in
                let j = first.map { b.add($0, c) } ?? c
                let at = b.add(b.mul(r, b.i64(n)), j)
                let value = addend.map { b.fadd(b.load(y, at), b.load($0, at)) } ?? b.load(y, at)
                b.store(finish(value, .row(r, column: j), j), y, at)
            }
        }
    }

    /// Where an epilogue's element is in the product's output: its flat index, or its row (flat
    /// over the leading axes) and column (the last axis).
    enum OutputElement {
        case flat(IRBuilder.Value)
        case row(IRBuilder.Value, column: IRBuilder.Value)
    }

    /// Whether a product's result changes after its sums: it has a bias (linear's and conv2d's
    /// third operand) or an elementwise chain.
    static func hasFinish(_ node: Node, epilogue: [Node]) -> Bool { node.operands.count > 2 || !epilogue.isEmpty }

    /// The bias and the epilogue chain of a product node, as code for one element:
    /// (the product's value, where it is in `output`, its bias index) → the chain's value.
    /// The chain's other operands are loaded with their broadcast over `output`'s shape. Given
    /// a row and a column, a broadcast operand's offset is (the row's offset) + column · stride:
    /// the row's part (divisions by the leading extents) is invariant in a loop over columns,
    /// so that loop vectorises (TarFlow's position embedding [T, C] added to a [B, T, C]
    /// product: a scalar loop with a division per element took 4% of its batch-1 log_prob).
    func epilogueFunction(_ node: Node, epilogue: [Node], output: ValueID) throws -> Epilogue {
        let bias = node.operands.count > 2 ? f.address(node.operands[2]) : nil   // linear's and conv2d's third operand
        let product = node.results[0]
        let produced = Set(([node] + epilogue).flatMap(\.results))
        var external: [ValueID] = []
        for e in epilogue { for v in e.operands where !produced.contains(v) && !external.contains(v) { external.append(v) } }
        let externalStrides = external.map { broadcastStrides($0, to: output) }
        let externalAddresses = external.map { f.address($0) }
        let outputType = g.type(of: output)
        return { [b, g] value, element, biasIndex in
            var values: [ValueID: IRBuilder.Value] = [product: bias.map { b.fadd(value, b.load($0, biasIndex)) } ?? value]
            let extents = outputType.shape(batch: 1)
            /// the offset of v (strides s) at the element: `rest` unflattened over the axes up to
            /// `through`, each index times its stride
            func offset(_ rest: IRBuilder.Value, through last: Int, _ s: [Int]) -> IRBuilder.Value {
                var offset = b.i64(0), rest = rest
                for axis in stride(from: last, through: 0, by: -1) {
                    let size = axis == 0 && outputType.batched ? nil : extents[axis]
                    let index = size.map { LLVMBuildSRem(b.builder, rest, b.i64($0), "")! } ?? rest
                    if s[axis] != 0 { offset = b.add(offset, b.mul(index, b.i64(s[axis]))) }
                    if let size { rest = LLVMBuildSDiv(b.builder, rest, b.i64(size), "")! }
                }
                return offset
            }
            let lastAxis = extents.count - 1
            for (v, (a, s)) in zip(external, zip(externalAddresses, externalStrides)) {
                switch element {
                case .flat(let flat):
                    values[v] = b.load(a, g.type(of: v) == outputType ? flat : offset(flat, through: lastAxis, s))
                case .row(let r, let j) where g.type(of: v) == outputType:
                    values[v] = b.load(a, b.add(b.mul(r, b.i64(extents[lastAxis])), j))
                case .row(let r, let j):
                    let rowOffset = lastAxis == 0 ? b.i64(0) : offset(r, through: lastAxis - 1, s)
                    values[v] = b.load(a, b.add(rowOffset, b.mul(j, b.i64(s[lastAxis]))))
                }
            }
            for e in epilogue { values[e.results[0]] = OpLowering.scalar(e, b, e.operands.map { values[$0]! }) }
            return values[epilogue.last?.results[0] ?? product]!
        }
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
        b.loops(lead) { index in
            let pa = b.element(f.address(a), b.offset(index, aLead)), pb = b.element(f.address(bm), b.offset(index, bLead))
            let pc = b.element(f.address(out), b.offset(index, oLead))
            sgemm(pa, pb, pc, m: b.i64(m), n: n, k: k, transposeB: false)
        }
    }

    /// NCHW cross-correlation with zero padding, as products over groups of samples: the group's
    /// patches (im2col) P[(c, u, v), (s, i, j)] = x[s, c, i·stride + u − p, j·stride + v − p]
    /// (0 outside) go to the kernel's scratch; y[o, (s, i, j)] = W[o, (c, u, v)] · P by the GEMM
    /// microkernel (W [O, C·kh·kw] is already the left matrix; sample-pixels are the vector
    /// lanes), into scratch; then the bias and the epilogue chain on the way out to NCHW. Small
    /// images share one product across `convolutionGroup(pixels:)` samples (a 4×4 image alone
    /// fills one vector of columns); the samples left over after whole groups run one by one,
    /// with a whole group's accumulator sets, so that each sample's sums are in the same order
    /// wherever it falls in the batch (alone, a 4×4 image's one vector would get 4 sets).
    /// (Small images whose taps cover most of them become a dense `linear` before this:
    /// DenseConvolution.)
    func conv2d(_ node: Node, epilogue: [Node], output: ValueID) throws {
        let x = node.operands[0], w = node.operands[1], out = node.results[0]
        let (c, h, wd) = (g.type(of: x).size(ofAxis: 1)!, g.type(of: x).size(ofAxis: 2)!, g.type(of: x).size(ofAxis: 3)!)
        let wdims = g.type(of: w).dims
        let (o, kh, kw) = (wdims[0], wdims[2], wdims[3])
        let (oh, ow) = (g.type(of: out).size(ofAxis: 2)!, g.type(of: out).size(ofAxis: 3)!)
        let stride = int(node, "stride"), padding = int(node, "padding")
        let src = f.address(x), weights = f.address(w), dst = f.address(output)
        let samples: IRBuilder.Value = g.type(of: x).batched ? f.batch! : b.i64(1)
        let pixels = oh * ow, depth = c * kh * kw
        guard let scratch = f.kernelScratch else { throw FlowError("internal: conv2d lowered without scratch", at: node.location) }
        let finish = try epilogueFunction(node, epilogue: epilogue, output: output)
        let size = OpLowering.convolutionGroup(pixels: pixels)
        let sets = OpLowering.accumulatorSets(vectors: OpLowering.im2colRowWidth(size * pixels) / OpLowering.lanes, registers: b.registers)
        /// Samples first ..< first + count (count fixed at compile time) as one product.
        func group(first: IRBuilder.Value, count: Int) throws {
            let columns = count * pixels, rowWidth = OpLowering.im2colRowWidth(columns)
            let patches = scratch, product = b.element(scratch, b.i64(depth * rowWidth))
            b.loops([b.i64(count), b.i64(c)]) { index in
                let (sample, channel) = (index[0], index[1])
                let image = b.element(src, b.offset([b.add(first, sample), channel], [c * h * wd, h * wd]))
                // one patch row per tap (u, v), unrolled: the output rows i and columns j whose
                // tap falls inside the image are compile-time ranges, so the copy has no test
                // per element and the padding is written as runs of zeros; runs of up to 16
                // columns are straight-line code (a 4×4 image's run of 4 became one vector move;
                // as a 4-trip scalar loop it was 60% of d_glow's 3×3 convolution)
                for u in 0..<kh {
                    for v in 0..<kw {
                        let (rowsInside, columnsInside) = (OpLowering.inside(tap: u, stride: stride, padding: padding, input: h, output: oh),
                                                           OpLowering.inside(tap: v, stride: stride, padding: padding, input: wd, output: ow))
                        let row = b.add(b.mul(channel, b.i64(kh * kw)), b.i64(u * kw + v))
                        let patchRow = b.element(patches, b.add(b.mul(row, b.i64(rowWidth)), b.mul(sample, b.i64(pixels))))
                        func zeros(_ from: Int, _ to: Int, rowAt i: IRBuilder.Value) {
                            guard to > from else { return }
                            b.unrolledLoop(to - from) { j in b.store(b.f32(0), patchRow, b.add(b.mul(i, b.i64(ow)), b.add(j, b.i64(from)))) }
                        }
                        for range in [0..<rowsInside.lowerBound, rowsInside.upperBound..<oh] where !range.isEmpty {
                            b.loop(b.i64(range.count)) { i in zeros(0, ow, rowAt: b.add(i, b.i64(range.lowerBound))) }
                        }
                        guard !rowsInside.isEmpty else { continue }
                        b.loop(b.i64(rowsInside.count)) { di in
                            let i = b.add(di, b.i64(rowsInside.lowerBound))
                            zeros(0, columnsInside.lowerBound, rowAt: i)
                            zeros(columnsInside.upperBound, ow, rowAt: i)
                            guard !columnsInside.isEmpty else { return }
                            let sourceRow = b.element(image, b.mul(b.sub(b.add(b.mul(i, b.i64(stride)), b.i64(u)), b.i64(padding)), b.i64(wd)))
                            b.unrolledLoop(columnsInside.count) { dj in
                                let j = b.add(dj, b.i64(columnsInside.lowerBound))
                                let value = b.load(sourceRow, b.sub(b.add(b.mul(j, b.i64(stride)), b.i64(v)), b.i64(padding)))
                                b.store(value, patchRow, b.add(b.mul(i, b.i64(ow)), j))
                            }
                        }
                    }
                }
            }
            try packedProduct(x: weights, packed: patches, y: product, rows: b.i64(o), n: columns, k: depth, layout: PackedLayout(panelWidth: rowWidth), accumulatorSets: sets)
            b.loops([b.i64(count), b.i64(o), b.i64(pixels)]) { index in
                let (s, channel, pixel) = (index[0], index[1], index[2])
                let at = b.offset([b.add(first, s), channel, pixel], [o * pixels, pixels, 1])
                b.store(finish(b.load(product, b.offset([channel, s, pixel], [columns, pixels, 1])), .flat(at), channel), dst, at)
            }
        }
        let groups = LLVMBuildUDiv(b.builder, samples, b.i64(size), "")!
        if size > 1 { try b.loop(groups) { n in try group(first: b.mul(n, b.i64(size)), count: size) } }
        let rest = size > 1 ? b.mul(groups, b.i64(size)) : b.i64(0)
        try b.loop(b.sub(samples, rest)) { n in try group(first: b.add(rest, n), count: 1) }
    }

    /// The output positions i (0 ..< output) whose tap i·stride + tap − padding lies inside
    /// 0 ..< input.
    static func inside(tap: Int, stride: Int, padding: Int, input: Int, output: Int) -> Range<Int> {
        let first = max(0, (padding - tap + stride - 1) / stride)   // smallest i with i·stride ≥ padding − tap
        let last = min(output - 1, (input - 1 + padding - tap) >= 0 ? (input - 1 + padding - tap) / stride : -1)
        return first <= last ? first..<(last + 1) : 0..<0
    }

    /// Samples per convolution product: enough to give ~256 columns (8 panels of the
    /// microkernel) when the image is small; 1 for images of 256 pixels or more.
    static func convolutionGroup(pixels: Int) -> Int { max(1, 256 / pixels) }

    /// Columns of one im2col row: the output pixels rounded up to whole vectors.
    static func im2colRowWidth(_ pixels: Int) -> Int { (pixels + lanes - 1) / lanes * lanes }

    /// Scratch floats a conv2d needs: one group's patches and its product.
    static func im2colFloats(_ node: Node, _ g: Graph) -> Int {
        let w = g.type(of: node.operands[1]).dims, out = g.type(of: node.results[0])
        let pixels = out.size(ofAxis: 2)! * out.size(ofAxis: 3)!
        let rowWidth = im2colRowWidth(convolutionGroup(pixels: pixels) * pixels)
        return (w[1] * w[2] * w[3] + w[0]) * rowWidth
    }
}
