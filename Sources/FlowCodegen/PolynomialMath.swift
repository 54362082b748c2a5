import CLLVM

/// exp and log as straight-line f32 code (range reduction + minimax polynomial: log's are the
/// coefficients of Cephes' logf by S. L. Moshier, exp's are fitted by
/// Tests/Fixtures/oracles/exp_coefficients.py), so that loops calling them vectorise instead of
/// calling scalar libm. Measured against f64 in `PolynomialMathTests` (the README lists the
/// errors). Results below 2⁻¹²⁶ flush to zero (no denormals).
enum PolynomialMath {
    static func bits(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value { LLVMBuildBitCast(b.builder, x, b.i32, "")! }
    static func float(_ b: IRBuilder, _ i: IRBuilder.Value) -> IRBuilder.Value { LLVMBuildBitCast(b.builder, i, b.f32, "")! }
    static func i32(_ b: IRBuilder, _ v: Int) -> IRBuilder.Value { LLVMConstInt(b.i32, UInt64(bitPattern: Int64(v)), 1) }

    /// a·x + c as `llvm.fmuladd`: one fused multiply-add where the target has FMA (then in the
    /// vector loop and its scalar remainder alike, so a value never depends on its position),
    /// a multiply and an add elsewhere.
    static func multiplyAdd(_ b: IRBuilder, _ a: IRBuilder.Value, _ x: IRBuilder.Value, _ c: IRBuilder.Value,
                            type: LLVMTypeRef? = nil) -> IRBuilder.Value {
        b.intrinsic("llvm.fmuladd", [a, x, c], type: type)
    }

    /// Horner: c[0]·xⁿ + ... + c[n], one multiply-add per coefficient (in f32, or `type`)
    static func horner(_ b: IRBuilder, _ x: IRBuilder.Value, _ c: [Double], type: LLVMTypeRef? = nil) -> IRBuilder.Value {
        let type = type ?? b.f32
        var acc = LLVMConstReal(type, c[0])!
        for k in c.dropFirst() { acc = multiplyAdd(b, acc, x, LLVMConstReal(type, k), type: type) }
        return acc
    }

    /// Estrin: the same polynomial as `horner` (c[0] the highest power), as a tree — pairs
    /// a + b·x, then pairs of those with x², x⁴, …: a degree-n polynomial is ⌈log₂(n + 1)⌉
    /// dependent multiply-adds instead of n, for 2–3 more operations. An elementwise loop over
    /// a long polynomial is bound by that chain, as an out-of-order core keeps only so many
    /// operations in flight (GELU's degree 15: see `gelu`). The rounding differs from Horner's.
    static func estrin(_ b: IRBuilder, _ x: IRBuilder.Value, _ c: [Double]) -> IRBuilder.Value {
        var terms = c.reversed().map { LLVMConstReal(b.f32, $0)! }   // lowest power first
        var power = x
        while terms.count > 1 {
            terms = stride(from: 0, to: terms.count, by: 2).map { i in
                i + 1 < terms.count ? multiplyAdd(b, terms[i + 1], power, terms[i]) : terms[i]
            }
            if terms.count > 1 { power = b.fmul(power, power) }
        }
        return terms[0]
    }

    /// eˣ = 2ⁿ·eʳ with n = round(x·log₂e), r = x − n·ln2 (ln2 split in two for exactness), eʳ by
    /// a degree-6 polynomial on |r| ≤ ln2/2; overflow to +inf above 88.72, 0 below −87.33.
    static func exp(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let (reduced, scale) = expFactors(b, x)   // eˣ for x clamped to [−87.33, 88.72]
        let value = b.fmul(reduced, scale)
        let overflow = b.fcmp(LLVMRealOGT, x, b.f32(88.72283)), underflow = b.fcmp(LLVMRealOLT, x, b.f32(-87.33654))
        let result = b.select(overflow, b.f32(Double.infinity), b.select(underflow, b.f32(0), value))
        return b.select(b.fcmp(LLVMRealUNO, x, x), x, result)   // NaN stays NaN
    }

    /// The minimax fit of (eᵗ − 1 − t)/t² on |t| ≤ ln2/2, lowest power first
    /// (Tests/Fixtures/oracles/exp_coefficients.py): eᵗ = 1 + t + t²·P(t) to 3.8e-9 before
    /// rounding, so the f32 evaluation's roundings are the error (≤ 1 ulp, PolynomialMathTests).
    /// Cephes' expf has one coefficient more (degree 7), a multiply-add on every exp's chain.
    static let expPolynomial: [Double] = [0.4999999403953552, 0.1666652113199234, 0.04166838899254799,
                                          0.008368710055947304, 0.001381461275741458]

    /// e^(±x) as two factors (eᵗ, 2ⁿ), ±x clamped to [−87.33, 88.72] (NaN taken as the low end),
    /// so that n is −126 … 128 (2¹²⁸'s bits are +inf: within 1e-5 of the top, where eˣ is
    /// 3.4028e38 against the largest f32's 3.40282e38, the product is inf): `negated` gives e⁻ˣ
    /// with the sign folded into the constants (SiLU needs no negation, and 1 + e⁻ˣ is one
    /// multiply-add, eᵗ·2ⁿ + 1).
    /// n = round(±x·log₂e) by the f32 addition of 1.5·2²³ + 127, whose low mantissa bits are then
    /// n + 127: shifted left by 23 they are 2ⁿ's bits (no rounding instruction, no conversion).
    /// t = ±(x ∓ n·ln2) = σ·r with σ = ±1, and eᵗ = 1 + r·(σ + r·P(σr)), P's odd powers negated
    /// when σ = −1: two multiply-adds after P.
    static func expFactors(_ b: IRBuilder, _ x: IRBuilder.Value, negated: Bool = false) -> (IRBuilder.Value, IRBuilder.Value) {
        let sign: Double = negated ? -1 : 1
        let (low, high) = negated ? (-88.72283, 87.33654) : (-87.33654, 88.72283)
        let clamped = b.intrinsic("llvm.minnum", [b.intrinsic("llvm.maxnum", [x, b.f32(low)]), b.f32(high)])
        let magic = b.f32(12_582_912 + 127)   // 1.5·2²³ + 127: f32 numbers near it are spaced by 1
        let shifted = multiplyAdd(b, clamped, b.f32(sign * 1.44269504088896341), magic)
        let n = b.fsub(shifted, magic)
        // r = x − σ·n·ln2, ln2 = 0.693359375 − 2.12194440e-4 (the first part exact in a product with n)
        let r = multiplyAdd(b, n, b.f32(sign * 2.12194440e-4), multiplyAdd(b, n, b.f32(-sign * 0.693359375), clamped))
        let p = horner(b, r, expPolynomial.enumerated().reversed().map { k, c in k % 2 == 1 ? sign * c : c })
        let reduced = multiplyAdd(b, multiplyAdd(b, p, r, b.f32(sign)), r, b.f32(1))
        let scale = float(b, LLVMBuildShl(b.builder, bits(b, shifted), i32(b, 23), "")!)
        return (reduced, scale)
    }

    /// ln x = e·ln2 + ln m with x = m·2ᵉ, m ∈ [√½, √2), ln(1 + f) = f − f²/2 + f³·P(f);
    /// ln 0 = −inf, ln of a negative number or NaN = NaN, ln inf = inf; denormals are scaled first.
    static func log(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let tiny = b.fcmp(LLVMRealOLT, x, b.f32(1.17549435e-38))
        let scaled = b.select(tiny, b.fmul(x, b.f32(8388608)), x)                 // ·2²³
        let bias = b.select(tiny, i32(b, 127 + 23), i32(b, 127))
        let xi = bits(b, scaled)
        var e = LLVMBuildSub(b.builder, LLVMBuildLShr(b.builder, xi, i32(b, 23), "")!, bias, "")!
        // m in [0.5, 1)
        var m = float(b, LLVMBuildOr(b.builder, LLVMBuildAnd(b.builder, xi, i32(b, 0x007F_FFFF), "")!, i32(b, 0x3F00_0000), "")!)
        e = LLVMBuildAdd(b.builder, e, i32(b, 1), "")!
        let small = b.fcmp(LLVMRealOLT, m, b.f32(0.707106781186547524))
        e = b.select(small, LLVMBuildSub(b.builder, e, i32(b, 1), "")!, e)
        m = b.select(small, b.fsub(b.fadd(m, m), b.f32(1)), b.fsub(m, b.f32(1)))
        let ef = LLVMBuildSIToFP(b.builder, e, b.f32, "")!
        let z = b.fmul(m, m)
        let p = horner(b, m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                              -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1])
        var y = b.fmul(b.fmul(p, m), z)
        y = b.fadd(y, b.fmul(ef, b.f32(-2.12194440e-4)))
        y = b.fsub(y, b.fmul(z, b.f32(0.5)))
        let value = b.fadd(b.fadd(m, y), b.fmul(ef, b.f32(0.693359375)))
        let zero = b.fcmp(LLVMRealOEQ, x, b.f32(0)), negative = b.fcmp(LLVMRealOLT, x, b.f32(0))
        let infinite = b.fcmp(LLVMRealOEQ, x, b.f32(Double.infinity)), nan = b.fcmp(LLVMRealUNO, x, x)
        var result = b.select(zero, b.f32(-Double.infinity), value)
        result = b.select(negative, b.f32(Double.nan), result)
        result = b.select(infinite, x, result)
        return b.select(nan, x, result)
    }

