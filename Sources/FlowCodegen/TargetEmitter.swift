import CLLVM
import FlowIR
import Foundation

/// From an LLVM module to a shared object: target machine for the host (or a named CPU),
/// the new pass manager's pipeline (`pipeline`) and object files emitted in-process (the
/// module split over the cores by ModulePartitioner), then linked (SharedObjectLinker).
struct TargetEmitter {
    let options: ArtifactCompiler.Options

    /// Registers LLVM's x86 target and sets `codegenOptions` (idempotent).
    static func initializeX86() { _ = registered }

    private static let registered: Void = {
        LLVMInitializeX86TargetInfo()
        LLVMInitializeX86Target()
        LLVMInitializeX86TargetMC()
        LLVMInitializeX86AsmPrinter()
        let arguments = ["flowc"] + codegenOptions
        var pointers = arguments.map { UnsafePointer<CChar>(strdup($0)) }
        LLVMParseCommandLineOptions(Int32(arguments.count), &pointers, nil)
        for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) }
    }()

    /// LLVM's code generator without loop strength reduction. LSR and the analyses it needs
    /// (IV users, freeze canonicalisation) took 20% of e_fm's instruction selection and register
    /// allocation time (llc -time-passes), as every small kernel's vectorised loop is searched
    /// for formulae; the microkernel's k loop is the same 91 instructions per 4 inputs either
    /// way. Whole `flowc compile` (callgrind, one part): e_fm 2.09G → 1.76G instructions, TarFlow
    /// 2.29G → 1.99G, RealNVP 64-d 1.47G → 1.24G. Alternating calls of both builds in one
    /// process (one thread), with the kernels' `noalias` pointers (KernelCache): TarFlow's
    /// batch-256 log_prob 0.979x the time, a_nsf's batch-1 sample 0.970x, e_fm's batch-256
    /// sample 0.985x, f_meanflow's 0.983x, RealNVP 64-d 0.996–1.000x, the rest 0.98–1.01x
    /// (without `noalias`, RealNVP 64-d's small gather kernels had made it 1.016–1.022x).
    /// Process-wide: LLVM's options are global, so a host embedding Flowc shares them.
    static let codegenOptions = ["-disable-lsr"]

    /// The default target triple (this machine's).
    static var defaultTriple: String {
        let triple = LLVMGetDefaultTargetTriple()!
        defer { LLVMDisposeMessage(triple) }
        return String(cString: triple)
    }

    /// A target machine for `cpu` with `features` on `triple` (one per thread: they are not
    /// shared); the caller disposes of it.
    static func targetMachine(triple: String, cpu: String, features: String) throws -> LLVMTargetMachineRef {
        let location = SourceLocation.synthetic("codegen")
        var target: LLVMTargetRef?, error: UnsafeMutablePointer<CChar>?
        defer { LLVMDisposeMessage(error) }
        guard LLVMGetTargetFromTriple(triple, &target, &error) == 0, let target else {
            throw FlowError("no LLVM target for \(triple)", at: location)
        }
        guard let machine = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault) else {
            throw FlowError("LLVM cannot create a target machine for CPU '\(cpu)'", at: location)
        }
        return machine
    }

    /// A target machine for `options.cpu`, or for this machine (its CPU and features) when none is
    /// named; one per thread, as they are not shared. The caller disposes of it.
    func targetMachine() throws -> LLVMTargetMachineRef {
        TargetEmitter.initializeX86()
        guard let cpu = options.cpu else {
            let hostCPU = LLVMGetHostCPUName()!, hostFeatures = LLVMGetHostCPUFeatures()!
            defer { LLVMDisposeMessage(hostCPU); LLVMDisposeMessage(hostFeatures) }
            return try TargetEmitter.targetMachine(triple: TargetEmitter.defaultTriple, cpu: String(cString: hostCPU), features: String(cString: hostFeatures))
        }
        return try TargetEmitter.targetMachine(triple: TargetEmitter.defaultTriple, cpu: cpu, features: "")
    }

    /// Checks `module` and gives it `machine`'s triple and data layout, which the passes need.
    func prepare(_ module: LLVMModuleRef, for machine: LLVMTargetMachineRef) throws {
        var message: UnsafeMutablePointer<CChar>?
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &message) != 0 {
            let text = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw FlowError("internal: generated LLVM IR does not verify: \(text.prefix(2000))", at: .synthetic("codegen"))
        }
        LLVMDisposeMessage(message)
        LLVMSetTarget(module, TargetEmitter.defaultTriple)
        let layout = LLVMCreateTargetDataLayout(machine)!
        LLVMSetModuleDataLayout(module, layout)
        LLVMDisposeTargetData(layout)
    }

    /// Optimises `module` and writes its object file to `object` (on the calling thread).
    func compileObject(_ module: LLVMModuleRef, _ machine: LLVMTargetMachineRef, to object: String) throws {
        try optimise(module, machine)
        try emitObject(module, machine, to: object)
    }

    /// Optimises and emits `b`'s module and links it into the shared object `output` with the
    /// object files `separateObjects` gives (compiled on other threads meanwhile, such as
    /// `PreludeCompilation`'s; asked for just before linking).
    func emit(_ b: IRBuilder, output: String, listing: ArtifactCompiler.Listing?, separateObjects: () throws -> [String] = { [] }) throws -> String? {
        var timer = PhaseTimer()
        let main = try targetMachine()
        defer { LLVMDisposeTargetMachine(main) }
        try prepare(b.module, for: main)
        let blas = LLVMGetNamedFunction(b.module, OpLowering.sgemmSymbol) != nil
        timer.lap("verify")
        var message: UnsafeMutablePointer<CChar>?
        // A listing shows the whole optimised module: one part. Otherwise the module is split
        // over the cores (optimisation and instruction selection dominate compile time).
        let parts = listing == nil || listing == .kernels ? min(TargetEmitter.maximumParts, ProcessInfo.processInfo.activeProcessorCount) : 1
        let directory = try TargetEmitter.objectDirectory(for: output)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if parts > 1 {
            let pieces = try ModulePartitioner(parts: parts).split(b.module, context: b.context)
            timer.lap("split into \(parts) parts")
            let objects = pieces.indices.map { "\(directory)/part\($0).o" }
            nonisolated(unsafe) var failures = [Error?](repeating: nil, count: parts)
            // each part has its own context, module and target machine: nothing is shared
            nonisolated(unsafe) let shared = (pieces, objects, self)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                do {
                    let own = try shared.2.targetMachine()
                    defer { LLVMDisposeTargetMachine(own) }
                    var partTimer = PhaseTimer()   // how balanced the parts are
                    try shared.2.optimise(shared.0[part].module, own)
                    partTimer.lap("  part \(part): optimise")
                    try shared.2.emitObject(shared.0[part].module, own, to: shared.1[part])
                    partTimer.lap("  part \(part): emit")
                } catch {
                    failures[part] = error
                }
            }
            for piece in pieces.dropFirst() { LLVMDisposeModule(piece.module); LLVMContextDispose(piece.context) }   // part 0 is the builder's
            if let failure = failures.compactMap({ $0 }).first { throw failure }
            timer.lap("optimise and emit \(parts) parts in parallel")
            let separate = try separateObjects()
            timer.lap("wait for the objects compiled apart")
            try SharedObjectLinker.link(objects: objects + separate, output: output, blas: blas)
            timer.lap("link")
            return nil
        }
        try optimise(b.module, main)
        timer.lap("optimise")
        var text: String?
        switch listing {
        case .llvm:
            let ir = LLVMPrintModuleToString(b.module)!
            text = String(cString: ir)
            LLVMDisposeMessage(ir)
        case .assembly:
            var buffer: LLVMMemoryBufferRef?
            if LLVMTargetMachineEmitToMemoryBuffer(main, b.module, LLVMAssemblyFile, &message, &buffer) == 0, let buffer {
                text = String(cString: LLVMGetBufferStart(buffer))
                LLVMDisposeMemoryBuffer(buffer)
            }
        case .kernels, nil: break
        }
        let object = directory + "/model.o"
        try emitObject(b.module, main, to: object)
        timer.lap("emit object")
        try SharedObjectLinker.link(objects: [object] + separateObjects(), output: output, blas: blas)
        timer.lap("link")
        return text
    }

    /// The vector registers of the CPU code is compiled for (`cpu`, or this machine's when nil):
    /// 32 zmm when it has AVX-512, else 16 ymm. For this machine, its feature list says; for a
    /// named CPU (no C API lists its features), a 16-lane add is compiled for it and the
    /// assembly read for a zmm register. A name LLVM does not know is an error here: LLVM only
    /// warns on stderr as it creates the target machine, then aborts the process when it emits
    /// 64-bit code for the generic CPU it fell back to.
    static func registerFile(cpu: String?) throws -> RegisterFile {
        guard let cpu else {
            let features = LLVMGetHostCPUFeatures()!
            defer { LLVMDisposeMessage(features) }
            return String(cString: features).split(separator: ",").contains("+avx512f") ? .zmm32 : .ymm16
        }
        initializeX86()
        let probe = IRBuilder(moduleName: "register_probe", registers: .zmm32)
        let function = probe.declare("add", probe.functionType(probe.vector, [probe.vector, probe.vector]))
        probe.preferWideVectors(function)
        probe.begin(function)
        LLVMBuildRet(probe.builder, LLVMBuildFAdd(probe.builder, probe.parameter(0), probe.parameter(1), "")!)
        let (created, warnings) = capturingStandardError { Result { try targetMachine(triple: defaultTriple, cpu: cpu, features: "") } }
        let machine = try created.get()
        defer { LLVMDisposeTargetMachine(machine) }
        if warnings.contains("not a recognized processor") {
            throw FlowError("unknown CPU '\(cpu)' for --target: LLVM 19 does not recognise it (examples: x86-64-v3 for AVX2 machines, x86-64-v4 for AVX-512, znver3, sapphirerapids)",
                            at: .synthetic("codegen"))
        }
        var buffer: LLVMMemoryBufferRef?, message: UnsafeMutablePointer<CChar>?
        defer { LLVMDisposeMessage(message) }
        guard LLVMTargetMachineEmitToMemoryBuffer(machine, probe.module, LLVMAssemblyFile, &message, &buffer) == 0, let buffer else {
            throw FlowError("LLVM cannot compile for CPU '\(cpu)': \(message.map { String(cString: $0) } ?? "")", at: .synthetic("codegen"))
        }
        defer { LLVMDisposeMemoryBuffer(buffer) }
        return String(cString: LLVMGetBufferStart(buffer)).contains("zmm") ? .zmm32 : .ymm16
    }

    /// `body`'s result and what was written to file descriptor 2 while it ran (LLVM's warnings
    /// go there, unbuffered). Only for single-threaded moments: the descriptor is the process's.
    private static func capturingStandardError<T>(_ body: () -> T) -> (T, String) {
        var ends: [Int32] = [0, 0]
        let saved = dup(2)
        guard saved >= 0, pipe(&ends) == 0 else { return (body(), "") }
        dup2(ends[1], 2)
        close(ends[1])
        let result = body()
        dup2(saved, 2)
        close(saved)
        var text = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(ends[0], &chunk, chunk.count)
            if count <= 0 { break }
            text.append(contentsOf: chunk[0..<count])
        }
        close(ends[0])
        return (result, String(decoding: text, as: UTF8.self))
    }

    /// Parts the module is split into at most (one per core up to this).
    static let maximumParts = 4

    /// The passes of level 3, the default: LLVM's `default<O3>` less what Flowc's modules do
    /// not need. Kernels are never inlined (KernelCache), so there is no inliner, no
    /// interprocedural pass and no CGSCC walk; what is left is the function simplification and
    /// vectorisation that the generated loop nests need, in `default<O3>`'s order:
    /// - sroa, early-cse, simplifycfg, instcombine: accumulators and loop counters kept in
    ///   stack slots become SSA values, redundancies go;
    /// - licm, loop-rotate, licm, loop-idiom, loop-deletion: invariant address arithmetic out
    ///   of the loops, rotated loops (a zeroing loop becomes a memset); the form the vectoriser
    ///   needs;
    /// - loop-vectorize, then instcombine, simplifycfg, slp-vectorizer, vector-combine,
    ///   instcombine, early-cse, simplifycfg: the elementwise loops vectorised and cleaned up.
    /// Measured against `default<O3>` (alternating calls of both builds in one process): every
    /// reference model's log_prob and sample at batch 1 and 256 within ±1%, d_glow's batch-256
    /// calls 2% slower; instructions to compile 13–19% fewer (TarFlow 3.00G → 2.49G, d_glow
    /// 2.30G → 1.86G). (Adding ipsccp, deadargelim and function-attrs, which give the tile
    /// functions `fastcc` and fewer arguments, cost 3% more to compile for nothing measurable;
    /// adding gvn made d_glow's im2col convolution 20% slower. Without indvars, which was 3.3% of
    /// a whole compile's instructions — TarFlow 2.29G → 2.21G, e_fm 1.87G → 1.81G — the tiles'
    /// assembly differs only in the loop exits' conditions (jne for jl) and a few elementwise
    /// kernels have one instruction more before their loops: every reference model's log_prob
    /// and sample at batch 1 and 256 within ±2% on one thread, alternating blocks of calls.)
    static let pipeline = "function(" + [
        "sroa<modify-cfg>", "early-cse<memssa>", "simplifycfg", "instcombine<no-verify-fixpoint>",
        "loop-mssa(licm<allowspeculation>)", "loop-rotate", "loop-mssa(licm<allowspeculation>)", "loop(loop-idiom,loop-deletion)",
        "loop-vectorize", "instcombine<no-verify-fixpoint>", "simplifycfg", "slp-vectorizer", "vector-combine",
        "instcombine<no-verify-fixpoint>", "early-cse", "simplifycfg",
    ].joined(separator: ",") + ")"

    /// Level 3 runs `pipeline`, levels 0–2 LLVM's `default<On>`, with loop and SLP vectorisation.
    /// LLVM's loop unroller is off: the microkernel is unrolled by construction (its register
    /// tile), the vectoriser interleaves the elementwise loops, and unrolling the rest doubled
    /// the instructions to select (measured: TarFlow's compile 3.3 → 1.65 s, no slower code).
    private func optimise(_ module: LLVMModuleRef, _ machine: LLVMTargetMachineRef) throws {
        let passOptions = LLVMCreatePassBuilderOptions()!
        defer { LLVMDisposePassBuilderOptions(passOptions) }
        LLVMPassBuilderOptionsSetLoopVectorization(passOptions, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(passOptions, 1)
        LLVMPassBuilderOptionsSetLoopUnrolling(passOptions, 0)
        let passes = options.optimization == 3 ? TargetEmitter.pipeline : "default<O\(options.optimization)>"
        if let error = LLVMRunPasses(module, passes, machine, passOptions) {
            let text = String(cString: LLVMGetErrorMessage(error))
            throw FlowError("LLVM optimisation failed: \(text)", at: .synthetic("codegen"))
        }
    }

    /// A new private directory (mkdtemp under $TMPDIR, else /tmp) for the object files linked
    /// into `output`: nothing but the shared object appears beside it, two compiles to one path
    /// do not share intermediates, and a path the linker cannot write is reported as `output`.
    static func objectDirectory(for output: String) throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/flowc-objects-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            let reason = String(cString: strerror(errno))
            throw FlowError("cannot create a directory for the object files under '\(base)' (TMPDIR): \(reason)", in: output)
        }
        return String(cString: made)
    }

    private func emitObject(_ module: LLVMModuleRef, _ machine: LLVMTargetMachineRef, to object: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        if LLVMTargetMachineEmitToFile(machine, module, object, LLVMObjectFile, &message) != 0 {
            let reason = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw FlowError("cannot write the object file: \(reason)", in: object)
        }
    }
}
