import Foundation

/// Turns a parsed spec into a flat, typed `Model`: runs compile-time parameters, loops and
/// conditionals, inlines functions, resolves weights against the weight file and infers every
/// value's type. Every user mistake becomes a `FlowError` at a source location.
public struct Elaborator {
    public struct Options: Sendable {
        /// Overrides of `param` declarations (`--param D=8`).
        public var params: [String: Double] = [:]
        /// Weight file, overriding the model's `weights "..."` line.
        public var weightsPath: String?
        /// Extra folders searched by `import` (after the importing file's folder and every
        /// ancestor folder's `IR/`).
        public var searchPaths: [String] = []

        public init(params: [String: Double] = [:], weightsPath: String? = nil, searchPaths: [String] = []) {
            self.params = params
            self.weightsPath = weightsPath
            self.searchPaths = searchPaths
        }
    }

    /// Limits that turn runaway compile-time programs into errors instead of hangs.
    static let maximumCallDepth = 64
    static let maximumNodes = 2_000_000
    static let maximumLoopIterations = 10_000_000

    private var functions: [String: FunctionDecl] = [:]
    private var globals: [String: CompileTimeValue] = [:]
    private var graph = Graph()
    private var weights: WeightStore?
    private var callDepth = 0
    private var loopIterations = 0