    /// ln(1 + u) = ln w − ((w − 1) − u)/w with w = 1 + u (the rounding of w corrected to first
    /// order, after Goldberg), exact to a few ulps where 1 + u loses the low bits of u.
    static func log1p(_ b: IRBuilder, _ u: IRBuilder.Value) -> IRBuilder.Value {
        let w = b.fadd(b.f32(1), u)
        let corrected = b.fsub(log(b, w), b.fdiv(b.fsub(b.fsub(w, b.f32(1)), u), w))
        return b.select(b.fcmp(LLVMRealOEQ, w, b.f32(1)), u, corrected)
    }

    /// tanh |x| = q/(q + 2) with q = e^{2|x|} − 1: for |x| < 0.5 q comes from the Taylor series
    /// of expm1 to t¹⁰ (truncation below 3e-8 relative for t = 2|x| < 1), so nothing cancels;
    /// above, 1 − 2/(e^{2|x|} + 1), whose result is ≥ 0.46 and loses no bits. The sign of x is
    /// copied back.
    static func tanh(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let a = b.intrinsic("llvm.fabs", [x])
        let t = b.fmul(a, b.f32(2))
        // q = t·(1/1! + t/2! + ... + t⁹/10!): coefficients from the highest power down
        let inverseFactorials = (1...10).reversed().map { k in 1 / (1...k).reduce(1.0) { $0 * Double($1) } }
        let q = b.fmul(t, horner(b, t, inverseFactorials))
        let small = b.fdiv(q, b.fadd(q, b.f32(2)))
        let large = b.fsub(b.f32(1), b.fdiv(b.f32(2), b.fadd(exp(b, t), b.f32(1))))
        let magnitude = b.select(b.fcmp(LLVMRealOLT, a, b.f32(0.5)), small, large)
        return b.intrinsic("llvm.copysign", [magnitude, x])
    }

