import Foundation

/// Progress of long operations on stderr, rewriting one line, only when stderr is a terminal
/// (pipes and files stay quiet).
struct Progress {
    let enabled = isatty(STDERR_FILENO) != 0

    func update(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    /// Clears the line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
