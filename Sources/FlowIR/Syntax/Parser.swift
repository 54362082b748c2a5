/// Recursive-descent parser for the Flowc IR language (grammar in IR/README.md).
public struct Parser {
    private var tokens: [Token]
    private var position = 0
    private let path: String
    /// Nesting depth of expressions and blocks; deeper input is an error, not a stack overflow.
    private var depth = 0
    static let maximumDepth = 200

    private mutating func enter(_ what: String) throws {
        depth += 1
        if depth > Parser.maximumDepth {
            throw FlowError("\(what) nests deeper than \(Parser.maximumDepth) levels", at: current.location)
        }
    }

    public init(text: String, file: String) throws {
        self.tokens = try Lexer.tokenize(text, file: file)
        self.path = file
    }

    public static func parse(_ text: String, file: String) throws -> SourceFile {
        var parser = try Parser(text: text, file: file)
        return try parser.parseFile()
    }

    // MARK: token helpers

    private var current: Token { tokens[position] }

    private mutating func advance() -> Token {
        let t = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return t
    }

    private func isSymbol(_ s: String) -> Bool { current.kind == .symbol(s) }
    private func isKeyword(_ s: String) -> Bool { current.kind == .identifier(s) }

    private mutating func skipNewlines() {
        while current.kind == .newline || current.kind == .symbol(";") { _ = advance() }
    }

    private mutating func expectSymbol(_ s: String, _ context: String) throws {
        guard isSymbol(s) else {
            throw FlowError("expected '\(s)' \(context), found \(current.kind.display)", at: current.location)
        }
        _ = advance()
    }

    private mutating func expectIdentifier(_ context: String) throws -> String {
        guard case .identifier(let name) = current.kind else {
            throw FlowError("expected a name \(context), found \(current.kind.display)", at: current.location)
        }
        _ = advance()
        return name
    }

    private mutating func expectString(_ context: String) throws -> String {
        guard case .string(let s) = current.kind else {
            throw FlowError("expected a string \(context), found \(current.kind.display)", at: current.location)
        }
        _ = advance()
        return s
    }

    /// Comma-separated items up to and including `closing` (the opening symbol already
    /// consumed); `between` says where a missing comma was expected.
    private mutating func delimited(closing: String, between: String, _ item: (inout Parser) throws -> Void) throws {
        while !isSymbol(closing) {
            try item(&self)
            if !isSymbol(closing) { try expectSymbol(",", between) }
        }
        _ = advance()
    }

    private mutating func endOfStatement() throws {
        switch current.kind {
        case .newline, .end, .symbol("}"), .symbol(";"): return
        default:
            throw FlowError("expected end of line, found \(current.kind.display)", at: current.location)
        }
    }

    // MARK: items

    mutating func parseFile() throws -> SourceFile {
        var file = SourceFile(path: path)
        skipNewlines()
        while current.kind != .end {
            let at = current.location
            guard case .identifier(let word) = current.kind else {
                throw FlowError("expected 'import', 'param', 'fn' or 'model' at top level, found \(current.kind.display)", at: at)
            }
            _ = advance()
            switch word {
            case "import":
                file.imports.append((try expectString("after 'import'"), at))
            case "param":
                let name = try expectIdentifier("after 'param'")
                try expectSymbol("=", "after the parameter name")
                file.params.append((name, try parseExpr(), at))
            case "fn":
                file.functions.append(try parseFunction(at))
            case "model":
                file.models.append(try parseModel(at))
            default:
                throw FlowError("unknown top-level item '\(word)'; expected 'import', 'param', 'fn' or 'model'", at: at)
            }
            try endOfStatement()
            skipNewlines()
        }
        return file
    }

    private mutating func parseFunction(_ at: SourceLocation) throws -> FunctionDecl {
        let name = try expectIdentifier("after 'fn'")
        try expectSymbol("(", "to open the parameter list of '\(name)'")
        var parameters: [String] = []
        try delimited(closing: ")", between: "between parameters") { parser in
            let parameterAt = parser.current.location
            let p = try parser.expectIdentifier("as a parameter of '\(name)'")
            if parameters.contains(p) { throw FlowError("parameter '\(p)' is declared twice in '\(name)'", at: parameterAt) }
            parameters.append(p)
        }
        let body = try parseBlock("function '\(name)'")
        return FunctionDecl(name: name, parameters: parameters, body: body, location: at)
    }

