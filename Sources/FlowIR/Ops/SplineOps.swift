/// The monotonic rational-quadratic spline (Durkan et al. 2019, "Neural Spline Flows", eq. 4–5).
enum SplineOps {
    static let family = "Invertible primitives"

    /// x: any shape; knots xk, yk and derivatives dk: x's shape + [K+1] (or the same without B,
    /// shared by all samples).
    static func splineShape(_ c: InferenceContext) throws -> [TensorType] {
        let x = c.operands[0]
        for (name, t) in zip(["xk", "yk", "dk"], c.operands.dropFirst()) {
            guard let last = t.dims.last, last >= 2, Array(t.dims.dropLast()) == x.dims, !t.batched || x.batched else {
                throw c.error("\(name) must have shape \(x)+[K+1] with K ≥ 1")
            }
        }
        let k = c.operands[1].dims.last
        guard c.operands.dropFirst().allSatisfy({ $0.dims.last == k }) else { throw c.error("xk, yk and dk need the same K+1") }
        return [TensorType(try c.sameDType(), batched: x.batched, x.dims)]
    }

    static var definitions: [OpDefinition] {
        [
            OpDefinition("rq_spline", family: family, operands: 4...4,
                         summary: "monotonic rational-quadratic spline through knots (xk, yk) with slopes dk; identity outside [xk₀, xk_K]; ξ clamped to [0, 1] so no input gives NaN",
                         shapes: "x; xk, yk, dk: x's shape + [K+1]", pytorch: "zuko/nflows rational_quadratic_spline", infer: splineShape),
            OpDefinition("rq_spline_inverse", family: family, operands: 4...4,
                         summary: "inverse of rq_spline: the root in [0, 1] of the bin's quadratic, in the cancellation-free form 2c / (-b - √(b² - 4ac)) (discriminant clamped at 0)",
                         shapes: "as rq_spline (y in place of x)", pytorch: "zuko/nflows rational_quadratic_spline(inverse=True)", infer: splineShape),
            OpDefinition("rq_spline_logderiv", family: family, operands: 4...4,
                         summary: "ln |d rq_spline/dx| elementwise (0 in the identity tails)",
                         shapes: "as rq_spline", pytorch: "the spline's log-abs-det per element", infer: splineShape),
        ]
    }
}
