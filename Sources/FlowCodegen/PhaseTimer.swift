import Foundation

/// With FLOWC_TIMING set, prints how long each compilation phase took to stderr.
struct PhaseTimer {
    private let enabled = ProcessInfo.processInfo.environment["FLOWC_TIMING"] != nil
    private var clock = Date()

    mutating func lap(_ what: @autoclosure () -> String) {
        if enabled {
            FileHandle.standardError.write("\(what()): \(String(format: "%.2f", Date().timeIntervalSince(clock))) s\n".data(using: .utf8)!)
        }
        clock = Date()
    }
}
