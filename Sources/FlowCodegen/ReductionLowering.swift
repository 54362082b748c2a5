import CLLVM
import FlowIR

/// Reductions, softmax, cumsum and layer normalisation, line by line along an axis.
extension OpLowering {
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
        b.loops(f.extents(x)) { index in
            let o = b.offset(index, outStrides)
            let v = b.load(src, b.offset(index, xStrides))
            let acc = b.load(dst, o)
            b.store(isMax ? b.intrinsic("llvm.maxnum", [acc, v]) : b.fadd(acc, v), dst, o)
        }
        if node.op == "mean" {
            let n = Double(axes.map { g.type(of: x).size(ofAxis: $0)! }.reduce(1, *))
            let count = b.mul(g.type(of: out).batched ? f.batch : b.i64(1), b.i64(g.type(of: out).elementsPerSample))
            b.loop(count) { i in b.store(b.fdiv(b.load(dst, i), b.f32(n)), dst, i) }
        }
    }

    /// softmax (max-shifted) and cumsum along one axis, line by line. Lines of up to 16 values
    /// are straight-line code (`unrolledLoop`): a spline's softmax over 8 bins spent most of its
    /// time in the counters of 8-trip loops.
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
        /// The running maximum of src along a line (`at`: a line position's index).
        func lineMax(_ at: (IRBuilder.Value) -> IRBuilder.Value) -> IRBuilder.Value {
            let m = b.variable("max")
            LLVMBuildStore(b.builder, b.f32(-Double.infinity), m)
            b.unrolledLoop(length) { i in
                LLVMBuildStore(b.builder, b.intrinsic("llvm.maxnum", [LLVMBuildLoad2(b.builder, b.f32, m, "")!, b.load(src, at(i))]), m)
            }
            return LLVMBuildLoad2(b.builder, b.f32, m, "")!
        }
        /// dst along a line divided by `total`.
        func divide(by total: IRBuilder.Value, _ at: (IRBuilder.Value) -> IRBuilder.Value) {
            b.unrolledLoop(length) { i in b.store(b.fdiv(b.load(dst, at(i)), total), dst, at(i)) }
        }
        b.loops(outer) { index in
            let base = b.offset(index, outerStrides)
            func at(_ i: IRBuilder.Value) -> IRBuilder.Value { b.add(base, b.mul(i, b.i64(step))) }
            if node.op == "cumsum" {
                let acc = b.variable("acc")
                LLVMBuildStore(b.builder, b.f32(0), acc)
                b.unrolledLoop(length) { i in
                    let v = b.fadd(LLVMBuildLoad2(b.builder, b.f32, acc, "")!, b.load(src, at(i)))
                    LLVMBuildStore(b.builder, v, acc)
                    b.store(v, dst, at(i))
                }
            } else if step == 1 {
                // the exponentials are one loop over the whole buffer, after the lines
                let mx = lineMax(at)
                b.unrolledLoop(length) { i in b.store(b.fsub(b.load(src, at(i)), mx), dst, at(i)) }
            } else {
                let mx = lineMax(at), total = b.variable("total")
                LLVMBuildStore(b.builder, b.f32(0), total)
                b.unrolledLoop(length) { i in
                    let e = ScalarMath.exp(b, b.fsub(b.load(src, at(i)), mx))
                    b.store(e, dst, at(i))
                    LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, total, "")!, e), total)
                }
                divide(by: LLVMBuildLoad2(b.builder, b.f32, total, "")!, at)
            }
        }
        guard node.op == "softmax", step == 1 else { return }
        // A line along the last axis is contiguous, and so are the lines: dst holds x − max(line).
        // The exponentials run in place over the whole buffer — one loop without aliasing that
        // the vectoriser takes, where a spline's lines of 8 bins were 8 scalar exponentials each
        // (a loop reading x and writing dst needs a runtime overlap check, too dear per line) —
        // then each line's sum, in order, and the division: the same values as line by line.
        let count = b.mul(g.type(of: x).batched ? f.batch : b.i64(1), b.i64(g.type(of: x).elementsPerSample))
        b.loop(count) { j in b.store(ScalarMath.exp(b, b.load(dst, j)), dst, j) }
        b.loops(outer) { index in
            let base = b.offset(index, outerStrides)
            let total = b.variable("total")
            LLVMBuildStore(b.builder, b.f32(0), total)
            b.unrolledLoop(length) { i in
                LLVMBuildStore(b.builder, b.fadd(LLVMBuildLoad2(b.builder, b.f32, total, "")!, b.load(dst, b.add(base, i))), total)
            }
            divide(by: LLVMBuildLoad2(b.builder, b.f32, total, "")!) { b.add(base, $0) }
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
        b.loop(rows) { r in
            let base = b.mul(r, b.i64(n))
            let sum = b.variable("sum"), squares = b.variable("sq")
            LLVMBuildStore(b.builder, b.f32(0), sum)
            LLVMBuildStore(b.builder, b.f32(0), squares)
            b.loop(b.i64(n)) { j in
                let total = b.fadd(LLVMBuildLoad2(b.builder, b.f32, sum, "")!, b.load(src, b.add(base, j)))
                b.reassociable(total)
                LLVMBuildStore(b.builder, total, sum)
            }
            let mean = b.fdiv(LLVMBuildLoad2(b.builder, b.f32, sum, "")!, b.f32(Double(n)))
            b.loop(b.i64(n)) { j in
                let d = b.fsub(b.load(src, b.add(base, j)), mean)
                let square = b.fmul(d, d), total = b.fadd(LLVMBuildLoad2(b.builder, b.f32, squares, "")!, square)
                b.reassociable(square, total)
                LLVMBuildStore(b.builder, total, squares)
            }
            let variance = b.fdiv(LLVMBuildLoad2(b.builder, b.f32, squares, "")!, b.f32(Double(n)))
            let scale = b.fdiv(b.f32(1), b.intrinsic("llvm.sqrt", [b.fadd(variance, b.f32(eps))]))
            b.loop(b.i64(n)) { j in
                var v = b.fmul(b.fsub(b.load(src, b.add(base, j)), mean), scale)
                if let weight { v = b.fmul(v, b.load(weight, j)) }
                if let bias { v = b.fadd(v, b.load(bias, j)) }
                b.store(v, dst, b.add(base, j))
            }
        }
    }

}
