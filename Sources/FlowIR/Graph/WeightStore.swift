/// Weights as the elaborator and the interpreter see them: a safetensors file plus the name
/// rule. A spec names `transform.transforms.0.hyper.0.weight`; the file may store it under that
/// name or with the `w.` prefix that Flowc's fixtures use (`w.<state_dict key>`).
public struct WeightStore: Sendable {
    public let file: SafetensorsFile

    public init(file: SafetensorsFile) { self.file = file }

    public init(path: String) throws { self.file = try SafetensorsFile(path: path) }

    /// The name under which `name` is stored, or nil.
    public func resolve(_ name: String) -> String? {
        if file.tensors[name] != nil { return name }
        if file.tensors["w." + name] != nil { return "w." + name }
        return nil
    }

    /// Looks a weight up or throws an error naming it, the file and the closest names present.
    public func info(_ name: String, at location: SourceLocation) throws -> (name: String, info: SafetensorsFile.TensorInfo) {
        guard let resolved = resolve(name), let info = file.tensors[resolved] else {
            let close = file.names.filter { OpCatalog.editDistance($0, name) <= 3 || OpCatalog.editDistance($0, "w." + name) <= 3 }.prefix(3)
            let hint = close.isEmpty ? "" : "; did you mean \(close.map { "'\($0)'" }.joined(separator: ", "))?"
            throw FlowError("weight '\(name)' is not in \(file.path) (looked for '\(name)' and 'w.\(name)')\(hint)", at: location)
        }
        return (resolved, info)
    }
}
