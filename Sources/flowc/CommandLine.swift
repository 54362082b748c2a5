/// A small argument reader: `--flag`, `--option value`, `--option=value`, repeatable options and
/// positionals. Misuse throws `UsageError`, which the tool reports with exit code 2; that includes
/// an option that takes one value given twice, which would otherwise let the last value silently
/// win over an earlier (possibly invalid) one.
struct UsageError: Error {
    var message: String
}

struct Arguments {
    private(set) var positionals: [String] = []
    private var options: [String: [String]] = [:]
    private var flags: Set<String> = []

    /// `valued` lists the options that take a value, `repeatable` those of them that may be given
    /// more than once (each time adding a value); `switches` the boolean flags.
    init(_ raw: [String], valued: Set<String>, repeatable: Set<String> = [], switches: Set<String>) throws {
        var i = 0
        while i < raw.count {
            let arg = raw[i]
            if arg.hasPrefix("--") || (arg.hasPrefix("-") && arg.count == 2 && !arg.dropFirst().allSatisfy(\.isNumber)) {
                var name = arg
                var value: String?
                if let eq = arg.firstIndex(of: "=") {
                    name = String(arg[..<eq])
                    value = String(arg[arg.index(after: eq)...])
                }
                if switches.contains(name) {
                    guard value == nil else { throw UsageError(message: "\(name) takes no value") }
                    flags.insert(name)
                } else if valued.contains(name) {
                    if value == nil {
                        i += 1
                        guard i < raw.count else { throw UsageError(message: "\(name) needs a value") }
                        value = raw[i]
                    }
                    if let earlier = options[name]?.first, !repeatable.contains(name) {
                        throw UsageError(message: "\(name) given twice ('\(earlier)', then '\(value!)'): give it once")
                    }
                    options[name, default: []].append(value!)
                } else {
                    throw UsageError(message: "unknown option \(name)")
                }
            } else {
                positionals.append(arg)
            }
            i += 1
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }
    func value(_ name: String) -> String? { options[name]?.last }
    func values(_ name: String) -> [String] { options[name] ?? [] }

    func required(_ name: String) throws -> String {
        guard let v = value(name) else { throw UsageError(message: "missing required option \(name)") }
        return v
    }
}
