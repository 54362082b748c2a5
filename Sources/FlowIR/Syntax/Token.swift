/// Lexical tokens of the Flowc IR language.
public enum TokenKind: Sendable, Equatable {
    case identifier(String)
    case integer(Int)
    case number(Double)
    case string(String)
    case symbol(String)     // ( ) [ ] { } , : = + - * / % < > <= >= == != ..< .
    case newline
    case end

    var display: String {
        switch self {
        case .identifier(let s): return "identifier '\(s)'"
        case .integer(let i): return "integer \(i)"
        case .number(let d): return "number \(d)"
        case .string(let s): return "string \"\(s)\""
        case .symbol(let s): return "'\(s)'"
        case .newline: return "end of line"
        case .end: return "end of file"
        }
    }
}

public struct Token: Sendable {
    public var kind: TokenKind
    public var location: SourceLocation
}
