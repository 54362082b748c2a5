/// Element types. Graphs are written in f32 (the models' precision); the interpreter can also
/// run any graph in f64 as an oracle.
public enum DType: String, Sendable, Hashable {
    case f32, f64
}

/// A tensor's type: element type, whether it has the leading symbolic batch dimension `B`,
/// and its static dimensions. A batched `f32[B, 8]` has `dims == [8]`; axes in op
/// attributes count `B` as axis 0, as in PyTorch.
public struct TensorType: Sendable, Hashable, CustomStringConvertible {
    public var dtype: DType
    public var batched: Bool
    public var dims: [Int]

    public init(_ dtype: DType, batched: Bool, _ dims: [Int]) {
        self.dtype = dtype
        self.batched = batched
        self.dims = dims
    }

    /// No tensor may hold more elements per sample than this (2⁴⁰), so that no size computation
    /// can overflow and a typo such as `[B, 100000000000]` is an error, not an allocation failure.
    public static let elementLimit = 1 << 40

    /// The product of `dims`, or nil when a dimension is negative or the product exceeds `elementLimit`.
    public static func checkedCount(_ dims: [Int]) -> Int? {
        var count = 1
        for d in dims {
            guard d >= 0, d <= elementLimit else { return nil }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= elementLimit else { return nil }
            count = p
        }
        return count
    }

    /// Rank counting the batch dimension.
    public var rank: Int { dims.count + (batched ? 1 : 0) }

    /// Number of elements per sample (all static dimensions).
    public var elementsPerSample: Int { dims.reduce(1, *) }

    /// Full shape with the batch dimension given a concrete size.
    public func shape(batch: Int) -> [Int] { batched ? [batch] + dims : dims }

    /// Static size of full axis `axis` (nil for the batch axis).
    public func size(ofAxis axis: Int) -> Int? {
        if batched { return axis == 0 ? nil : dims[axis - 1] }
        return dims[axis]
    }

    public var description: String {
        let parts = (batched ? ["B"] : []) + dims.map(String.init)
        return "\(dtype.rawValue)[\(parts.joined(separator: ", "))]"
    }
}
