import Foundation
import FlowIR
import FlowRandom

/// The exact log-likelihood of a velocity model (a continuous normalizing flow, Chen et al.
/// 2018): integrate the augmented state (x, L) from the data end to the noise end with
/// dx/dt = v(x, t) and dL/dt = div v(x, t), then log p(x) = log N(x(t_noise); 0, I) + L(t_noise).
/// The divergence is exact: Σ_i (J e_i)_i, one Jacobian-vector product per dimension.
/// The ODE is solved by classic RK4 on a uniform grid of `steps` steps. A class-conditional
/// field is integrated with the null label: the unconditional density.
public enum CNFLikelihood {
    /// How div v is computed.
    public enum Divergence: Sendable, Equatable {
        /// Σ_i (J e_i)_i: one JVP per dimension.
        case exact
        /// Hutchinson's estimator εᵀJε (Hutchinson 1990; FFJORD, Grathwohl et al. 2019) with one
        /// probe ε drawn from `seed` and fixed for the whole solve: Rademacher (±1) or Gaussian.
        case hutchinson(gaussian: Bool, seed: UInt64)
        /// Hutchinson's estimator with the probes given per row as a second graph input `probe`
        /// (for studying the estimator over many probes in one batch).
        case hutchinsonProbeInput
    }

    public static func logProb(_ model: Model, steps: Int, divergence estimator: Divergence = .exact) throws -> Graph {
        let at = SourceLocation.synthetic("cnf log_prob")
        guard case .velocity(let noiseAt) = model.kind else {
            throw FlowError("the continuous-flow likelihood needs a velocity model", at: at)
        }
        guard model.base == .standardNormal else { throw FlowError("the continuous-flow likelihood supports the standard normal base", at: at) }
        guard steps >= 1, steps <= 100_000 else { throw FlowError("steps must be within 1...100000", at: at) }
        var g = Graph()
        let x0 = g.addInput(name: "x", type: model.flow.type(of: model.flow.inputs[0]))
        let type = g.type(of: x0)
        let n = type.elementsPerSample
        var probe: ValueID?
        switch estimator {
        case .hutchinsonProbeInput:
            probe = g.addInput(name: "probe", type: type)
        case .exact, .hutchinson:
            break
        }
        // The state carried from step to step, one row per sample: (x flattened, L, k).
        let flat = try g.apply("reshape", [x0], ["shape": .shape(batched: true, [n])], at: at)
        let perSample = try g.apply("sum", [flat], ["axes": .ints([1]), "keepdims": .int(1)], at: at)
        let zero = try g.apply("mul", [perSample, try g.constant(0, at: at)], at: at)
        let initial = try g.apply("concat", [flat, zero, zero], ["axis": .int(1)], at: at)
        let body = try stepGraph(model, stateType: type, noiseAt: noiseAt, steps: steps, estimator: estimator, at: at)
        g.bodies.append(body)
        let final = try g.apply("fixed_point", [initial] + (probe.map { [$0] } ?? []),
                                ["body": .int(0), "sweeps": .int(steps), "tolerance": .float(0)], at: at)
        func columns(_ from: Int, _ to: Int) throws -> ValueID {
            try g.apply("slice", [final], ["axis": .int(1), "start": .int(from), "end": .int(to)], at: at)
        }
        let z = try columns(0, n), logDensityChange = try columns(n, n + 1)
        let squares = try g.apply("sum", [try g.apply("square", [z], at: at)], ["axes": .ints([1]), "keepdims": .int(1)], at: at)
        let base = try g.apply("add", [try g.apply("mul", [squares, try g.constant(-0.5, at: at)], at: at),
                                       try g.constant(-0.5 * Double(n) * log(2 * Double.pi), at: at)], at: at)
        g.outputs = [try g.apply("reshape", [try g.apply("add", [base, logDensityChange], at: at)], ["shape": .shape(batched: true, [])], at: at)]
        try Verifier.verify(g)
        return g
    }

