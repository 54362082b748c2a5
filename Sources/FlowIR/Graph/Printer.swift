/// Prints a model in the IR text language, one op per line with its type, so that
/// `print(parse(text))` is a fixed point: the printed text parses back to the same graph.
public enum Printer {
    public static func print(_ model: Model) -> String {
        var out = "model \(model.name) {\n"
        let g = model.flow
        for (v, name) in zip(g.inputs, g.inputNames) { out += "  input \(name): \(g.type(of: v))\n" }
        if model.kind != .flow {
            // velocity(noise_at=0), with classes=K inside the parentheses when conditional
            let kind = model.kind.description
            out += "  kind \(model.classes.map { kind.dropLast() + ", classes=\($0))" } ?? kind)\n"
        } else if let classes = model.classes {
            out += "  kind flow(classes=\(classes))\n"
        }
        switch model.base {
        case .standardNormal: out += "  base normal\n"
        case .diagonalNormal(let loc, let scale): out += "  base normal(loc=\(Attribute.string(loc.name)), scale=\(Attribute.string(scale.name)))\n"
        }
        if let w = model.declaredWeights { out += "  weights \(Attribute.string(w))\n" }
        if case .jacobi(let tolerance, let chunk) = model.causalInverse {
            out += "  inverse jacobi(tolerance=\(Attribute.format(tolerance))\(chunk.map { ", chunk=\($0)" } ?? ""))\n"
        }
        out += "  flow {\n"
        out += body(g, indent: "    ")
        out += "  }\n"
        out += bodies(g, indent: "  ")
        out += "}\n"
        return out
    }

    /// `body k(u: type, c: type) { ... }` for each region body of a graph (recursively).
    static func bodies(_ g: Graph, indent: String) -> String {
        var out = ""
        for (k, b) in g.bodies.enumerated() {
            let parameters = zip(b.inputs, b.inputNames).map { "\($1): \(b.type(of: $0))" }.joined(separator: ", ")
            out += "\(indent)body \(k)(\(parameters)) {\n"
            out += body(b, indent: indent + "  ")
            out += bodies(b, indent: indent + "  ")
            out += "\(indent)}\n"
        }
        return out
    }

    /// The nodes and the return line of a graph.
    public static func body(_ g: Graph, indent: String) -> String {
        var names: [ValueID: String] = [:]
        for (v, n) in zip(g.inputs, g.inputNames) { names[v] = n }
        let taken = Set(g.inputNames)
        var counter = 0
        func fresh() -> String {
            while taken.contains("v\(counter)") { counter += 1 }
            defer { counter += 1 }
            return "v\(counter)"
        }
        var out = ""
        for node in g.nodes {
            for r in node.results { names[r] = fresh() }
            let lhs = node.results.map { names[$0]! }.joined(separator: ", ")
            let annotation = node.results.count == 1 ? ": \(g.type(of: node.results[0]))" : ""
            var args = node.operands.map { names[$0] ?? "?\($0)" }
            let specs = OpCatalog.byName[node.op]?.attributes ?? []
            for spec in specs {
                guard let value = node.attributes[spec.name] else { continue }
                if let d = spec.defaultValue, d == value { continue }
                args.append("\(spec.name)=\(value)")
            }
            out += "\(indent)\(lhs)\(annotation) = \(node.op)(\(args.joined(separator: ", ")))\n"
        }
        out += "\(indent)return \(g.outputs.map { names[$0] ?? "?\($0)" }.joined(separator: ", "))\n"
        return out
    }
}
