import CLLVM
import FlowIR

/// The rational-quadratic spline per element, as the interpreter's SplineKernel: find the bin
/// by counting knots below the value, then the closed forms of Durkan et al. (2019) eq. 4–6
/// inside it, the identity (log-derivative 0) outside.
struct SplineLowering {
    let ops: OpLowering
    var b: IRBuilder { ops.b }

    func emit(_ node: Node) throws {
        let g = ops.g, f = ops.f
        let x = node.operands[0], out = node.results[0]
        let knots = g.type(of: node.operands[1]).dims.last!
        let count = b.mul(g.type(of: x).batched ? f.batch : b.i64(1), b.i64(g.type(of: x).elementsPerSample))
        let knotsBatched = g.type(of: node.operands[1]).batched
        let perSample = g.type(of: x).elementsPerSample
        let (src, xk, yk, dk, dst) = (f.address(x), f.address(node.operands[1]), f.address(node.operands[2]), f.address(node.operands[3]), f.address(out))
        let inverse = node.op == "rq_spline_inverse", logDerivative = node.op == "rq_spline_logderiv"
        b.loop(count) { i in
            let v = b.load(src, i)
            // element i's knots start at (i mod perSample)·knots when shared by the batch
            let row = knotsBatched ? i : LLVMBuildSRem(b.builder, i, b.i64(perSample), "")!
            let base = b.mul(row, b.i64(knots))
            let edges = inverse ? yk : xk
            var below = b.i64(0)
            for j in 0..<knots {
                let isBelow = b.fcmp(LLVMRealOLT, b.load(edges, b.add(base, b.i64(j))), v)
                below = b.add(below, LLVMBuildZExt(b.builder, isBelow, b.i64, "")!)
            }
            let k = b.sub(below, b.i64(1))
            let inRange = LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntSGE, k, b.i64(0), ""),
                                       LLVMBuildICmp(b.builder, LLVMIntSLT, k, b.i64(knots - 1), ""), "")!
            let inside = b.block("spline_inside"), outside = b.block("spline_outside"), done = b.block("spline_done")
            b.condBranch(inRange, inside, outside)
            b.position(at: outside)
            b.store(logDerivative ? b.f32(0) : v, dst, i)
            b.branch(done)
            b.position(at: inside)
            let at0 = b.add(base, k), at1 = b.add(at0, b.i64(1))
            let (x0, x1, y0, y1) = (b.load(xk, at0), b.load(xk, at1), b.load(yk, at0), b.load(yk, at1))
            let (d0, d1) = (b.load(dk, at0), b.load(dk, at1))
            let width = b.fsub(x1, x0), height = b.fsub(y1, y0)
            let s = b.fdiv(height, width)
            let curvature = b.fsub(b.fadd(d0, d1), b.fmul(b.f32(2), s))
            func clamp01(_ t: IRBuilder.Value) -> IRBuilder.Value { b.intrinsic("llvm.minnum", [b.intrinsic("llvm.maxnum", [t, b.f32(0)]), b.f32(1)]) }
            if inverse {
                let shifted = b.fsub(v, y0)
                let qa = b.fadd(b.fmul(height, b.fsub(s, d0)), b.fmul(shifted, curvature))
                let qb = b.fsub(b.fmul(height, d0), b.fmul(shifted, curvature))
                let qc = b.fneg(b.fmul(s, shifted))
                let discriminant = b.intrinsic("llvm.maxnum", [b.fsub(b.fmul(qb, qb), b.fmul(b.f32(4), b.fmul(qa, qc))), b.f32(0)])
                let denominator = b.fsub(b.fneg(qb), b.intrinsic("llvm.sqrt", [discriminant]))
                let xi = b.select(b.fcmp(LLVMRealOEQ, denominator, b.f32(0)), b.f32(0), clamp01(b.fdiv(b.fmul(b.f32(2), qc), denominator)))
                b.store(b.fadd(x0, b.fmul(xi, width)), dst, i)
            } else {
                let xi = clamp01(b.fdiv(b.fsub(v, x0), width))
                let oneMinus = b.fsub(b.f32(1), xi)
                let t = b.fmul(xi, oneMinus)
                let denominator = b.fadd(s, b.fmul(curvature, t))
                if logDerivative {
                    let numerator = b.fmul(b.fmul(s, s), b.fadd(b.fadd(b.fmul(b.fmul(b.f32(2), s), t), b.fmul(d0, b.fmul(oneMinus, oneMinus))), b.fmul(d1, b.fmul(xi, xi))))
                    b.store(b.fsub(ScalarMath.log(b, numerator), b.fmul(b.f32(2), ScalarMath.log(b, denominator))), dst, i)
                } else {
                    let numerator = b.fadd(b.fmul(s, b.fmul(xi, xi)), b.fmul(d0, t))
                    b.store(b.fadd(y0, b.fdiv(b.fmul(height, numerator), denominator)), dst, i)
                }
            }
            b.branch(done)
            b.position(at: done)
        }
    }
}
