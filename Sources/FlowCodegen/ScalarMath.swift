import CLLVM

/// Scalar f32 semantics of the elementwise ops as LLVM IR, matching the interpreter's formulas
/// (IR/OPS.md). exp, log, log1p, tanh, sigmoid, softplus, erf and gelu are polynomial code that
/// vectorises (`PolynomialMath`); expm1, atanh and pow call the C math library (not on hot paths
/// of the reference models).
enum ScalarMath {
    typealias Unary = @Sendable (IRBuilder, IRBuilder.Value) -> IRBuilder.Value
    typealias Binary = @Sendable (IRBuilder, IRBuilder.Value, IRBuilder.Value) -> IRBuilder.Value

    static func libm(_ b: IRBuilder, _ name: String, _ args: [IRBuilder.Value]) -> IRBuilder.Value {
        let type = b.functionType(b.f32, args.map { _ in b.f32 })
        return b.call(b.declare(name, type), type, args)
    }

    static func exp(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value { PolynomialMath.exp(b, x) }
    static func log(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value { PolynomialMath.log(b, x) }
    static func log1p(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value { PolynomialMath.log1p(b, x) }
    static func abs(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value { b.intrinsic("llvm.fabs", [x]) }

    /// 1/(1 + e^-x) for x ≥ 0, e^x/(1 + e^x) otherwise: never overflows. One division
    /// (e = e^-|x|, r = 1/(1 + e); r or e·r): divisions are the slow part of SiLU epilogues.
    static func sigmoid(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let e = exp(b, b.fneg(abs(b, x)))
        let r = b.fdiv(b.f32(1), b.fadd(b.f32(1), e))
        return b.select(b.fcmp(LLVMRealOGE, x, b.f32(0)), r, b.fmul(e, r))
    }

    /// x/(1 + e^-x): one exp and one division, the whole epilogue of an MLP's SiLU layers.
    /// e^-x = eᵗ·2ⁿ saturates (`PolynomialMath.expFactors`): below x = −88.7 at e^88.7, where
    /// the result is below 1e-36 in magnitude either way (as the true value); above 87.3 at
    /// e^-87.3, which 1 + e^-x rounds away, so the result is x; a NaN x gives NaN. The loop is
    /// bound by how many of its operations the core keeps in flight, so every one counts: the
    /// negation is in exp's constants and 1 + eᵗ·2ⁿ is one multiply-add (a batch-256 e_fm
    /// epilogue: 16 vector operations where there were 24).
    static func silu(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        let (reduced, scale) = PolynomialMath.expFactors(b, x, negated: true)
        return b.fdiv(x, PolynomialMath.multiplyAdd(b, reduced, scale, b.f32(1)))
    }

    /// max(x, 0) + log1p(e^-|x|)
    static func softplus(_ b: IRBuilder, _ x: IRBuilder.Value) -> IRBuilder.Value {
        b.fadd(b.intrinsic("llvm.maxnum", [x, b.f32(0)]), log1p(b, exp(b, b.fneg(abs(b, x)))))
    }

    static let unary: [String: Unary] = [
        "neg": { b, x in b.fneg(x) },
        "abs": { b, x in abs(b, x) },
        "exp": { b, x in exp(b, x) },
        "log": { b, x in log(b, x) },
        "log1p": { b, x in log1p(b, x) },
        "expm1": { b, x in libm(b, "expm1f", [x]) },
        "sqrt": { b, x in b.intrinsic("llvm.sqrt", [x]) },
        "rsqrt": { b, x in b.fdiv(b.f32(1), b.intrinsic("llvm.sqrt", [x])) },
        "square": { b, x in b.fmul(x, x) },
        "tanh": { b, x in PolynomialMath.tanh(b, x) },
        "atanh": { b, x in libm(b, "atanhf", [x]) },
        "sigmoid": sigmoid,
        "logit": { b, x in b.fsub(log(b, x), log1p(b, b.fneg(x))) },
        "softplus": softplus,
        "relu": { b, x in b.intrinsic("llvm.maxnum", [x, b.f32(0)]) },
        "gelu": { b, x in PolynomialMath.gelu(b, x) },
        "silu": silu,
        "erf": { b, x in PolynomialMath.erf(b, x) },
        "sin": { b, x in b.intrinsic("llvm.sin", [x]) },
        "cos": { b, x in b.intrinsic("llvm.cos", [x]) },
    ]

    static func compare(_ p: LLVMRealPredicate) -> Binary { { b, x, y in b.boolToFloat(b.fcmp(p, x, y)) } }

    static let binary: [String: Binary] = [
        "add": { b, x, y in b.fadd(x, y) },
        "sub": { b, x, y in b.fsub(x, y) },
        "mul": { b, x, y in b.fmul(x, y) },
        "div": { b, x, y in b.fdiv(x, y) },
        "pow": { b, x, y in b.intrinsic("llvm.pow", [x, y]) },
        "max": { b, x, y in b.intrinsic("llvm.maxnum", [x, y]) },
        "min": { b, x, y in b.intrinsic("llvm.minnum", [x, y]) },
        "lt": compare(LLVMRealOLT), "le": compare(LLVMRealOLE), "gt": compare(LLVMRealOGT),
        "ge": compare(LLVMRealOGE), "eq": compare(LLVMRealOEQ), "ne": compare(LLVMRealUNE),
    ]
}
