import Foundation

/// Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner I, II.5, Table 5.2) with
/// step-size control **per sample**: each sample has its own time, step and accept/reject
/// decision, so a stiff sample does not force small steps on the others (torchdiffeq controls
/// one step size for the whole batch). Each attempt evaluates the network once on the samples
/// still running, for each of the six new stages (the seventh is the next step's first:
/// first-same-as-last). The state advances with the 5th-order solution.
enum Dopri5Solver {
    /// c_i: the stage times as fractions of the step
    static let c: [Double] = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1]
    /// a_ij: stage i reads stages 0..<i
    static let a: [[Double]] = [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
        [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84],
    ]
    /// b − b̂: the 5th-order weights (the last row of a) minus the embedded 4th-order ones
    static let errorWeights: [Double] = [35.0 / 384 - 5179.0 / 57600, 0, 500.0 / 1113 - 7571.0 / 16695, 125.0 / 192 - 393.0 / 640,
                                         -2187.0 / 6784 + 92097.0 / 339200, 11.0 / 84 - 187.0 / 2100, -1.0 / 40]
    /// step factor limits and safety factor (Hairer's choices)
    static let (shrinkLimit, growLimit, safety) = (0.2, 10.0, 0.9)

    static func run(_ evaluator: FieldEvaluator, state y: inout [Double], rows: Int, labels: [Int]?, settings: SamplerSettings, report: inout SolveReport) throws {
        let layout = evaluator.layout, n = layout.stateWidth
        let (start, end) = (layout.start, layout.end)
        let direction = end > start ? 1.0 : -1.0
        let span = abs(end - start)
        var t = [Double](repeating: start, count: rows)
        var h = [Double](repeating: 0, count: rows)
        var k = [[Double]](repeating: [Double](repeating: 0, count: rows * n), count: 7)
        var stageState = [Double](repeating: 0, count: rows * n)
        var results = [Double](repeating: 0, count: rows * n)

        /// k[s][row] = f(stageState[row], times[row]) for the listed rows (packed in that order)
        func evaluate(_ s: Int, _ active: [Int], _ times: (Int) -> Double) throws {
            for (i, r) in active.enumerated() {
                stageState.withUnsafeBufferPointer { evaluator.setRow(i, state: $0.baseAddress! + r * n, times: (times(r), nil), label: labels?[r]) }
            }
            try results.withUnsafeMutableBufferPointer { try evaluator.evaluate(rows: active.count, into: $0.baseAddress!) }
            for (i, r) in active.enumerated() {
                for j in 0..<n { k[s][r * n + j] = results[i * n + j] }
            }
        }
        /// RMS over a sample's elements of v_j / (atol + rtol·|y_j|)
        func scaledNorm(_ r: Int, _ v: (Int) -> Double, _ scale: (Int) -> Double) -> Double {
            var sum = 0.0
            for j in 0..<n { let q = v(j) / scale(j); sum += q * q }
            return (sum / Double(n)).squareRoot()
        }

        let all = Array(0..<rows)
        // f(t0, y0), and the starting step of Hairer, Nørsett & Wanner I, II.4 per sample:
        // h0 = 0.01·‖y0‖/‖f0‖, one Euler probe, then h1 = (0.01 / max(‖f0‖, ‖f1 − f0‖/h0))^(1/5)
        for e in 0..<(rows * n) { stageState[e] = y[e] }
        try evaluate(0, all) { _ in start }
        var h0 = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            let scale = { (j: Int) in settings.atol + settings.rtol * abs(y[r * n + j]) }
            let d0 = scaledNorm(r, { y[r * n + $0] }, scale), d1 = scaledNorm(r, { k[0][r * n + $0] }, scale)
            h0[r] = min(span, d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1)
            for j in 0..<n { stageState[r * n + j] = y[r * n + j] + direction * h0[r] * k[0][r * n + j] }
        }
        try evaluate(1, all) { start + direction * h0[$0] }
        for r in 0..<rows {
            let scale = { (j: Int) in settings.atol + settings.rtol * abs(y[r * n + j]) }
            let d1 = scaledNorm(r, { k[0][r * n + $0] }, scale)
            let d2 = scaledNorm(r, { k[1][r * n + $0] - k[0][r * n + $0] }, scale) / h0[r]
            let h1 = max(d1, d2) <= 1e-15 ? max(1e-6, h0[r] * 1e-3) : pow(0.01 / max(d1, d2), 1.0 / 5)
            h[r] = min(100 * h0[r], h1, span)
        }

        var active = all
        while !active.isEmpty {
            // the last step lands exactly on the data end
            var stepTaken = [Double](repeating: 0, count: rows)
            for r in active { stepTaken[r] = min(h[r], abs(end - t[r])) }
            for s in 1...6 {
                for r in active {
                    let hr = direction * stepTaken[r]
                    for j in 0..<n {
                        var v = y[r * n + j]
                        for (i, coefficient) in a[s].enumerated() where coefficient != 0 { v += hr * coefficient * k[i][r * n + j] }
                        stageState[r * n + j] = v
                    }
                }
                try evaluate(s, active) { t[$0] + direction * stepTaken[$0] * c[s] }
            }
            var stillActive: [Int] = []
            for r in active {
                let hr = direction * stepTaken[r]
                // stageState now holds the 5th-order solution (stage 6 is evaluated at it)
                let norm = scaledNorm(r, { j in
                    var err = 0.0
                    for (i, w) in errorWeights.enumerated() where w != 0 { err += w * k[i][r * n + j] }
                    return hr * err
                }, { j in settings.atol + settings.rtol * max(abs(y[r * n + j]), abs(stageState[r * n + j])) })
                var factor = norm == 0 ? growLimit : min(growLimit, max(shrinkLimit, safety * pow(norm, -1.0 / 5)))
                if norm <= 1 {
                    report.acceptedSteps[r] += 1
                    for j in 0..<n { y[r * n + j] = stageState[r * n + j]; k[0][r * n + j] = k[6][r * n + j] }
                    t[r] = abs(end - t[r]) <= stepTaken[r] ? end : t[r] + hr
                } else {
                    report.rejectedSteps[r] += 1
                    factor = min(1, factor)
                }
                h[r] = stepTaken[r] * factor
                if t[r] == end { continue }
                if report.acceptedSteps[r] + report.rejectedSteps[r] >= settings.maxSteps || h[r] < 1e-14 * span {
                    report.unfinished.append(r)
                    continue
                }
                stillActive.append(r)
            }
            active = stillActive
        }
    }
}
