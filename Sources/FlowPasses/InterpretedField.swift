import FlowIR
import FlowInterpreter
import FlowSolvers

/// A model's `field` entry point run by the reference interpreter, as a vector field for the
/// solvers (the interpreted counterpart of the compiled `flowc_field`).
public final class InterpretedField: VectorField {
    public let layout: FieldLayout
    let interpreter: Interpreter

    public init(model: Model, precision: Precision = .f32) throws {
        layout = try FieldCall.layout(of: model)
        let weights = try model.weightsPath.map { try WeightStore(path: $0) }
        interpreter = try Interpreter(graph: try EntryPoints.graph(.field, of: model, weights: weights), weights: weights, precision: precision)
    }

    public func evaluate(_ input: UnsafeBufferPointer<Float>, rows: Int, into output: UnsafeMutableBufferPointer<Float>) throws {
        let packed = Tensor(shape: [rows, layout.width], values: input[0..<(rows * layout.width)].map(Double.init))
        let result = try interpreter.run([packed])[0]
        for (i, v) in result.values.enumerated() { output[i] = Float(v) }
    }
}
