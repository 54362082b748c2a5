import CLLVM
import FlowIR

/// The calls an entry point (or a loop body) makes, as steps: single kernel calls, loops over a
/// table of repeated calls (CallRerolling), row-parallel regions. Call sites are described by
/// where their arguments live (MemoryPlan) before any address is computed, so that repeated runs
/// can be found and each step emitted in whichever function (entry or segment) holds it.
extension FunctionLowering {
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
    func call(_ site: CallSite, addresses: [IRBuilder.Value], extent: IRBuilder.Value) {
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
}
