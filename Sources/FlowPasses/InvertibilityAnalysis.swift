import FlowIR
import FlowInterpreter

/// One step of recovering the input from the output: node `node` is undone in operand
/// `operand` (`nil`: in all its operands at once, for concat; for slice/gather the step
/// recovers part of the operand); or, when `causal` is set, an autoregressive block.
public struct InversionStep: Sendable {
    public var node: Int
    public var operand: Int?
    public var causal: CausalBlock?

    public init(node: Int, operand: Int?, causal: CausalBlock? = nil) {
        self.node = node
        self.operand = operand
        self.causal = causal
    }
}

/// An autoregressive transform y = f(u; c(u)) whose conditioner c gives position i parameters
/// that depend only on positions before i in some order (verified on the constant masks):
/// `steps` undo f from y back to u treating c(u) as known; the inverse iterates
/// u ← f⁻¹(y; c(u)) from u = 0, which is exact after `sweeps` sweeps (the longest chain of
/// dependencies plus one; at most the number of positions).
public struct CausalBlock: Sendable {
    public var source: ValueID
    public var output: ValueID
    /// Values computed from `source` on the way to `output` (recomputed at every sweep).
    public var values: Set<ValueID>
    public var steps: [InversionStep]
    public var sweeps: Int
}

/// Decides whether a graph is a bijection of its input by walking from the output back to the
/// input, keeping the set of known values (Oryx's inverse interpreter, done symbolically):
///  - values that do not depend on the input, and the outputs, are known;
///  - a node whose operands are all known has known results (it can be recomputed);
///  - a node whose results are known and that has exactly one unknown operand, in a position
///    its `InverseRule` allows, makes that operand known;
///  - slices and gathers recover parts of their operand, which is known once the parts cover it.
/// A coupling layer needs no special case: the conditioning half is recovered by a slice, the
/// conditioner is recomputed from it, and the transformed half is undone through its affine or
/// spline op whose parameters are then known.
public enum InvertibilityAnalysis {
    public static func analyze(_ g: Graph, weights: WeightStore? = nil) throws -> [InversionStep] {
        // inputs after the first are context (a class label): known wherever the flow is run
        guard g.inputs.count >= 1, g.outputs.count == 1 else {
            throw FlowError("a flow maps one input (and its context) to one output; this one has \(g.inputs.count) input(s) and \(g.outputs.count) output(s)", at: .synthetic("inverse analysis"))
        }
        let (input, output) = (g.type(of: g.inputs[0]), g.type(of: g.outputs[0]))
        guard output.batched, input.elementsPerSample == output.elementsPerSample else {
            throw FlowError("the flow maps \(input) to \(output); a bijection keeps the number of elements per sample", at: locationOfProducer(g, g.outputs[0]))
        }
        let count = g.valueCount
        var dependsOnInput = [Bool](repeating: false, count: count)
        dependsOnInput[g.inputs[0]] = true
        for node in g.nodes where node.operands.contains(where: { dependsOnInput[$0] }) {
            for r in node.results { dependsOnInput[r] = true }
        }
        var walk = Walk(graph: g, known: dependsOnInput.map { !$0 })
        for v in g.outputs { walk.known[v] = true }
        walk.propagate()
        var evaluator = ConstantEvaluator(graph: g, weights: weights)
        var causalFailure: FlowError?
        while !walk.known[g.inputs[0]] {
            let found = try CausalBlockFinder.find(g, known: walk.known, evaluator: &evaluator)
            guard let block = found.block else { causalFailure = found.failure; break }
            walk.known[block.source] = true
            for step in block.steps { walk.undone[step.node] = true }
            walk.steps.append(InversionStep(node: -1, operand: nil, causal: block))
            walk.propagate()
        }
        if walk.known[g.inputs[0]] {
            // a matrix computed from the context is not a compile-time constant either
            var dependsOnAnyInput = dependsOnInput
            for v in g.inputs { dependsOnAnyInput[v] = true }
            for node in g.nodes where node.operands.contains(where: { dependsOnAnyInput[$0] }) { for r in node.results { dependsOnAnyInput[r] = true } }
            try checkConstantMatrices(g, walk.steps, dependsOnInput: dependsOnAnyInput, evaluator: &evaluator)
            return walk.steps
        }
        throw causalFailure ?? diagnose(g, known: walk.known, dependsOnInput: dependsOnInput, coverage: walk.coverage)
    }

    /// The state of the walk from the output back to the input.
    struct Walk {
        let graph: Graph
        var known: [Bool]
        /// Positions of each value recovered so far through selections, per axis.
        var coverage: [ValueID: [Int: Set<Int>]] = [:]
        var undone: [Bool]
        var steps: [InversionStep] = []

        init(graph: Graph, known: [Bool]) {
            self.graph = graph
            self.known = known
            self.undone = [Bool](repeating: false, count: graph.nodes.count)
        }

