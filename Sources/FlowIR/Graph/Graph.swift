/// Identifies an SSA value inside one `Graph`.
public typealias ValueID = Int

/// One operation: `results = op(operands; attributes)`.
public struct Node: Sendable, Equatable {
    public var op: String
    public var operands: [ValueID]
    public var attributes: [String: Attribute]
    public var results: [ValueID]
    public var location: SourceLocation

    public init(op: String, operands: [ValueID], attributes: [String: Attribute] = [:], results: [ValueID], location: SourceLocation) {
        self.op = op
        self.operands = operands
        self.attributes = attributes
        self.results = results
        self.location = location
    }
}

/// A flat SSA dataflow graph: inputs, nodes in a valid execution order, outputs. Every value
/// has a static type. Loops and functions of the surface language are gone by this point.
public struct Graph: Sendable, Equatable {
    public var inputs: [ValueID] = []
    public var inputNames: [String] = []
    public var nodes: [Node] = []
    public var outputs: [ValueID] = []
    public private(set) var types: [TensorType] = []
    /// Graphs run by region ops (`fixed_point`'s `body=k` is `bodies[k]`); each is a complete
    /// graph with its own inputs and values.
    public var bodies: [Graph] = []

    public init() {}

    /// Creates a fresh value of the given type.
    public mutating func newValue(_ type: TensorType) -> ValueID {
        types.append(type)
        return types.count - 1
    }

    public mutating func addInput(name: String, type: TensorType) -> ValueID {
        let v = newValue(type)
        inputs.append(v)
        inputNames.append(name)
        return v
    }

    public func type(of value: ValueID) -> TensorType { types[value] }

    /// Appends `op(operands; attributes)` after validating the attributes and inferring the
    /// result types (the one way nodes enter a graph: the elaborator and every pass use it).
    @discardableResult
    public mutating func append(_ op: String, _ operands: [ValueID], _ attributes: [String: Attribute] = [:],
                                at location: SourceLocation) throws -> [ValueID] {
        let dtype = inputs.first.map { types[$0].dtype } ?? .f32
        let (resultTypes, filled) = try OpCatalog.infer(op: op, operands: operands.map { types[$0] }, attributes: attributes,
                                                        dtype: dtype, at: location)
        let results = resultTypes.map { newValue($0) }
        nodes.append(Node(op: op, operands: operands, attributes: filled, results: results, location: location))
        return results
    }

    /// Appends a copy of `node`, a node of a verified graph, on operands of the same types as
    /// its own there: its attributes and result types carry over (nothing to infer again).
    public mutating func appendCopy(of node: Node, operands: [ValueID], resultTypes: [TensorType]) -> [ValueID] {
        let results = resultTypes.map { newValue($0) }
        nodes.append(Node(op: node.op, operands: operands, attributes: node.attributes, results: results, location: node.location))
        return results
    }

    /// Single-result form of `append`.
    public mutating func apply(_ op: String, _ operands: [ValueID], _ attributes: [String: Attribute] = [:],
                               at location: SourceLocation) throws -> ValueID {
        try append(op, operands, attributes, at: location)[0]
    }

    /// Copies `other`'s nodes (and region bodies) into this graph with `other`'s inputs bound to
    /// `arguments`; returns the values of `other`'s outputs.
    public mutating func inline(_ other: Graph, arguments: [ValueID]) throws -> [ValueID] {
        var map: [ValueID: ValueID] = [:]
        for (input, argument) in zip(other.inputs, arguments) { map[input] = argument }
        let bodyOffset = bodies.count
        bodies += other.bodies
        for node in other.nodes {
            var attributes = node.attributes
            if node.op == "fixed_point", case .int(let b)? = attributes["body"] { attributes["body"] = .int(b + bodyOffset) }
            let results = try append(node.op, node.operands.map { map[$0]! }, attributes, at: node.location)
            for (r, v) in zip(node.results, results) { map[r] = v }
        }
        return other.outputs.map { map[$0]! }
    }

    /// A scalar constant.
    public mutating func constant(_ value: Double, at location: SourceLocation) throws -> ValueID {
        try apply("const", [], ["values": .floats([value])], at: location)
    }

    /// Number of values ever created (ids are 0..<valueCount).
    public var valueCount: Int { types.count }

    /// The inputs and every value computed from them (the rest is compile-time constant).
    public func valuesDependingOnInputs() -> Set<ValueID> {
        var result = Set(inputs)
        for node in nodes where node.operands.contains(where: result.contains) { result.formUnion(node.results) }
        return result
    }

