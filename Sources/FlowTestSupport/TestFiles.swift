import Foundation

/// Where tests write files (compiled models, weights, command-line outputs): one directory per
/// test process, `$TMPDIR/flowc-tests-<pid>`, removed when the process exits, so a test run
/// leaves nothing behind (a run wrote ~80 files, 30 MB, straight into the temporary directory).
public enum TestFiles {
    /// The process's directory, created on first use.
    public static let directory: String = {
        let path = NSTemporaryDirectory() + "flowc-tests-\(getpid())"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the test directory \(path): \(error)")   // no test can run without it
        }
        atexit { try? FileManager.default.removeItem(atPath: TestFiles.directory) }
        return path
    }()

    /// A path in the process's directory; `name` is unique among the files of one test run.
    public static func path(_ name: String) -> String { directory + "/" + name }
}
