import FlowIR
import Foundation

/// Links a model's object files into its shared object, against libc, libm and (when a kernel
/// calls it) OpenBLAS.
///
/// When gold is on PATH and this process has those libraries mapped (flowc has: its interpreter
/// calls OpenBLAS), gold runs directly on the mapped files, with the options a C compiler driver
/// passes for `-shared` (--as-needed, as Debian's gcc: a library none of the objects calls is not
/// needed). A model's objects need no start files (no constructors, no thread-local storage), so
/// the driver would only find the libraries and start gold, through collect2: two more
/// processes. `flowc compile` from the shell, alternated with the build before (12 runs each,
/// medians, 2-vCPU Zen 3): TarFlow 0.88x the time (0.380 against 0.431 s), the other reference
/// models 0.93–0.97x. Otherwise — or if gold fails — the first C compiler driver on PATH links.
enum SharedObjectLinker {
    /// `blas`: the objects call OpenBLAS (cblas_sgemm). Only then is it on the command line:
    /// reading its 15 000 symbols was half of gold's time (0.02 of 0.03–0.04 s).
    static func link(objects: [String], output: String, blas: Bool) throws {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init)
        func onPath(_ name: String) -> String? {
            directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        let gold = onPath("ld.gold")
        let wanted = (blas ? [blasLibrary] : []) + systemLibraries
        let libraries = wanted.compactMap { loadedLibraries[$0] }
        if let gold, libraries.count == wanted.count,
           (try? run(gold, ["-shared", "--eh-frame-hdr", "--hash-style=gnu", "--build-id", "--as-needed", "-z", "relro", "-z", "noexecstack",
                            "-o", output] + objects + libraries)) != nil {
            return
        }
        guard let driver = ["cc", "clang", "gcc"].lazy.compactMap(onPath).first else {
            throw FlowError("no C compiler driver (cc, clang or gcc) on PATH to link the shared object; install gcc", in: output)
        }
        // gold links the model in about half the time of the default bfd linker (binutils has both)
        do {
            try run(driver, ["-shared"] + (gold != nil ? ["-fuse-ld=gold"] : []) + ["-o", output] + objects + (blas ? ["-lopenblas"] : []) + ["-lm"])
        } catch let failure as LinkFailure {
            throw FlowError("linking with \(driver) failed: \(failure.message)", in: output)
        }
    }

    /// The prefixes of the libraries' file names: OpenBLAS's, and libm's and libc's.
    static let blasLibrary = "libopenblas", systemLibraries = ["libm.so.", "libc.so."]

    /// The files of the OpenBLAS, libm and libc this process has mapped (/proc/self/maps), by
    /// the prefix of their names; a library that is not mapped is missing.
    static let loadedLibraries: [String: String] = {
        // read to the end: String(contentsOfFile:) stops at 4 KB of a procfs file (its size is 0)
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/maps"), let data = try? handle.readToEnd() else { return [:] }
        try? handle.close()
        // a line: address range, permissions, offset, device, inode, then the file's path
        let files = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in line.firstIndex(of: "/").map { String(line[$0...]) } }
        var found: [String: String] = [:]
        for prefix in [blasLibrary] + systemLibraries {
            found[prefix] = files.first { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(prefix) }
        }
        return found
    }()

    struct LinkFailure: Error { let message: String }

    /// Runs `executable` with `arguments`; its standard error is the failure's message.
    private static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        // Foundation's waitUntilExit on Linux returns ~50 ms after the child exits (a tenth of
        // a model's compile); its isRunning is current
        while process.isRunning { usleep(100) }
        guard process.terminationStatus == 0 else {
            throw LinkFailure(message: String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