    /// The node producing each value (nil for inputs).
    public func producers() -> [Int?] {
        var result = [Int?](repeating: nil, count: types.count)
        for (i, node) in nodes.enumerated() { for r in node.results { result[r] = i } }
        return result
    }

    /// Each value's readers: (node index, operand position), in node order; a node that reads a
    /// value twice is listed twice.
    public func uses() -> [[(node: Int, operand: Int)]] {
        var result = [[(node: Int, operand: Int)]](repeating: [], count: types.count)
        for (i, node) in nodes.enumerated() { for (j, v) in node.operands.enumerated() { result[v].append((i, j)) } }
        return result
    }

    /// A node's `axis` attribute as a full-rank index of its first operand (a negative axis
    /// counts from the end); nil when it has none or it is out of range.
    public func axis(of node: Node) -> Int? {
        guard case .int(let a)? = node.attributes["axis"], let first = node.operands.first else { return nil }
        let rank = type(of: first).rank
        let full = a < 0 ? a + rank : a
        return (0..<rank).contains(full) ? full : nil
    }
}

/// The model's base density p_base(z).
public enum BaseDensity: Sendable, Hashable {
    /// Standard normal N(0, I).
    case standardNormal
    /// Diagonal Gaussian N(loc, diag(scale²)) with loc and scale named weights (resolved names)
    /// broadcastable to one sample of z (zuko's `base.loc` / `base.scale` buffers).
    case diagonalNormal(loc: WeightReference, scale: WeightReference)
}

/// A named weight and its shape, as resolved against the weight file.
public struct WeightReference: Sendable, Hashable {
    public var name: String
    public var shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// What a model's body computes.
public enum ModelKind: Sendable, Hashable, CustomStringConvertible {
    /// A bijection x → z (normalizing flow).
    case flow
    /// A velocity field v(x, t) of an ODE dx/dt = v (flow matching, rectified flow); `noiseAt`
    /// is the time where the path is noise (0 for Meta's flow_matching and torchcfm).
    case velocity(noiseAt: Double)
    /// An average velocity u(z, r, t) on [r, t] (MeanFlow), z_r = z_t − (t − r)·u(z_t, r, t);
    /// `noiseAt` is the noise end (1 in the MeanFlow paper).
    case meanVelocity(noiseAt: Double)
    /// A flow map X(x, s, t): the state at time t of the trajectory through x at time s
    /// (distilled few-step samplers such as Align Your Flow).
    case flowMap(noiseAt: Double)

    /// As written in a spec: `velocity(noise_at=0)`.
    public var description: String {
        switch self {
        case .flow: return "flow"
        case .velocity(let t): return "velocity(noise_at=\(Int(t)))"
        case .meanVelocity(let t): return "mean_velocity(noise_at=\(Int(t)))"
        case .flowMap(let t): return "flow_map(noise_at=\(Int(t)))"
        }
    }
}

/// How the inverse undoes autoregressive (causal) blocks.
public enum CausalInverseMode: Sendable, Hashable {
    /// The fixed-point iteration unrolled for exactly as many sweeps as the dependency chain
    /// is long (one more position exact per sweep): exact, no data-dependent control flow.
    case sequential
    /// The same iteration as a loop that stops when no value moves by more than
    /// tolerance·(1 + |value|), at most as many sweeps as the sequential one.
    /// With `chunk` B (a token-decodable block, TarFlow): the iteration runs on chunks of B tokens
    /// in turn (STARFlow-V), each at most B sweeps (then exact), earlier chunks served from the
    /// key/value cache.
    case jacobi(tolerance: Double, chunk: Int? = nil)
}

/// A whole model: its inputs, base density, where its weights live, and the flow x → z.
public struct Model: Sendable {
    public var name: String
    public var base: BaseDensity
    /// Path of the weight file as written in the spec, resolved against the spec's folder.
    public var weightsPath: String?
    /// The `weights "..."` line exactly as the spec wrote it (printed back by the printer).
    public var declaredWeights: String?
    /// The `inverse ...` line: how autoregressive blocks are inverted.
    public var causalInverse: CausalInverseMode = .sequential
    /// The `kind ...` line (a flow unless declared).
    public var kind: ModelKind = .flow
    /// Labels of a class-conditional field (`kind velocity(classes=K)`): its last input is the
    /// label in 0..<K, and K is the null label ∅. nil: unconditional.
    public var classes: Int?
    public var flow: Graph

    public init(name: String, base: BaseDensity, weightsPath: String?, flow: Graph) {
        self.name = name
        self.base = base
        self.weightsPath = weightsPath
        self.flow = flow
    }
}
