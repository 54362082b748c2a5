/// The registry of every primitive op, by name.
public enum OpCatalog {
    public static let all: [OpDefinition] =
        ElementwiseOps.definitions + ReductionOps.definitions + LinearAlgebraOps.definitions
        + AttentionOps.definitions + ShapeOps.definitions + SourceOps.definitions + SplineOps.definitions

    public static let byName: [String: OpDefinition] = {
        var table: [String: OpDefinition] = [:]
        for d in all {
            precondition(table[d.name] == nil, "op \(d.name) defined twice")
            table[d.name] = d
        }
        return table
    }()

    /// Elementwise ops of one operand (unary) and of two broadcasting operands (binary): each
    /// result element reads the operands' elements at its own position only.
    public static let unaryElementwise = elementwise(operands: 1), binaryElementwise = elementwise(operands: 2)

    private static func elementwise(operands: Int) -> Set<String> {
        Set(all.filter { $0.family == ElementwiseOps.family && $0.operandCount == operands...operands }.map(\.name))
    }

    /// Validates attributes against the op's schema, fills defaults and infers result types.
    public static func infer(op: String, operands: [TensorType], attributes given: [String: Attribute],
                             dtype: DType, at location: SourceLocation) throws -> (types: [TensorType], attributes: [String: Attribute]) {
        guard let def = byName[op] else {
            throw FlowError("unknown op '\(op)'\(suggestion(for: op))", at: location)
        }
        guard def.operandCount.contains(operands.count) else {
            let expected = def.operandCount.upperBound == Int.max ? "at least \(def.operandCount.lowerBound)"
                : def.operandCount.count == 1 ? "\(def.operandCount.lowerBound)" : "\(def.operandCount.lowerBound) to \(def.operandCount.upperBound)"
            throw FlowError("\(op) takes \(expected) tensor operand(s), got \(operands.count)", at: location)
        }
        var attributes: [String: Attribute] = [:]
        for (key, value) in given {
            guard let spec = def.attributes.first(where: { $0.name == key }) else {
                let names = def.attributes.map(\.name)
                throw FlowError("\(op) has no attribute '\(key)'; expected \(names.isEmpty ? "none" : names.joined(separator: ", "))", at: location)
            }
            if value != spec.defaultValue { try checkRange(value, kind: spec.kind, op: op, name: key, at: location) }
            attributes[key] = try coerce(value, to: spec.kind, op: op, name: key, at: location)
        }
        for spec in def.attributes where attributes[spec.name] == nil {
            if let d = spec.defaultValue {
                attributes[spec.name] = d
            } else {
                throw FlowError("\(op) needs attribute '\(spec.name)' (\(spec.kind.rawValue))", at: location)
            }
        }
        let context = InferenceContext(op: op, operands: operands, attributes: attributes, location: location, dtype: dtype)
        let types = try def.infer(context)
        for t in types where TensorType.checkedCount(t.dims) == nil {
            throw context.error("the result would have \(t.dims) elements per sample, more than the limit of 2^40")
        }
        return (types, attributes)
    }

    /// Sizes and offsets stay far from overflow: every integer within ±2^40, every shape's
    /// product too (defaults such as slice's end = Int.max are exempt).
    static func checkRange(_ value: Attribute, kind: AttributeKind, op: String, name: String, at location: SourceLocation) throws {
        let limit = TensorType.elementLimit
        let integers: [Int]
        switch value {
        case .int(let i): integers = [i]
        case .ints(let v): integers = v
        default: integers = []
        }
        if integers.contains(where: { $0.magnitude > UInt(limit) }) {
            throw FlowError("attribute '\(name)' of \(op) is out of range: integers must lie within ±2^40", at: location)
        }
        switch value {
        case .shape(_, let dims) where TensorType.checkedCount(dims) == nil || dims.contains(where: { $0 < 1 }):
            throw FlowError("attribute '\(name)' of \(op): shape \(value) must have positive dimensions and at most 2^40 elements", at: location)
        case .ints(let v) where kind == .shape && (TensorType.checkedCount(v) == nil || v.contains(where: { $0 < 1 })):
            throw FlowError("attribute '\(name)' of \(op): shape \(value) must have positive dimensions and at most 2^40 elements", at: location)
        default: break
        }
    }

    static func coerce(_ value: Attribute, to kind: AttributeKind, op: String, name: String, at location: SourceLocation) throws -> Attribute {
        switch (kind, value) {
        case (.int, .int), (.float, .float), (.ints, .ints), (.floats, .floats), (.string, .string), (.shape, .shape):
            return value
        case (.float, .int(let i)): return .float(Double(i))
        case (.floats, .ints(let v)): return .floats(v.map(Double.init))
        case (.floats, .float(let d)): return .floats([d])
        case (.floats, .int(let i)): return .floats([Double(i)])
        case (.ints, .int(let i)): return .ints([i])
        case (.shape, .ints(let v)): return .shape(batched: false, v)
        default:
            throw FlowError("attribute '\(name)' of \(op) must be \(kind.rawValue), got \(value)", at: location)
        }
    }

    static func suggestion(for name: String) -> String {
        let close = byName.keys.filter { editDistance($0, name) <= 2 }.sorted()
        return close.isEmpty ? "; see IR/OPS.md for the op catalogue" : "; did you mean \(close.map { "'\($0)'" }.joined(separator: " or "))?"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let saved = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = saved
            }
        }
        return row[b.count]
    }
}
