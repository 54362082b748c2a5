import FlowIR
import FlowRandom
import FlowSolvers
import Foundation

/// The graphs a model's entry points run, derived from its forward body.
public enum EntryPoints {
    public enum Entry: String, CaseIterable, Sendable {
        /// x → (z, logdet)
        case forward
        /// x → log p(x) = log p_base(z) + logdet
        case logProb = "log_prob"
        /// z → (x, ln |det ∂x/∂z|)
        case inverse
        /// standard noise ε → x: z = loc + scale·ε for the base density, then the inverse
        /// (velocity, mean-velocity and flow-map models: the compiled fixed-step sampler)
        case sample
        /// velocity, mean-velocity and flow-map models: packed rows (state, times, label) → the
        /// network's output, for the solvers (`FieldCall.graph`)
        case field
        /// flows: x → ∇ₓ log p(x), by reverse-mode differentiation of log_prob (`VJPPass`)
        case score
    }

    /// The entry points a model of this kind has.
    public static func entries(of model: Model) -> [Entry] {
        switch model.kind {
        case .flow: return [.forward, .logProb, .inverse, .sample, .score]
        case .velocity: return [.logProb, .sample, .field]
        case .meanVelocity, .flowMap: return [.sample, .field]
        }
    }

    /// Whether a flow's `sample` graph is its `inverse` graph: a standard normal base (no
    /// loc/scale to apply to the noise), no guidance and no denoising step. The compiler then
    /// derives it once and emits `flowc_sample` as a call of `flowc_inverse`.
    public static func sampleIsInverse(_ model: Model, guidance: FlowGuidance?, denoise: Double?) -> Bool {
        guard model.kind == .flow, guidance == nil, denoise == nil else { return false }
        if case .diagonalNormal = model.base { return false }
        return true
    }

    /// RK4 steps of the continuous-flow likelihood (`CNFLikelihood`).
    public static let likelihoodSteps = 32

    /// The graph of an entry point. Velocity, mean-velocity and flow-map models sample by
    /// `sampler` (a fixed-step method; default: `SamplerSettings.defaults`).
    /// `guidance`: classifier-free guidance of a class-conditional flow's `sample`.
    /// `denoise`: σ of TarFlow's self-denoising step appended to a flow's `sample`,
    /// x ← x + σ²·∇ₓ log p(x) (Zhai et al. 2024, §2.4: the model was trained on x + σε).
    public static func graph(_ entry: Entry, of model: Model, sampler: SamplerSettings? = nil, guidance: FlowGuidance? = nil, denoise: Double? = nil) throws -> Graph {
        try graph(entry, of: model, weights: try model.weightsPath.map { try WeightStore(path: $0) }, sampler: sampler, guidance: guidance, denoise: denoise)
    }

    /// The graph of an entry point simplified with `weights` (the model's weight file, opened
    /// once by a caller that derives several entry points, as the compiler does).
    public static func graph(_ entry: Entry, of model: Model, weights: WeightStore?, sampler: SamplerSettings? = nil, guidance: FlowGuidance? = nil,
                             denoise: Double? = nil) throws -> Graph {
        if case .velocity = model.kind, entry == .logProb {
            return try Simplify.run(try CNFLikelihood.logProb(model, steps: likelihoodSteps), weights: weights)
        }
        if model.kind != .flow {
            if entry == .field { return try Simplify.run(try FieldCall.graph(model), weights: weights) }
            guard entry == .sample else {
                let has = entries(of: model).map(\.rawValue).joined(separator: " and ")
                throw FlowError("a \(model.kind) model has no \(entry.rawValue) entry point (it has \(has))", at: .synthetic("entry points"))
            }
            let settings = try sampler ?? SamplerSettings.defaults(for: FieldCall.layout(of: model).kind)
            return try Simplify.run(try SamplerPass.sample(model, settings: settings), weights: weights)
        }
        // single-head attention folded before the derivations (AttentionWeightFolding), so that
        // the inverse decoding token by token caches x_k and v' rather than k and v, and the
        // score's backward pass runs through two products instead of four
        var model = model
        model.flow = try AttentionWeightFolding.run(model.flow)
        let derived: Graph
        switch entry {
        case .forward: derived = try LogDetPass.run(model.flow, weights: weights)
        case .logProb: derived = try logProb(model, weights: weights)
        case .inverse: derived = try InversePass.run(model.flow, weights: weights, causal: model.causalInverse)
        case .sample:
            derived = try sample(model, weights: weights, guidance: try guidance.map { try checked($0, model) })
            if let sigma = denoise { return try Simplify.run(try denoised(derived, model, weights: weights, sigma: sigma), weights: weights) }
        case .score: derived = try score(model, weights: weights)
        case .field: throw FlowError("a flow has no field entry point (it is not integrated)", at: .synthetic("entry points"))
        }
        return try Simplify.run(derived, weights: weights)
    }

