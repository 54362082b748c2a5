/// NumPy broadcasting over full shapes, where the batch dimension `B` is a symbol that matches
/// `B` or 1 and must stay the leading axis of the result.
public enum Broadcasting {
    enum Dim: Equatable { case batch, fixed(Int) }

    static func fullShape(_ t: TensorType) -> [Dim] { (t.batched ? [.batch] : []) + t.dims.map { .fixed($0) } }

    public static func result(_ types: [TensorType], _ context: InferenceContext) throws -> TensorType {
        let shapes = types.map(fullShape)
        let rank = shapes.map(\.count).max() ?? 0
        var out: [Dim] = []
        for position in 0..<rank {
            var size = Dim.fixed(1)
            for shape in shapes {
                let offset = position - (rank - shape.count)
                guard offset >= 0 else { continue }
                let s = shape[offset]
                if s == .fixed(1) || s == size { continue }
                if size == .fixed(1) { size = s; continue }
                throw context.error("shapes do not broadcast (axis \(position) of the result)")
            }
            out.append(size)
        }
        if let b = out.firstIndex(of: .batch), b != 0 {
            throw context.error("broadcasting would move the batch dimension B away from axis 0")
        }
        let batched = out.first == .batch
        let dims = out.dropFirst(batched ? 1 : 0).map { d -> Int in
            if case .fixed(let n) = d { return n }
            fatalError("batch dimension only at axis 0")
        }
        return TensorType(try context.sameDType(), batched: batched, dims)
    }
}
