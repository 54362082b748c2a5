import CLLVM

/// sin and cos as straight-line code, so time embeddings vectorise instead of calling libm per
/// element (MeanFlow's sinusoidal embeddings were 4% of its batch-256 time). In f64, for
/// |x| ≤ `reductionLimit`: k = rint(x·2/π), r = x − k·(π/2) with π/2 in two doubles and fused
/// multiply-adds (exact to ~2⁻⁵³ relative for |k| < 2²⁰), then Taylor series on |r| ≤ π/4 (the
/// first omitted terms are below 1e-11), the quadrant k mod 4 choosing ±sin r or ±cos r, and one
/// rounding to f32. Beyond the limit (and for inf or NaN) the caller computes the element with
/// libm instead: `outOfRange` tells it so.
enum TrigonometricMath {
    static let reductionLimit = 100_000.0
    /// π/2 = high + low, high the double nearest π/2
    static let halfPiHigh = 1.5707963267948966, halfPiLow = 6.123233995736766e-17

    /// sin r / r and cos r as polynomials in r², highest power first: Taylor to r¹¹ and r¹² (the
    /// first omitted terms are below 1e-11, ample for one rounding to f32).
    static let sinePolynomial: [Double] = [-1 / 39916800, 1 / 362880, -1 / 5040, 1 / 120, -1 / 6, 1]
    static let cosinePolynomial: [Double] = [1 / 479001600, -1 / 3628800, 1 / 40320, -1 / 720, 1 / 24, -1 / 2, 1]

    /// (sin x or cos x for |x| ≤ the limit, whether x is outside it, NaN included).
    static func evaluate(_ b: IRBuilder, _ x: IRBuilder.Value, cosine: Bool) -> (value: IRBuilder.Value, outOfRange: IRBuilder.Value) {
        let inside = b.fcmp(LLVMRealOLE, b.intrinsic("llvm.fabs", [x]), b.f32(reductionLimit))
        let wide = LLVMBuildFPExt(b.builder, b.select(inside, x, b.f32(0)), b.f64, "")!
        let both = sineAndCosine(b, wide)
        return (LLVMBuildFPTrunc(b.builder, cosine ? both.cosine : both.sine, b.f32, "")!, LLVMBuildNot(b.builder, inside, "")!)
    }

    /// (sin x, cos x) of an f64 x with |x| ≤ the limit, in f64: the reduction and quadrants above,
    /// sin r = r·S(r²) and cos r = C(r²) with S and C the given polynomials (NoiseLowering's
    /// Box–Muller takes longer ones, to f64 accuracy).
    static func sineAndCosine(_ b: IRBuilder, _ wide: IRBuilder.Value, sinePolynomial: [Double] = sinePolynomial,
                              cosinePolynomial: [Double] = cosinePolynomial) -> (sine: IRBuilder.Value, cosine: IRBuilder.Value) {
        func d(_ v: Double) -> IRBuilder.Value { LLVMConstReal(b.f64, v) }
        func multiplyAdd(_ a: IRBuilder.Value, _ m: IRBuilder.Value, _ c: IRBuilder.Value) -> IRBuilder.Value {
            PolynomialMath.multiplyAdd(b, a, m, c, type: b.f64)
        }
        let k = b.intrinsic("llvm.rint", [LLVMBuildFMul(b.builder, wide, d(2 / Double.pi), "")!], type: b.f64)
        let r = multiplyAdd(LLVMBuildFNeg(b.builder, k, "")!, d(halfPiLow), multiplyAdd(LLVMBuildFNeg(b.builder, k, "")!, d(halfPiHigh), wide))
        let r2 = LLVMBuildFMul(b.builder, r, r, "")!
        let sine = LLVMBuildFMul(b.builder, r, PolynomialMath.horner(b, r2, sinePolynomial, type: b.f64), "")!
        let cosineOfR = PolynomialMath.horner(b, r2, cosinePolynomial, type: b.f64)
        // quadrant q = k mod 4 (k + 1 for the cosine): sin x = sin r, cos r, −sin r, −cos r
        let k64 = LLVMBuildFPToSI(b.builder, k, b.i64, "")!
        func value(shift: Int) -> IRBuilder.Value {
            let q = LLVMBuildAnd(b.builder, b.add(k64, b.i64(shift)), b.i64(3), "")!
            let odd = LLVMBuildICmp(b.builder, LLVMIntEQ, LLVMBuildAnd(b.builder, q, b.i64(1), "")!, b.i64(1), "")!
            let negative = LLVMBuildICmp(b.builder, LLVMIntUGE, q, b.i64(2), "")!
            let magnitude = b.select(odd, cosineOfR, sine)
            return b.select(negative, LLVMBuildFNeg(b.builder, magnitude, "")!, magnitude)
        }
        return (value(shift: 0), value(shift: 1))
    }
}
