import CLLVM
import FlowRandom

/// `void flowc_noise(uint64 seed, int64 first_block, int64 blocks, float scale, float *out)`:
/// entries 4·first_block ..< 4·(first_block + blocks) of `Philox.normals`' stream, each rounded to
/// f32 and times `scale`: the base noise of `flowc sample`, drawn by native vector code instead
/// of scalar libm calls in the runtime (256 rows of RealNVP 64-d's noise took 690 µs on one thread,
/// 1/6 of its batch-256 sample; now 79 µs).
///
/// One loop iteration is one Philox4x32-10 block: two Box–Muller pairs, four entries. Box–Muller
/// is computed in f64, with branch-free polynomials so that LLVM vectorises the loop (the terms
/// they leave out are below 10⁻¹⁸, so their error is a few f64 roundings, against libm's < 1
/// ulp). An f32 rounding of the two differs only when the f64 value lies within a few f64 ulps of
/// a point halfway between two floats, about once in 10⁹ values (`CompiledNoiseTests` compares
/// 1.2 million exactly).
enum NoiseLowering {
    static let symbol = "flowc_noise"

    /// Blocks drawn per group: 4, the f64 lanes of an AVX2 register. A group's loop has this
    /// constant trip count, so the loop vectoriser turns it into one vector iteration and leaves
    /// no scalar remainder loop; the last group, when partial, is drawn into a scratch array and
    /// its live blocks copied out. The remainder loop had been a second copy of Philox and
    /// Box–Muller, which made this function a tenth of a model's compile (callgrind, whole
    /// `flowc compile`: TarFlow 2.38G → 2.29G instructions, e_fm 1.96G → 1.87G). The same bits
    /// and time for 4096 blocks (1.006x, alternated calls); one block 0.17 µs against 0.11 (a
    /// whole group is drawn). Groups of 8 were 1.08x the time for 4096 blocks, of 16 1.06x.
    static let group = 4

    static func emit(_ b: IRBuilder) {
        let f = b.declare(symbol, b.functionType(b.void, [b.i64, b.i64, b.i64, b.f32, b.pointer]))
        b.begin(f)
        let (seed, firstBlock, requested, scale, out) = (b.parameter(0), b.parameter(1), b.parameter(2), b.parameter(3), b.parameter(4))
        let key = (trunc(b, seed, b.i32), trunc(b, shiftRight(b, seed, 32), b.i32))
        let scratch = b.variable("scratch", type: LLVMArrayType2(b.f32, UInt64(4 * group)))
        let blocks = b.select(LLVMBuildICmp(b.builder, LLVMIntSGT, requested, b.i64(0), "")!, requested, b.i64(0))
        let whole = LLVMBuildAnd(b.builder, blocks, b.i64(-group), "")!   // the blocks of whole groups
        b.loop(LLVMBuildUDiv(b.builder, b.add(blocks, b.i64(group - 1)), b.i64(group), "")!) { g in
            let start = b.mul(g, b.i64(group))
            let isWhole = LLVMBuildICmp(b.builder, LLVMIntSLT, start, whole, "")!
            let base = b.select(isWhole, b.element(out, b.mul(start, b.i64(4))), scratch)
            b.loop(b.i64(group)) { i in
                let counter = b.add(firstBlock, b.add(start, i))
                let lanes = philox(b, counter: (trunc(b, counter, b.i32), trunc(b, shiftRight(b, counter, 32), b.i32)), key: key)
                let first = boxMuller(b, lanes.0, lanes.1), second = boxMuller(b, lanes.2, lanes.3)
                for (j, value) in [first.cosine, first.sine, second.cosine, second.sine].enumerated() {
                    let entry = b.fmul(LLVMBuildFPTrunc(b.builder, value, b.f32, "")!, scale)
                    b.store(entry, base, b.add(b.mul(i, b.i64(4)), b.i64(j)))
                }
            }
        }
        // the partial group's blocks (none when every group was whole), from the scratch
        let tailBytes = b.mul(b.sub(blocks, whole), b.i64(16))
        LLVMBuildMemCpy(b.builder, b.element(out, b.mul(whole, b.i64(4))), 4, scratch, 4, tailBytes)
        b.ret()
    }

