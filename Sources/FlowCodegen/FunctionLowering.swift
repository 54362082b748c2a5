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

    init(graph: Graph, builder: IRBuilder, fold: @escaping (Graph) throws -> [ValueID: ConstantGlobals.Constant], kernels: KernelCache) throws {
        let constants = try fold(graph)
        self.fold = fold
        self.kernels = kernels
        self.graph = graph
        let dependsOnInput = graph.valuesDependingOnInputs()
        self.plannedKernels = KernelPlanner.plan(graph, dependsOnInput: dependsOnInput)
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
                               regions: regions.map(\.kernels))
        // convolutions stage one sample's patches in the scratch (loops size theirs in lowerBodies)
        for node in graph.nodes where node.op == "conv2d" && dependsOnInput.contains(node.operands[0]) {
            scratch.fixed = max(scratch.fixed, OpLowering.im2colFloats(node, graph))
        }
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
            out += "  k\(i): \(k.describe(graph, names: names))   → \(place)\n"
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
        // the entry point keeps its input and output checks, optimised. Emitting the calls into
        // the entry itself cost 4% of TarFlow's compile (callgrind) and saved ~1k instructions
        // of address arithmetic per call, 0.4% of RealNVP's batch-1 log_prob.
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
        b.ret(b.i32(0))
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

    /// What an entry point runs, in order: kernel calls, loops over repeated calls, regions.
    enum Step {
        case call(CallSite)
        /// `period` calls repeated: the sites of every repetition, in order
        case loop([CallSite], period: Int)
        case region(RowParallelRegions.Region)

        /// The calls the step emits (a loop emits its body once).
        var calls: Int {
            switch self {
            case .call: return 1
            case .loop(_, let period): return period
            case .region(let region): return region.kernels.count
            }
        }
    }

    /// A kernel call outside a row-parallel region, before it is emitted.
    struct CallSite {
        /// The planned kernel's index.
        var kernel: Int
        var function: IRBuilder.Value
        /// Where each pointer argument lives: the kernel's inputs, then its outputs.
        var arguments: [MemoryPlan.Location]
        /// The rows argument is batch · rowsPerSample (RowFolding).
        var rowsPerSample: Int
        /// A decoding step's position (DecodingStepFolding), else 0.
        var extent: Int

        /// Equal for calls that repeat one another: the same kernel, parameters and rows, and
        /// arguments of the same kinds; which workspace slice, which weights (a position
        /// embedding's row) and the position may differ.
        var shape: Shape

        struct Shape: Hashable {
            var function: UInt
            var arguments: [ArgumentKind]
            var rowsPerSample: Int
        }

        enum ArgumentKind: Hashable {
            case workspace, embedded, external
            case parameter(Int)
        }
    }

    /// The call site of a planned kernel outside a region.
    func callSite(_ index: Int) throws -> CallSite {
        let planned = plannedKernels[index]
        let (function, folded, stepFolded) = try kernelFunction(planned, inRegion: false)
        let arguments = (planned.inputs + planned.outputs).map { plan.location($0) }
        let kinds = arguments.map { location -> CallSite.ArgumentKind in
            switch location {
            case .workspace: return .workspace
            case .parameter(let p): return .parameter(p)
            case .constant(let c):
                if case .external = constants[c]! { return .external }
                return .embedded
            }
        }
        let rowsPerSample = folded?.rowsPerSample ?? RowParallelRegions.queryRows(planned, in: graph)?.rowsPerSample ?? 1
        return CallSite(kernel: index, function: function, arguments: arguments, rowsPerSample: rowsPerSample, extent: stepFolded?.extent ?? 0,
                        shape: .init(function: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(function))), arguments: kinds, rowsPerSample: rowsPerSample))
    }

    /// The kernels as steps: the row-parallel regions, and the calls between them with their
    /// repeated runs as loops (CallRerolling). Creates each kernel function the first time
    /// its structure is seen.
    func callSteps() throws -> [Step] {
        var steps: [Step] = [], pending: [CallSite] = []
        func reroll() {
            var ids: [CallSite.Shape: Int] = [:]
            let shapes = pending.map { site in ids[site.shape] ?? { ids[site.shape] = ids.count; return ids.count - 1 }() }
            for item in CallRerolling.items(shapes) {
                switch item {
                case .call(let i): steps.append(.call(pending[i]))
                case .loop(let first, let period, let count): steps.append(.loop(Array(pending[first..<first + period * count]), period: period))
                }
            }
            pending = []
        }
        let regionAt = Dictionary(uniqueKeysWithValues: regions.map { ($0.kernels.lowerBound, $0) })
        var index = 0
        while index < plannedKernels.count {
            if let region = regionAt[index] {
                reroll()
                steps.append(.region(region))
                index = region.kernels.upperBound
            } else {
                pending.append(try callSite(index))
                index += 1
            }
        }
        reroll()
        return steps
    }

    /// Emits `steps` into the current function (`name`: its name, for the tasks and tables it creates).
    func emitSteps(_ steps: ArraySlice<Step>, name: String) throws {
        // addresses computed between the steps (not inside a loop or a region's branches)
        // dominate every later step: each is computed once (these functions are not optimised)
        var computed: [MemoryPlan.Location: IRBuilder.Value] = [:]
        for step in steps {
            switch step {
            case .call(let site):
                let addresses = site.arguments.map { location in
                    if let known = computed[location] { return known }
                    let address = address(of: location)
                    computed[location] = address
                    return address
                }
                call(site, addresses: addresses, extent: b.i64(site.extent))
            case .loop(let sites, let period):
                emitLoop(sites, period: period, name: name)
            case .region(let region):
                try emitRegion(region, name: "\(name)_rows_\(region.kernels.lowerBound)")
            }
        }
    }

    /// Calls a site's kernel function with these argument addresses and position.
    private func call(_ site: CallSite, addresses: [IRBuilder.Value], extent: IRBuilder.Value) {
        let rows = site.rowsPerSample == 1 ? batch! : b.mul(batch, b.i64(site.rowsPerSample))
        _ = b.call(site.function, kernels.type(arguments: site.arguments.count), addresses + [rows, scratchAddress, weightTable, b.i64(0), extent])
    }

    /// One loop over `sites.count / period` repetitions of `period` calls. What differs between
    /// repetitions is read from constant tables with one row per repetition: a workspace offset
    /// (fixed + batch · perSample) or a position from an i64 table, an embedded weight's address
    /// from a pointer table, an external weight's index into the weight table from the i64 table.
    func emitLoop(_ sites: [CallSite], period: Int, name: String) {
        let count = sites.count / period
        enum Source { case same, integers(Int), pointer(Int) }
        var integerColumns = 0, pointerColumns = 0
        var argumentSources: [[Source]] = [], extentSources: [Source] = []
        for k in 0..<period {
            let repetitions = stride(from: k, to: sites.count, by: period).map { sites[$0] }
            argumentSources.append(sites[k].arguments.indices.map { a in
                if repetitions.allSatisfy({ $0.arguments[a] == sites[k].arguments[a] }) { return .same }
                switch sites[k].shape.arguments[a] {
                case .workspace: defer { integerColumns += 2 }; return .integers(integerColumns)
                case .external: defer { integerColumns += 1 }; return .integers(integerColumns)
                case .embedded: defer { pointerColumns += 1 }; return .pointer(pointerColumns)
                case .parameter: fatalError("call sites of one shape pass the same parameters")
                }
            })
            if repetitions.allSatisfy({ $0.extent == sites[k].extent }) {
                extentSources.append(.same)
            } else {
                extentSources.append(.integers(integerColumns))
                integerColumns += 1
            }
        }
        var integers: [Int] = [], pointers: [IRBuilder.Value?] = []
        for r in 0..<count {
            for k in 0..<period {
                let site = sites[r * period + k]
                for (a, source) in argumentSources[k].enumerated() {
                    switch (source, site.arguments[a]) {
                    case (.same, _): break
                    case (_, .workspace(let fixed, let perSample)): integers += [fixed, perSample]
                    case (_, .constant(let c)):
                        switch constants[c]! {
                        case .global(let global): pointers.append(global)
                        case .external(let index): integers.append(index)
                        }
                    case (_, .parameter): fatalError("call sites of one shape pass the same parameters")
                    }
                }
                if case .integers = extentSources[k] { integers.append(site.extent) }
            }
        }
        let integerTable = b.constantIndexArray(integers.isEmpty ? [0] : integers, name: "\(name).calls")
        let pointerTable = pointers.isEmpty ? nil : b.constantPointerArray(pointers, name: "\(name).weights")
        b.loop(b.i64(count)) { r in
            let integerRow = b.mul(r, b.i64(integerColumns)), pointerRow = b.mul(r, b.i64(pointerColumns))
            func integer(_ c: Int) -> IRBuilder.Value {
                LLVMBuildLoad2(b.builder, b.i64, b.element(integerTable, b.add(integerRow, b.i64(c)), type: b.i64), "")!
            }
            for k in 0..<period {
                let site = sites[k]
                let addresses = argumentSources[k].indices.map { a -> IRBuilder.Value in
                    switch (argumentSources[k][a], site.shape.arguments[a]) {
                    case (.same, _): return address(of: site.arguments[a])
                    case (.integers(let c), .workspace): return b.element(workspace, b.add(integer(c), b.mul(batch, integer(c + 1))))
                    case (.integers(let c), _): return LLVMBuildLoad2(b.builder, b.pointer, b.element(weightTable, integer(c), type: b.pointer), "")!
                    case (.pointer(let c), _):
                        return LLVMBuildLoad2(b.builder, b.pointer, b.element(pointerTable!, b.add(pointerRow, b.i64(c)), type: b.pointer), "")!
                    }
                }
                let extent: IRBuilder.Value
                if case .integers(let c) = extentSources[k] { extent = integer(c) } else { extent = b.i64(site.extent) }
                call(site, addresses: addresses, extent: extent)
            }
        }
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
        let firstHalf = LLVMBuildUDiv(b.builder, allRows, b.i64(2), "")!
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

    /// batch ≥ 1 (else return 2), every input value finite (else return 1).
    mutating func emitInputChecks() throws {
        let bad = b.block("bad_batch"), check = b.block("check_input")
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLT, batch, b.i64(1), "")!, bad, check)
        b.position(at: bad)
        b.ret(b.i32(2))
        b.position(at: check)
        try returnUnlessFinite(Array(graph.inputs.indices), code: 1)
    }

    /// Every output value finite, else return 3: the compiled code never hands back a silent NaN.
    mutating func emitOutputChecks() throws {
        try returnUnlessFinite(graph.outputs.indices.map { graph.inputs.count + $0 }, code: 3)
    }

    /// Returns `code` unless every value of the given (batched) parameters is finite.
    mutating func returnUnlessFinite(_ parameterIndices: [Int], code: Int) throws {
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
        b.ret(b.i32(code))
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
