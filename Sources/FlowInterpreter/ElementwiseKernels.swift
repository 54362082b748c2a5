import Foundation

/// Elementwise math in Double; numerically stable forms where the naive one overflows.
enum ElementwiseKernels {
    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

    static let unary: [String: @Sendable (Double) -> Double] = [
        "neg": { -$0 }, "abs": { Swift.abs($0) }, "exp": { Foundation.exp($0) }, "log": { Foundation.log($0) },
        "log1p": { Foundation.log1p($0) }, "expm1": { Foundation.expm1($0) }, "sqrt": { $0.squareRoot() },
        "rsqrt": { 1 / $0.squareRoot() }, "square": { $0 * $0 }, "tanh": { Foundation.tanh($0) },
        "atanh": { Foundation.atanh($0) }, "sigmoid": sigmoid, "logit": { Foundation.log($0) - Foundation.log1p(-$0) },
        "softplus": { Swift.max($0, 0) + Foundation.log1p(Foundation.exp(-Swift.abs($0))) },
        "relu": { Swift.max($0, 0) }, "gelu": { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) },
        "silu": { $0 * sigmoid($0) }, "erf": { Foundation.erf($0) }, "sin": { Foundation.sin($0) }, "cos": { Foundation.cos($0) },
    ]

    static let binary: [String: @Sendable (Double, Double) -> Double] = [
        "add": (+), "sub": (-), "mul": (*), "div": (/), "pow": { Foundation.pow($0, $1) },
        "max": { Swift.max($0, $1) }, "min": { Swift.min($0, $1) },
        "lt": { $0 < $1 ? 1 : 0 }, "le": { $0 <= $1 ? 1 : 0 }, "gt": { $0 > $1 ? 1 : 0 },
        "ge": { $0 >= $1 ? 1 : 0 }, "eq": { $0 == $1 ? 1 : 0 }, "ne": { $0 != $1 ? 1 : 0 },
    ]

    static func map(_ x: Tensor, _ f: (Double) -> Double) -> Tensor {
        Tensor(shape: x.shape, values: x.values.map(f))
    }

    static func zip(_ a: Tensor, _ b: Tensor, _ f: (Double, Double) -> Double) -> Tensor {
        if a.shape == b.shape {
            var out = [Double](repeating: 0, count: a.count)
            for i in 0..<a.count { out[i] = f(a.values[i], b.values[i]) }
            return Tensor(shape: a.shape, values: out)
        }
        let shape = Layout.broadcastShape([a.shape, b.shape])
        let ia = Layout.broadcastIndices(from: a.shape, to: shape), ib = Layout.broadcastIndices(from: b.shape, to: shape)
        var out = [Double](repeating: 0, count: ia.count)
        for i in 0..<ia.count { out[i] = f(a.values[ia[i]], b.values[ib[i]]) }
        return Tensor(shape: shape, values: out)
    }

    static func select(_ c: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = Layout.broadcastShape([c.shape, a.shape, b.shape])
        let ic = Layout.broadcastIndices(from: c.shape, to: shape)
        let ia = Layout.broadcastIndices(from: a.shape, to: shape), ib = Layout.broadcastIndices(from: b.shape, to: shape)
        var out = [Double](repeating: 0, count: ic.count)
        for i in 0..<ic.count { out[i] = c.values[ic[i]] != 0 ? a.values[ia[i]] : b.values[ib[i]] }
        return Tensor(shape: shape, values: out)
    }
}