    /// Reads, parses and elaborates the spec at `path`.
    public static func elaborate(path: String, options: Options = Options()) throws -> Model {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw FlowError("cannot read spec: \(error.localizedDescription)", in: path)
        }
        return try elaborate(text: text, path: path, options: options)
    }

    public static func elaborate(text: String, path: String, options: Options = Options()) throws -> Model {
        let main = try Parser.parse(text, file: path)
        var files: [SourceFile] = []
        var seen: Set<String> = [URL(fileURLWithPath: path).standardizedFileURL.path]
        try loadImports(of: main, options: options, into: &files, seen: &seen)
        files.append(main)
        var e = Elaborator()
        return try e.run(files: files, main: main, path: path, options: options)
    }

    // MARK: imports

    private static func loadImports(of file: SourceFile, options: Options, into files: inout [SourceFile], seen: inout Set<String>) throws {
        for (name, at) in file.imports {
            let resolved = try resolveImport(name, from: file.path, options: options, at: at)
            let key = URL(fileURLWithPath: resolved).standardizedFileURL.path
            if seen.contains(key) { continue }
            seen.insert(key)
            let text: String
            do { text = try String(contentsOfFile: resolved, encoding: .utf8) } catch {
                throw FlowError("cannot read import '\(name)': \(error.localizedDescription)", at: at)
            }
            let imported = try Parser.parse(text, file: resolved)
            try loadImports(of: imported, options: options, into: &files, seen: &seen)
            files.append(imported)
        }
    }

    /// `import "std/mlp.flow"` looks in the importing file's folder, then in `IR/` of that folder
    /// and each ancestor (so a spec anywhere in a checkout finds the standard library), then in
    /// `$FLOWC_PATH` and the option's search paths.
    static func resolveImport(_ name: String, from importer: String, options: Options, at: SourceLocation) throws -> String {
        let fm = FileManager.default
        let folder = URL(fileURLWithPath: importer).deletingLastPathComponent().standardizedFileURL
        var candidates = [folder.appendingPathComponent(name).path]
        var dir = folder
        for _ in 0..<32 {
            candidates.append(dir.appendingPathComponent("IR").appendingPathComponent(name).path)
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        if let env = ProcessInfo.processInfo.environment["FLOWC_PATH"] {
            candidates += env.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name).path }
        }
        candidates += options.searchPaths.map { URL(fileURLWithPath: $0).appendingPathComponent(name).path }
        if let found = candidates.first(where: { fm.fileExists(atPath: $0) }) { return found }
        throw FlowError("cannot find import '\(name)' (looked next to the spec, in IR/ of its ancestor folders and in $FLOWC_PATH)", at: at)
    }

    // MARK: top level

    private mutating func run(files: [SourceFile], main: SourceFile, path: String, options: Options) throws -> Model {
        for file in files {
            for f in file.functions {
                if let previous = functions[f.name] {
                    throw FlowError("function '\(f.name)' is already defined at \(previous.location)", at: f.location)
                }
                if OpCatalog.byName[f.name] != nil || CompileTimeBuiltins.names[f.name] != nil {
                    throw FlowError("function '\(f.name)' has the name of a built-in op; pick another name", at: f.location)
                }
                functions[f.name] = f
            }
        }
        guard let modelDecl = main.models.first else {
            throw FlowError("the spec declares no model; expected 'model NAME { input ...; flow { ... } }'", in: path)
        }
        if main.models.count > 1 {
            throw FlowError("a spec declares one model; found a second one", at: main.models[1].location)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        if let w = options.weightsPath {
            weights = try WeightStore(path: w)
        } else if let (declared, _) = modelDecl.weights {
            let resolved = declared.hasPrefix("/") ? declared : folder.appendingPathComponent(declared).path
            weights = try WeightStore(path: resolved)
        }
        var declaredParams = Set<String>()
        for file in files {
            for (name, expr, at) in file.params {
                if declaredParams.contains(name) { throw FlowError("parameter '\(name)' is declared twice", at: at) }
                declaredParams.insert(name)
                if let override = options.params[name] {
                    globals[name] = override == override.rounded() && abs(override) < 1e15 ? .int(Int(override)) : .float(override)
                } else {
                    var env = globals
                    globals[name] = try evaluate(expr, &env)
                }
            }
        }
        if let unknown = options.params.keys.sorted().first(where: { !declaredParams.contains($0) }) {
            let known = declaredParams.sorted().joined(separator: ", ")
            throw FlowError("the spec has no parameter '\(unknown)' (it declares: \(known.isEmpty ? "none" : known))", in: "--param \(unknown)")
        }

        guard !modelDecl.inputs.isEmpty else { throw FlowError("model '\(modelDecl.name)' declares no input", at: modelDecl.location) }
        var env = globals
        for (index, (name, typeExpr)) in modelDecl.inputs.enumerated() {
            let type = try elaborateType(typeExpr, &env)
            guard type.batched else { throw FlowError("input '\(name)' must start with the batch dimension B", at: typeExpr.location) }
            env[name] = .tensor(graph.addInput(name: name, type: type))
        }
        var base = BaseDensity.standardNormal
        if let (name, args, at) = modelDecl.base {
            base = try elaborateBase(name, args, at, latentInput: modelDecl.inputs[0].0, &env)
        }
        guard let body = modelDecl.flow else {
            throw FlowError("model '\(modelDecl.name)' has no 'flow { ... }' body", at: modelDecl.location)
        }
        guard let results = try execute(body, &env) else {
            throw FlowError("the flow body ends without 'return'; expected 'return z'", at: modelDecl.location)
        }
        for r in results {
            guard case .tensor(let v) = r else {
                throw FlowError("the flow must return tensors, got \(r.kindName)", at: modelDecl.location)
            }
            graph.outputs.append(v)
        }
        graph.bodies = try elaborateBodies(modelDecl.bodies)
        var causalInverse = CausalInverseMode.sequential
        if let (mode, args, at) = modelDecl.inverse {
            switch (mode, args.map(\.0)) {
            case ("sequential", []): causalInverse = .sequential
            case ("jacobi", []): causalInverse = .jacobi(tolerance: 1e-6)
            case ("jacobi", ["tolerance"]):
                var scope = globals
                guard let t = try evaluate(args[0].1, &scope).number, t > 0, t.isFinite else {
                    throw FlowError("jacobi's tolerance must be a positive number", at: at)
                }
                causalInverse = .jacobi(tolerance: t)
            default:
                throw FlowError("unknown inverse mode '\(mode)'\(args.isEmpty ? "" : " with these arguments"); expected 'sequential' or 'jacobi(tolerance=T)'", at: at)
            }
        }
        var model = Model(name: modelDecl.name, base: base, weightsPath: options.weightsPath, flow: graph)
        model.declaredWeights = modelDecl.weights?.0
        model.causalInverse = causalInverse
        if model.weightsPath == nil, let w = weights { model.weightsPath = w.file.path }
        try Verifier.verify(model.flow)
        return model
    }

    /// `base normal` or `base normal(loc="...", scale="...")` with weights of one sample's shape
    /// (or broadcastable to it).
    private mutating func elaborateBase(_ name: String, _ args: [(String, Expr)], _ at: SourceLocation, latentInput: String,
                                        _ env: inout [String: CompileTimeValue]) throws -> BaseDensity {
        guard name == "normal" else {
            throw FlowError("unknown base density '\(name)'; supported: normal, normal(loc=\"weight\", scale=\"weight\")", at: at)
        }
        if args.isEmpty { return .standardNormal }
        guard args.map(\.0).sorted() == ["loc", "scale"] else {
            throw FlowError("base normal takes loc=\"weight\" and scale=\"weight\" together, or nothing", at: at)
        }
        guard let store = weights else { throw FlowError("base normal(loc=..., scale=...) reads weights, but no weight file is given", at: at) }
        var names: [String: WeightReference] = [:]
        for (key, expr) in args {
            guard case .string(let n) = try evaluate(expr, &env) else { throw FlowError("base normal's \(key) must be a weight name", at: at) }
            let (resolved, info) = try store.info(n, at: at)
            let latent = graph.type(of: graph.inputs[0]).dims
            guard info.shape.count <= latent.count, zip(info.shape.reversed(), latent.reversed()).allSatisfy({ $0 == $1 || $0 == 1 }) else {
                throw FlowError("base \(key) '\(resolved)' has shape \(info.shape), which does not broadcast to one sample \(latent)", at: at)
            }
            names[key] = WeightReference(name: resolved, shape: info.shape)
        }
        return .diagonalNormal(loc: names["loc"]!, scale: names["scale"]!)
    }

    /// Elaborates `body k(...) { ... }` declarations into graphs, in index order 0, 1, ...
    private mutating func elaborateBodies(_ decls: [BodyDecl]) throws -> [Graph] {
        var out: [Graph] = []
        for (expected, decl) in decls.enumerated() {
            guard decl.index == expected else {
                throw FlowError("body \(decl.index) is out of order; bodies are numbered 0, 1, 2, ... (expected \(expected))", at: decl.location)
            }
            let saved = graph
            graph = Graph()
            var env = globals
            for (name, typeExpr) in decl.inputs {
                env[name] = .tensor(graph.addInput(name: name, type: try elaborateType(typeExpr, &env)))
            }
            guard let results = try execute(decl.statements, &env), results.count == 1, case .tensor(let v) = results[0] else {
                throw FlowError("body \(decl.index) must end with 'return' of one tensor", at: decl.location)
            }
            graph.outputs = [v]
            graph.bodies = try elaborateBodies(decl.bodies)
            out.append(graph)
            graph = saved
        }
        return out
    }

    // MARK: statements

    /// Runs statements; returns the values of a `return`, or nil when the block falls through.
    private mutating func execute(_ body: [Stmt], _ env: inout [String: CompileTimeValue]) throws -> [CompileTimeValue]? {
        for stmt in body {
            switch stmt {
            case .assign(let targets, let annotation, let expr, let at):
                let value = try evaluate(expr, &env)
                let values: [CompileTimeValue]
                if case .tuple(let items) = value { values = items } else { values = [value] }
                guard values.count == targets.count else {
                    throw FlowError("assigns \(targets.count) name(s) but the right side gives \(values.count) value(s)", at: at)
                }
                if let annotation {
                    guard targets.count == 1, case .tensor(let v) = values[0] else {
                        throw FlowError("a type annotation needs exactly one tensor on the left", at: at)
                    }
                    let expected = try elaborateType(annotation, &env)
                    let actual = graph.type(of: v)
                    guard expected == actual else {
                        throw FlowError("'\(targets[0])' is declared \(expected) but the value is \(actual)", at: at)
                    }
                }
                for (name, value) in zip(targets, values) {
                    if name == "B" { throw FlowError("'B' names the batch dimension and cannot be assigned", at: at) }
                    env[name] = value
                }
            case .forLoop(let variable, let lower, let upper, let loopBody, let at):
                let lo = try integer(try evaluate(lower, &env), "the loop's lower bound", at)
                let hi = try integer(try evaluate(upper, &env), "the loop's upper bound", at)
                if lo < hi {
                    for i in lo..<hi {
                        loopIterations += 1
                        guard loopIterations <= Elaborator.maximumLoopIterations else {
                            throw FlowError("compile-time loops ran more than \(Elaborator.maximumLoopIterations) iterations (a runaway loop?)", at: at)
                        }
                        env[variable] = .int(i)
                        if let r = try execute(loopBody, &env) { return r }
                    }
                }
            case .ifElse(let condition, let then, let otherwise, let at):
                let c = try evaluate(condition, &env)
                let taken: Bool
                switch c {
                case .bool(let b): taken = b
                case .int(let i): taken = i != 0
                default: throw FlowError("an 'if' condition must be a compile-time boolean, got \(c.kindName)", at: at)
                }
                if let r = try execute(taken ? then : otherwise, &env) { return r }
            case .returns(let exprs, _):
                return try exprs.map { try evaluate($0, &env) }
            case .evaluate(let expr, _):
                _ = try evaluate(expr, &env)
            }
        }
        return nil
    }

    private func integer(_ v: CompileTimeValue, _ what: String, _ at: SourceLocation) throws -> Int {
        switch v {
        case .int(let i): return i
        case .float(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: throw FlowError("\(what) must be a compile-time integer, got \(v.kindName)", at: at)
        }
    }

    private mutating func elaborateType(_ t: TypeExpr, _ env: inout [String: CompileTimeValue]) throws -> TensorType {
        var dims: [Int] = []
        var batched = false
        for (i, d) in t.dims.enumerated() {
            guard let d else {
                guard i == 0 else { throw FlowError("B may only be the first dimension", at: t.location) }
                batched = true
                continue
            }
            let n = try integer(try evaluate(d, &env), "a dimension", d.location)
            guard n >= 1 else { throw FlowError("dimension \(n) must be ≥ 1", at: d.location) }
            dims.append(n)
        }
        guard TensorType.checkedCount(dims) != nil else {
            throw FlowError("type \(t.dtype.rawValue)\(dims) has more than 2^40 elements per sample", at: t.location)
        }
        return TensorType(t.dtype, batched: batched, dims)
    }

    // MARK: expressions

    private mutating func evaluate(_ expr: Expr, _ env: inout [String: CompileTimeValue]) throws -> CompileTimeValue {
        switch expr {
        case .integer(let i, _): return .int(i)
        case .number(let d, _): return .float(d)
        case .string(let s, let at): return .string(try interpolate(s, env, at))
        case .name(let name, let at):
            if name == "B" { return .batch }
            if name == "true" { return .bool(true) }
            if name == "false" { return .bool(false) }
            guard let v = env[name] ?? globals[name] else {
                let known = Set(env.keys).union(globals.keys)
                let close = known.filter { OpCatalog.editDistance($0, name) <= 2 }.sorted().prefix(3)
                throw FlowError("unknown name '\(name)'\(close.isEmpty ? "" : "; did you mean \(close.map { "'\($0)'" }.joined(separator: " or "))?")", at: at)
            }
            return v
        case .list(let items, _):
            return .list(try items.map { try evaluate($0, &env) })
        case .unary(let op, let operand, let at):
            let v = try evaluate(operand, &env)
            switch (op, v) {
            case ("-", .int(let i)):
                guard i != Int.min else { throw FlowError("integer overflow in a compile-time expression (-(\(i)))", at: at) }
                return .int(-i)
            case ("-", .float(let d)): return .float(-d)
            case ("-", .tensor(let t)): return .tensor(try emit("neg", [t], [:], at)[0])
            case ("!", .bool(let b)): return .bool(!b)
            default: throw FlowError("cannot apply '\(op)' to \(v.kindName)", at: at)
            }
        case .binary(let op, let l, let r, let at):
            return try binary(op, try evaluate(l, &env), try evaluate(r, &env), at)
        case .call(let name, let args, let keywords, let at):
            return try call(name, args, keywords, at, &env)
        }
    }

    /// `"transforms.{k}.weight"` → `"transforms.3.weight"`.
    private mutating func interpolate(_ s: String, _ env: [String: CompileTimeValue], _ at: SourceLocation) throws -> String {
        guard s.contains("{") else { return s }
        var out = ""
        var rest = Substring(s)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { throw FlowError("unclosed '{' in string \"\(s)\"", at: at) }
            let inner = String(rest[rest.index(after: open)..<close])
            if inner.isEmpty { out += "{}"; rest = rest[rest.index(after: close)...]; continue }
            var parser = try Parser(text: inner, file: at.file)
            let e = try parser.parseExpr()
            var scope = env
            let v = try evaluate(e.relocated(to: at), &scope)
            guard let text = v.text else { throw FlowError("cannot put \(v.kindName) into a string ('{\(inner)}')", at: at) }
            out += text
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    private mutating func binary(_ op: String, _ a: CompileTimeValue, _ b: CompileTimeValue, _ at: SourceLocation) throws -> CompileTimeValue {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> CompileTimeValue {
                guard !r.overflow else { throw FlowError("integer overflow in a compile-time expression (\(x) \(op) \(y))", at: at) }
                return .int(r.partialValue)
            }
            switch op {
            case "+": return try checked(x.addingReportingOverflow(y))
            case "-": return try checked(x.subtractingReportingOverflow(y))
            case "*": return try checked(x.multipliedReportingOverflow(by: y))
            case "/":
                guard y != 0 else { throw FlowError("division by zero in a compile-time expression", at: at) }
                return try checked(x.dividedReportingOverflow(by: y))
            case "%":
                guard y != 0 else { throw FlowError("modulo by zero in a compile-time expression", at: at) }
                let r = x.remainderReportingOverflow(dividingBy: y).partialValue
                return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            default: return try compare(op, Double(x), Double(y), at)
            }
        case (.bool(let x), .bool(let y)):
            switch op {
            case "&&": return .bool(x && y)
            case "||": return .bool(x || y)
            case "==": return .bool(x == y)
            case "!=": return .bool(x != y)
            default: throw FlowError("cannot apply '\(op)' to booleans", at: at)
            }
        case (.list(let x), .list(let y)) where op == "+":
            return .list(x + y)
        case (.string(let x), .string(let y)) where op == "+":
            return .string(x + y)
        case (.string(let x), .string(let y)) where op == "==" || op == "!=":
            return .bool((x == y) == (op == "=="))
        default:
            break
        }
        if let x = a.number, let y = b.number {
            switch op {
            case "+": return .float(x + y)
            case "-": return .float(x - y)
            case "*": return .float(x * y)
            case "/": return .float(x / y)
            case "%": return .float(x.truncatingRemainder(dividingBy: y))
            default: return try compare(op, x, y, at)
            }
        }
        let tensorOps = ["+": "add", "-": "sub", "*": "mul", "/": "div"]
        if let name = tensorOps[op] {
            let x = try operand(a, name, at), y = try operand(b, name, at)
            return .tensor(try emit(name, [x, y], [:], at)[0])
        }
        throw FlowError("cannot apply '\(op)' to \(a.kindName) and \(b.kindName)\(a.isTensor || b.isTensor ? "; compare tensors with lt/le/gt/ge/eq/ne" : "")", at: at)
    }

    private func compare(_ op: String, _ x: Double, _ y: Double, _ at: SourceLocation) throws -> CompileTimeValue {
        switch op {
        case "==": return .bool(x == y)
        case "!=": return .bool(x != y)
        case "<": return .bool(x < y)
        case "<=": return .bool(x <= y)
        case ">": return .bool(x > y)
        case ">=": return .bool(x >= y)
        default: throw FlowError("cannot apply '\(op)' to numbers", at: at)
        }
    }

    /// A tensor operand: tensors pass through, numbers become scalar constants.
    private mutating func operand(_ v: CompileTimeValue, _ op: String, _ at: SourceLocation) throws -> ValueID {
        switch v {
        case .tensor(let t): return t
        case .int, .float:
            return try emit("const", [], ["values": .floats([v.number!])], at)[0]
        default:
            throw FlowError("\(op) expects a tensor or a number here, got \(v.kindName)", at: at)
        }
    }

    /// Appends a node after validating attributes and inferring result types.
    private mutating func emit(_ op: String, _ operands: [ValueID], _ attributes: [String: Attribute], _ at: SourceLocation) throws -> [ValueID] {
        guard graph.nodes.count < Elaborator.maximumNodes else {
            throw FlowError("the graph exceeds \(Elaborator.maximumNodes) ops (a runaway loop?)", at: at)
        }
        return try graph.append(op, operands, attributes, at: at)
    }

    // MARK: calls

    private mutating func call(_ name: String, _ args: [Expr], _ keywords: [(String, Expr)], _ at: SourceLocation,
                               _ env: inout [String: CompileTimeValue]) throws -> CompileTimeValue {
        let values = try args.map { try evaluate($0, &env) }
        var named: [(String, CompileTimeValue)] = []
        for (k, e) in keywords { named.append((k, try evaluate(e, &env))) }

        if let f = functions[name] {
            guard named.isEmpty else { throw FlowError("function '\(name)' takes positional arguments only", at: at) }
            return try inline(f, values, at)
        }
        if CompileTimeBuiltins.names[name] != nil {
            guard named.isEmpty else { throw FlowError("'\(name)' takes positional arguments only", at: at) }
            return try builtin(name, values, at)
        }
        if let fold = CompileTimeBuiltins.math[name], values.count == 1, named.isEmpty, let x = values[0].number {
            return .float(fold(x))
        }
        guard let def = OpCatalog.byName[name] else {
            let candidates = Array(functions.keys) + Array(CompileTimeBuiltins.names.keys) + Array(OpCatalog.byName.keys)
            let close = candidates.filter { OpCatalog.editDistance($0, name) <= 2 }.sorted().prefix(3)
            throw FlowError("unknown op or function '\(name)'\(close.isEmpty ? "; see IR/OPS.md" : "; did you mean \(close.map { "'\($0)'" }.joined(separator: " or "))?")", at: at)
        }
        // Positional arguments: operands first (tensors and numbers), then positional attributes.
        var operands: [ValueID] = []
        var attributes: [String: Attribute] = [:]
        var rest = values[...]
        while let v = rest.first, operands.count < def.operandCount.upperBound {
            if case .tensor = v {} else if v.number != nil && operands.count < def.operandCount.lowerBound {} else { break }
            operands.append(try operand(v, name, at))
            rest = rest.dropFirst()
        }
        guard rest.count <= def.positionalAttributes.count else {
            throw FlowError("\(name) takes \(def.operandCount.upperBound == Int.max ? "any number of" : "at most \(def.operandCount.upperBound)") tensor operand(s) and \(def.positionalAttributes.isEmpty ? "no positional attributes" : "then \(def.positionalAttributes.joined(separator: ", "))"); got \(values.count) positional argument(s) (argument \(operands.count + def.positionalAttributes.count + 1) is \(values[min(values.count - 1, operands.count + def.positionalAttributes.count)].kindName))", at: at)
        }
        for (key, v) in zip(def.positionalAttributes, rest) { named.insert((key, v), at: 0) }
        for (key, v) in named {
            if attributes[key] != nil { throw FlowError("\(name): attribute '\(key)' is given twice", at: at) }
            guard let a = v.attribute else {
                throw FlowError("\(name): attribute '\(key)' must be a compile-time number, string or list, got \(v.kindName)", at: at)
            }
            attributes[key] = a
        }
        if name == "weight" { try resolveWeight(&attributes, at) }
        let results = try emit(name, operands, attributes, at)
        return results.count == 1 ? .tensor(results[0]) : .tuple(results.map { .tensor($0) })
    }

    /// Fills a weight's resolved name and its shape from the file, checking a declared shape.
    private func resolveWeight(_ attributes: inout [String: Attribute], _ at: SourceLocation) throws {
        guard case .string(let name)? = attributes["name"] else {
            throw FlowError("weight needs a name string: weight(\"layer.weight\")", at: at)
        }
        guard let store = weights else {
            throw FlowError("weight '\(name)' needs a weight file: pass --weights FILE or add 'weights \"FILE\"' to the model", at: at)
        }
        let (resolved, info) = try store.info(name, at: at)
        if let declared = attributes["shape"] {
            let expected = try OpCatalog.coerce(declared, to: .shape, op: "weight", name: "shape", at: at)
            guard expected == .shape(batched: false, info.shape) else {
                throw FlowError("weight '\(resolved)' has shape \(info.shape) (\(info.dtype)) in \(store.file.path), but the spec expects \(expected)", at: at)
            }
        }
        attributes["name"] = .string(resolved)
        attributes["shape"] = .shape(batched: false, info.shape)
    }

    private mutating func inline(_ f: FunctionDecl, _ args: [CompileTimeValue], _ at: SourceLocation) throws -> CompileTimeValue {
        guard args.count == f.parameters.count else {
            throw FlowError("function '\(f.name)' takes \(f.parameters.count) argument(s) (\(f.parameters.joined(separator: ", "))), got \(args.count)", at: at)
        }
        guard callDepth < Elaborator.maximumCallDepth else {
            throw FlowError("calls nest deeper than \(Elaborator.maximumCallDepth) (does '\(f.name)' call itself without end?)", at: at)
        }
        callDepth += 1
        defer { callDepth -= 1 }
        var scope = globals
        for (p, v) in zip(f.parameters, args) { scope[p] = v }
        let results: [CompileTimeValue]?
        do { results = try execute(f.body, &scope) } catch var error as FlowError {
            if !error.message.contains("(in '") { error.message += " (in '\(f.name)' called at \(at))" }
            throw error
        }
        guard let results else { return .tuple([]) }
        return results.count == 1 ? results[0] : .tuple(results)
    }

    private func builtin(_ name: String, _ args: [CompileTimeValue], _ at: SourceLocation) throws -> CompileTimeValue {
        func arity(_ n: Int) throws {
            guard args.count == n else { throw FlowError("\(CompileTimeBuiltins.names[name]!) takes \(n) argument(s), got \(args.count)", at: at) }
        }
        func string(_ v: CompileTimeValue) throws -> String {
            guard case .string(let s) = v else { throw FlowError("\(name) expects a string, got \(v.kindName)", at: at) }
            return s
        }
        func intList(_ v: CompileTimeValue) throws -> [Int] {
            guard case .list(let items) = v else { throw FlowError("\(name) expects a list, got \(v.kindName)", at: at) }
            return try items.map { try integer($0, "a list item of \(name)", at) }
        }
        func store() throws -> WeightStore {
            guard let w = weights else { throw FlowError("\(name) reads the weight file, but none is given (--weights FILE)", at: at) }
            return w
        }
        func vector(_ v: CompileTimeValue) throws -> [Double] {
            let s = try store()
            let (resolved, info) = try s.info(try string(v), at: at)
            guard info.shape.count == 1 else { throw FlowError("\(name) needs a 1-D weight; '\(resolved)' has shape \(info.shape)", at: at) }
            return try s.file.values(resolved)
        }
        switch name {
        case "dim":
            try arity(2)
            let (resolved, info) = try store().info(try string(args[0]), at: at)
            let axis = try integer(args[1], "dim's axis", at)
            guard axis >= 0 && axis < info.shape.count else {
                throw FlowError("weight '\(resolved)' has rank \(info.shape.count); axis \(axis) is out of range", at: at)
            }
            return .int(info.shape[axis])
        case "size":
            try arity(2)
            guard case .tensor(let t) = args[0] else { throw FlowError("size expects a tensor, got \(args[0].kindName)", at: at) }
            let type = graph.type(of: t)
            let raw = try integer(args[1], "size's axis", at)
            let axis = raw < 0 ? raw + type.rank : raw
            guard axis >= 0 && axis < type.rank, let n = type.size(ofAxis: axis) else {
                throw FlowError("size: axis \(axis) of \(type) is out of range or is the batch axis", at: at)
            }
            return .int(n)
        case "count_indexed":
            try arity(1)
            let pattern = try string(args[0])
            guard pattern.contains("{}") else { throw FlowError("count_indexed needs a '{}' in its pattern", at: at) }
            let s = try store()
            var n = 0
            while s.resolve(pattern.replacingOccurrences(of: "{}", with: String(n))) != nil { n += 1 }
            return .int(n)
        case "has_weight":
            try arity(1)
            return .bool(try store().resolve(try string(args[0])) != nil)
        case "nonzero", "zero_indices":
            try arity(1)
            let values = try vector(args[0])
            let wanted = name == "nonzero"
            return .list(values.indices.filter { (values[$0] != 0) == wanted }.map { .int($0) })
        case "inverse_perm":
            try arity(1)
            let p = try intList(args[0])
            guard p.sorted() == Array(0..<p.count) else { throw FlowError("inverse_perm: \(p) is not a permutation of 0..<\(p.count)", at: at) }
            var inverse = [Int](repeating: 0, count: p.count)
            for (i, v) in p.enumerated() { inverse[v] = i }
            return .list(inverse.map { .int($0) })
        case "reversed":
            try arity(1)
            guard case .list(let items) = args[0] else { throw FlowError("reversed expects a list", at: at) }
            return .list(items.reversed())
        case "range":
            try arity(1)
            let n = try integer(args[0], "range's argument", at)
            guard n >= 0 && n <= 1_000_000 else { throw FlowError("range(\(n)) must be within 0...1000000", at: at) }
            return .list((0..<n).map { .int($0) })
        case "len":
            try arity(1)
            guard case .list(let items) = args[0] else { throw FlowError("len expects a list", at: at) }
            return .int(items.count)
        case "int":
            try arity(1)
            guard let x = args[0].number, x.isFinite, abs(x) < 1e15 else { throw FlowError("int expects a finite number", at: at) }
            return .int(Int(x))
        case "float":
            try arity(1)
            guard let x = args[0].number else { throw FlowError("float expects a number", at: at) }
            return .float(x)
        case "error":
            try arity(1)
            throw FlowError(try string(args[0]), at: at)
        default:
            fatalError("builtin \(name) listed but not implemented")
        }
    }
}

extension CompileTimeValue {
    var isTensor: Bool { if case .tensor = self { return true } else { return false } }
}

extension Expr {
    /// The same expression with every location replaced (for expressions inside strings).
    func relocated(to at: SourceLocation) -> Expr {
        switch self {
        case .integer(let i, _): return .integer(i, at)
        case .number(let d, _): return .number(d, at)
        case .string(let s, _): return .string(s, at)
        case .name(let n, _): return .name(n, at)
        case .list(let items, _): return .list(items.map { $0.relocated(to: at) }, at)
        case .call(let n, let a, let k, _): return .call(n, a.map { $0.relocated(to: at) }, k.map { ($0.0, $0.1.relocated(to: at)) }, at)
        case .binary(let op, let l, let r, _): return .binary(op, l.relocated(to: at), r.relocated(to: at), at)
        case .unary(let op, let e, _): return .unary(op, e.relocated(to: at), at)
        }
    }
}
