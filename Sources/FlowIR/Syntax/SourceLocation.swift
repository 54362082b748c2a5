/// A position in a source file, printed as `file:line:col` (1-based).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// A location for values that do not come from a source file (derived graphs, tests).
    public static func synthetic(_ what: String) -> SourceLocation {
        SourceLocation(file: "<\(what)>", line: 0, column: 0)
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Every error a user can cause: a message that says what went wrong, where, and what was
/// expected. `where` is a source location, a tensor name, a file and byte offset, or a CLI flag.
public struct FlowError: Error, Sendable, CustomStringConvertible, Equatable {
    public var location: String
    public var message: String
    /// The failures a caller acts on rather than only reports.
    public enum Kind: Sendable, Equatable {
        case general
        /// An op on the path has no forward-mode derivative (JVP) rule: a velocity field whose
        /// likelihood needs one still compiles, without its log_prob entry.
        case noForwardModeRule
    }
    public var kind = Kind.general

    public init(_ message: String, at location: SourceLocation, kind: Kind = .general) {
        self.location = location.description
        self.message = message
        self.kind = kind
    }

    public init(_ message: String, in place: String) {
        self.location = place
        self.message = message
    }

    public var description: String { location.isEmpty ? "error: \(message)" : "\(location): error: \(message)" }
}
