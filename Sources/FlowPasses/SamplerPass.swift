import Foundation
import FlowIR
import FlowSolvers

/// Fixed-step samplers of velocity, average-velocity and flow-map models derived as graphs
/// noise → sample with every step unrolled (a whole N-step sample is one call; the network's
/// kernels are shared by all steps when compiled). Time grids and step sizes are computed in
/// f32 as torchdiffeq does (t_k = f32(k)·h, the last point exactly at the data end). A
/// class-conditional network is called with the null label (unconditional sampling); labels,
/// guidance and the adaptive dopri5 run in `ODESolve` over the `field` entry point.
public enum SamplerPass {
    /// noise → (x, zeros): the sample graph of a velocity or mean-velocity model. The second
    /// output keeps the sample entry's ABI; these samplers do not track the log-density.
    public static func sample(_ model: Model, settings: SamplerSettings) throws -> Graph {
        let (method, steps) = (settings.method, settings.steps)
        let at = SourceLocation.synthetic("sampler \(method.rawValue)")
        let layout = try FieldCall.layout(of: model)
        do { try settings.validate(for: layout) } catch let e as SolverError { throw FlowError(e.message, at: at) }
        guard method != .dopri5 else { throw FlowError("dopri5 is adaptive: it runs in the solver (ODESolve), not as an unrolled graph", at: at) }
        guard settings.guidance == 0 else { throw FlowError("guidance runs in the solver (ODESolve), not as an unrolled graph", at: at) }
        var g = Graph()
        let x0 = g.addInput(name: "noise", type: model.flow.type(of: model.flow.inputs[0]))
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
        let grid: [Float]
        do { grid = try settings.grid.times(start: Float(layout.start), end: Float(layout.end), steps: steps) } catch let e as SolverError { throw FlowError(e.message, at: at) }
        var x = x0
        switch (model.kind, method) {
        case (.meanVelocity, .meanflow):
            for k in 0..<steps {
                let (t, r) = (grid[k], grid[k + 1])
                let u = try FieldCall.inline(&g, model, state: x, times: [try time(&g, r), try time(&g, t)], at: at)
                x = try g.apply("sub", [x, try scale(&g, u, t - r)], at: at)
            }
        case (.flowMap, .flowmap):
            for k in 0..<steps {
                x = try FieldCall.inline(&g, model, state: x, times: [try time(&g, grid[k]), try time(&g, grid[k + 1])], at: at)
            }
        case (.meanVelocity, _), (.flowMap, _), (.flow, _):
            fatalError("validated above")
        case (.velocity, _):
            func v(_ g: inout Graph, _ x: ValueID, _ t: Float) throws -> ValueID { try FieldCall.inline(&g, model, state: x, times: [try time(&g, t)], at: at) }
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
                case .meanflow, .flowmap, .dopri5:
                    fatalError("validated above")
                }
            }
        }
        let zeros = try g.apply("broadcast_like", [try g.constant(0, at: at), perSample], at: at)
        g.outputs = [x, zeros]
        try Verifier.verify(g)
        return g
    }
}
