import Foundation

/// A sampler request: the method and its parameters.
public struct SamplerSettings: Sendable, Equatable {
    public var method: ODESampler
    /// Steps of a fixed-step method (ignored by dopri5).
    public var steps: Int
    public var grid: TimeGrid = .uniform
    /// dopri5: a step is accepted when the RMS over the sample's elements of
    /// err_i / (atol + rtol·max(|y_i|, |y_i'|)) is at most 1 (Hairer, Nørsett & Wanner I, II.4).
    public var rtol = 1e-5
    public var atol = 1e-5
    /// dopri5: attempted steps per sample before it stops with its last state.
    public var maxSteps = 10_000
    /// Classifier-free guidance w: v = (1 + w)·v(x, t | c) − w·v(x, t | ∅); 0 is no guidance.
    public var guidance = 0.0

    public init(method: ODESampler, steps: Int, grid: TimeGrid = .uniform) {
        self.method = method
        self.steps = steps
        self.grid = grid
    }

    /// Dormand–Prince 5(4) with per-sample step control.
    public static func dopri5(rtol: Double = 1e-5, atol: Double = 1e-5, maxSteps: Int = 10_000) -> SamplerSettings {
        var s = SamplerSettings(method: .dopri5, steps: 1)
        (s.rtol, s.atol, s.maxSteps) = (rtol, atol, maxSteps)
        return s
    }

    /// What a kind samples with when nothing is asked for: torchdiffeq's rk4 with 8 steps for
    /// velocities, one step for average velocities and flow maps.
    public static func defaults(for kind: FieldKind) -> SamplerSettings {
        switch kind {
        case .velocity: return SamplerSettings(method: .rk4ThreeEighths, steps: 8)
        case .meanVelocity: return SamplerSettings(method: .meanflow, steps: 1)
        case .flowMap: return SamplerSettings(method: .flowmap, steps: 1)
        }
    }

    /// Checks the settings against a field.
    public func validate(for layout: FieldLayout) throws {
        guard method.applies(to: layout.kind) else {
            throw SolverError("method \(method.rawValue) does not apply to a \(layout.kind.rawValue) model; use \(SamplerSettings.defaults(for: layout.kind).method.rawValue)")
        }
        guard (1...100_000).contains(steps) else { throw SolverError("steps must be within 1...100000, got \(steps)") }
        guard rtol.isFinite, atol.isFinite, rtol >= 0, atol >= 0, rtol + atol > 0 else {
            throw SolverError("rtol and atol must be finite, ≥ 0 and not both 0 (got rtol \(rtol), atol \(atol))")
        }
        guard (1...10_000_000).contains(maxSteps) else { throw SolverError("the step budget must be within 1...10000000, got \(maxSteps)") }
        guard guidance.isFinite else { throw SolverError("the guidance scale must be finite, got \(guidance)") }
        if guidance != 0 && layout.classes == nil {
            throw SolverError("guidance needs a class-conditional model (kind ...(classes=K)); this one is unconditional")
        }
    }
}

/// What a solve did, per sample.
public struct SolveReport: Sendable, Equatable {
    /// Accepted steps per sample (fixed-step methods: the step count).
    public var acceptedSteps: [Int]
    /// Rejected steps per sample (dopri5 only).
    public var rejectedSteps: [Int]
    /// Samples that hit the step budget before reaching the data end (their last state is returned).
    public var unfinished: [Int]
    /// Network rows evaluated (a guided evaluation counts its conditional and unconditional rows).
    public var evaluatedRows: Int

    public init(samples: Int) {
        acceptedSteps = Array(repeating: 0, count: samples)
        rejectedSteps = Array(repeating: 0, count: samples)
        unfinished = []
        evaluatedRows = 0
    }

    /// The reports of consecutive chunks as one.
    public mutating func append(_ other: SolveReport, offset: Int) {
        acceptedSteps += other.acceptedSteps
        rejectedSteps += other.rejectedSteps
        unfinished += other.unfinished.map { $0 + offset }
        evaluatedRows += other.evaluatedRows
    }

    /// One line: steps per sample (min/mean/max), rejections, network rows, unfinished samples.
    public var summary: String {
        guard !acceptedSteps.isEmpty else { return "no samples" }
        let mean = Double(acceptedSteps.reduce(0, +)) / Double(acceptedSteps.count)
        var s = "steps per sample: min \(acceptedSteps.min()!), mean \(String(format: "%.1f", mean)), max \(acceptedSteps.max()!)"
        let rejected = rejectedSteps.reduce(0, +)
        if rejected > 0 { s += "; \(rejected) rejected" }
        s += "; \(evaluatedRows) network rows"
        if !unfinished.isEmpty { s += "; \(unfinished.count) samples hit the step budget" }
        return s
    }
}
