import CLLVM
import FlowIR
import Foundation

/// The code every artifact has whatever its model — `flowc_noise` (NoiseLowering) and the GEMM
/// tiles of the standard shapes (GemmTiles) — compiled into an object file of its own, on a
/// thread of its own at the lowest priority, started with the compile: it runs on whichever core
/// the model's own work leaves idle (one derivation finishing before another, folding and
/// lowering on one core, one part's optimisation finishing first) instead of adding to the
/// parallel LLVM phase. (`flowc_noise` was a tenth of a compile's work there — callgrind, whole
/// `flowc compile`: TarFlow 2.40G instructions with it, 2.16G without; e_fm 1.96G, 1.71G — and
/// the tiles ~20% of a module's instruction selection.) `ArtifactCompiler` links the object
/// with the model's parts; TargetEmitter asks for it only before linking, so the parts'
/// optimisation starts whether or not it is done.
final class PreludeCompilation: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    /// The object file's directory, removed by `discard`; set before `finished` is signalled.
    private var directory: String?
    private var outcome: Result<String, Error> = .failure(FlowError("internal: the prelude was not compiled", at: .synthetic("codegen")))
    private var started = false, waited = false
    private let emitter: TargetEmitter, registers: RegisterFile, output: String

    /// A compilation for `options`' target, to start with `start`; `output` names the shared
    /// object the object file will be linked into (for the temporary directory's errors).
    init(options: ArtifactCompiler.Options, registers: RegisterFile, output: String) {
        (emitter, self.registers, self.output) = (TargetEmitter(options: options), registers, output)
    }

    /// Starts the compilation on a thread of its own (once).
    func start() {
        guard !started else { return }
        started = true
        let thread = Thread { [self] in
            // the lowest priority (Linux: this thread's nice value, not the process's): it runs
            // on a core the model's own work leaves idle
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            outcome = Result {
                let directory = try TargetEmitter.objectDirectory(for: output)
                self.directory = directory
                let b = IRBuilder(moduleName: "flowc_prelude", registers: registers)
                NoiseLowering.emit(b)
                GemmTiles.defineStandard(in: b)
                let machine = try emitter.targetMachine()
                defer { LLVMDisposeTargetMachine(machine) }
                try emitter.prepare(b.module, for: machine)
                let object = directory + "/prelude.o"
                try emitter.compileObject(b.module, machine, to: object)
                return object
            }
            finished.signal()
        }
        thread.stackSize = 8 << 20   // as a main thread's: LLVM's code generator recurses
        thread.start()
    }

    /// Waits for the compilation (starting it if it was not); the object file's path, or the
    /// error it met.
    func object() throws -> String {
        start()
        wait()
        return try outcome.get()
    }

    /// Waits for the compilation, if it was started, and removes its object file.
    func discard() {
        wait()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    private func wait() {
        guard started, !waited else { return }
        finished.wait()
        waited = true
    }
}
