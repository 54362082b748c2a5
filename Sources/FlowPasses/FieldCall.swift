import FlowIR
import FlowSolvers

/// How derived graphs call a model's network, and the field's packed-row layout.
public enum FieldCall {
    /// The sampler view of a model: its kind, noise end, state width and classes.
    public static func layout(of model: Model) throws -> FieldLayout {
        let kind: FieldKind, noiseAt: Double
        switch model.kind {
        case .velocity(let t): (kind, noiseAt) = (.velocity, t)
        case .meanVelocity(let t): (kind, noiseAt) = (.meanVelocity, t)
        case .flowMap(let t): (kind, noiseAt) = (.flowMap, t)
        case .flow: throw FlowError("a flow samples through its inverse, not an ODE sampler", at: .synthetic("sampler"))
        }
        return FieldLayout(kind: kind, noiseAt: noiseAt, stateWidth: model.flow.type(of: model.flow.inputs[0]).elementsPerSample, classes: model.classes)
    }

    /// Inlines the network on (state, times...) and, for a class-conditional model, `label`
    /// (default: the null label ∅, i.e. the unconditional field). Returns its output.
    public static func inline(_ g: inout Graph, _ model: Model, state: ValueID, times: [ValueID], label: ValueID? = nil, at: SourceLocation) throws -> ValueID {
        var arguments = [state] + times
        if let classes = model.classes {
            arguments.append(try label ?? g.apply("broadcast_like", [try g.apply("const", [], ["values": .floats([Double(classes)]), "shape": .shape(batched: false, [1])], at: at), times[0]], at: at))
        }
        return try g.inline(model.flow, arguments: arguments)[0]
    }

    /// The `field` entry point: packed rows [B, width] (state, times, label as `layout` says) →
    /// the network's output [B, N]. The compiled `flowc_field` and the interpreter's field run it.
    public static func graph(_ model: Model) throws -> Graph {
        let layout = try self.layout(of: model)
        let at = SourceLocation.synthetic("field")
        var g = Graph()
        let packed = g.addInput(name: "packed", type: TensorType(.f32, batched: true, [layout.width]))
        func columns(_ from: Int, _ to: Int) throws -> ValueID {
            try g.apply("slice", [packed], ["axis": .int(1), "start": .int(from), "end": .int(to)], at: at)
        }
        let n = layout.stateWidth
        let stateType = model.flow.type(of: model.flow.inputs[0])
        let state = try g.apply("reshape", [try columns(0, n)], ["shape": .shape(batched: true, stateType.dims)], at: at)
        let times = try (0..<layout.timeSlots).map { try columns(n + $0, n + $0 + 1) }
        let label = layout.classes == nil ? nil : try columns(layout.width - 1, layout.width)
        let output = try inline(&g, model, state: state, times: times, label: label, at: at)
        g.outputs = [try g.apply("reshape", [output], ["shape": .shape(batched: true, [n])], at: at)]
        try Verifier.verify(g)
        return g
    }
}
