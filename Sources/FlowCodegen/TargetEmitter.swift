import CLLVM
import FlowIR
import Foundation

/// From an LLVM module to a shared object: target machine for the host (or a named CPU),
/// the new pass manager's `default<On>` pipeline, an object file emitted in-process, then
/// `cc -shared` against OpenBLAS and libm.
struct TargetEmitter {
    let options: ArtifactCompiler.Options

    func emit(_ b: IRBuilder, output: String, listing: ArtifactCompiler.Listing?) throws -> String? {
        LLVMInitializeX86TargetInfo()
        LLVMInitializeX86Target()
        LLVMInitializeX86TargetMC()
        LLVMInitializeX86AsmPrinter()
        let location = SourceLocation.synthetic("codegen")
        var message: UnsafeMutablePointer<CChar>?
        var timer = PhaseTimer()
        if LLVMVerifyModule(b.module, LLVMReturnStatusAction, &message) != 0 {
            let text = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw FlowError("internal: generated LLVM IR does not verify: \(text.prefix(2000))", at: location)
        }
        LLVMDisposeMessage(message)
        timer.lap("verify")
        let triple = LLVMGetDefaultTargetTriple()!
        defer { LLVMDisposeMessage(triple) }
        var target: LLVMTargetRef?
        guard LLVMGetTargetFromTriple(triple, &target, &message) == 0, let target else {
            throw FlowError("no LLVM target for \(String(cString: triple))", at: location)
        }
        let hostCPU = LLVMGetHostCPUName()!, hostFeatures = LLVMGetHostCPUFeatures()!
        defer { LLVMDisposeMessage(hostCPU); LLVMDisposeMessage(hostFeatures) }
        let cpu = options.cpu ?? String(cString: hostCPU)
        let features = options.cpu == nil ? String(cString: hostFeatures) : ""
        guard let machine = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault) else {
            throw FlowError("LLVM cannot create a target machine for CPU '\(cpu)'", at: location)
        }
        defer { LLVMDisposeTargetMachine(machine) }
        LLVMSetTarget(b.module, triple)
        let layout = LLVMCreateTargetDataLayout(machine)!
        LLVMSetModuleDataLayout(b.module, layout)
        LLVMDisposeTargetData(layout)
        let passOptions = LLVMCreatePassBuilderOptions()!
        defer { LLVMDisposePassBuilderOptions(passOptions) }
        LLVMPassBuilderOptionsSetLoopVectorization(passOptions, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(passOptions, 1)
        // no LLVM loop unrolling: the microkernel is unrolled by construction, the vectoriser
        // interleaves elementwise loops; unrolling the rest doubled the code to select
        // (TarFlow compile 3.3 → 1.65 s) for no faster code
        LLVMPassBuilderOptionsSetLoopUnrolling(passOptions, 0)
        if let error = LLVMRunPasses(b.module, "default<O\(options.optimization)>", machine, passOptions) {
            let text = String(cString: LLVMGetErrorMessage(error))
            throw FlowError("LLVM optimisation failed: \(text)", at: location)
        }
        timer.lap("optimise")
        var text: String?
        switch listing {
        case .llvm:
            let ir = LLVMPrintModuleToString(b.module)!
            text = String(cString: ir)
            LLVMDisposeMessage(ir)
        case .assembly:
            var buffer: LLVMMemoryBufferRef?
            if LLVMTargetMachineEmitToMemoryBuffer(machine, b.module, LLVMAssemblyFile, &message, &buffer) == 0, let buffer {
                text = String(cString: LLVMGetBufferStart(buffer))
                LLVMDisposeMemoryBuffer(buffer)
            }
        case .kernels, nil: break
        }
        let object = output + ".o"
        if LLVMTargetMachineEmitToFile(machine, b.module, object, LLVMObjectFile, &message) != 0 {
            let reason = message.map { String(cString: $0) } ?? ""
            throw FlowError("cannot write the object file: \(reason)", in: object)
        }
        timer.lap("emit object")
        defer { try? FileManager.default.removeItem(atPath: object) }
        try link(object: object, output: output)
        timer.lap("link")
        return text
    }

    /// Links with the first C compiler driver on PATH: `cc`, else `clang` (Swift's toolchain has one).
    func link(object: String, output: String) throws {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init)
        guard let driver = ["cc", "clang", "gcc"].lazy.compactMap({ name in
            directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }).first else {
            throw FlowError("no C compiler driver (cc, clang or gcc) on PATH to link the shared object; install gcc", in: output)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: driver)
        process.arguments = ["-shared", "-o", output, object, "-lopenblas", "-lm"]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FlowError("linking with \(driver) failed: \(String(decoding: message, as: UTF8.self))", in: output)
        }
    }
}
