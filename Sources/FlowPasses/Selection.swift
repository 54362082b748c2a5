import FlowIR

extension Node {
    /// For `slice` and `gather`: the axis they select along (full rank, resolved) and the
    /// positions of operand 0 they pick, in order. nil for other ops.
    func selection(in g: Graph) -> (axis: Int, indices: [Int])? {
        guard op == "slice" || op == "gather", case .int(let rawAxis)? = attributes["axis"] else { return nil }
        let type = g.type(of: operands[0])
        let axis = rawAxis < 0 ? rawAxis + type.rank : rawAxis
        if case .ints(let indices)? = attributes["indices"] { return (axis, indices) }
        guard case .int(let start)? = attributes["start"], case .int(let end)? = attributes["end"],
              case .int(let step)? = attributes["step"], let size = type.size(ofAxis: axis) else { return nil }
        return (axis, PythonSlice.indices(size: size, start: start, end: end, step: step))
    }
}
