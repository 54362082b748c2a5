import Foundation

/// The parts of the benchmark that run other programs: PyTorch eager (Benchmarks/pytorch_eager.py),
/// ONNX Runtime (onnxruntime_peer.py), JAX jit (jax_peer.py), torch.compile (torch_compile_peer.py,
/// opt-in), the FMA peak (fma_peak.c), the entry-point allocation counter (entry_allocations.c)
/// and `flowc compile` as its own process, each skipped with a note when its tool (python3 with
/// torch, or also with onnxruntime and onnxscript, or with jax; a C compiler; the release flowc)
/// is missing.
enum ExternalTools {
    static let benchmarks = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    /// stdout of a program, nil when it cannot run or fails.
    static func output(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning { usleep(100) }   // waitUntilExit returns ~50 ms late on Linux
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    /// Compiles one of the C files here with `cc`; the executable's path, nil without a compiler.
    static func compileC(_ file: String, flags: [String]) -> String? {
        let executable = NSTemporaryDirectory() + "flowc-bench-" + file.replacingOccurrences(of: ".c", with: "")
        return output("cc", flags + ["-o", executable, benchmarks.appendingPathComponent(file).path, "-ldl", "-lm"]) != nil ? executable : nil
    }

    /// A timing script of this directory: it prints one JSON line (model, pass, batch, us, check)
    /// per cell for the models given as (key, weights file), the median of `--rounds` rounds.
    struct Peer {
        var name: String
        var script: String
        /// The python3 modules it needs: without them the peer is skipped.
        var modules: [String]
        /// What its "check" is the distance to.
        var checkedAgainst: String

        /// The line printed when the peer did not run: which modules or which script to look at.
        var skipNote: String {
            let list = modules.dropLast().joined(separator: ", ") + " and " + modules.last!
            return "\(name): skipped (python3 with \(list) not found — `make peers` installs them — or Benchmarks/\(script) failed: run it to see why)"
        }

        /// The PyTorch ports, checked against the fixtures.
        static let eager = Peer(name: "PyTorch eager", script: "pytorch_eager.py", modules: ["torch", "zuko", "safetensors"], checkedAgainst: "the fixture")
        /// The same PyTorch ports, exported.
        static let onnxRuntime = Peer(name: "ONNX Runtime", script: "onnxruntime_peer.py", modules: ["torch", "zuko", "safetensors", "onnxruntime", "onnxscript"], checkedAgainst: "PyTorch eager")
        /// jax.numpy ports of c_realnvp64, e_fm, e_fm_rk4 and f_meanflow (the peers' table's JAX rows).
        static let jax = Peer(name: "JAX jit", script: "jax_peer.py", modules: ["torch", "zuko", "safetensors", "jax"], checkedAgainst: "PyTorch eager")
        /// The same PyTorch ports compiled by inductor on one thread; its rounds in one process,
        /// as compiling takes minutes.
        static let torchCompile = Peer(name: "torch.compile", script: "torch_compile_peer.py", modules: ["torch", "zuko", "safetensors"], checkedAgainst: "PyTorch eager")
    }

    /// A peer's µs by "model pass batch", nil when python3 lacks its modules or its script fails.
    static func timings(_ peer: Peer, _ models: [(String, String)], batches: [Int], rounds: Int) -> [String: Double]? {
        guard output("python3", ["-c", "import " + peer.modules.joined(separator: ", ")]) != nil else { return nil }
        return timings(script: peer.script, models, batches: batches, rounds: rounds) { model, pass, check in
            "\(peer.name): \(model) \(pass) is \(check) away from \(peer.checkedAgainst)"
        }
    }

    /// Runs a timing script of this directory; its JSON lines (model, pass, batch, us, check)
    /// by "model pass batch", with a warning for each check above 1e-4.
    private static func timings(script: String, _ models: [(String, String)], batches: [Int], rounds: Int,
                                warning: (String, String, Double) -> String) -> [String: Double]? {
        let path = benchmarks.appendingPathComponent(script).path
        let options = ["--batches=" + batches.map(String.init).joined(separator: ","), "--rounds=\(rounds)"]
        guard let text = output("python3", [path] + options + models.map { "\($0.0)=\($0.1)" }) else { return nil }
        var result: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let model = object["model"] as? String, let pass = object["pass"] as? String,
                  let batch = object["batch"] as? Int, let micros = object["us"] as? Double else { continue }
            result["\(model) \(pass) \(batch)"] = micros
            if let check = object["check"] as? Double, check > 1e-4 { print("warning: " + warning(model, pass, check)) }
        }
        return result
    }

    /// The FMA peak in GFLOP/s on 1 and 2 threads (zmm FMAs with AVX-512, ymm with AVX2 + FMA):
    /// the best of fma_peak's repeated runs, with its slowest run beside it.
    struct FMAPeak {
        var one: Double, two: Double
        var slowestOne: Double, slowestTwo: Double

        /// The best of both measurements, the slowest of both.
        func combined(with other: FMAPeak?) -> FMAPeak {
            guard let other else { return self }
            return FMAPeak(one: max(one, other.one), two: max(two, other.two),
                           slowestOne: min(slowestOne, other.slowestOne), slowestTwo: min(slowestTwo, other.slowestTwo))
        }
    }

    /// Runs fma_peak (compiled once): nil without AVX-512 or AVX2 + FMA, or without a C compiler.
    static func fmaPeak() -> FMAPeak? {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              cpuinfo.contains("avx512f") || (cpuinfo.contains(" avx2") && cpuinfo.contains(" fma")),
              let tool = fmaPeakTool, let text = output(tool, []) else { return nil }
        // "N threads: BEST GFLOP/s (slowest of R: S)": the numbers N, BEST and S ("R:" is not one)
        let values = text.split(separator: "\n").map { line in
            line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: ")"))) }
        }
        guard values.count == 2, values.allSatisfy({ $0.count == 3 }) else { return nil }
        return FMAPeak(one: values[0][1], two: values[1][1], slowestOne: values[0][2], slowestTwo: values[1][2])
    }
    static let fmaPeakTool = compileC("fma_peak.c", flags: ["-O2", "-march=native", "-pthread"])

    /// The release `flowc` next to this executable (`make bench` builds both), nil when absent.
    static let flowc: String? = {
        let path = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("flowc").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    /// Seconds of `flowc compile ARGUMENTS` as a process of its own, start to exit — what a user
    /// times from the shell: the in-process compile plus starting the process and reading the
    /// spec and weights (~0.05 s) — the median of `runs` runs, and the slowest; nil if a run fails.
    static func shellCompileSeconds(flowc: String, _ arguments: [String], runs: Int) -> (median: Double, slowest: Double)? {
        var seconds: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            guard output(flowc, ["compile"] + arguments) != nil else { return nil }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return (median(seconds), seconds.max()!)
    }

    /// "entry first=N steady=M code=C" lines of entry_allocations for a model at a batch size.
    static func allocations(tool: String, model: String, batch: Int, calls: Int) -> [String] {
        (output(tool, [model, String(batch), String(calls)]) ?? "failed to run\n").split(separator: "\n").map(String.init)
    }
}
