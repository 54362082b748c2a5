import CLLVM
import FlowIR
import FlowInterpreter

/// Lowers one derived graph (an entry point) to an LLVM function
/// `i32 name(const float *in, float *out0, [float *out1,] i64 batch, void *workspace)`.
/// Values that do not depend on the input were evaluated at compile time and are globals;
/// every other node becomes a loop nest over explicit buffers (`OpLowering`).
struct FunctionLowering {
    let graph: Graph
    let b: IRBuilder
    /// Compile-time values (weights and everything computed from them only), as globals.
    let constants: [ValueID: IRBuilder.Value]
    let plan: MemoryPlan
    var batch: IRBuilder.Value!
    var workspace: IRBuilder.Value!
    var parameters: [IRBuilder.Value] = []
    /// Inside a kernel: its pointer parameters, by the value they carry.
    var kernelAddresses: [ValueID: IRBuilder.Value] = [:]

    let kernels: KernelCache

    init(graph: Graph, builder: IRBuilder, constants: [ValueID: IRBuilder.Value], kernels: KernelCache) {
        self.kernels = kernels
        self.graph = graph
        self.b = builder
        self.constants = constants
        var outputs: [ValueID: Int] = [:]
        for (i, v) in graph.outputs.enumerated() where outputs[v] == nil && !graph.inputs.contains(v) && constants[v] == nil {
            outputs[v] = i + 1
        }
        self.plan = MemoryPlan(graph: graph, constants: Set(constants.keys), outputParameters: outputs, inputParameters: [graph.inputs[0]: 0])
    }

    /// Bytes of workspace for a batch: (fixed + batch · perSample) floats.
    var workspaceFloats: (fixed: Int, perSample: Int) { (plan.fixedFloats, plan.perSampleFloats) }

    /// The address of a value's first element.
    func address(_ v: ValueID) -> IRBuilder.Value {
        if let a = kernelAddresses[v] { return a }
        switch plan.location(v) {
        case .parameter(let p): return parameters[p]
        case .constant(let c): return constants[c]!
        case .workspace(let fixed, let perSample):
            let offset = perSample == 0 ? b.i64(fixed) : b.add(b.i64(fixed), b.mul(batch, b.i64(perSample)))
            return b.element(workspace, offset)
        }
    }

    /// Runtime extent of a value's full shape (batch first when batched).
    func extents(_ v: ValueID) -> [IRBuilder.Value] {
        let t = graph.type(of: v)
        return (t.batched ? [batch] : []) + t.dims.map { b.i64($0) }
    }

    mutating func emit(name: String) throws {
        let outputCount = graph.outputs.count
        let type = b.functionType(b.i32, [b.pointer] + Array(repeating: b.pointer, count: outputCount) + [b.i64, b.pointer])
        let f = b.declare(name, type)
        b.begin(f)
        parameters = (0...outputCount).map { b.parameter($0) }
        batch = b.parameter(outputCount + 1)
        workspace = b.parameter(outputCount + 2)
        // batch ≥ 1, inputs finite
        let bad = b.block("bad_batch"), check = b.block("check_input")
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLT, batch, b.i64(1), "")!, bad, check)
        b.position(at: bad)
        b.ret(b.i32(2))
        b.position(at: check)
        let input = graph.inputs[0]
        let count = b.mul(batch, b.i64(graph.type(of: input).elementsPerSample))
        let nonfinite = b.block("nonfinite")
        try b.loop(count) { i in
            let x = b.load(parameters[0], i)
            let finite = b.fcmp(LLVMRealOLT, b.intrinsic("llvm.fabs", [x]), b.f32(Double(Float.infinity)))
            let next = b.block("finite")
            b.condBranch(finite, next, nonfinite)
            b.position(at: next)
        }
        let body = b.block("compute")
        b.branch(body)
        b.position(at: nonfinite)
        b.ret(b.i32(1))
        b.position(at: body)
        // One kernel function per node, taking its operands' and results' addresses and the
        // batch: nodes with the same op, attributes and types share one kernel (within and
        // across entry points, so the sweeps of an unrolled inverse compile once). Nodes that
        // do not depend on the input were evaluated at compile time.
        var dependsOnInput = Set(graph.inputs)
        for (i, node) in graph.nodes.enumerated() where node.operands.contains(where: dependsOnInput.contains) {
            dependsOnInput.formUnion(node.results)
            if node.op == "reshape" { continue }   // an alias: no code
            let values = node.operands + node.results
            let kernel = try kernels.kernel(for: node, in: graph) { kernel in
                let caller = b.currentBlock
                b.begin(kernel)
                var inner = self
                inner.batch = b.parameter(values.count)
                for (p, v) in values.enumerated().reversed() { inner.kernelAddresses[v] = b.parameter(p) }
                var lowering = OpLowering(function: inner)
                try lowering.emit(node)
                b.ret()
                b.function = f
                b.position(at: caller)
                _ = i
            }
            _ = b.call(kernel, kernels.type(arguments: values.count), values.map { address($0) } + [batch])
        }
        // outputs not computed in place (inputs, constants, aliases, repeats) are copied
        for (i, v) in graph.outputs.enumerated() where plan.location(v) != .parameter(i + 1) {
            let n = b.mul(graph.type(of: v).batched ? batch : b.i64(1), b.i64(graph.type(of: v).elementsPerSample))
            let source = address(v), destination = parameters[i + 1]
            if graph.type(of: v).batched {
                try b.loop(n) { j in b.store(b.load(source, j), destination, j) }
            } else {
                // an output shared by the batch (never for flows; kept total): broadcast per row
                try b.loop(batch) { r in
                    try b.loop(b.i64(graph.type(of: v).elementsPerSample)) { j in
                        b.store(b.load(source, j), destination, b.add(b.mul(r, b.i64(graph.type(of: v).elementsPerSample)), j))
                    }
                }
            }
        }
        b.ret(b.i32(0))
    }
}