    /// erf x as two polynomials, no division and no exponential, so that it vectorises cheaply
    /// (27 operations per vector against 40 with the former series + Abramowitz & Stegun 7.1.26
    /// tail; GELU has a polynomial of its own, `gelu`). |x| ≤ 1: x·S(x²), S of degree 6 fitted
    /// to erf(x)/x for relative error; above: T(s) with s = (min(|x|, 3.92) − 2.46)/1.46 ∈
    /// [−1, 1], T of degree 13 fitted to erf on [1, 3.92] (T(1) rounds to 1, as erf does in f32
    /// beyond 3.92), the sign copied back. Both fits and their f32 error (2.31 ulp worst, 1.93 in
    /// the tail) come from Tests/Fixtures/oracles/erf_coefficients.py; `PolynomialMathTests`
    /// measures the compiled code.
    static func erf(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let a = b.intrinsic("llvm.fabs", [x])
        let small = b.fmul(x, horner(b, b.fmul(x, x), erfSmall))
        let (middle, half) = ((1 + erfTailEnd) / 2, (erfTailEnd - 1) / 2)
        let s = multiplyAdd(b, b.intrinsic("llvm.minnum", [a, b.f32(erfTailEnd)]), b.f32(1 / half), b.f32(-middle / half))
        let large = b.intrinsic("llvm.copysign", [horner(b, s, erfTail), x])
        return b.select(b.fcmp(LLVMRealOLE, a, b.f32(1)), small, large)
    }

