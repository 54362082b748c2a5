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

    /// The kernels of this entry point, in execution order.
    let plannedKernels: [Kernel]

    init(graph: Graph, builder: IRBuilder, constants: [ValueID: IRBuilder.Value], kernels: KernelCache) {
        self.kernels = kernels
        self.graph = graph
        var dependsOnInput = Set(graph.inputs)
        for node in graph.nodes where node.operands.contains(where: dependsOnInput.contains) { dependsOnInput.formUnion(node.results) }
        self.plannedKernels = KernelPlanner.plan(graph, dependsOnInput: dependsOnInput)
        self.b = builder
        self.constants = constants
        var outputs: [ValueID: Int] = [:]
        for (i, v) in graph.outputs.enumerated() where outputs[v] == nil && !graph.inputs.contains(v) && constants[v] == nil {
            outputs[v] = i + 1
        }
        self.plan = MemoryPlan(graph: graph, kernels: plannedKernels, constants: Set(constants.keys), outputParameters: outputs, inputParameters: [graph.inputs[0]: 0])
    }

    /// The kernels and the memory plan, one line each, for `flowc compile --emit-kernels`.
    func describeKernels(name: String) -> String {
        func names(_ v: ValueID) -> String {
            if let i = graph.inputs.firstIndex(of: v) { return graph.inputNames[i] }
            if let o = graph.outputs.firstIndex(of: v) { return "out\(o)" }
            return constants[v] != nil ? "c\(v)" : "v\(v)"
        }
        var out = "\(name): \(plannedKernels.count) kernels; workspace \(plan.fixedFloats) + \(plan.perSampleFloats)·B floats\n"
        for (i, k) in plannedKernels.enumerated() {
            let place: String
            switch plan.location(k.outputs[0]) {
            case .parameter(let p): place = "output parameter \(p)"
            case .constant: place = "constant"
            case .workspace(let fixed, let perSample): place = perSample == 0 && fixed < plan.fixedFloats ? "workspace[\(fixed)]" : "workspace[\(fixed) + \(perSample)·B]"
            }
            out += "  k\(i): \(k.describe(graph, names: names))   → \(place)\n"
        }
        return out
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
        // One call per planned kernel, passing the addresses of what it reads and writes; kernels
        // with the same structure and types are one function (within and across entry points,
        // so the sweeps of an unrolled inverse compile once).
        for kernel in plannedKernels {
            let values = kernel.inputs + kernel.outputs
            let function = try kernels.kernel(for: kernel, in: graph) { function in
                let caller = b.currentBlock
                b.begin(function)
                var inner = self
                inner.batch = b.parameter(values.count)
                for (p, v) in values.enumerated().reversed() { inner.kernelAddresses[v] = b.parameter(p) }
                var lowering = OpLowering(function: inner)
                try lowering.emit(kernel)
                b.ret()
                b.function = f
                b.position(at: caller)
            }
            _ = b.call(function, kernels.type(arguments: values.count), values.map { address($0) } + [batch])
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
