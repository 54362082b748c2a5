import Foundation

/// Reductions, softmax, cumulative sum and layer norm. Sums accumulate in Double.
enum ReductionKernels {
    enum Kind { case sum, mean, max }

    static func reduce(_ x: Tensor, axes: [Int], keepdims: Bool, kind: Kind) -> Tensor {
        var keptShape = x.shape
        for a in axes { keptShape[a] = 1 }
        let map = Layout.broadcastIndices(from: keptShape, to: x.shape)
        let count = keptShape.reduce(1, *)
        var out = [Double](repeating: kind == .max ? -.infinity : 0, count: count)
        for i in 0..<x.count {
            if kind == .max { out[map[i]] = Swift.max(out[map[i]], x.values[i]) } else { out[map[i]] += x.values[i] }
        }
        if kind == .mean {
            let n = Double(axes.map { x.shape[$0] }.reduce(1, *))
            for i in 0..<count { out[i] /= n }
        }
        let shape = keepdims ? keptShape : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return Tensor(shape: shape, values: out)
    }

    /// Applies `f` to every 1-D line along `axis` (in place on a copy).
    static func alongAxis(_ x: Tensor, axis: Int, _ f: (inout [Double]) -> Void) -> Tensor {
        let (outer, length, inner) = Layout.around(x.shape, axis: axis)
        var out = x.values
        var line = [Double](repeating: 0, count: length)
        for a in 0..<outer {
            for j in 0..<inner {
                for i in 0..<length { line[i] = out[(a * length + i) * inner + j] }
                f(&line)
                for i in 0..<length { out[(a * length + i) * inner + j] = line[i] }
            }
        }
        return Tensor(shape: x.shape, values: out)
    }

    static func softmax(_ x: Tensor, axis: Int) -> Tensor {
        alongAxis(x, axis: axis) { line in
            let m = line.max() ?? 0
            var total = 0.0
            for i in line.indices { line[i] = exp(line[i] - m); total += line[i] }
            for i in line.indices { line[i] /= total }
        }
    }

    static func cumsum(_ x: Tensor, axis: Int) -> Tensor {
        alongAxis(x, axis: axis) { line in
            var acc = 0.0
            for i in line.indices { acc += line[i]; line[i] = acc }
        }
    }

    /// (x - mean) / sqrt(var + eps) · weight + bias over the last axis, biased variance (as torch).
    static func layernorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double) -> Tensor {
        let n = x.shape.last!
        var out = x.values
        for row in 0..<(x.count / n) {
            let base = row * n
            var mean = 0.0
            for i in 0..<n { mean += x.values[base + i] }
            mean /= Double(n)
            var variance = 0.0
            for i in 0..<n { let d = x.values[base + i] - mean; variance += d * d }
            variance /= Double(n)
            let scale = 1 / (variance + eps).squareRoot()
            for i in 0..<n {
                var v = (x.values[base + i] - mean) * scale
                if let weight { v *= weight.values[i] }
                if let bias { v += bias.values[i] }
                out[base + i] = v
            }
        }
        return Tensor(shape: x.shape, values: out)
    }
}
