import Foundation
import FlowIR

/// Fixed-step samplers for velocity and average-velocity models, derived as graphs
/// noise → sample with every step unrolled (a whole N-step sample is one call; the network's
/// kernels are shared by all steps when compiled). Time grids and step sizes are computed in
/// f32 as torchdiffeq does (t_k = f32(k)·h, the last point exactly at the data end).
public enum ODESampler: String, CaseIterable, Sendable {
    case euler, midpoint, heun
    /// The classic Runge–Kutta tableau.
    case rk4Classic = "rk4_classic"
    /// torchdiffeq's "rk4": the 3/8 rule.
    case rk4ThreeEighths = "rk4_38"
    /// MeanFlow's k-step map z_r = z_t − (t − r)·u(z_t, r, t) (1 step: one network call).
    case meanflow
    /// A flow map's k steps x_{k+1} = X(x_k, t_k, t_{k+1}).
    case flowmap

    /// The sampler a kind uses when none is asked for.
    public static func defaults(for kind: ModelKind) -> (ODESampler, Int) {
        switch kind {
        case .meanVelocity: return (.meanflow, 1)
        case .flowMap: return (.flowmap, 1)
        default: return (.rk4ThreeEighths, 8)
        }
    }
}

/// The times a sampler visits, from the noise end to the data end.
public enum TimeGrid: Sendable, Equatable {
    /// t_k = start + k·h in f32, the last point exactly at the data end (torchdiffeq's grid).
    case uniform
    /// EDM's ρ-grid (Karras et al. 2022, eq. 5) with σ = distance from the data end in [0, 1]:
    /// σ_k = (1 − k/N)^ρ, so steps crowd near the data for ρ > 1 (ρ = 7 in EDM).
    case edm(rho: Double)
    /// Explicit times, from the noise end to the data end (N + 1 points).
    case custom([Double])

    public func times(start: Float, end: Float, steps: Int, at: SourceLocation) throws -> [Float] {
        switch self {
        case .uniform:
            let h = (end - start) / Float(steps)
            return (0..<steps).map { start + Float($0) * h } + [end]
        case .edm(let rho):
            guard rho > 0, rho.isFinite else { throw FlowError("the EDM grid needs ρ > 0", at: at) }
            return (0...steps).map { k in
                let sigma = Float(pow(1 - Double(k) / Double(steps), rho))
                return k == steps ? end : end + (start - end) * sigma
            }
        case .custom(let times):
            guard times.count == steps + 1 else { throw FlowError("a custom grid of \(times.count) times does not make \(steps) steps (needs \(steps + 1))", at: at) }
            guard Float(times[0]) == start, Float(times[steps]) == end else {
                throw FlowError("a custom grid must run from the noise end t = \(start) to the data end t = \(end)", at: at)
            }
            let increasing = end > start
            guard zip(times, times.dropFirst()).allSatisfy({ increasing ? $0 < $1 : $0 > $1 }) else {
                throw FlowError("a custom grid must be strictly monotonic from noise to data", at: at)
            }
            return times.map { Float($0) }
        }
    }
}

