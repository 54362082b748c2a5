import CFlowcABI
import CLLVM
import FlowIR
import FlowInterpreter

/// Lowers one derived graph (an entry point, or the body of a `fixed_point` loop) to an LLVM
/// function `i32 name(const float *in..., float *out..., i64 batch, void *workspace)`.
/// Values that do not depend on the input were evaluated at compile time and are globals;
/// the other nodes are grouped into kernels (`KernelPlanner`) whose loop nests over explicit
/// buffers `OpLowering` emits. The workspace holds the planned buffers, then scratch for loops.
struct FunctionLowering {
    /// The graph lowered; inside a kernel, the kernel's own graph when it was folded (RowFolding).
    var graph: Graph
    let b: IRBuilder
    /// Compile-time values (weights and everything computed from them only): embedded globals
    /// or entries of the external weight table.
    let constants: [ValueID: ConstantGlobals.Constant]
    /// The external weight table parameter (NULL when the weights are embedded).
    var weightTable: IRBuilder.Value!
    let plan: MemoryPlan
    var batch: IRBuilder.Value!
    var workspace: IRBuilder.Value!
    var parameters: [IRBuilder.Value] = []
    /// Inside a kernel: its pointer parameters, by the value they carry, and its scratch.
    var kernelAddresses: [ValueID: IRBuilder.Value] = [:]
    var kernelScratch: IRBuilder.Value?
    var kernelWeights: IRBuilder.Value?
    /// Inside a kernel: its `part` argument (ColumnSplit).
    var kernelPart: IRBuilder.Value?
    /// Inside a kernel: its `extent` argument (the decoding position of DecodingStepFolding).
    var kernelExtent: IRBuilder.Value?

    let kernels: KernelCache

    /// The kernels of this entry point, in execution order.
    let plannedKernels: [Kernel]
    /// Runs of them that two threads run row by row (RowParallelRegions).
    let regions: [RowParallelRegions.Region]
    /// The kernel runs called by one loop each (CallRerolling): kernels, and calls per repetition.
    private(set) var loops: [(kernels: Range<Int>, period: Int)] = []
    /// Region bodies (fixed_point loops), lowered to their own functions before the caller.
    var bodies: [Int: LoweredBody] = [:]
    /// Scratch floats after the planned workspace: for loops, two copies of the iterate and the
    /// body's own workspace.
    var scratch: (fixed: Int, perSample: Int) = (0, 0)
    /// Compile-time constants of a graph (the entry's or a body's).
    let fold: (Graph) throws -> [ValueID: ConstantGlobals.Constant]

    struct LoweredBody {
        var function: IRBuilder.Value
        var type: LLVMTypeRef
        var workspace: (fixed: Int, perSample: Int)
    }

    init(graph unmarked: Graph, builder: IRBuilder, fold: @escaping (Graph) throws -> [ValueID: ConstantGlobals.Constant], kernels: KernelCache) throws {
        let constants = try fold(unmarked)
        self.fold = fold
        self.kernels = kernels
        // decoding caches grown in place (their concats and attentions carry the buffer's stride)
        let chains = CacheChains.mark(unmarked)
        let graph = chains.graph
        self.graph = graph
        let dependsOnInput = graph.valuesDependingOnInputs()
        self.plannedKernels = ProductPairs.pair(KernelPlanner.plan(graph, dependsOnInput: dependsOnInput), in: graph)
        self.b = builder
        self.constants = constants
        var outputs: [ValueID: Int] = [:]
        for (i, v) in graph.outputs.enumerated() where outputs[v] == nil && !graph.inputs.contains(v) && constants[v] == nil {
            outputs[v] = graph.inputs.count + i
        }
        var inputs: [ValueID: Int] = [:]
        for (i, v) in graph.inputs.enumerated() { inputs[v] = i }
        self.regions = RowParallelRegions.find(plannedKernels, in: graph)
        self.plan = MemoryPlan(graph: graph, kernels: plannedKernels, constants: Set(constants.keys), outputParameters: outputs, inputParameters: inputs,
                               regions: regions.map(\.kernels), chains: chains)
        if let clash = plan.firstOverlap(in: plannedKernels, graph: graph) {
            throw FlowError("internal: the memory plan puts kernel \(clash.kernel)'s result v\(clash.output) over its operand v\(clash.input)", at: .synthetic("codegen"))
        }
        // convolutions stage one sample's patches in the scratch (loops size theirs in lowerBodies)
        for node in graph.nodes where node.op == "conv2d" && dependsOnInput.contains(node.operands[0]) {
            scratch.fixed = max(scratch.fixed, OpLowering.im2colFloats(node, graph))
        }
        // a product pair's second half sums into the scratch
        for kernel in plannedKernels { scratch.perSample = max(scratch.perSample, ProductPairs.scratchPerRow(kernel, in: graph)) }
    }

