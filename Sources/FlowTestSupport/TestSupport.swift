import FlowIR
import FlowInterpreter
import Foundation

/// Paths inside the repository, found from this file's location so tests run from any folder.
public enum Repository {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// A fixture copied from the reference implementations (`Tests/Fixtures/<name>`).
    public static func fixture(_ name: String) -> String { path("Tests/Fixtures/\(name)") }

    /// The reference spec of a fixture key (`examples/reference/<key>.flow`).
    public static func referenceSpec(_ key: String) -> String { path("examples/reference/\(key).flow") }

    /// The built `flowc` tool (the tests run after `swift build --build-tests`).
    public static var flowc: String {
        ProcessInfo.processInfo.environment["FLOWC_BIN"] ?? path(".build/debug/flowc")
    }
}

/// The outcome of an elementwise comparison |a − b| ≤ atol + rtol·|b|.
public struct Closeness: CustomStringConvertible {
    public var maxAbsoluteError: Double
    /// max over elements of |a − b| / (atol + rtol·|b|); ≤ 1 means every element passes.
    public var worstRatio: Double
    public var worstIndex: Int
    public var countMismatch: Bool

    public var passes: Bool { !countMismatch && worstRatio <= 1 }

    public var description: String {
        countMismatch ? "element counts differ"
            : "max |a-b| = \(maxAbsoluteError), worst ratio to tolerance \(worstRatio) at flat index \(worstIndex)"
    }

    public static func compare(_ a: [Double], _ b: [Double], atol: Double, rtol: Double) -> Closeness {
        guard a.count == b.count else { return Closeness(maxAbsoluteError: .infinity, worstRatio: .infinity, worstIndex: -1, countMismatch: true) }
        var result = Closeness(maxAbsoluteError: 0, worstRatio: 0, worstIndex: -1, countMismatch: false)
        for i in a.indices {
            let d = abs(a[i] - b[i])
            let ratio = d.isNaN ? .infinity : d / (atol + rtol * abs(b[i]))
            result.maxAbsoluteError = max(result.maxAbsoluteError, d.isNaN ? .infinity : d)
            if ratio > result.worstRatio || result.worstIndex < 0 { result.worstRatio = ratio; result.worstIndex = i }
        }
        return result
    }
}

/// A reference fixture: its weights and its named input/output tensors.
public struct ReferenceFixture {
    public let key: String
    public let file: SafetensorsFile

    public init(_ key: String) throws {
        self.key = key
        self.file = try SafetensorsFile(path: Repository.fixture("\(key).safetensors"))
    }

    public func tensor(_ name: String) throws -> Tensor {
        Tensor(shape: file.tensors[name]!.shape, values: try file.values(name))
    }

    public func model(params: [String: Double] = [:]) throws -> Model {
        try Elaborator.elaborate(path: Repository.referenceSpec(key),
                                 options: .init(params: params, weightsPath: Repository.fixture("\(key).safetensors")))
    }
}

/// Runs a program and captures its exit status and output.
public struct ProcessResult {
    public var status: Int32
    public var terminatedBySignal: Bool
    public var stdout: String
    public var stderr: String

    /// `environment`: variables set (or replaced) for the program on top of this process's.
    public static func run(_ executable: String, _ arguments: [String], in directory: String? = nil,
                           environment: [String: String] = [:]) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        while p.isRunning { usleep(100) }   // waitUntilExit returns ~50 ms late on Linux
        return ProcessResult(status: p.terminationStatus, terminatedBySignal: p.terminationReason == .uncaughtSignal,
                             stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
