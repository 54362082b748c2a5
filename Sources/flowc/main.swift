import FlowIR
import Foundation

/// flowc: the Flowc command-line tool. Exit codes: 0 success, 1 an error in the user's input
/// (spec, weights, data), 2 misuse of the command line.
let toolUsage = """
usage: flowc <command> [arguments]

commands:
\((Commands.all + CompiledCommands.all).map { "  \($0.name.padding(toLength: 8, withPad: " ", startingAt: 0))\($0.summary)" }.joined(separator: "\n"))

Run 'flowc <command> --help' for a command's options.
Exit codes: 0 success, 1 error in a spec, weight file or input, 2 command-line misuse.
"""

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(code)
}

OpenBLASThreads.stopUnlessConfigured()
var raw = Array(CommandLine.arguments.dropFirst())
guard let first = raw.first else { fail(toolUsage, code: 2) }
if first == "--help" || first == "-h" || first == "help" {
    if raw.count > 1, let c = (Commands.all + CompiledCommands.all).first(where: { $0.name == raw[1] }) { print("usage: \(c.usage)") } else { print(toolUsage) }
    exit(0)
}
guard let command = (Commands.all + CompiledCommands.all).first(where: { $0.name == first }) else {
    fail("flowc: unknown command '\(first)'\n\n\(toolUsage)", code: 2)
}
raw.removeFirst()
if raw.contains("--help") || raw.contains("-h") {
    print("usage: \(command.usage)")
    exit(0)
}
do {
    let args = try Arguments(raw, valued: command.valued, repeatable: command.repeatable, switches: command.switches)
    try command.run(args)
} catch let e as UsageError {
    fail("flowc \(command.name): \(e.message)\nusage: \(command.usage)", code: 2)
} catch let e as FlowError {
    fail(e.description, code: 1)
} catch {
    fail("error: \(error)", code: 1)
}