    /// A graph with several inputs (a class-conditional flow's x and label) as one with a single
    /// input of packed rows: each input's values flattened, in input order (the C ABI's layout).
    public static func packed(_ graph: Graph) throws -> Graph {
        guard graph.inputs.count > 1 else { return graph }
        let at = SourceLocation.synthetic("packed inputs")
        var g = Graph()
        let widths = graph.inputs.map { graph.type(of: $0).elementsPerSample }
        let packed = g.addInput(name: "packed", type: TensorType(.f32, batched: true, [widths.reduce(0, +)]))
        var start = 0
        var arguments: [ValueID] = []
        for (v, width) in zip(graph.inputs, widths) {
            let columns = try g.apply("slice", [packed], ["axis": .int(1), "start": .int(start), "end": .int(start + width)], at: at)
            arguments.append(try g.apply("reshape", [columns], ["shape": .shape(batched: true, graph.type(of: v).dims)], at: at))
            start += width
        }
        g.outputs = try g.inline(graph, arguments: arguments)
        try Verifier.verify(g)
        return g
    }

    /// Base-density noise for `sample(seed, n)`: rows firstRow ..< firstRow + rows of the
    /// counter-based stream, times the temperature (the standard deviation of the base).
    public static func noise(of model: Model, seed: UInt64, firstRow: Int, rows: Int, temperature: Double) -> [Double] {
        let perRow = model.flow.type(of: model.flow.outputs[0]).elementsPerSample
        return Philox.normals(seed: seed, firstRow: firstRow, rows: rows, perRow: perRow).map { $0 * temperature }
    }

    /// log p(x) = log p_base(z) + logdet: the forward graph followed by `baseLogDensity`.
    static func logProb(_ model: Model, weights: WeightStore?) throws -> Graph {
        var g = try LogDetPass.run(model.flow, weights: weights)
        let density = try baseLogDensity(model, latent: g.type(of: g.outputs[0]), logdet: g.type(of: g.outputs[1]))
        g.outputs = try g.inline(density, arguments: [g.outputs[0], g.outputs[1]])
        try Verifier.verify(g)
        return g
    }

    /// (z, logdet) → log p_base(z) + logdet, the part of log_prob after the forward pass, with
    /// log N(z; 0, I) = -½ Σ z_i² - (n/2) ln 2π and, for a diagonal Gaussian,
    /// log N(z; μ, diag σ²) = -½ Σ ((z_i - μ_i)/σ_i)² - Σ ln σ_i - (n/2) ln 2π.
    /// `latent` and `logdet` are the types of z (the flow's first output) and of the log-det.
    static func baseLogDensity(_ model: Model, latent type: TensorType, logdet logdetType: TensorType) throws -> Graph {
        var g = Graph()
        let at = SourceLocation.synthetic("log_prob")
        let z = g.addInput(name: "z", type: type)
        let logdet = g.addInput(name: "logdet", type: logdetType)
        let axes = Attribute.ints(Array(1..<type.rank))
        var u = z
        var logScales: ValueID?
        if case .diagonalNormal(let loc, let scale) = model.base {
            let (mu, sigma) = try baseWeights(&g, loc, scale, at)
            u = try g.apply("div", [try g.apply("sub", [z, mu], at: at), sigma], at: at)
            let perSample = try g.apply("log", [try g.apply("abs", [try g.apply("broadcast_like", [sigma, z], at: at)], at: at)], at: at)
            logScales = try g.apply("sum", [perSample], ["axes": axes], at: at)
        }
        let squares = try g.apply("sum", [try g.apply("square", [u], at: at)], ["axes": axes], at: at)
        var base = try g.apply("add", [try g.apply("mul", [squares, try g.constant(-0.5, at: at)], at: at),
                                       try g.constant(-0.5 * Double(type.elementsPerSample) * log(2 * Double.pi), at: at)], at: at)
        if let logScales { base = try g.apply("sub", [base, logScales], at: at) }
        g.outputs = [try g.apply("add", [base, logdet], at: at)]
        try Verifier.verify(g)
        return g
    }

    /// A flow's `baseLogDensity` simplified with its `weights`, for the compiler, which runs a
    /// flow's log_prob as its compiled forward followed by this graph (the flow derived and
    /// compiled once, not twice).
    public static func baseLogDensity(of model: Model, weights: WeightStore?) throws -> Graph {
        guard model.kind == .flow else {
            throw FlowError("internal: a \(model.kind) model has no base density", at: .synthetic("log_prob"))
        }
        let latent = model.flow.type(of: model.flow.outputs[0])
        return try Simplify.run(try baseLogDensity(model, latent: latent, logdet: TensorType(latent.dtype, batched: true, [])), weights: weights)
    }

    /// x → ∇ₓ log p(x) (with a class-conditional flow's label as a second input).
    static func score(_ model: Model, weights: WeightStore?) throws -> Graph {
        var g = try logProb(model, weights: weights)
        g.outputs = [try VJPPass.gradient(&g, of: g.outputs[0], withRespectTo: g.inputs[0])]
        try Verifier.verify(g)
        return g
    }