    private mutating func parseModel(_ at: SourceLocation) throws -> ModelDecl {
        let name = try expectIdentifier("after 'model'")
        var model = ModelDecl(name: name, inputs: [], base: nil, weights: nil, flow: nil, location: at)
        try expectSymbol("{", "to open the model body")
        skipNewlines()
        while !isSymbol("}") {
            let itemAt = current.location
            let word = try expectIdentifier("in the model body ('input', 'base', 'weights' or 'flow')")
            switch word {
            case "input":
                let inputName = try expectIdentifier("after 'input'")
                try expectSymbol(":", "after the input name")
                model.inputs.append((inputName, try parseType()))
            case "base":
                let baseName = try expectIdentifier("after 'base' (for example 'normal')")
                let args = try parseKeywordArguments("a base-density")
                if model.base != nil { throw FlowError("the model declares 'base' twice", at: itemAt) }
                model.base = (baseName, args, itemAt)
            case "inverse":
                let mode = try expectIdentifier("after 'inverse' (sequential or jacobi)")
                let args = try parseKeywordArguments("an inverse-mode")
                if model.inverse != nil { throw FlowError("the model declares 'inverse' twice", at: itemAt) }
                model.inverse = (mode, args, itemAt)
            case "body":
                model.bodies.append(try parseBody(itemAt))
            case "kind":
                let kind = try expectIdentifier("after 'kind' (flow, velocity or mean_velocity)")
                let args = try parseKeywordArguments("a model-kind")
                if model.kind != nil { throw FlowError("the model declares 'kind' twice", at: itemAt) }
                model.kind = (kind, args, itemAt)
            case "weights":
                if model.weights != nil { throw FlowError("the model declares 'weights' twice", at: itemAt) }
                model.weights = (try expectString("after 'weights' (the .safetensors path)"), itemAt)
            case "flow":
                if model.flow != nil { throw FlowError("the model declares 'flow' twice", at: itemAt) }
                model.flow = try parseBlock("flow")
            default:
                throw FlowError("unknown model item '\(word)'; expected 'input', 'kind', 'base', 'weights', 'inverse', 'flow' or 'body'", at: itemAt)
            }
            try endOfStatement()
            skipNewlines()
        }
        _ = advance()
        return model
    }

    /// `(key=value, ...)` or nothing.
    private mutating func parseKeywordArguments(_ what: String) throws -> [(String, Expr)] {
        var args: [(String, Expr)] = []
        guard isSymbol("(") else { return args }
        _ = advance()
        try delimited(closing: ")", between: "between arguments") { parser in
            let key = try parser.expectIdentifier("as \(what) argument name")
            try parser.expectSymbol("=", "after '\(key)'")
            args.append((key, try parser.parseExpr()))
        }
        return args
    }

    /// `body k(u: f32[B, 8], c: f32[B, 8]) { statements; nested bodies }`
    private mutating func parseBody(_ at: SourceLocation) throws -> BodyDecl {
        guard case .integer(let index) = current.kind else {
            throw FlowError("expected the body's index after 'body', found \(current.kind.display)", at: current.location)
        }
        _ = advance()
        try expectSymbol("(", "to open the body's inputs")
        var inputs: [(String, TypeExpr)] = []
        try delimited(closing: ")", between: "between body inputs") { parser in
            let name = try parser.expectIdentifier("as a body input")
            try parser.expectSymbol(":", "after the body input '\(name)'")
            inputs.append((name, try parser.parseType()))
        }
        try expectSymbol("{", "to open body \(index)")
        var statements: [Stmt] = []
        var nested: [BodyDecl] = []
        skipNewlines()
        while !isSymbol("}") {
            if current.kind == .end { throw FlowError("unterminated body \(index): expected '}'", at: current.location) }
            if isKeyword("body") {
                let nestedAt = advance().location
                nested.append(try parseBody(nestedAt))
            } else {
                statements.append(try parseStatement())
            }
            try endOfStatement()
            skipNewlines()
        }
        _ = advance()
        return BodyDecl(index: index, inputs: inputs, statements: statements, bodies: nested, location: at)
    }

    public mutating func parseType() throws -> TypeExpr {
        let at = current.location
        let name = try expectIdentifier("as an element type (f32 or f64)")
        guard let dtype = DType(rawValue: name) else {
            throw FlowError("unknown element type '\(name)'; expected f32 or f64", at: at)
        }
        try expectSymbol("[", "after the element type")
        var dims: [Expr?] = []
        try delimited(closing: "]", between: "between dimensions") { parser in
            if parser.isKeyword("B") { _ = parser.advance(); dims.append(nil) } else { dims.append(try parser.parseExpr()) }
        }
        return TypeExpr(dtype: dtype, dims: dims, location: at)
    }

    // MARK: statements