        /// Applies the forward and backward rules until nothing changes.
        mutating func propagate() {
            var changed = true
            while changed {
                changed = false
                for (i, node) in graph.nodes.enumerated() where !undone[i] && step(i, node) { changed = true }
            }
        }

        /// One rule on one node; true if it made progress.
        private mutating func step(_ i: Int, _ node: Node) -> Bool {
            let unknown = node.operands.indices.filter { !known[node.operands[$0]] }
            let resultsKnown = node.results.allSatisfy { known[$0] }
            if unknown.isEmpty {
                guard !resultsKnown else { return false }
                for r in node.results { known[r] = true }          // recomputed from known operands
                return true
            }
            guard resultsKnown else { return false }
            if let (axis, picked) = node.selection(in: graph) {   // part of the operand recovered
                let x = node.operands[0]
                coverage[x, default: [:]][axis, default: []].formUnion(picked)
                if coverage[x]![axis]!.count == graph.type(of: x).size(ofAxis: axis) { known[x] = true }
            } else if node.op == "concat" || node.op == "split" {
                for p in unknown { known[node.operands[p]] = true }
            } else {
                guard unknown.count == 1, let rule = InverseRule.table[node.op], rule.positions(node, graph).contains(unknown[0]) else {
                    return false
                }
                known[node.operands[unknown[0]]] = true
            }
            undone[i] = true
            steps.append(InversionStep(node: i, operand: node.op == "concat" ? nil : unknown.count == 1 ? unknown[0] : 0))
            return true
        }
    }

    /// A linear map by a constant matrix is invertible only if the matrix is: checked here, at
    /// compile time, on the actual weights.
    static func checkConstantMatrices(_ g: Graph, _ steps: [InversionStep], dependsOnInput: [Bool], evaluator: inout ConstantEvaluator) throws {
        for step in steps where step.causal == nil && step.node >= 0 {
            let node = g.nodes[step.node]
            guard node.op == "linear" || node.op == "conv2d", !dependsOnInput[node.operands[1]] else { continue }
            var w = try evaluator.value(node.operands[1])
            let n = w.shape[0]
            w = Tensor(shape: [n, n], values: w.values)
            if !MatrixMath.logAbsDeterminant(w).isFinite {
                let shapes = node.operands.map { g.type(of: $0).description }.joined(separator: ", ")
                throw FlowError("\(node.op)(\(shapes)) is not invertible: its \(n)x\(n) weight matrix is singular", at: node.location)
            }
        }
    }

    /// Names the first op that blocks the walk, and why.
    static func diagnose(_ g: Graph, known: [Bool], dependsOnInput: [Bool], coverage: [ValueID: [Int: Set<Int>]]) -> FlowError {
        for node in g.nodes.reversed() where node.results.allSatisfy({ known[$0] }) && node.op != "slice" && node.op != "gather" {
            let unknown = node.operands.indices.filter { !known[node.operands[$0]] }
            guard !unknown.isEmpty else { continue }
            let shapes = node.operands.map { g.type(of: $0).description }.joined(separator: ", ")
            let what = "\(node.op)(\(shapes))"
            if unknown.count > 1 {
                let which = unknown.map { "operand \($0)" }.joined(separator: " and ")
                return FlowError("\(what) is not invertible: \(which) both depend on the input, so neither can be recovered from the result before the other", at: node.location)
            }
            guard let rule = InverseRule.table[node.op] else {
                let reason = ["relu": "relu maps every negative input to 0", "abs": "abs maps x and -x to the same value",
                              "square": "square maps x and -x to the same value", "silu": "silu is not monotonic",
                              "gelu": "gelu is not monotonic", "sin": "sin is periodic", "cos": "cos is periodic"][node.op]
                    ?? "\(node.op) has no inverse (it is not a bijection of operand \(unknown[0]))"
                return FlowError("\(what) is not invertible on the path from input to output: \(reason)", at: node.location)
            }
            let note = rule.note.isEmpty ? "" : " (\(rule.note))"
            if node.operands.count > 1 && !rule.positions(node, g).contains(unknown[0]) && ["add", "sub", "mul", "div"].contains(node.op) {
                return FlowError("\(what) is not invertible in operand \(unknown[0]): the operand is broadcast, so the result repeats its values", at: node.location)
            }
            return FlowError("\(what) is not invertible in operand \(unknown[0])\(note)", at: node.location)
        }
        for (value, axes) in coverage where !known[value] {
            let size = axes.map { axis, set in "axis \(axis): \(set.count) of \(g.type(of: value).size(ofAxis: axis) ?? 0)" }.joined(separator: "; ")
            return FlowError("the flow keeps only part of a \(g.type(of: value)) value (\(size) positions reach the output); a bijection must use every element", at: locationOfProducer(g, value))
        }
        return FlowError("the output does not determine the input: part of the input never reaches the output", at: .synthetic("inverse analysis"))
    }

    static func locationOfProducer(_ g: Graph, _ v: ValueID) -> SourceLocation {
        g.nodes.first(where: { $0.results.contains(v) })?.location ?? .synthetic("input")
    }
}