    /// Philox4x32-10 (`Philox.block`) on the counter (low, high, 0, 0).
    static func philox(_ b: IRBuilder, counter: (IRBuilder.Value, IRBuilder.Value), key: (IRBuilder.Value, IRBuilder.Value))
        -> (IRBuilder.Value, IRBuilder.Value, IRBuilder.Value, IRBuilder.Value) {
        var (x0, x1, x2, x3) = (counter.0, counter.1, b.i32(0), b.i32(0))
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { (k0, k1) = (b.add(k0, constant32(b, Philox.w0)), b.add(k1, constant32(b, Philox.w1))) }
            let p0 = b.mul(LLVMBuildZExt(b.builder, x0, b.i64, "")!, b.i64(Int(Philox.m0)))
            let p1 = b.mul(LLVMBuildZExt(b.builder, x2, b.i64, "")!, b.i64(Int(Philox.m1)))
            (x0, x1, x2, x3) = (xor(b, xor(b, trunc(b, shiftRight(b, p1, 32), b.i32), x1), k0), trunc(b, p1, b.i32),
                                xor(b, xor(b, trunc(b, shiftRight(b, p0, 32), b.i32), x3), k1), trunc(b, p0, b.i32))
        }
        return (x0, x1, x2, x3)
    }

    /// Box–Muller on one pair of Philox outputs: u = (x + 0.5)/2³², r = √(−2 ln u₁), θ = 2π u₂,
    /// (r cos θ, r sin θ), in f64.
    static func boxMuller(_ b: IRBuilder, _ a: IRBuilder.Value, _ c: IRBuilder.Value) -> (cosine: IRBuilder.Value, sine: IRBuilder.Value) {
        let radius = b.intrinsic("llvm.sqrt", [b.fmul(f64(b, -2), logOfUniform(b, a))], type: b.f64)
        let u2 = b.fmul(b.fadd(LLVMBuildUIToFP(b.builder, c, b.f64, "")!, f64(b, 0.5)), f64(b, 0x1p-32))
        let (cosine, sine) = cosineAndSine(b, b.fmul(f64(b, 2 * Double.pi), u2))
        return (b.fmul(radius, cosine), b.fmul(radius, sine))
    }

    /// √2/2's bits: mantissas are brought into [√2/2, √2).
    static let halfSqrt2Bits: UInt64 = 0x3FE6_A09E_667F_3BCD
    /// ln 2 = ln2High + ln2Low, ln2High with its low 21 bits zero so that k·ln2High is exact for
    /// |k| < 2²¹ (mpmath at 300 bits).
    static let ln2High = 0x1.62e42fee00000p-1, ln2Low = 0x1.a39ef35793c76p-33

    /// ln((x + 0.5)/2³²) for an i32 x, to 1 f64 ulp. With v = x + 0.5 = 2ᵉ·m, m ∈ [√2/2, √2)
    /// (from the bits, branch-free: adding 1 − √2/2 to the bits carries into the exponent
    /// exactly when m ≥ √2), f = m − 1 and s = f/(2 + f): ln m = 2 atanh s = 2s + s·R(s²) with
    /// R(z) = Σ 2zᵏ/(2k + 1), k = 1…10 (|s| ≤ 0.1716: the first term left out is below 10⁻¹⁸ of
    /// ln m), evaluated as f − (f²/2 − s(f²/2 + R)) since 2s = f − f²/2 + s·f²/2 exactly; then
    /// ln u = (e − 32)·ln 2 + ln m.
    static func logOfUniform(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let v = b.fadd(LLVMBuildUIToFP(b.builder, x, b.f64, "")!, f64(b, 0.5))
        let shifted = b.add(LLVMBuildBitCast(b.builder, v, b.i64, "")!, constant64(b, 0x3FF0_0000_0000_0000 &- halfSqrt2Bits))
        let mantissa = b.add(LLVMBuildAnd(b.builder, shifted, constant64(b, 0x000F_FFFF_FFFF_FFFF), "")!, constant64(b, halfSqrt2Bits))
        let m = LLVMBuildBitCast(b.builder, mantissa, b.f64, "")!
        // e − 32 as a double from the biased exponent, by the 2⁵² trick (no i64 → f64 conversion)
        let exponent = LLVMBuildOr(b.builder, shiftRight(b, shifted, 52), constant64(b, 0x4330_0000_0000_0000), "")!
        let k = b.fsub(LLVMBuildBitCast(b.builder, exponent, b.f64, "")!, f64(b, 0x1p52 + 1023 + 32))
        let f = b.fsub(m, f64(b, 1))
        let s = b.fdiv(f, b.fadd(f64(b, 2), f)), z = b.fmul(s, s)
        let halfSquare = b.fmul(b.fmul(f64(b, 0.5), f), f)
        let r = b.fmul(PolynomialMath.horner(b, z, stride(from: 21, through: 3, by: -2).map { 2 / Double($0) }, type: b.f64), z)
        let lnM = b.fsub(f, b.fsub(halfSquare, b.fadd(b.fmul(s, b.fadd(halfSquare, r)), b.fmul(k, f64(b, ln2Low)))))
        return b.fadd(b.fmul(k, f64(b, ln2High)), lnM)
    }

    /// (cos θ, sin θ) for θ ∈ [0, 2π], to 2 f64 ulps: TrigonometricMath's reduction and quadrants
    /// with Taylor polynomials to r¹⁷ and r¹⁸ (the first terms left out are below 10⁻¹⁹).
    static func cosineAndSine(_ b: IRBuilder, _ theta: IRBuilder.Value) -> (IRBuilder.Value, IRBuilder.Value) {
        // ±1/n! (+ for n mod 4 of 0 or 1), highest power first: sin r / r from 1/17! to 1/1!, cos r from −1/18! to 1/0!
        let term = { (n: Int) in (1...max(n, 1)).reduce(1.0) { $0 / Double($1) } * (n % 4 < 2 ? 1 : -1) }
        let both = TrigonometricMath.sineAndCosine(b, theta, sinePolynomial: stride(from: 17, through: 1, by: -2).map(term),
                                                   cosinePolynomial: stride(from: 18, through: 0, by: -2).map(term))
        return (both.cosine, both.sine)
    }

    static func f64(_ b: IRBuilder, _ v: Double) -> IRBuilder.Value { LLVMConstReal(b.f64, v) }
    static func constant32(_ b: IRBuilder, _ v: UInt32) -> IRBuilder.Value { LLVMConstInt(b.i32, UInt64(v), 0) }
    static func constant64(_ b: IRBuilder, _ v: UInt64) -> IRBuilder.Value { LLVMConstInt(b.i64, v, 0) }
    static func trunc(_ b: IRBuilder, _ v: IRBuilder.Value, _ type: LLVMTypeRef) -> IRBuilder.Value { LLVMBuildTrunc(b.builder, v, type, "")! }
    static func shiftRight(_ b: IRBuilder, _ v: IRBuilder.Value, _ bits: Int) -> IRBuilder.Value { LLVMBuildLShr(b.builder, v, b.i64(bits), "")! }
    static func xor(_ b: IRBuilder, _ x: IRBuilder.Value, _ y: IRBuilder.Value) -> IRBuilder.Value { LLVMBuildXor(b.builder, x, y, "")! }
}
