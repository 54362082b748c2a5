import FlowRuntime
import Foundation

// Usage: embed-demo MODEL.so — loads a compiled model, draws samples and scores them.
guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write("usage: embed-demo MODEL.so\n".data(using: .utf8)!)
    exit(2)
}
do {
    let model = try CompiledModel(path: CommandLine.arguments[1])
    let samples = try model.sample(count: 4, seed: 2026, temperature: 1)
    let logDensity = try model.logProb(samples)
    let width = model.inputElements
    print("\(model.metadata.name): 4 samples (seed 2026) and their log-density")
    for row in 0..<4 {
        let values = samples[(row * width)..<((row + 1) * width)].prefix(6).map { String(format: "%8.4f", $0) }.joined(separator: " ")
        print("  x = [\(values)\(width > 6 ? " …" : "")]   log p(x) = \(String(format: "%.4f", logDensity[row]))")
    }
} catch {
    FileHandle.standardError.write("\(error)\n".data(using: .utf8)!)
    exit(1)
}
