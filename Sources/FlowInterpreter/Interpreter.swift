import FlowIR
import Foundation

/// The reference executor: runs a verified graph op by op, in f32 or f64. It is the oracle the
/// compiled code is checked against, so every op is written plainly; buffers are freed after
/// their last use so memory stays proportional to the live set, not the whole graph.
public struct Interpreter: Sendable {
    public let graph: Graph
    public let precision: Precision
    /// Where `fixed_point` loops report how many sweeps they ran (optional).
    public var statistics: RunStatistics?
    /// Weight values by resolved name, already rounded to the run's precision.
    private let weights: [String: Tensor]
    /// Inputs larger than this many elements are refused with an error, not an allocation failure.
    public static let maximumInputElements = 1 << 31
    /// No intermediate tensor of a run may hold more elements than this (2³⁰, 8 GiB of f64).
    public static let maximumTensorElements = 1 << 30

    public init(graph: Graph, weights: WeightStore?, precision: Precision) throws {
        self.graph = graph
        self.precision = precision
        var loaded: [String: Tensor] = [:]
        var all: [Graph] = []
        var pending = [graph]
        while let g = pending.popLast() { all.append(g); pending += g.bodies }
        for node in all.flatMap(\.nodes) where node.op == "weight" {
            guard case .string(let name)? = node.attributes["name"], case .shape(_, let shape)? = node.attributes["shape"] else {
                throw FlowError("weight node without name or shape", at: node.location)
            }
            if loaded[name] != nil { continue }
            guard let store = weights else { throw FlowError("the model reads weight '\(name)' but no weight file was given", at: node.location) }
            let (resolved, info) = try store.info(name, at: node.location)
            guard info.shape == shape else {
                throw FlowError("weight '\(resolved)' has shape \(info.shape) in \(store.file.path) but the graph expects \(shape)", at: node.location)
            }
            var values = try store.file.values(resolved)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw FlowError("weight '\(resolved)' holds a non-finite value (\(values[bad])) at flat index \(bad)", at: node.location)
            }
            precision.round(&values)
            loaded[name] = Tensor(shape: shape, values: values)
        }
        self.weights = loaded
    }

    /// An interpreter for a region body, sharing the already loaded weights.
    private init(body: Graph, sharing parent: Interpreter) {
        self.graph = body
        self.precision = parent.precision
        self.weights = parent.weights
        self.statistics = parent.statistics
    }

    public init(model: Model, precision: Precision) throws {
        try self.init(graph: model.flow, weights: try model.weightsPath.map { try WeightStore(path: $0) }, precision: precision)
    }

    /// Runs the graph on one batch. Inputs must have the graph's input shapes with any batch
    /// size ≥ 1 and finite values.
    public func run(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == graph.inputs.count else {
            throw FlowError("the model takes \(graph.inputs.count) input(s), got \(inputs.count)", in: "inputs")
        }
        var values = [Tensor?](repeating: nil, count: graph.valueCount)
        var batch = -1
        for (i, (v, x)) in zip(graph.inputs, inputs).enumerated() {
            let name = graph.inputNames[i]
            let type = graph.type(of: v)
            guard x.shape.count == type.rank, type.batched ? Array(x.shape.dropFirst()) == type.dims : x.shape == type.dims else {
                throw FlowError("input '\(name)' has shape \(x.shape); expected \(type)", in: "input '\(name)'")
            }
            // an unbatched input (a constant captured by a loop body) has no batch to agree on
            guard type.batched else {
                values[v] = x
                continue
            }
            guard x.shape[0] >= 1 else { throw FlowError("input '\(name)' has batch size 0; expected at least one row", in: "input '\(name)'") }
            guard x.count <= Interpreter.maximumInputElements else {
                throw FlowError("input '\(name)' has \(x.count) elements, above the limit of \(Interpreter.maximumInputElements)", in: "input '\(name)'")
            }
            if batch >= 0 && x.shape[0] != batch {
                throw FlowError("inputs disagree on the batch size (\(batch) vs \(x.shape[0]))", in: "input '\(name)'")
            }
            batch = x.shape[0]
            if let bad = x.values.firstIndex(where: { !$0.isFinite }) {
                throw FlowError("input '\(name)' holds \(x.values[bad]) at \(Interpreter.index(bad, in: x.shape)); inputs must be finite", in: "input '\(name)'")
            }
            var rounded = x
            precision.round(&rounded.values)
            values[v] = rounded
        }
        var lastUse = [Int](repeating: -1, count: graph.valueCount)
        for (i, node) in graph.nodes.enumerated() { for v in node.operands { lastUse[v] = i } }
        for v in graph.outputs { lastUse[v] = Int.max }
        for (i, node) in graph.nodes.enumerated() {
            for r in node.results {
                let type = graph.type(of: r)
                let (count, overflow) = type.elementsPerSample.multipliedReportingOverflow(by: type.batched ? batch : 1)
                guard !overflow, count <= Interpreter.maximumTensorElements else {
                    throw FlowError("\(node.op) would produce \(type) with batch \(batch): more than 2^30 elements; run a smaller batch", at: node.location)
                }
            }
            let operands = node.operands.map { values[$0]! }
            var results = try evaluate(node, operands, batch: batch)
            for r in results.indices {
                precision.round(&results[r].values)
                if let bad = results[r].values.firstIndex(where: { !$0.isFinite }), operands.allSatisfy({ $0.values.allSatisfy(\.isFinite) }) {
                    throw FlowError("\(node.op) produced \(results[r].values[bad]) at \(Interpreter.index(bad, in: results[r].shape)) from finite operands (input outside the op's domain?)", at: node.location)
                }
                values[node.results[r]] = results[r]
            }
            for v in node.operands where lastUse[v] == i { values[v] = nil }
        }
        return graph.outputs.map { values[$0]! }
    }

    /// u ← body(u, captured…) for `sweeps` sweeps, or until no element moves by more than
    /// tolerance·(1 + |u|).
    private func fixedPoint(_ node: Node, _ operands: [Tensor]) throws -> Tensor {
        guard case .int(let index)? = node.attributes["body"], case .int(let sweeps)? = node.attributes["sweeps"] else {
            fatalError("fixed_point attributes verified")
        }
        let tolerance: Double
        if case .float(let t)? = node.attributes["tolerance"] { tolerance = t } else { tolerance = 0 }
        let body = Interpreter(body: graph.bodies[index], sharing: self)
        var u = operands[0]
        var used = 0
        for _ in 0..<sweeps {
            let next = try body.run([u] + operands.dropFirst())[0]
            let moved = zip(next.values, u.values).contains { abs($0 - $1) > tolerance * (1 + abs($1)) }
            u = next
            used += 1
            if tolerance > 0 && !moved { break }
        }
        statistics?.record(sweeps: used)
        return u
    }

    /// A flat index as a multi-index, for error messages: `(3, 5)`.
    static func index(_ flat: Int, in shape: [Int]) -> String {
        var rest = flat
        var parts: [Int] = []
        for d in shape.reversed() { parts.append(rest % max(d, 1)); rest /= max(d, 1) }
        return "index (" + parts.reversed().map(String.init).joined(separator: ", ") + ")"
    }

    private func evaluate(_ node: Node, _ x: [Tensor], batch: Int) throws -> [Tensor] {
        func int(_ name: String) -> Int {
            guard case .int(let v)? = node.attributes[name] else { fatalError("verified attribute \(name)") }
            return v
        }
        func ints(_ name: String) -> [Int] {
            guard case .ints(let v)? = node.attributes[name] else { fatalError("verified attribute \(name)") }
            return v
        }
        func float(_ name: String) -> Double {
            switch node.attributes[name] {
            case .float(let v)?: return v
            case .int(let v)?: return Double(v)
            default: fatalError("verified attribute \(name)")
            }
        }
        func shape(_ name: String) -> [Int] {
            guard case .shape(_, let dims)? = node.attributes[name] else { fatalError("verified attribute \(name)") }
            return dims
        }
        func axis(_ a: Int, _ t: Tensor) -> Int { a < 0 ? a + t.shape.count : a }
        let op = node.op
        if let f = ElementwiseKernels.unary[op] { return [ElementwiseKernels.map(x[0], f)] }
        if let f = ElementwiseKernels.binary[op] { return [ElementwiseKernels.zip(x[0], x[1], f)] }
        switch op {
        case "leaky_relu":
            let slope = float("slope")
            return [ElementwiseKernels.map(x[0]) { $0 >= 0 ? $0 : slope * $0 }]
        case "select": return [ElementwiseKernels.select(x[0], x[1], x[2])]
        case "sum", "mean", "amax":
            let kind: ReductionKernels.Kind = op == "sum" ? .sum : op == "mean" ? .mean : .max
            return [ReductionKernels.reduce(x[0], axes: ints("axes").map { axis($0, x[0]) }, keepdims: int("keepdims") != 0, kind: kind)]
        case "softmax": return [ReductionKernels.softmax(x[0], axis: axis(int("axis"), x[0]))]
        case "cumsum": return [ReductionKernels.cumsum(x[0], axis: axis(int("axis"), x[0]))]
        case "layernorm":
            return [ReductionKernels.layernorm(x[0], weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil, eps: float("eps"))]
        case "matmul": return [LinearAlgebraKernels.matmul(x[0], x[1], precision: precision)]
        case "attention": return [AttentionKernel.attention(x[0], x[1], x[2], heads: int("heads"), causal: int("causal") != 0, temperature: float("temperature"))]
        case "guided": return [x[0]]
        case "linear": return [LinearAlgebraKernels.linear(x[0], x[1], x.count > 2 ? x[2] : nil, precision: precision)]
        case "conv2d": return [LinearAlgebraKernels.conv2d(x[0], x[1], x.count > 2 ? x[2] : nil, stride: int("stride"), padding: int("padding"))]
        case "tril": return [LinearAlgebraKernels.triangle(x[0], k: int("k"), lower: true)]
        case "triu": return [LinearAlgebraKernels.triangle(x[0], k: int("k"), lower: false)]
        case "logabsdet": return [Tensor(shape: [], values: [LinearAlgebraKernels.logAbsDeterminant(x[0])])]
        case "broadcast_like":
            let shape = Layout.broadcastShape([x[0].shape, x[1].shape])
            return [Tensor(shape: shape, values: Layout.broadcastIndices(from: x[0].shape, to: shape).map { x[0].values[$0] })]
        case "matrix_inverse":
            guard let inverse = LinearAlgebraKernels.inverse(x[0]) else {
                throw FlowError("matrix_inverse: the \(x[0].shape[0])x\(x[0].shape[0]) matrix is singular, so this map has no inverse", at: node.location)
            }
            return [inverse]
        case "diag":
            let n = x[0].count
            var out = [Double](repeating: 0, count: n * n)
            for i in 0..<n { out[i * n + i] = x[0].values[i] }
            return [Tensor(shape: [n, n], values: out)]
        case "reshape":
            let t = graph.type(of: node.results[0])
            return [Tensor(shape: t.shape(batch: batch), values: x[0].values)]
        case "transpose": return [ShapeKernels.transpose(x[0], ints("perm"))]
        case "slice":
            let a = axis(int("axis"), x[0])
            let indices = PythonSlice.indices(size: x[0].shape[a], start: int("start"), end: int("end"), step: int("step"))
            return [ShapeKernels.take(x[0], axis: a, indices: indices)]
        case "gather": return [ShapeKernels.take(x[0], axis: axis(int("axis"), x[0]), indices: ints("indices"))]
        case "split":
            let a = axis(int("axis"), x[0])
            var start = 0
            return ints("sizes").map { size in
                defer { start += size }
                return ShapeKernels.take(x[0], axis: a, indices: Array(start..<(start + size)))
            }
        case "concat": return [ShapeKernels.concat(x, axis: axis(int("axis"), x[0]))]
        case "pad":
            return [ShapeKernels.pad(x[0], axis: axis(int("axis"), x[0]), before: int("before"), after: int("after"), value: float("value"))]
        case "fixed_point":
            return [try fixedPoint(node, x)]
        case "weight":
            guard case .string(let name)? = node.attributes["name"], let w = weights[name] else { fatalError("weights loaded at init") }
            return [w]
        case "const":
            guard case .floats(let v)? = node.attributes["values"] else { fatalError("verified attribute values") }
            let s = shape("shape")
            return [v.count == 1 ? Tensor(shape: s, repeating: v[0]) : Tensor(shape: s, values: v)]
        case "iota":
            let s = shape("shape"), a = int("axis") < 0 ? int("axis") + s.count : int("axis")
            let (_, length, inner) = Layout.around(s, axis: a)
            return [Tensor(shape: s, values: (0..<s.reduce(1, *)).map { Double(($0 / inner) % length) })]
        case "eye":
            let n = int("n")
            return [Tensor(shape: [n, n], values: (0..<(n * n)).map { $0 / n == $0 % n ? 1 : 0 })]
        case "rq_spline": return [SplineKernel.evaluate(x[0], x[1], x[2], x[3]).0]
        case "rq_spline_inverse": return [SplineKernel.inverse(x[0], x[1], x[2], x[3])]
        case "rq_spline_logderiv": return [SplineKernel.evaluate(x[0], x[1], x[2], x[3]).1]
        default:
            throw FlowError("the interpreter has no kernel for op '\(op)'", at: node.location)
        }
    }
}

/// Counters an interpreter run reports to (thread-safe).
public final class RunStatistics: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [Int] = []

    public init() {}

    func record(sweeps: Int) {
        lock.lock()
        recorded.append(sweeps)
        lock.unlock()
    }

    /// Sweeps run by each `fixed_point` loop, in execution order.
    public var sweeps: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }
}