    private mutating func parseBlock(_ what: String) throws -> [Stmt] {
        try enter("the block")
        defer { depth -= 1 }
        try expectSymbol("{", "to open the body of \(what)")
        var body: [Stmt] = []
        skipNewlines()
        while !isSymbol("}") {
            if current.kind == .end { throw FlowError("unterminated body of \(what): expected '}'", at: current.location) }
            body.append(try parseStatement())
            try endOfStatement()
            skipNewlines()
        }
        _ = advance()
        return body
    }

    private mutating func parseStatement() throws -> Stmt {
        let at = current.location
        if isKeyword("for") {
            _ = advance()
            let variable = try expectIdentifier("as the loop variable")
            guard isKeyword("in") else { throw FlowError("expected 'in' after the loop variable, found \(current.kind.display)", at: current.location) }
            _ = advance()
            let lower = try parseExpr()
            try expectSymbol("..<", "in the loop range (for i in 0..<N)")
            let upper = try parseExpr()
            return .forLoop(variable, lower, upper, try parseBlock("for loop"), at)
        }
        if isKeyword("if") {
            _ = advance()
            let condition = try parseExpr()
            let then = try parseBlock("if")
            var otherwise: [Stmt] = []
            if isKeyword("else") {
                _ = advance()
                if isKeyword("if") { otherwise = [try parseStatement()] } else { otherwise = try parseBlock("else") }
            }
            return .ifElse(condition, then, otherwise, at)
        }
        if isKeyword("return") {
            _ = advance()
            var values = [try parseExpr()]
            while isSymbol(",") { _ = advance(); values.append(try parseExpr()) }
            return .returns(values, at)
        }
        if case .identifier = current.kind, tokens[position + 1].kind == .symbol("(") {
            return .evaluate(try parseExpr(), at)
        }
        var targets = [try expectIdentifier("at the start of a statement (an assignment, 'for', 'if' or 'return')")]
        while isSymbol(",") { _ = advance(); targets.append(try expectIdentifier("as an assignment target")) }
        var annotation: TypeExpr?
        if isSymbol(":") { _ = advance(); annotation = try parseType() }
        try expectSymbol("=", "in an assignment")
        return .assign(targets, annotation, try parseExpr(), at)
    }

    // MARK: expressions (precedence climbing)

    private static let precedence: [String: Int] = [
        "||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
        "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
    ]

    public mutating func parseExpr(_ minimum: Int = 1) throws -> Expr {
        try enter("the expression")
        defer { depth -= 1 }
        var left = try parseUnary()
        while case .symbol(let op) = current.kind, let p = Parser.precedence[op], p >= minimum {
            let at = advance().location
            let right = try parseExpr(p + 1)
            left = .binary(op, left, right, at)
        }
        return left
    }

    private mutating func parseUnary() throws -> Expr {
        try enter("the expression")
        defer { depth -= 1 }
        if isSymbol("-") || isSymbol("!") {
            let t = advance()
            guard case .symbol(let op) = t.kind else { fatalError("unreachable: checked symbol") }
            return .unary(op, try parseUnary(), t.location)
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = current
        switch t.kind {
        case .integer(let i): _ = advance(); return .integer(i, t.location)
        case .number(let d): _ = advance(); return .number(d, t.location)
        case .string(let s): _ = advance(); return .string(s, t.location)
        case .symbol("("):
            _ = advance()
            let e = try parseExpr()
            try expectSymbol(")", "to close the parenthesis opened at \(t.location)")
            return e
        case .symbol("["):
            _ = advance()
            var items: [Expr] = []
            try delimited(closing: "]", between: "between list items") { parser in
                if parser.isKeyword("B") { items.append(.name("B", parser.current.location)); _ = parser.advance() } else { items.append(try parser.parseExpr()) }
            }
            return .list(items, t.location)
        case .identifier(let name):
            _ = advance()
            guard isSymbol("(") else { return .name(name, t.location) }
            _ = advance()
            var args: [Expr] = []
            var keywords: [(String, Expr)] = []
            while !isSymbol(")") {
                if case .identifier(let key) = current.kind, tokens[position + 1].kind == .symbol("=") {
                    let keyAt = advance().location
                    _ = advance()
                    if keywords.contains(where: { $0.0 == key }) {
                        throw FlowError("argument '\(key)' is given twice in the call of '\(name)'", at: keyAt)
                    }
                    keywords.append((key, try parseExpr()))
                } else {
                    if !keywords.isEmpty {
                        throw FlowError("positional argument after keyword arguments in the call of '\(name)'", at: current.location)
                    }
                    args.append(try parseExpr())
                }
                if !isSymbol(")") { try expectSymbol(",", "or ')' after an argument of '\(name)' (the call opened at \(t.location))") }
            }
            _ = advance()
            return .call(name, args, keywords, t.location)
        default:
            throw FlowError("expected an expression, found \(t.kind.display)", at: t.location)
        }
    }
}
