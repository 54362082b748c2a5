/// How one row of a field evaluation is packed: the state (N values), then the times the kind
/// takes (velocity: t; mean velocity: r, t; flow map: s, t), then the class label when the model
/// is class-conditional (`classes` labels 0..<classes, and `classes` itself the null label ∅).
/// This is the input row of the compiled `flowc_field` entry point.
public struct FieldLayout: Sendable, Equatable {
    public var kind: FieldKind
    /// The time where the path is noise (0 or 1); samplers run from there to 1 − noiseAt.
    public var noiseAt: Double
    /// Values of one state (the product of the sample's shape).
    public var stateWidth: Int
    /// Number of classes of a class-conditional model (nil: unconditional).
    public var classes: Int?

    public init(kind: FieldKind, noiseAt: Double, stateWidth: Int, classes: Int? = nil) {
        self.kind = kind
        self.noiseAt = noiseAt
        self.stateWidth = stateWidth
        self.classes = classes
    }

    public var timeSlots: Int { kind == .velocity ? 1 : 2 }
    /// Values of one packed row.
    public var width: Int { stateWidth + timeSlots + (classes == nil ? 0 : 1) }
    /// The null label ∅ of a class-conditional model.
    public var nullLabel: Int? { classes }
    public var start: Double { noiseAt }
    public var end: Double { 1 - noiseAt }
}

/// A network a sampler evaluates: rows packed as `layout` says, one state-sized output row each.
/// Implemented by the compiled `flowc_field` entry point and by the interpreter.
public protocol VectorField {
    var layout: FieldLayout { get }
    /// Evaluates `rows` packed rows of `input` into the first rows·stateWidth values of `output`.
    func evaluate(_ input: UnsafeBufferPointer<Float>, rows: Int, into output: UnsafeMutableBufferPointer<Float>) throws
}

/// Packs rows, evaluates the field on them and widens the results to f64: the one place where
/// solvers meet the network. Holds its buffers (one evaluator per thread).
final class FieldEvaluator {
    let field: VectorField
    let layout: FieldLayout
    private var packed: [Float]
    private var output: [Float]
    private var capacity: Int
    /// Network rows evaluated so far.
    private(set) var evaluatedRows = 0
    private let guidance: Double

    init(field: VectorField, rows: Int, guidance: Double) {
        self.field = field
        self.layout = field.layout
        self.guidance = guidance
        // a guided evaluation packs the conditional rows, then the same rows with the null label
        capacity = guidance == 0 ? rows : 2 * rows
        packed = Array(repeating: 0, count: capacity * layout.width)
        output = Array(repeating: 0, count: capacity * layout.stateWidth)
    }

    /// Writes packed row `i`: the state, the times, the label.
    @inline(__always)
    func setRow(_ i: Int, state: UnsafePointer<Double>, times: (Double, Double?), label: Int?) {
        let w = layout.width, n = layout.stateWidth
        packed.withUnsafeMutableBufferPointer { p in
            let row = p.baseAddress! + i * w
            for j in 0..<n { row[j] = Float(state[j]) }
            row[n] = Float(times.0)
            if let second = times.1 { row[n + 1] = Float(second) }
            if let label { row[w - 1] = Float(label) }
        }
    }

    /// Evaluates the first `rows` packed rows; result row i into out + i·n, in f64. With guidance
    /// w, the field is (1 + w)·f(· | c) − w·f(· | ∅), both halves in one batch of 2·rows.
    func evaluate(rows: Int, into out: UnsafeMutablePointer<Double>) throws {
        let w = layout.width, n = layout.stateWidth
        var total = rows
        if guidance != 0, let null = layout.nullLabel {
            packed.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                (base + rows * w).update(from: base, count: rows * w)
                for i in rows..<(2 * rows) { base[i * w + w - 1] = Float(null) }
            }
            total = 2 * rows
        }
        try packed.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try field.evaluate(UnsafeBufferPointer(rebasing: input[0..<(total * w)]), rows: total, into: $0) }
        }
        evaluatedRows += total
        output.withUnsafeBufferPointer { o in
            if total == rows {
                for k in 0..<(rows * n) { out[k] = Double(o[k]) }
            } else {
                for k in 0..<(rows * n) { out[k] = (1 + guidance) * Double(o[k]) - guidance * Double(o[rows * n + k]) }
            }
        }
        for k in 0..<(rows * n) where !out[k].isFinite {
            throw SolverError("the network produced a non-finite value at row \(k / n), element \(k % n) (times \(packedTimes(k / n)))")
        }
    }

    private func packedTimes(_ row: Int) -> String {
        let n = layout.stateWidth, w = layout.width
        return (0..<layout.timeSlots).map { "\(packed[row * w + n + $0])" }.joined(separator: ", ")
    }
}