    /// Workspace floats of one call: planned buffers plus loop scratch.
    var workspaceFloats: (fixed: Int, perSample: Int) {
        (plan.fixedFloats + scratch.fixed, plan.perSampleFloats + scratch.perSample)
    }

    /// Where loop scratch starts: after the planned buffers.
    var scratchAddress: IRBuilder.Value {
        b.element(workspace, b.add(b.i64(plan.fixedFloats), b.mul(batch, b.i64(plan.perSampleFloats))))
    }

    /// The kernels and the memory plan, one line each, for `flowc compile --emit-kernels`.
    func describeKernels(name: String) -> String {
        func names(_ v: ValueID) -> String {
            if let i = graph.inputs.firstIndex(of: v) { return graph.inputNames[i] }
            if let o = graph.outputs.firstIndex(of: v) { return "out\(o)" }
            if case .external(let i)? = constants[v] { return "weights[\(i)]" }
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
            if let region = regions.first(where: { $0.kernels.lowerBound == i }) {
                out += "  rows k\(region.kernels.lowerBound)–k\(region.kernels.upperBound - 1): a row-parallel region, \(region.rowsPerSample) rows per sample, two halves from \(region.minimumRows) rows at batch ≤ \(FLOWC_SPLIT_MAXIMUM_ROWS)\n"
            }
            if let loop = loops.first(where: { $0.kernels.lowerBound == i }) {
                out += "  calls k\(loop.kernels.lowerBound)–k\(loop.kernels.upperBound - 1): one loop, \(loop.kernels.count / loop.period) repetitions of \(loop.period) calls (arguments from a table)\n"
            }
            out += "  k\(i): \(k.describe(graph, names: names, registers: b.registers))   → \(place)\n"
        }
        return out
    }


    /// The address of a value's first element.
    func address(_ v: ValueID) -> IRBuilder.Value {
        if let a = kernelAddresses[v] { return a }
        return address(of: plan.location(v))
    }

    /// The address of a planned location in the current function.
    func address(of location: MemoryPlan.Location) -> IRBuilder.Value {
        switch location {
        case .parameter(let p): return parameters[p]
        case .constant(let c):
            switch constants[c]! {
            case .global(let g): return g
            case .external(let i):
                return LLVMBuildLoad2(b.builder, b.pointer, b.element(weightTable, b.i64(i), type: b.pointer), "")!
            }
        case .workspace(let fixed, let perSample):
            // no `+ 0` or `· 1`: segments are not optimised, what is written here is what runs
            let perSampleOffset = perSample == 1 ? batch! : b.mul(batch, b.i64(perSample))
            let offset = perSample == 0 ? b.i64(fixed) : fixed == 0 ? perSampleOffset : b.add(b.i64(fixed), perSampleOffset)
            return b.element(workspace, offset)
        }
    }

    /// Runtime extent of a value's full shape (batch first when batched).
    func extents(_ v: ValueID) -> [IRBuilder.Value] {
        let t = graph.type(of: v)
        return (t.batched ? [batch] : []) + t.dims.map { b.i64($0) }
    }

