/// A compile-time attribute of an op (`axis=1`, `slope=0.01`, `indices=[0, 2]`, `name="w.x"`).
public enum Attribute: Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case ints([Int])
    case floats([Double])
    case string(String)
    /// A shape that may start with the batch dimension: `[B, 4, 4]`.
    case shape(batched: Bool, [Int])

    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .float(let d): return Attribute.format(d)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .floats(let v): return "[" + v.map(Attribute.format).joined(separator: ", ") + "]"
        case .shape(let batched, let dims):
            return "[" + ((batched ? ["B"] : []) + dims.map(String.init)).joined(separator: ", ") + "]"
        case .string(let s):
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"\(escaped)\""
        }
    }

    /// Shortest text that parses back to exactly `d`; always with a '.' or exponent so it
    /// re-parses as a float, never as an integer.
    public static func format(_ d: Double) -> String {
        var s = "\(d)"
        if !s.contains(".") && !s.contains("e") && !s.contains("n") && !s.contains("i") { s += ".0" }
        return s
    }
}