    /// The sample followed by one denoising step x + σ²·∇ₓ log p(x) (the log-det output is
    /// the inverse's, of the sample before the step).
    static func denoised(_ sample: Graph, _ model: Model, weights: WeightStore?, sigma: Double) throws -> Graph {
        let at = SourceLocation.synthetic("denoise")
        guard sigma.isFinite, sigma > 0 else { throw FlowError("the denoising σ must be finite and > 0, got \(sigma)", at: at) }
        let scoreGraph = try score(model, weights: weights)
        var g = sample
        let context = Array(g.inputs.dropFirst())
        let gradient = try g.inline(scoreGraph, arguments: [g.outputs[0]] + context)[0]
        g.outputs[0] = try g.apply("add", [g.outputs[0], try g.apply("mul", [gradient, try g.constant(sigma * sigma, at: at)], at: at)], at: at)
        try Verifier.verify(g)
        return g
    }

    /// ε → x (and the inverse's log-det): z = loc + scale·ε, then the inverse graph.
    static func sample(_ model: Model, weights: WeightStore?, guidance: FlowGuidance? = nil) throws -> Graph {
        let inverse = try InversePass.run(model.flow, weights: weights, causal: guidance == nil ? model.causalInverse : .sequential, guidance: guidance)
        guard let transform = try baseTransform(model, latent: inverse.type(of: inverse.inputs[0])) else { return inverse }
        var g = Graph()
        let epsilon = g.addInput(name: "noise", type: transform.type(of: transform.inputs[0]))
        let z = try g.inline(transform, arguments: [epsilon])[0]
        let context = zip(inverse.inputs.dropFirst(), inverse.inputNames.dropFirst()).map { g.addInput(name: $1, type: inverse.type(of: $0)) }
        g.outputs = try g.inline(inverse, arguments: [z] + context)
        try Verifier.verify(g)
        return g
    }

    /// ε → z = loc + scale·ε for a diagonal Gaussian base (nil for the standard normal, whose z
    /// is ε), the part of sample before the inverse; `latent` is the type of z.
    static func baseTransform(_ model: Model, latent: TensorType) throws -> Graph? {
        guard case .diagonalNormal(let loc, let scale) = model.base else { return nil }
        var g = Graph()
        let at = SourceLocation.synthetic("sample")
        let epsilon = g.addInput(name: "noise", type: latent)
        let (mu, sigma) = try baseWeights(&g, loc, scale, at)
        g.outputs = [try g.apply("add", [try g.apply("mul", [epsilon, sigma], at: at), mu], at: at)]
        try Verifier.verify(g)
        return g
    }

    /// Whether a flow's `sample` graph is `baseTransform` followed by its `inverse` graph, with no
    /// other input (no class label), guidance or denoising step: the compiler then derives the
    /// inverse once and runs flowc_sample as the transform and then flowc_inverse.
    public static func sampleIsTransformThenInverse(_ model: Model, guidance: FlowGuidance?, denoise: Double?) -> Bool {
        guard model.kind == .flow, guidance == nil, denoise == nil, model.flow.inputs.count == 1 else { return false }
        if case .diagonalNormal = model.base { return true }
        return false
    }

    /// A flow's `baseTransform` simplified, for the compiler (see `sampleIsTransformThenInverse`).
    public static func baseTransform(of model: Model, weights: WeightStore?) throws -> Graph {
        let latent = model.flow.type(of: model.flow.outputs[0])
        guard model.kind == .flow, let transform = try baseTransform(model, latent: latent) else {
            throw FlowError("internal: \(model.name) has no diagonal Gaussian base to transform noise by", at: .synthetic("sample"))
        }
        return try Simplify.run(transform, weights: weights)
    }

    /// Guidance settings completed with the model's null label; errors for models it cannot apply to.
    static func checked(_ guidance: FlowGuidance, _ model: Model) throws -> FlowGuidance {
        let at = SourceLocation.synthetic("guidance")
        guard let classes = model.classes else { throw FlowError("guidance needs a class-conditional flow (kind flow(classes=K)); \(model.name) is unconditional", at: at) }
        guard model.flow.nodes.contains(where: { $0.op == "guided" }) else {
            throw FlowError("\(model.name) marks no value for guidance (guided(a, \"a\") in its spec, as IR/std/tarflow.flow does)", at: at)
        }
        guard guidance.scale.isFinite, guidance.attentionTemperature.isFinite, guidance.attentionTemperature > 0 else {
            throw FlowError("the guidance scale must be finite and the attention temperature finite and > 0", at: at)
        }
        var g = guidance
        g.nullLabel = Double(classes)
        return g
    }

    static func baseWeights(_ g: inout Graph, _ loc: WeightReference, _ scale: WeightReference, _ at: SourceLocation) throws -> (ValueID, ValueID) {
        func weight(_ w: WeightReference) throws -> ValueID {
            try g.apply("weight", [], ["name": .string(w.name), "shape": .shape(batched: false, w.shape)], at: at)
        }
        return (try weight(loc), try weight(scale))
    }
}
