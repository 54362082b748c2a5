import Foundation

/// Calls in the surface language: user functions (inlined), compile-time builtins, and ops
/// (positional operands, then attributes; weights resolved against the weight file).
extension Elaborator {
    mutating func call(_ name: String, _ args: [Expr], _ keywords: [(String, Expr)], _ at: SourceLocation,
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
    func resolveWeight(_ attributes: inout [String: Attribute], _ at: SourceLocation) throws {
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

    mutating func inline(_ f: FunctionDecl, _ args: [CompileTimeValue], _ at: SourceLocation) throws -> CompileTimeValue {
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

    func builtin(_ name: String, _ args: [CompileTimeValue], _ at: SourceLocation) throws -> CompileTimeValue {
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
