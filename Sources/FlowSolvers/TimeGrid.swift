import Foundation

/// The times a fixed-step sampler visits, from the noise end to the data end.
public enum TimeGrid: Sendable, Equatable, CustomStringConvertible {
    /// t_k = start + k·h in f32, the last point exactly at the data end (torchdiffeq's grid).
    case uniform
    /// EDM's ρ-grid (Karras et al. 2022, eq. 5) with σ = distance from the data end in [0, 1]:
    /// σ_k = (1 − k/N)^ρ, so steps crowd near the data for ρ > 1 (ρ = 7 in EDM).
    case edm(rho: Double)
    /// Explicit times, from the noise end to the data end (N + 1 points).
    case custom([Double])

    /// As the command line writes it: `uniform`, `edm:7`, `0,0.5,1`.
    public var description: String {
        switch self {
        case .uniform: return "uniform"
        case .edm(let rho): return "edm:\(rho)"
        case .custom(let times): return times.map { "\($0)" }.joined(separator: ",")
        }
    }

    /// Parses `uniform`, `edm:RHO` or comma-separated times.
    public init(parsing text: String) throws {
        if text == "uniform" { self = .uniform; return }
        if text.hasPrefix("edm:"), let rho = Double(text.dropFirst(4)) { self = .edm(rho: rho); return }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let times = parts.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard times.count >= 2, times.count == parts.count else {
            throw SolverError("a time grid is uniform, edm:RHO or comma-separated times from noise to data, got '\(text)'")
        }
        self = .custom(times)
    }

    public func times(start: Float, end: Float, steps: Int) throws -> [Float] {
        switch self {
        case .uniform:
            let h = (end - start) / Float(steps)
            return (0..<steps).map { start + Float($0) * h } + [end]
        case .edm(let rho):
            guard rho > 0, rho.isFinite else { throw SolverError("the EDM grid needs ρ > 0, got \(rho)") }
            return (0...steps).map { k in
                let sigma = Float(pow(1 - Double(k) / Double(steps), rho))
                return k == steps ? end : end + (start - end) * sigma
            }
        case .custom(let times):
            guard times.count == steps + 1 else { throw SolverError("a custom grid of \(times.count) times does not make \(steps) steps (needs \(steps + 1))") }
            guard Float(times[0]) == start, Float(times[steps]) == end else {
                throw SolverError("a custom grid must run from the noise end t = \(start) to the data end t = \(end)")
            }
            let increasing = end > start
            guard zip(times, times.dropFirst()).allSatisfy({ increasing ? $0 < $1 : $0 > $1 }) else {
                throw SolverError("a custom grid must be strictly monotonic from noise to data")
            }
            return times.map { Float($0) }
        }
    }
}