    /// Emits the function. An entry point (`checkInput`) first rejects batch < 1 (code 2) and
    /// non-finite inputs (code 1).
    mutating func emit(name: String, checkInput: Bool = true) throws {
        try lowerBodies(name: name)
        let inputCount = graph.inputs.count
        let f = b.declare(name, b.functionType(b.i32, entryParameterTypes))
        if !checkInput { LLVMSetLinkage(f, LLVMInternalLinkage) }
        b.begin(f)
        bindEntryParameters()
        if checkInput { try emitInputChecks() }
        // One call per planned kernel, passing the addresses of what it reads and writes; kernels
        // with the same structure and types are one function (within and across entry points,
        // so the sweeps of an unrolled inverse compile once), and runs of calls that repeat
        // (a token-by-token sampler's tokens) are one loop over a table of their arguments
        // (CallRerolling). The calls go into segment functions of at most `segmentSize` calls
        // (code generation is superlinear in a basic block's length), which are only calls and
        // address arithmetic and are not optimised (`optnone`: the fast instruction selector);
        // the entry point keeps its input and output checks, optimised. (Calls in the optimised
        // entry itself: TarFlow's compile 4% more instructions; unoptimised, RealNVP's batch-1
        // log_prob runs ~1.4k more instructions of address arithmetic, 0.4%.)
        let steps = try callSteps()
        loops = steps.compactMap { step in
            guard case .loop(let sites, let period) = step else { return nil }
            return (sites[0].kernel..<sites[sites.count - 1].kernel + 1, period)
        }
        if steps.count <= 1 {
            try emitSteps(steps[...], name: name)
        } else {
            var segments: [ArraySlice<Step>] = [], first = 0, calls = 0
            for (i, step) in steps.enumerated() {
                if calls + step.calls > FunctionLowering.segmentSize && i > first {
                    segments.append(steps[first..<i])
                    (first, calls) = (i, 0)
                }
                calls += step.calls
            }
            segments.append(steps[first...])
            for (index, segment) in segments.enumerated() {
                let function = b.declare("\(name)_segment_\(index)", b.functionType(b.void, entryParameterTypes))
                LLVMSetLinkage(function, LLVMInternalLinkage)
                LLVMAddAttributeAtIndex(function, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), kernels.noinline)
                LLVMAddAttributeAtIndex(function, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), kernels.optnone)
                let caller = b.currentBlock, arguments = parameters + [batch!, workspace!, weightTable!]
                b.begin(function)
                var inner = self
                inner.bindEntryParameters()
                try inner.emitSteps(segment, name: "\(name)_segment_\(index)")
                b.ret()
                b.function = f
                b.position(at: caller)
                _ = b.call(function, LLVMGlobalGetValueType(function), arguments)
            }
        }
        // outputs not computed in place (inputs, constants, aliases, repeats) are copied
        for (i, v) in graph.outputs.enumerated() where plan.location(v) != .parameter(inputCount + i) {
            let n = b.mul(graph.type(of: v).batched ? batch : b.i64(1), b.i64(graph.type(of: v).elementsPerSample))
            let source = address(v), destination = parameters[inputCount + i]
            if graph.type(of: v).batched {
                b.loop(n) { j in b.store(b.load(source, j), destination, j) }
            } else {
                // an output shared by the batch (never for flows; kept total): broadcast per row
                b.loop(batch) { r in
                    b.loop(b.i64(graph.type(of: v).elementsPerSample)) { j in
                        b.store(b.load(source, j), destination, b.add(b.mul(r, b.i64(graph.type(of: v).elementsPerSample)), j))
                    }
                }
            }
        }
        if checkInput { try emitOutputChecks() }
        b.ret(b.i32(Int(FLOWC_OK)))
    }

    /// An entry point's parameters (and its segments'): inputs, outputs, batch, workspace, weights.
    var entryParameterTypes: [LLVMTypeRef] {
        Array(repeating: b.pointer, count: graph.inputs.count + graph.outputs.count) + [b.i64, b.pointer, b.pointer]
    }

    /// Binds the current function's parameters, laid out as `entryParameterTypes`.
    mutating func bindEntryParameters() {
        let count = graph.inputs.count + graph.outputs.count
        parameters = (0..<count).map { b.parameter($0) }
        batch = b.parameter(count)
        workspace = b.parameter(count + 1)
        weightTable = b.parameter(count + 2)
    }

    /// The kernel function of a planned kernel, created the first time its structure is seen,
    /// and the row or decoding-step folding it is called through. In a region (`inRegion`), an
    /// attention kernel computes a range of query rows (RowParallelRegions.queryRowKernel).
    func kernelFunction(_ planned: Kernel, inRegion: Bool) throws -> (function: IRBuilder.Value, folded: RowFolding.Folded?, stepFolded: DecodingStepFolding.Folded?) {
        let values = planned.inputs + planned.outputs
        // kernels that differ only in rows per sample or in a decoding step's position are one
        let folded = RowFolding.fold(planned, in: graph)
        let stepFolded = folded == nil ? DecodingStepFolding.fold(planned, in: graph) : nil
        var (kernel, kernelGraph) = folded.map { ($0.kernel, $0.graph) } ?? stepFolded.map { ($0.kernel, $0.graph) } ?? (planned, graph)
        // an attention over whole sequences is always its query-row kernel: in a region on the
        // region's rows, elsewhere on all rows (one kernel function, not two)
        if folded == nil && (inRegion || RowParallelRegions.queryRows(planned, in: graph) != nil) {
            kernel = RowParallelRegions.queryRowKernel(kernel)
        }
        let function = try kernels.kernel(for: kernel, in: kernelGraph) { function in
            let (caller, callerFunction) = (b.currentBlock, b.function)
            b.begin(function)
            var inner = self
            inner.graph = kernelGraph
            inner.kernelAddresses = [:]
            inner.batch = b.parameter(values.count)
            inner.kernelScratch = b.parameter(values.count + 1)
            inner.kernelWeights = b.parameter(values.count + 2)
            inner.kernelPart = b.parameter(values.count + 3)
            inner.kernelExtent = b.parameter(values.count + 4)
            for (p, v) in (kernel.inputs + kernel.outputs).enumerated().reversed() { inner.kernelAddresses[v] = b.parameter(p) }
            var lowering = OpLowering(function: inner)
            try lowering.emit(kernel)
            b.ret()
            b.function = callerFunction
            b.position(at: caller)
        }
        return (function, folded, stepFolded)
    }

    /// Calls one kernel of a region on rows [first, first + count): a row-wise kernel with its
    /// batched pointers advanced to the first row, columns never split; an attention kernel on
    /// those query rows of the whole batch.
    func emitRegionCall(_ planned: Kernel, rows range: (first: IRBuilder.Value, count: IRBuilder.Value)) throws {
        let values = planned.inputs + planned.outputs
        let (function, folded, stepFolded) = try kernelFunction(planned, inRegion: true)
        var addresses = values.map { address($0) }
        let part: IRBuilder.Value
        if let folded {
            addresses = zip(values, addresses).map { v, a in
                let t = graph.type(of: v)
                return t.batched ? b.element(a, b.mul(range.first, b.i64(t.elementsPerSample / folded.rowsPerSample))) : a
            }
            part = b.i64(ColumnSplit.noSplit)
        } else {
            part = range.first
        }
        _ = b.call(function, kernels.type(arguments: values.count), addresses + [range.count, scratchAddress, weightTable, part, b.i64(stepFolded?.extent ?? 0)])
    }

    /// A row-parallel region: through the hook as two row halves when the batch is at most
    /// `FLOWC_SPLIT_MAXIMUM_ROWS`, the rows at least the region's minimum and the hook set and
    /// willing; otherwise its kernels one after another (each may still split its columns).
    func emitRegion(_ region: RowParallelRegions.Region, name: String) throws {
        let members = plannedKernels[region.kernels]
        let rows = b.mul(batch, b.i64(region.rowsPerSample))
        let entryArguments = parameters + [LLVMBuildIntToPtr(b.builder, batch, b.pointer, "")!, workspace!, weightTable!]
        // void task(context, half): the context holds the entry's arguments
        let (caller, callerFunction) = (b.currentBlock, b.function)
        let task = b.declare(name, b.functionType(b.void, [b.pointer, b.i64]))
        LLVMSetLinkage(task, LLVMInternalLinkage)
        LLVMAddAttributeAtIndex(task, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), kernels.noinline)
        LLVMAddAttributeAtIndex(task, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), kernels.optnone)
        b.begin(task)
        var inner = self
        let context = b.parameter(0), half = b.parameter(1)
        let slots = (0..<entryArguments.count).map { LLVMBuildLoad2(b.builder, b.pointer, b.element(context, b.i64($0), type: b.pointer), "")! }
        inner.parameters = Array(slots.prefix(parameters.count))
        inner.batch = LLVMBuildPtrToInt(b.builder, slots[parameters.count], b.i64, "")!
        inner.workspace = slots[parameters.count + 1]
        inner.weightTable = slots[parameters.count + 2]
        let allRows = b.mul(inner.batch, b.i64(region.rowsPerSample))
        // the caller's half (0) takes the odd row: it starts at once, the worker after the hand-over
        let firstHalf = LLVMBuildUDiv(b.builder, b.add(allRows, b.i64(1)), b.i64(2), "")!
        let second = LLVMBuildICmp(b.builder, LLVMIntNE, half, b.i64(0), "")!
        let first = b.select(second, firstHalf, b.i64(0))
        let count = b.select(second, b.sub(allRows, firstHalf), firstHalf)
        for kernel in members { try inner.emitRegionCall(kernel, rows: (first, count)) }
        b.ret()
        b.function = callerFunction
        b.position(at: caller)

        let small = LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntULE, batch, b.i64(Int(FLOWC_SPLIT_MAXIMUM_ROWS)), "")!,
                                 LLVMBuildICmp(b.builder, LLVMIntUGE, rows, b.i64(region.minimumRows), "")!, "")!
        try ColumnSplit.offer(b, when: small, task: task, context: entryArguments) {
            for index in region.kernels {
                let site = try callSite(index)
                call(site, addresses: site.arguments.map(address(of:)), extent: b.i64(site.extent))
            }
        }
    }

    /// Kernel calls per segment function when an entry point has more (see `emit`).
    static let segmentSize = 100

    /// batch ≥ 1 (else FLOWC_ERROR_BAD_BATCH), no buffer overlapping another that it must not
    /// (else FLOWC_ERROR_OVERLAP), every input value finite (else FLOWC_ERROR_NONFINITE_INPUT).
    mutating func emitInputChecks() throws {
        FunctionLowering.returnIfBadBatch(b, batch)
        returnIfBuffersOverlap(code: FLOWC_ERROR_OVERLAP)
        try returnUnlessFinite(Array(graph.inputs.indices), code: FLOWC_ERROR_NONFINITE_INPUT)
    }

    /// Returns `code` when an output overlaps an input, another output or the workspace, or an
    /// input overlaps the workspace: kernels write each buffer while reading the others, and
    /// their pointers are `noalias` (KernelCache.pointersDoNotAlias). Inputs may share memory.
    func returnIfBuffersOverlap(code: Int32) {
        let all = graph.inputs + graph.outputs
        FunctionLowering.returnIfBuffersOverlap(b, parameters: parameters, floatsPerSample: all.map { graph.type(of: $0).elementsPerSample },
                                                inputs: graph.inputs.count, batch: batch, workspace: workspace, workspaceFloats: workspaceFloats, code: code)
    }

    /// Returns FLOWC_ERROR_BAD_BATCH unless batch ≥ 1; continues in a new block otherwise.
    static func returnIfBadBatch(_ b: IRBuilder, _ batch: IRBuilder.Value) {
        let bad = b.block("bad_batch"), valid = b.block("valid_batch")
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLT, batch, b.i64(1), "")!, bad, valid)
        b.position(at: bad)
        b.ret(b.i32(Int(FLOWC_ERROR_BAD_BATCH)))
        b.position(at: valid)
    }

    /// The rule of `returnIfBuffersOverlap` for an entry point's `parameters` (its first `inputs`
    /// are inputs, the rest outputs; `floatsPerSample` of each) and its workspace.
    static func returnIfBuffersOverlap(_ b: IRBuilder, parameters: [IRBuilder.Value], floatsPerSample: [Int], inputs: Int, batch: IRBuilder.Value,
                                       workspace: IRBuilder.Value, workspaceFloats space: (fixed: Int, perSample: Int), code: Int32) {
        let buffers = zip(parameters, floatsPerSample).map { extent(b, $0, floats: b.mul(batch, b.i64($1))) }
        let work = extent(b, workspace, floats: b.add(b.i64(space.fixed), b.mul(batch, b.i64(space.perSample))))
        var pairs: [(Extent, Extent)] = []
        for o in inputs..<buffers.count {
            for other in 0..<o { pairs.append((buffers[o], buffers[other])) }
        }
        pairs += buffers.map { ($0, work) }
        returnIfOverlapping(b, pairs, code: code)
    }

    /// A buffer's addresses [start, end) as integers.
    typealias Extent = (start: IRBuilder.Value, end: IRBuilder.Value)

    /// The extent of `floats` f32 values from `start`.
    static func extent(_ b: IRBuilder, _ start: IRBuilder.Value, floats: IRBuilder.Value) -> Extent {
        let address = LLVMBuildPtrToInt(b.builder, start, b.i64, "")!
        return (address, b.add(address, b.mul(floats, b.i64(MemoryLayout<Float>.size))))
    }

    /// Returns `code` when the two extents of any pair overlap; continues in a new block otherwise.
    static func returnIfOverlapping(_ b: IRBuilder, _ pairs: [(Extent, Extent)], code: Int32) {
        var overlapping = LLVMConstInt(b.i1, 0, 0)!
        for (x, y) in pairs {
            // [x.start, x.end) and [y.start, y.end) overlap iff each starts before the other ends
            let both = LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntULT, x.start, y.end, "")!, LLVMBuildICmp(b.builder, LLVMIntULT, y.start, x.end, "")!, "")!
            overlapping = LLVMBuildOr(b.builder, overlapping, both, "")!
        }
        let overlap = b.block("overlap"), disjoint = b.block("disjoint")
        b.condBranch(overlapping, overlap, disjoint)
        b.position(at: overlap)
        b.ret(b.i32(Int(code)))
        b.position(at: disjoint)
    }

    /// Every output value finite, else FLOWC_ERROR_NONFINITE_OUTPUT: the compiled code never
    /// hands back a silent NaN.
    mutating func emitOutputChecks() throws {
        try returnUnlessFinite(graph.outputs.indices.map { graph.inputs.count + $0 }, code: FLOWC_ERROR_NONFINITE_OUTPUT)
    }

    /// Returns `code` unless every value of the given (batched) parameters is finite.
    mutating func returnUnlessFinite(_ parameterIndices: [Int], code: Int32) throws {
        let nonfinite = b.block("nonfinite")
        let all = graph.inputs + graph.outputs
        for p in parameterIndices {
            let count = b.mul(batch, b.i64(graph.type(of: all[p]).elementsPerSample))
            b.loop(count) { j in
                let v = b.load(parameters[p], j)
                let next = b.block("finite")
                b.condBranch(b.fcmp(LLVMRealOLT, b.intrinsic("llvm.fabs", [v]), b.f32(Double(Float.infinity))), next, nonfinite)
                b.position(at: next)
            }
        }
        let done = b.block("checked")
        b.branch(done)
        b.position(at: nonfinite)
        b.ret(b.i32(Int(code)))
        b.position(at: done)
    }

    /// Lowers the bodies the graph's fixed_point nodes run, and sizes the loop scratch:
    /// two copies of the iterate (current and next) and the body's workspace.
    mutating func lowerBodies(name: String) throws {
        for node in graph.nodes where node.op == "fixed_point" {
            guard case .int(let index)? = node.attributes["body"] else { continue }
            if bodies[index] == nil {
                var body = try FunctionLowering(graph: graph.bodies[index], builder: b, fold: fold, kernels: kernels)
                let saved = b.function
                let savedBlock = saved.map { _ in b.currentBlock }
                try body.emit(name: "\(name)_body\(index)", checkInput: false)
                b.function = saved
                if let savedBlock { b.position(at: savedBlock) }
                let inputs = graph.bodies[index].inputs.count
                bodies[index] = LoweredBody(function: LLVMGetNamedFunction(b.module, "\(name)_body\(index)")!,
                                            type: b.functionType(b.i32, Array(repeating: b.pointer, count: inputs + 1) + [b.i64, b.pointer, b.pointer]),
                                            workspace: body.workspaceFloats)
            }
            let u = graph.type(of: node.results[0])
            let iterate = MemoryPlan.rounded(u.elementsPerSample)
            let w = bodies[index]!.workspace
            scratch.fixed = max(scratch.fixed, w.fixed + (u.batched ? 0 : 2 * iterate))
            scratch.perSample = max(scratch.perSample, w.perSample + (u.batched ? 2 * iterate : 0))
        }
    }
}
