import FlowSolvers
import Foundation

/// The sampler options shared by `flowc compile`, `flowc run --entry sample` and `flowc sample`.
enum SamplerOptions {
    static let valued: Set<String> = ["--method", "--steps", "--grid", "--rtol", "--atol", "--max-steps", "--guidance", "--class"]

    static let usage = """
      --method M          velocity, mean-velocity and flow-map models: the sampler: euler, midpoint, heun,
                          rk4 (classic), rk4-38 (torchdiffeq's "rk4", the 3/8 rule), dopri5 (adaptive,
                          per-sample steps), meanflow, flowmap (default: the model's compiled sampler;
                          rk4-38 with 8 steps, meanflow or flowmap with 1 step)
      --steps N           steps of a fixed-step method
      --grid G            its time grid: uniform (default), edm:RHO (EDM's ρ-grid) or t0,t1,...,tN
      --rtol R, --atol A  dopri5 tolerances (default 1e-5 each)
      --max-steps N       dopri5: attempted steps per sample before it stops with its last state (default 10000)
      --class C           class-conditional models: the label of every sample, or labels cycled over the
                          samples (0,1,2); default: the null label (unconditional)
      --guidance W        classifier-free guidance: (1 + W)·v(x, t | c) − W·v(x, t | ∅)
    """

    /// Whether any sampler option was given.
    static func given(_ args: Arguments) -> Bool { valued.contains { args.value($0) != nil } }

    /// `base` with the options given on the command line applied.
    static func settings(_ args: Arguments, layout: FieldLayout, base: SamplerSettings) throws -> SamplerSettings {
        var s = base
        if let name = args.value("--method") {
            guard let method = ODESampler(name: name) else { throw UsageError(message: "--method expects one of \(ODESampler.names), got '\(name)'") }
            if method != s.method && args.value("--steps") == nil {
                s.steps = method == .meanflow || method == .flowmap ? 1 : 8
            }
            s.method = method
        }
        if let text = args.value("--steps") {
            guard let steps = Int(text), (1...100_000).contains(steps) else { throw UsageError(message: "--steps expects an integer in 1...100000, got '\(text)'") }
            s.steps = steps
        }
        if let text = args.value("--grid") {
            do { s.grid = try TimeGrid(parsing: text) } catch let e as SolverError { throw UsageError(message: "--grid: \(e.message)") }
        }
        func positive(_ name: String) throws -> Double? {
            guard let text = args.value(name) else { return nil }
            guard let v = Double(text), v.isFinite, v >= 0 else { throw UsageError(message: "\(name) expects a finite number ≥ 0, got '\(text)'") }
            return v
        }
        if let v = try positive("--rtol") { s.rtol = v }
        if let v = try positive("--atol") { s.atol = v }
        if let text = args.value("--max-steps") {
            guard let v = Int(text), (1...10_000_000).contains(v) else { throw UsageError(message: "--max-steps expects an integer in 1...10000000, got '\(text)'") }
            s.maxSteps = v
        }
        if let text = args.value("--guidance") {
            guard let w = Double(text), w.isFinite else { throw UsageError(message: "--guidance expects a finite number, got '\(text)'") }
            s.guidance = w
        }
        if (args.value("--rtol") != nil || args.value("--atol") != nil || args.value("--max-steps") != nil) && s.method != .dopri5 {
            throw UsageError(message: "--rtol, --atol and --max-steps apply to --method dopri5 (the method is \(s.method.rawValue))")
        }
        do { try s.validate(for: layout) } catch let e as SolverError { throw UsageError(message: e.message) }
        return s
    }

    /// The warning for samples that hit the dopri5 step budget (nothing when none did).
    static func warnIfUnfinished(_ report: SolveReport, _ settings: SamplerSettings) {
        guard !report.unfinished.isEmpty else { return }
        FileHandle.standardError.write(Data("warning: \(report.unfinished.count) samples hit the step budget of \(settings.maxSteps) before the data end; their last states are returned (raise --max-steps or loosen --rtol)\n".utf8))
    }

    /// `--class C` or `--class C0,C1,...` cycled over `count` samples (nil: not given).
    static func labels(_ args: Arguments, count: Int, classes: Int?) throws -> [Int]? {
        guard let text = args.value("--class") else { return nil }
        guard let classes else { throw UsageError(message: "--class needs a class-conditional model (kind ...(classes=K)); this one is unconditional") }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let labels = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard labels.count == parts.count, !labels.isEmpty, labels.allSatisfy({ (0...classes).contains($0) }) else {
            throw UsageError(message: "--class expects labels in 0...\(classes - 1) (or \(classes) for the null class), comma-separated; got '\(text)'")
        }
        return (0..<count).map { labels[$0 % labels.count] }
    }
}
