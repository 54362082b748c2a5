/// What kind of value an attribute holds. `.float` also accepts an integer literal.
public enum AttributeKind: String, Sendable {
    case int, float, ints, floats, string, shape
}

public struct AttributeSpec: Sendable {
    public var name: String
    public var kind: AttributeKind
    /// nil: the attribute is required.
    public var defaultValue: Attribute?

    public init(_ name: String, _ kind: AttributeKind, default defaultValue: Attribute? = nil) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
    }
}

/// Everything shape inference sees of one op application.
public struct InferenceContext {
    public var op: String
    public var operands: [TensorType]
    public var attributes: [String: Attribute]
    public var location: SourceLocation
    /// Element type of values created from nothing (constants, iota).
    public var dtype: DType

    /// An error that names the op, its location and its operand types.
    public func error(_ message: String) -> FlowError {
        let shapes = operands.map(\.description).joined(separator: ", ")
        return FlowError("\(op)(\(shapes)): \(message)", at: location)
    }

    public func int(_ name: String) -> Int {
        guard case .int(let i)? = attributes[name] else { fatalError("attribute '\(name)' of \(op) was validated as int") }
        return i
    }

    public func float(_ name: String) -> Double {
        switch attributes[name] {
        case .float(let d)?: return d
        case .int(let i)?: return Double(i)
        default: fatalError("attribute '\(name)' of \(op) was validated as float")
        }
    }

    public func ints(_ name: String) -> [Int] {
        guard case .ints(let v)? = attributes[name] else { fatalError("attribute '\(name)' of \(op) was validated as ints") }
        return v
    }

    /// Resolves a possibly negative axis against a rank, or throws naming the attribute.
    public func axis(_ value: Int, rank: Int, attribute: String = "axis") throws -> Int {
        let a = value < 0 ? value + rank : value
        guard a >= 0 && a < rank else {
            throw error("\(attribute)=\(value) is out of range for rank \(rank)")
        }
        return a
    }

    /// Checks that `axis` is not the symbolic batch axis of `type`.
    public func requireStatic(_ axis: Int, of type: TensorType, _ what: String) throws {
        if type.batched && axis == 0 { throw error("\(what) cannot act on the batch axis 0") }
    }

    /// Checks that all operands share the element type.
    public func sameDType() throws -> DType {
        let d = operands.first?.dtype ?? dtype
        if let other = operands.first(where: { $0.dtype != d }) {
            throw error("operands mix element types \(d.rawValue) and \(other.dtype.rawValue)")
        }
        return d
    }
}

/// One primitive op: its name, arity, attributes, shape rule and documentation, kept together
/// so that adding an op to the IR touches one place in FlowIR.
public struct OpDefinition: Sendable {
    public var name: String
    /// Allowed operand counts (`Int.max` upper bound for variadic ops).
    public var operandCount: ClosedRange<Int>
    public var attributes: [AttributeSpec]
    /// Attributes that may also be given positionally after the operands, in this order.
    public var positionalAttributes: [String]
    /// Result types from operand types and attributes; throws a located, shape-naming error.
    public var infer: @Sendable (InferenceContext) throws -> [TensorType]
    /// One-line semantics, the shape rule and the PyTorch equivalent, for IR/OPS.md.
    public var summary: String
    public var shapes: String
    public var pytorch: String
    /// Catalogue section for the documentation.
    public var family: String

    public init(_ name: String, family: String, operands: ClosedRange<Int>, attributes: [AttributeSpec] = [],
                positional: [String] = [], summary: String, shapes: String, pytorch: String,
                infer: @escaping @Sendable (InferenceContext) throws -> [TensorType]) {
        self.name = name
        self.family = family
        self.operandCount = operands
        self.attributes = attributes
        self.positionalAttributes = positional
        self.infer = infer
        self.summary = summary
        self.shapes = shapes
        self.pytorch = pytorch
    }
}
