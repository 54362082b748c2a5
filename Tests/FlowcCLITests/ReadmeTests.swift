import FlowTestSupport
import Foundation
import XCTest

/// The README's commands, run as written: every `flowc` line of every code block in README.md,
/// examples/two_moons/README.md and examples/digits/README.md must exit with status 0. The
/// README's placeholders are real files in the working folder: `model.flow` is the README's own
/// six-line RealNVP spec, `model.safetensors` the two-moons RealNVP's weights (a zuko RealNVP, as
/// that spec reads), `x.npy` the two-moons held-out set; `examples` and `Sources` link to the
/// repository's. The C example's compile-and-run line runs too.
final class ReadmeTests: XCTestCase {
    /// Lines of the fenced code blocks of a Markdown file (indented blocks included).
    static func codeLines(_ path: String) throws -> [[String]] {
        var blocks: [[String]] = [], current: [String]?
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                if let block = current { blocks.append(block); current = nil } else { current = [] }
            } else if current != nil {
                current!.append(trimmed)
            }
        }
        return blocks
    }

    /// A command line split into words (no quoting is used in the READMEs), comment dropped.
    static func words(_ line: String) -> [String] {
        let command = line.components(separatedBy: " #").first ?? line
        return command.split(separator: " ").map(String.init)
    }

    func testEveryReadmeCommandRuns() throws {
        let dir = Repository.path(".build/readme-test-\(getpid())")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let readme = try Self.codeLines(Repository.path("README.md"))
        let spec = try XCTUnwrap(readme.first { $0.first == "import \"std/zuko.flow\"" }, "the README's spec block")
        try spec.joined(separator: "\n").write(toFile: "\(dir)/model.flow", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: Repository.path("examples/two_moons/realnvp.safetensors"), toPath: "\(dir)/model.safetensors")
        try FileManager.default.copyItem(atPath: Repository.path("examples/two_moons/heldout.npy"), toPath: "\(dir)/x.npy")
        for folder in ["examples", "Sources"] {
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/\(folder)", withDestinationPath: Repository.path(folder))
        }
        var commands: [String] = []
        for file in ["README.md", "examples/two_moons/README.md", "examples/digits/README.md"] {
            commands += try Self.codeLines(Repository.path(file)).flatMap { $0 }.filter { $0.hasPrefix("flowc ") || $0.hasPrefix("cc ") }
        }
        XCTAssertGreaterThanOrEqual(commands.count, 16, "\(commands)")
        for command in commands {
            // flowc lines run the built tool; the C compiler line runs in a shell (it chains the program)
            let r = command.hasPrefix("flowc ") ? try ProcessResult.run(Repository.flowc, Array(Self.words(command).dropFirst()), in: dir)
                : try ProcessResult.run("/bin/sh", ["-c", command], in: dir)
            XCTAssertEqual(r.status, 0, "\(command)\n\(r.stderr)")
            if command.hasPrefix("cc ") { XCTAssertTrue(r.stdout.contains("log p(x) = "), r.stdout) }
        }
    }
}