    /// GELU's x·Φ(x) = ½x·(1 + erf(x/√2)) as h + h·E(x), h = ½x: E(x) = erf(|x|/√2) as one
    /// polynomial G of degree 15 in s = min(|x|, X)·(2/X) − 1 ∈ [−1, 1], X = 3.92·√2 (erf rounds
    /// to 1 in f32 beyond), the sign copied back. GELU's error counts against max(1, |x|) (as
    /// PyTorch's f32 GELU, whose 1 + erf cancels for x < 0 alike), so E needs an absolute error
    /// only, and one polynomial replaces `erf`'s two (relative error near 0) and their select:
    /// 21 vector operations per GELU against 31. G is 1 exactly at the clamp's s (so gelu(x) = x
    /// for x ≥ X and 0 for x ≤ −X, as PyTorch's f32 formula gives) and 0 at x = 0. G is evaluated
    /// by `estrin`, its constant term moved by an ulp so that G stays exactly 1 at the clamp:
    /// TarFlow's MLP epilogue (64 → 256, GELU) took 27% fewer samples than with Horner, for an
    /// f32 error of 2.05e-7 · max(1, |x|) against Horner's 1.27e-7 (fit and error from
    /// Tests/Fixtures/oracles/gelu_coefficients.py; `PolynomialMathTests` measures the compiled
    /// code against its bound of 3e-7).
    static func gelu(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let h = b.fmul(x, b.f32(0.5))
        let s = multiplyAdd(b, b.intrinsic("llvm.minnum", [b.intrinsic("llvm.fabs", [x]), b.f32(geluEnd)]), b.f32(2 / geluEnd), b.f32(-1))
        return multiplyAdd(b, h, b.intrinsic("llvm.copysign", [estrin(b, s, geluErf), x]), h)
    }

    /// X of `gelu`: erf's 3.92 (`erfTailEnd`, where erf rounds to 1 in f32) as a GELU input.
    static let geluEnd = erfTailEnd * 2.0.squareRoot()
    /// G of `gelu`, highest power first (f32 values).
    static let geluErf: [Double] = [0.015013732016086578, -0.013142446056008339, -0.07545141875743866, 0.09707389771938324,
                                    0.12458211928606033, -0.28851211071014404, 0.047557178884744644, 0.35766512155532837,
                                    -0.43819257616996765, 0.08124002069234848, 0.3729352056980133, -0.546417772769928,
                                    0.4060945510864258, -0.1823330670595169, 0.04746118560433388, 0.994426429271698]

    /// The end of T's interval [1, 3.92] (erf rounds to 1 in f32 beyond it).
    static let erfTailEnd = 3.92
    /// S and T of `erf`, highest power first (f32 values).
    static let erfSmall: [Double] = [7.898209878476337e-05, -0.0008024353883229196, 0.00519005348905921, -0.026854809373617172,
                                     0.11283612251281738, -0.3761262893676758, 1.128379225730896]
    static let erfTail: [Double] = [1.2985969988221768e-05, -0.0008599194115959108, 0.0015874085947871208, 0.002283840673044324,
                                    -0.009031123481690884, 0.008065709844231606, 0.006495251320302486, -0.02869897335767746,
                                    0.04510702192783356, -0.045005373656749725, 0.030599944293498993, -0.013931602239608765,
                                    0.003878106130287051, 0.9994966983795166]
}
