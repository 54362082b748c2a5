import FlowIR
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
    }

    public static func graph(_ entry: Entry, of model: Model) throws -> Graph {
        let weights = try model.weightsPath.map { try WeightStore(path: $0) }
        let derived: Graph
        switch entry {
        case .forward: derived = try LogDetPass.run(model.flow, weights: weights)
        case .logProb: derived = try logProb(model, weights: weights)
        case .inverse: derived = try InversePass.run(model.flow, weights: weights, causal: model.causalInverse)
        }
        return try Simplify.run(derived, weights: weights)
    }

    /// Base-density noise for `sample(seed, n)`: rows firstRow ..< firstRow + rows of the
    /// counter-based stream, times the temperature (the standard deviation of the base).
    public static func noise(of model: Model, seed: UInt64, firstRow: Int, rows: Int, temperature: Double) -> [Double] {
        let perRow = model.flow.type(of: model.flow.outputs[0]).elementsPerSample
        return Philox.normals(seed: seed, firstRow: firstRow, rows: rows, perRow: perRow).map { $0 * temperature }
    }

    /// log p(x) = Σ_i log N(z_i; 0, 1) + logdet = -½ Σ z_i² - (n/2) ln 2π + logdet.
    static func logProb(_ model: Model, weights: WeightStore?) throws -> Graph {
        var g = try LogDetPass.run(model.flow, weights: weights)
        let (z, logdet) = (g.outputs[0], g.outputs[1])
        let at = SourceLocation.synthetic("log_prob")
        let type = g.type(of: z)
        switch model.base {
        case .standardNormal:
            let squares = try g.apply("sum", [try g.apply("square", [z], at: at)], ["axes": .ints(Array(1..<type.rank))], at: at)
            let half = try g.apply("mul", [squares, try g.constant(-0.5, at: at)], at: at)
            let normalizer = try g.constant(-0.5 * Double(type.elementsPerSample) * log(2 * Double.pi), at: at)
            let base = try g.apply("add", [half, normalizer], at: at)
            g.outputs = [try g.apply("add", [base, logdet], at: at)]
        }
        try Verifier.verify(g)
        return g
    }
}
