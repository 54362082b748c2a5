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

    var functions: [String: FunctionDecl] = [:]
    var globals: [String: CompileTimeValue] = [:]
    var graph = Graph()
    var weights: WeightStore?
    var callDepth = 0
    var loopIterations = 0

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

    static func loadImports(of file: SourceFile, options: Options, into files: inout [SourceFile], seen: inout Set<String>) throws {
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

    mutating func run(files: [SourceFile], main: SourceFile, path: String, options: Options) throws -> Model {
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
        for (name, typeExpr) in modelDecl.inputs {
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
            let keys = args.map(\.0)
            switch mode {
            case "sequential" where keys.isEmpty: causalInverse = .sequential
            case "jacobi" where Set(keys).isSubset(of: ["tolerance", "chunk"]) && Set(keys).count == keys.count:
                var scope = globals
                var tolerance = 1e-6, chunk: Int?
                for (key, expr) in args {
                    let v = try evaluate(expr, &scope).number
                    if key == "tolerance" {
                        guard let t = v, t > 0, t.isFinite else { throw FlowError("jacobi's tolerance must be a positive number", at: at) }
                        tolerance = t
                    } else {
                        guard let c = v, c == c.rounded(), c >= 1, c <= 1_000_000 else { throw FlowError("jacobi's chunk must be a positive integer (tokens per chunk)", at: at) }
                        chunk = Int(c)
                    }
                }
                causalInverse = .jacobi(tolerance: tolerance, chunk: chunk)
            default:
                throw FlowError("unknown inverse mode '\(mode)'\(args.isEmpty ? "" : " with these arguments"); expected 'sequential' or 'jacobi(tolerance=T[, chunk=B])'", at: at)
            }
        }
        var model = Model(name: modelDecl.name, base: base, weightsPath: options.weightsPath, flow: graph)
        model.declaredWeights = modelDecl.weights?.0
        model.causalInverse = causalInverse
        if let (name, args, at) = modelDecl.kind { (model.kind, model.classes) = try elaborateKind(name, args, at, inputs: modelDecl.inputs.count) }
        if model.weightsPath == nil, let w = weights { model.weightsPath = w.file.path }
        try Verifier.verify(model.flow)
        if let store = weights, !Elaborator.readsWeights(model.flow), case .standardNormal = base {
            throw Elaborator.noWeightsRead(model.name, store)
        }
        return model
    }

    /// Whether a graph (or one of its bodies) reads a weight.
    static func readsWeights(_ g: Graph) -> Bool {
        g.nodes.contains { $0.op == "weight" } || g.bodies.contains(where: readsWeights)
    }

    /// A weight file of which the model reads nothing: the wrong file, most likely (a spec that
    /// counts its layers with count_indexed then finds none, and would compile an empty flow).
    static func noWeightsRead(_ model: String, _ store: WeightStore) -> FlowError {
        let names = store.file.names
        let shown = names.prefix(4).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 4 ? ", …" : "")
        return FlowError("model '\(model)' reads none of the \(names.count) tensors of this weight file (\(shown)); is it the file for this spec? "
                         + "(where a spec counts its layers with count_indexed(\"…{}…\"), none match here and the layers would be left out)", in: store.file.path)
    }

    /// `base normal` or `base normal(loc="...", scale="...")` with weights of one sample's shape
    /// (or broadcastable to it).
    mutating func elaborateBase(_ name: String, _ args: [(String, Expr)], _ at: SourceLocation, latentInput: String,
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

    /// `kind flow`, `kind velocity(noise_at=T)` (inputs x, t), `kind mean_velocity(noise_at=T)`
    /// (inputs z, r, t) or `kind flow_map(noise_at=T)` (inputs x, s, t); T is 0 or 1. With
    /// `classes=K` the flow or field is class-conditional: one more input, the label c: f32[B, 1]
    /// in 0..<K, and K itself the null label ∅ (unconditional) of classifier-free guidance.
    mutating func elaborateKind(_ name: String, _ args: [(String, Expr)], _ at: SourceLocation, inputs: Int) throws -> (ModelKind, Int?) {
        var noiseAt: Double?
        var classes: Int?
        for (key, expr) in args {
            var scope = globals
            switch key {
            case "noise_at":
                guard let v = try evaluate(expr, &scope).number, v == 0 || v == 1 else {
                    throw FlowError("noise_at must be 0 or 1 (the end of the time interval where the path is noise)", at: at)
                }
                noiseAt = v
            case "classes":
                guard let v = try evaluate(expr, &scope).number, v == v.rounded(), v >= 1, v < 16_777_216 else {
                    throw FlowError("classes must be an integer in 1...16777215 (labels are exact in f32)", at: at)
                }
                classes = Int(v)
            default:
                throw FlowError("kind \(name) takes noise_at=0 or noise_at=1 and optionally classes=K, not '\(key)'", at: at)
            }
        }
        let label = classes == nil ? 0 : 1
        let labelText = classes == nil ? "" : " and the class label c (f32[B, 1])"
        switch name {
        case "flow":
            guard noiseAt == nil else { throw FlowError("kind flow takes only classes=K (noise_at is for integrated fields)", at: at) }
            guard inputs == 1 + label else { throw FlowError("a flow takes the input x\(labelText); it declares \(inputs)", at: at) }
            return (.flow, classes)
        case "velocity":
            guard inputs == 2 + label else { throw FlowError("a velocity model takes the inputs x and t (f32[B, 1])\(labelText); it declares \(inputs)", at: at) }
            return (.velocity(noiseAt: noiseAt ?? 0), classes)
        case "mean_velocity":
            guard inputs == 3 + label else { throw FlowError("a mean_velocity model takes the inputs z, r and t\(labelText); it declares \(inputs)", at: at) }
            return (.meanVelocity(noiseAt: noiseAt ?? 1), classes)
        case "flow_map":
            guard inputs == 3 + label else { throw FlowError("a flow_map model takes the inputs x, s and t\(labelText); it declares \(inputs)", at: at) }
            return (.flowMap(noiseAt: noiseAt ?? 1), classes)
        default:
            throw FlowError("unknown model kind '\(name)'; expected flow, velocity, mean_velocity or flow_map", at: at)
        }
    }

    /// Elaborates `body k(...) { ... }` declarations into graphs, in index order 0, 1, ...
    mutating func elaborateBodies(_ decls: [BodyDecl]) throws -> [Graph] {
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
    mutating func execute(_ body: [Stmt], _ env: inout [String: CompileTimeValue]) throws -> [CompileTimeValue]? {
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

    func integer(_ v: CompileTimeValue, _ what: String, _ at: SourceLocation) throws -> Int {
        switch v {
        case .int(let i): return i
        case .float(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: throw FlowError("\(what) must be a compile-time integer, got \(v.kindName)", at: at)
        }
    }

    mutating func elaborateType(_ t: TypeExpr, _ env: inout [String: CompileTimeValue]) throws -> TensorType {
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

    mutating func evaluate(_ expr: Expr, _ env: inout [String: CompileTimeValue]) throws -> CompileTimeValue {
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
    mutating func interpolate(_ s: String, _ env: [String: CompileTimeValue], _ at: SourceLocation) throws -> String {
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

    mutating func binary(_ op: String, _ a: CompileTimeValue, _ b: CompileTimeValue, _ at: SourceLocation) throws -> CompileTimeValue {
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

    func compare(_ op: String, _ x: Double, _ y: Double, _ at: SourceLocation) throws -> CompileTimeValue {
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
    mutating func operand(_ v: CompileTimeValue, _ op: String, _ at: SourceLocation) throws -> ValueID {
        switch v {
        case .tensor(let t): return t
        case .int, .float:
            return try emit("const", [], ["values": .floats([v.number!])], at)[0]
        default:
            throw FlowError("\(op) expects a tensor or a number here, got \(v.kindName)", at: at)
        }
    }

    /// Appends a node after validating attributes and inferring result types.
    mutating func emit(_ op: String, _ operands: [ValueID], _ attributes: [String: Attribute], _ at: SourceLocation) throws -> [ValueID] {
        guard graph.nodes.count < Elaborator.maximumNodes else {
            throw FlowError("the graph exceeds \(Elaborator.maximumNodes) ops (a runaway loop?)", at: at)
        }
        return try graph.append(op, operands, attributes, at: at)
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
