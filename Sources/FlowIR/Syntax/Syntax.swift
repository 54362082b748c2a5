/// The surface syntax tree: what the parser produces before elaboration unrolls loops,
/// inlines functions and resolves weights into a flat `Graph`.
public indirect enum Expr: Sendable {
    case integer(Int, SourceLocation)
    case number(Double, SourceLocation)
    case string(String, SourceLocation)
    case name(String, SourceLocation)
    case list([Expr], SourceLocation)
    /// `name(args, key=value)`: an op, a function or a compile-time builtin.
    case call(String, [Expr], [(String, Expr)], SourceLocation)
    case binary(String, Expr, Expr, SourceLocation)
    case unary(String, Expr, SourceLocation)

    public var location: SourceLocation {
        switch self {
        case .integer(_, let l), .number(_, let l), .string(_, let l), .name(_, let l), .list(_, let l),
             .call(_, _, _, let l), .binary(_, _, _, let l), .unary(_, _, let l):
            return l
        }
    }
}

/// A tensor type as written: `f32[B, D, 2 * K]` (dimension expressions are elaborated later).
public struct TypeExpr: Sendable {
    public var dtype: DType
    /// `nil` entries are the batch dimension `B`.
    public var dims: [Expr?]
    public var location: SourceLocation
}

public indirect enum Stmt: Sendable {
    /// `a, b : type = expr` (the type annotation is optional and checked).
    case assign([String], TypeExpr?, Expr, SourceLocation)
    case forLoop(String, Expr, Expr, [Stmt], SourceLocation)
    case ifElse(Expr, [Stmt], [Stmt], SourceLocation)
    case returns([Expr], SourceLocation)
    /// A call evaluated for its effect, such as `error("...")`.
    case evaluate(Expr, SourceLocation)
}

public struct FunctionDecl: Sendable {
    public var name: String
    public var parameters: [String]
    public var body: [Stmt]
    public var location: SourceLocation
}

public struct ModelDecl: Sendable {
    public var name: String
    public var inputs: [(String, TypeExpr)]
    public var base: (String, [(String, Expr)], SourceLocation)?
    public var weights: (String, SourceLocation)?
    public var flow: [Stmt]?
    /// `body k(u: type, ...) { ... }`: graphs run by region ops, indexed by k.
    public var bodies: [BodyDecl] = []
    /// `inverse sequential` or `inverse jacobi(tolerance=...)`.
    public var inverse: (String, [(String, Expr)], SourceLocation)?
    /// `kind velocity(noise_at=0)` or `kind mean_velocity(noise_at=1)`.
    public var kind: (String, [(String, Expr)], SourceLocation)?
    public var location: SourceLocation
}

public struct BodyDecl: Sendable {
    public var index: Int
    public var inputs: [(String, TypeExpr)]
    public var statements: [Stmt]
    public var bodies: [BodyDecl]
    public var location: SourceLocation
}

/// One parsed source file.
public struct SourceFile: Sendable {
    public var path: String
    public var imports: [(String, SourceLocation)] = []
    public var params: [(String, Expr, SourceLocation)] = []
    public var functions: [FunctionDecl] = []
    public var models: [ModelDecl] = []
}
