/// Turns source text into tokens. Newlines are tokens (they end statements) except inside
/// parentheses and brackets, where an expression may span several lines. `#` starts a comment.
public struct Lexer {
    private let file: String
    private let chars: [Character]
    private var index = 0
    private var line = 1
    private var column = 1
    private var nesting = 0

    public init(text: String, file: String) {
        self.file = file
        self.chars = Array(text)
    }

    public static func tokenize(_ text: String, file: String) throws -> [Token] {
        var lexer = Lexer(text: text, file: file)
        var tokens: [Token] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private var here: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    private mutating func advance() {
        if chars[index] == "\n" { line += 1; column = 1 } else { column += 1 }
        index += 1
    }

    private func peek(_ offset: Int = 0) -> Character? {
        index + offset < chars.count ? chars[index + offset] : nil
    }

    mutating func next() throws -> Token {
        while let c = peek() {
            if c == "#" {
                while let d = peek(), d != "\n" { _ = d; advance() }
            } else if c == "\n" {
                let at = here
                advance()
                if nesting == 0 { return Token(kind: .newline, location: at) }
            } else if c == " " || c == "\t" || c == "\r" {
                advance()
            } else {
                break
            }
        }
        let start = here
        guard let c = peek() else { return Token(kind: .end, location: start) }
        if c.isLetter || c == "_" {
            var name = ""
            while let d = peek(), d.isLetter || d.isNumber || d == "_" { name.append(d); advance() }
            return Token(kind: .identifier(name), location: start)
        }
        if c.isNumber || (c == "." && (peek(1)?.isNumber ?? false)) {
            return try number(start)
        }
        if c == "\"" { return try string(start) }
        let three = String([c, peek(1) ?? " ", peek(2) ?? " "])
        if three == "..<" {
            advance(); advance(); advance()
            return Token(kind: .symbol("..<"), location: start)
        }
        let two = String([c, peek(1) ?? " "])
        if ["<=", ">=", "==", "!=", "->", "&&", "||"].contains(two) {
            advance(); advance()
            return Token(kind: .symbol(two), location: start)
        }
        if "()[]{},:=+-*/%<>.!;".contains(c) {
            if c == "(" || c == "[" { nesting += 1 }
            if (c == ")" || c == "]") && nesting > 0 { nesting -= 1 }
            advance()
            return Token(kind: .symbol(String(c)), location: start)
        }
        throw FlowError("unexpected character '\(c)'; expected a name, number, string or operator", at: start)
    }

    private mutating func number(_ start: SourceLocation) throws -> Token {
        var text = ""
        var isFloat = false
        while let d = peek() {
            if d.isNumber || d == "_" {
                if d != "_" { text.append(d) }
                advance()
            } else if d == "." && peek(1) != "." && !isFloat && !text.contains("e") {
                isFloat = true; text.append(d); advance()
            } else if (d == "e" || d == "E") && !text.contains("e") {
                isFloat = true; text.append("e"); advance()
                if let s = peek(), s == "+" || s == "-" { text.append(s); advance() }
            } else {
                break
            }
        }
        if let d = peek(), d.isLetter {
            throw FlowError("malformed number '\(text)\(d)'", at: start)
        }
        if !isFloat, let i = Int(text) { return Token(kind: .integer(i), location: start) }
        guard let v = Double(text), v.isFinite else {
            throw FlowError("malformed number '\(text)'", at: start)
        }
        return Token(kind: .number(v), location: start)
    }

    private mutating func string(_ start: SourceLocation) throws -> Token {
        advance()
        var text = ""
        while true {
            guard let d = peek() else { throw FlowError("unterminated string literal", at: start) }
            if d == "\n" { throw FlowError("unterminated string literal (strings end on the same line)", at: start) }
            advance()
            if d == "\"" { break }
            if d == "\\" {
                guard let e = peek() else { throw FlowError("unterminated string literal", at: start) }
                advance()
                switch e {
                case "n": text.append("\n")
                case "\"": text.append("\"")
                case "\\": text.append("\\")
                default: throw FlowError("unknown escape '\\\(e)' in string; expected \\n, \\\" or \\\\", at: start)
                }
            } else {
                text.append(d)
            }
        }
        return Token(kind: .string(text), location: start)
    }
}
