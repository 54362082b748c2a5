/// What a name denotes while the elaborator runs the surface program: a tensor in the graph
/// under construction, or a compile-time value (numbers, strings, lists, the batch symbol).
enum CompileTimeValue {
    case tensor(ValueID)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case string(String)
    case list([CompileTimeValue])
    /// `B` inside a shape list.
    case batch
    /// Several results (a function's `return a, b` or a multi-result op).
    case tuple([CompileTimeValue])

    var kindName: String {
        switch self {
        case .tensor: return "a tensor"
        case .int: return "an integer"
        case .float: return "a number"
        case .bool: return "a boolean"
        case .string: return "a string"
        case .list: return "a list"
        case .batch: return "the batch dimension B"
        case .tuple(let v): return "\(v.count) values"
        }
    }

    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .float(let d): return d
        default: return nil
        }
    }

    /// Text for string interpolation.
    var text: String? {
        switch self {
        case .int(let i): return String(i)
        case .float(let d): return Attribute.format(d)
        case .string(let s): return s
        case .bool(let b): return String(b)
        default: return nil
        }
    }

    /// The attribute this compile-time value becomes when passed to an op.
    var attribute: Attribute? {
        switch self {
        case .int(let i): return .int(i)
        case .float(let d): return .float(d)
        case .bool(let b): return .int(b ? 1 : 0)
        case .string(let s): return .string(s)
        case .list(let items):
            if items.first.map({ if case .batch = $0 { return true } else { return false } }) == true {
                var dims: [Int] = []
                for item in items.dropFirst() { guard case .int(let i) = item else { return nil }; dims.append(i) }
                return .shape(batched: true, dims)
            }
            var ints: [Int] = []
            var floats: [Double] = []
            var allInts = true
            for item in items {
                switch item {
                case .int(let i): ints.append(i); floats.append(Double(i))
                case .float(let d): allInts = false; floats.append(d)
                default: return nil
                }
            }
            return allInts ? .ints(ints) : .floats(floats)
        default: return nil
        }
    }
}
