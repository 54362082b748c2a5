/// A concrete tensor: full shape (batch included) and its values in C order. The interpreter
/// keeps values as Double in both precisions; in f32 mode every op's result is rounded to
/// Float, which is what an f32 implementation with correctly rounded ops computes.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Double]

    public init(shape: [Int], values: [Double]) {
        precondition(shape.reduce(1, *) == values.count, "tensor values do not fill shape \(shape)")
        self.shape = shape
        self.values = values
    }

    public init(shape: [Int], repeating value: Double) {
        self.init(shape: shape, values: [Double](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { values.count }
}

/// Element precision of an interpreter run.
public enum Precision: String, Sendable {
    case f32, f64

    @inline(__always) func round(_ x: Double) -> Double { self == .f32 ? Double(Float(x)) : x }

    func round(_ values: inout [Double]) {
        guard self == .f32 else { return }
        for i in values.indices { values[i] = Double(Float(values[i])) }
    }
}

/// Index arithmetic over C-order shapes.
enum Layout {
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// Splits a shape around `axis` into (outer, length, inner) element counts.
    static func around(_ shape: [Int], axis: Int) -> (outer: Int, length: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// For each element of `outShape` (C order), the flat index of the element of a tensor of
    /// shape `inShape` that broadcasts to it (NumPy rules, right-aligned).
    static func broadcastIndices(from inShape: [Int], to outShape: [Int]) -> [Int] {
        let count = outShape.reduce(1, *)
        if inShape == outShape { return Array(0..<count) }
        let pad = outShape.count - inShape.count
        let inStrides = strides(inShape)
        var effective = [Int](repeating: 0, count: outShape.count)
        for i in 0..<inShape.count where inShape[i] != 1 { effective[i + pad] = inStrides[i] }
        return offsets(shape: outShape, strides: effective)
    }

    /// For each multi-index of `shape` in C order, Σ index[d]·strides[d] (an odometer, so each
    /// step costs O(1) amortised). Broadcasting uses stride 0; transposition permuted strides.
    static func offsets(shape: [Int], strides: [Int]) -> [Int] {
        let count = shape.reduce(1, *)
        var result = [Int](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for flat in 0..<count {
            result[flat] = offset
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return result
    }

    static func broadcastShape(_ shapes: [[Int]]) -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            for (i, d) in s.enumerated() where d != 1 { out[i + rank - s.count] = d }
        }
        return out
    }
}