    /// One RK4 step of the augmented ODE as the body of the `fixed_point` loop that runs all
    /// `steps` of them (so the network and its JVPs are compiled once, not once per step).
    /// Input `u` = [B, n + 2]: x flattened, L, and the step index k (exact in f32); output the
    /// same after the step from t = start + k·h. A probe given per row is the second input.
    static func stepGraph(_ model: Model, stateType type: TensorType, noiseAt: Double, steps: Int,
                          estimator: Divergence, at: SourceLocation) throws -> Graph {
        var g = Graph()
        let n = type.elementsPerSample
        let u = g.addInput(name: "u", type: TensorType(type.dtype, batched: true, [n + 2]))
        func columns(_ from: Int, _ to: Int) throws -> ValueID {
            try g.apply("slice", [u], ["axis": .int(1), "start": .int(from), "end": .int(to)], at: at)
        }
        let x = try g.apply("reshape", [try columns(0, n)], ["shape": .shape(batched: true, type.dims)], at: at)
        let logDensityChange = try columns(n, n + 1), k = try columns(n + 1, n + 2)
        let axes = Attribute.ints(Array(1..<type.rank))
        var probe: ValueID?
        switch estimator {
        case .hutchinson(let gaussian, let seed):
            let normals = Philox.normals(seed: seed, firstRow: 0, rows: 1, perRow: n)
            let values = gaussian ? normals : normals.map { $0 < 0 ? -1 : 1 }
            probe = try g.apply("const", [], ["values": .floats(values), "shape": .shape(batched: false, type.dims)], at: at)
        case .hutchinsonProbeInput:
            probe = g.addInput(name: "probe", type: type)
        case .exact:
            break
        }
        // from the data end to the noise end: t = start + k·h (+ h/2, + h)
        let (start, end) = (1 - noiseAt, noiseAt)
        let h = (end - start) / Double(steps)
        let t = try g.apply("add", [try g.apply("mul", [k, try g.constant(h, at: at)], at: at), try g.constant(start, at: at)], at: at)
        func time(_ g: inout Graph, _ offset: Double) throws -> ValueID {
            offset == 0 ? t : try g.apply("add", [t, try g.constant(offset, at: at)], at: at)
        }
        /// (v(x, t), div v(x, t)) with the network inlined once and one JVP per dimension (or one
        /// JVP along the probe); the divergence as [B, 1]
        func velocityAndDivergence(_ g: inout Graph, _ x: ValueID, _ offset: Double) throws -> (ValueID, ValueID) {
            let first = g.nodes.count
            let v = try FieldCall.inline(&g, model, state: x, times: [try time(&g, offset)], at: at)
            let range = first..<g.nodes.count
            if let probe {
                let e = try g.apply("broadcast_like", [probe, x], at: at)
                let jv = try JVPPass.tangents(&g, of: [v], input: x, tangent: e, nodes: range)[0]
                let term = try g.apply("sum", [try g.apply("mul", [e, jv], at: at)], ["axes": axes], at: at)
                return (v, try g.apply("reshape", [term], ["shape": .shape(batched: true, [1])], at: at))
            }
            var divergence: ValueID?
            for i in 0..<n {
                var oneHot = [Double](repeating: 0, count: n)
                oneHot[i] = 1
                let e = try g.apply("broadcast_like", [try g.apply("const", [], ["values": .floats(oneHot), "shape": .shape(batched: false, type.dims)], at: at), x], at: at)
                let jv = try JVPPass.tangents(&g, of: [v], input: x, tangent: e, nodes: range)[0]
                let flat = try g.apply("reshape", [jv], ["shape": .shape(batched: true, [n])], at: at)
                let term = try g.apply("slice", [flat], ["axis": .int(1), "start": .int(i), "end": .int(i + 1)], at: at)
                divergence = try divergence.map { try g.apply("add", [$0, term], at: at) } ?? term
            }
            return (v, divergence!)
        }
        func axpy(_ g: inout Graph, _ x: ValueID, _ k: ValueID, _ c: Double) throws -> ValueID {
            try g.apply("add", [x, try g.apply("mul", [k, try g.constant(c, at: at)], at: at)], at: at)
        }
        /// (a + 2b + 2c + d)·h/6, RK4's weighted slope
        func combine(_ g: inout Graph, _ a: ValueID, _ b: ValueID, _ c: ValueID, _ d: ValueID) throws -> ValueID {
            let middle = try g.apply("add", [b, c], at: at)
            let sum = try g.apply("add", [try g.apply("add", [a, d], at: at), try g.apply("mul", [middle, try g.constant(2, at: at)], at: at)], at: at)
            return try g.apply("mul", [sum, try g.constant(h / 6, at: at)], at: at)
        }
        let (k1, d1) = try velocityAndDivergence(&g, x, 0)
        let (k2, d2) = try velocityAndDivergence(&g, try axpy(&g, x, k1, h / 2), h / 2)
        let (k3, d3) = try velocityAndDivergence(&g, try axpy(&g, x, k2, h / 2), h / 2)
        let (k4, d4) = try velocityAndDivergence(&g, try axpy(&g, x, k3, h), h)
        let next = try g.apply("add", [x, try combine(&g, k1, k2, k3, k4)], at: at)
        g.outputs = [try g.apply("concat", [
            try g.apply("reshape", [next], ["shape": .shape(batched: true, [n])], at: at),
            try g.apply("add", [logDensityChange, try combine(&g, d1, d2, d3, d4)], at: at),
            try g.apply("add", [k, try g.constant(1, at: at)], at: at),
        ], ["axis": .int(1)], at: at)]
        try Verifier.verify(g)
        return g
    }
}