public enum SamplerPass {
    /// noise → (x, zeros): the sample graph of a velocity or mean-velocity model. The second
    /// output keeps the sample entry's ABI; these samplers do not track the log-density.
    public static func sample(_ model: Model, method: ODESampler, steps: Int, grid: TimeGrid = .uniform) throws -> Graph {
        let at = SourceLocation.synthetic("sampler \(method.rawValue)")
        guard steps >= 1, steps <= 100_000 else { throw FlowError("steps must be within 1...100000, got \(steps)", at: at) }
        let field = model.flow
        var g = Graph()
        let x0 = g.addInput(name: "noise", type: field.type(of: field.inputs[0]))
        let rank = g.type(of: x0).rank
        let perSample = try g.apply("sum", [x0], ["axes": .ints(Array(1..<rank))], at: at)
        let column = try g.apply("reshape", [perSample], ["shape": .shape(batched: true, [1])], at: at)
        /// a [B, 1] tensor holding the time t
        func time(_ g: inout Graph, _ t: Float) throws -> ValueID {
            try g.apply("broadcast_like", [try g.apply("const", [], ["values": .floats([Double(t)]), "shape": .shape(batched: false, [1])], at: at), column], at: at)
        }
        func scale(_ g: inout Graph, _ v: ValueID, _ c: Float) throws -> ValueID {
            try g.apply("mul", [v, try g.constant(Double(c), at: at)], at: at)
        }
        func add(_ g: inout Graph, _ a: ValueID, _ b: ValueID) throws -> ValueID { try g.apply("add", [a, b], at: at) }
        // the time grid from the noise end to the data end, in f32
        let start: Float, end: Float
        switch model.kind {
        case .velocity(let noise), .meanVelocity(let noise), .flowMap(let noise): (start, end) = (Float(noise), Float(1 - noise))
        case .flow: throw FlowError("a flow samples through its inverse, not an ODE sampler", at: at)
        }
        let grid = try grid.times(start: start, end: end, steps: steps, at: at)
        var x = x0
        switch (model.kind, method) {
        case (.meanVelocity, .meanflow):
            for k in 0..<steps {
                let (t, r) = (grid[k], grid[k + 1])
                let u = try g.inline(field, arguments: [x, try time(&g, r), try time(&g, t)])[0]
                x = try g.apply("sub", [x, try scale(&g, u, t - r)], at: at)
            }
        case (.flowMap, .flowmap):
            for k in 0..<steps {
                x = try g.inline(field, arguments: [x, try time(&g, grid[k]), try time(&g, grid[k + 1])])[0]
            }
        case (.velocity, .meanflow), (.velocity, .flowmap), (.meanVelocity, _), (.flowMap, _):
            throw FlowError("method \(method.rawValue) does not apply to a \(model.kind) model; use \(ODESampler.defaults(for: model.kind).0.rawValue)", at: at)
        case (.velocity, _):
            func v(_ g: inout Graph, _ x: ValueID, _ t: Float) throws -> ValueID { try g.inline(field, arguments: [x, try time(&g, t)])[0] }
            for k in 0..<steps {
                let (t0, t1) = (grid[k], grid[k + 1])
                let dt = t1 - t0
                switch method {
                case .euler:
                    x = try add(&g, x, try scale(&g, try v(&g, x, t0), dt))
                case .midpoint:
                    let half = 0.5 * dt
                    let mid = try add(&g, x, try scale(&g, try v(&g, x, t0), half))
                    x = try add(&g, x, try scale(&g, try v(&g, mid, t0 + half), dt))
                case .heun:
                    let k1 = try v(&g, x, t0)
                    let k2 = try v(&g, try add(&g, x, try scale(&g, k1, dt)), t1)
                    x = try add(&g, x, try scale(&g, try add(&g, k1, k2), 0.5 * dt))
                case .rk4Classic:
                    let half = 0.5 * dt
                    let k1 = try v(&g, x, t0)
                    let k2 = try v(&g, try add(&g, x, try scale(&g, k1, half)), t0 + half)
                    let k3 = try v(&g, try add(&g, x, try scale(&g, k2, half)), t0 + half)
                    let k4 = try v(&g, try add(&g, x, try scale(&g, k3, dt)), t1)
                    let sum = try add(&g, try add(&g, k1, try scale(&g, try add(&g, k2, k3), 2)), k4)
                    x = try add(&g, x, try scale(&g, sum, dt / 6))
                case .rk4ThreeEighths:
                    // torchdiffeq's rk4_alt_step_func
                    let third: Float = 1.0 / 3, twoThirds: Float = 2.0 / 3
                    let k1 = try v(&g, x, t0)
                    let k2 = try v(&g, try add(&g, x, try scale(&g, try scale(&g, k1, dt), third)), t0 + dt * third)
                    let k3 = try v(&g, try add(&g, x, try scale(&g, try g.apply("sub", [k2, try scale(&g, k1, third)], at: at), dt)), t0 + dt * twoThirds)
                    let k4 = try v(&g, try add(&g, x, try scale(&g, try add(&g, try g.apply("sub", [k1, k2], at: at), k3), dt)), t1)
                    let sum = try add(&g, try add(&g, k1, try scale(&g, try add(&g, k2, k3), 3)), k4)
                    x = try add(&g, x, try scale(&g, try scale(&g, sum, dt), 0.125))
                case .meanflow, .flowmap:
                    fatalError("handled above")
                }
            }
        case (.flow, _):
            fatalError("handled above")
        }
        let zeros = try g.apply("broadcast_like", [try g.constant(0, at: at), perSample], at: at)
        g.outputs = [x, zeros]
        try Verifier.verify(g)
        return g
    }
}
