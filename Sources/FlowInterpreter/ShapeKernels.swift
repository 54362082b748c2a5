/// Data movement: every kernel works on the (outer, axis, inner) decomposition of C order.
enum ShapeKernels {
    static func transpose(_ x: Tensor, _ perm: [Int]) -> Tensor {
        let inStrides = Layout.strides(x.shape)
        let outShape = perm.map { x.shape[$0] }
        let source = Layout.offsets(shape: outShape, strides: perm.map { inStrides[$0] })
        return Tensor(shape: outShape, values: source.map { x.values[$0] })
    }

    /// Picks `indices` along `axis` (slice, gather and split are all this).
    static func take(_ x: Tensor, axis: Int, indices: [Int]) -> Tensor {
        let (outer, length, inner) = Layout.around(x.shape, axis: axis)
        var shape = x.shape
        shape[axis] = indices.count
        var out = [Double](repeating: 0, count: outer * indices.count * inner)
        var o = 0
        for a in 0..<outer {
            for i in indices {
                let base = (a * length + i) * inner
                for j in 0..<inner { out[o] = x.values[base + j]; o += 1 }
            }
        }
        return Tensor(shape: shape, values: out)
    }

    static func concat(_ xs: [Tensor], axis: Int) -> Tensor {
        var shape = xs[0].shape
        shape[axis] = xs.map { $0.shape[axis] }.reduce(0, +)
        let outer = shape[..<axis].reduce(1, *)
        var out: [Double] = []
        out.reserveCapacity(shape.reduce(1, *))
        for a in 0..<outer {
            for x in xs {
                let chunk = x.shape[axis...].reduce(1, *)
                out.append(contentsOf: x.values[(a * chunk)..<((a + 1) * chunk)])
            }
        }
        return Tensor(shape: shape, values: out)
    }

    static func pad(_ x: Tensor, axis: Int, before: Int, after: Int, value: Double) -> Tensor {
        let (outer, length, inner) = Layout.around(x.shape, axis: axis)
        var shape = x.shape
        shape[axis] += before + after
        var out = [Double](repeating: value, count: shape.reduce(1, *))
        let newLength = length + before + after
        for a in 0..<outer {
            for i in 0..<length {
                let src = (a * length + i) * inner, dst = (a * newLength + i + before) * inner
                for j in 0..<inner { out[dst + j] = x.values[src + j] }
            }
        }
        return Tensor(shape: shape, values: out)
    }
}
