/// The samplers of velocity, average-velocity and flow-map models.
public enum ODESampler: String, CaseIterable, Sendable {
    case euler, midpoint, heun
    /// The classic Runge–Kutta tableau (1/6, 1/3, 1/3, 1/6).
    case rk4Classic = "rk4"
    /// torchdiffeq's "rk4": the 3/8 rule (1/8, 3/8, 3/8, 1/8).
    case rk4ThreeEighths = "rk4-38"
    /// Dormand–Prince 5(4) with per-sample step-size control (`Dopri5Solver`).
    case dopri5
    /// MeanFlow's k-step map z_r = z_t − (t − r)·u(z_t, r, t) (1 step: one network call).
    case meanflow
    /// A flow map's k steps x_{k+1} = X(x_k, t_k, t_{k+1}).
    case flowmap

    /// A method by its name; also accepts `rk4_classic`, `rk4_38` and `rk4-classic`.
    public init?(name: String) {
        switch name {
        case "rk4_classic", "rk4-classic": self = .rk4Classic
        case "rk4_38": self = .rk4ThreeEighths
        default: self.init(rawValue: name)
        }
    }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Whether the method integrates a field of this kind.
    public func applies(to kind: FieldKind) -> Bool {
        switch (self, kind) {
        case (.meanflow, .meanVelocity), (.flowmap, .flowMap): return true
        case (.meanflow, _), (.flowmap, _), (_, .meanVelocity), (_, .flowMap): return false
        default: return true
        }
    }

    /// Network evaluations per step (dopri5: per attempted step, first-same-as-last).
    public var evaluationsPerStep: Int {
        switch self {
        case .euler, .meanflow, .flowmap: return 1
        case .midpoint, .heun: return 2
        case .rk4Classic, .rk4ThreeEighths: return 4
        case .dopri5: return 6
        }
    }
}

/// What a network integrated by a sampler computes.
public enum FieldKind: String, Sendable, Equatable {
    /// v(x, t): dx/dt = v (flow matching, rectified flow).
    case velocity
    /// u(z, r, t): the average velocity on [r, t] (MeanFlow).
    case meanVelocity = "mean_velocity"
    /// X(x, s, t): the state at t of the trajectory through x at s (flow maps).
    case flowMap = "flow_map"
}

/// An error in a sampler request or during a solve.
public struct SolverError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "error: \(message)" }
}
