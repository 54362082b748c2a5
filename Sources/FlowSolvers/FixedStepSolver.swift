/// Fixed-step samplers on a time grid: explicit Runge–Kutta methods for velocities, MeanFlow's
/// k-step map for average velocities, and a flow map's own steps. Every sample takes the same
/// steps; the state is kept in f64 between network calls.
enum FixedStepSolver {
    /// Advances `state` (rows × N, noise on entry) from the noise end to the data end.
    static func run(_ evaluator: FieldEvaluator, state: inout [Double], rows: Int, labels: [Int]?, settings: SamplerSettings) throws {
        let layout = evaluator.layout, n = layout.stateWidth
        let grid = try settings.grid.times(start: Float(layout.start), end: Float(layout.end), steps: settings.steps).map(Double.init)
        var stages = [[Double]](repeating: [Double](repeating: 0, count: rows * n), count: 4)
        var probe = [Double](repeating: 0, count: rows * n)

        /// stages[s] = f(x + Σ_j c_j·stages[j], times) for all rows (x = state)
        func stage(_ s: Int, _ times: (Double, Double?), _ combination: [(Int, Double)]) throws {
            for i in 0..<rows {
                for j in 0..<n {
                    var v = state[i * n + j]
                    for (k, c) in combination { v += c * stages[k][i * n + j] }
                    probe[i * n + j] = v
                }
                probe.withUnsafeBufferPointer { evaluator.setRow(i, state: $0.baseAddress! + i * n, times: times, label: labels?[i]) }
            }
            try stages[s].withUnsafeMutableBufferPointer { try evaluator.evaluate(rows: rows, into: $0.baseAddress!) }
        }
        /// state += Σ_k w_k·stages[k]
        func update(_ weights: [(Int, Double)]) {
            for e in 0..<(rows * n) {
                var d = 0.0
                for (k, w) in weights { d += w * stages[k][e] }
                state[e] += d
            }
        }

        for k in 0..<settings.steps {
            let (t0, t1) = (grid[k], grid[k + 1])
            let h = t1 - t0
            switch settings.method {
            case .euler:
                try stage(0, (t0, nil), [])
                update([(0, h)])
            case .midpoint:
                try stage(0, (t0, nil), [])
                try stage(1, (t0 + h / 2, nil), [(0, h / 2)])
                update([(1, h)])
            case .heun:
                try stage(0, (t0, nil), [])
                try stage(1, (t1, nil), [(0, h)])
                update([(0, h / 2), (1, h / 2)])
            case .rk4Classic:
                try stage(0, (t0, nil), [])
                try stage(1, (t0 + h / 2, nil), [(0, h / 2)])
                try stage(2, (t0 + h / 2, nil), [(1, h / 2)])
                try stage(3, (t1, nil), [(2, h)])
                update([(0, h / 6), (1, h / 3), (2, h / 3), (3, h / 6)])
            case .rk4ThreeEighths:
                try stage(0, (t0, nil), [])
                try stage(1, (t0 + h / 3, nil), [(0, h / 3)])
                try stage(2, (t0 + 2 * h / 3, nil), [(0, -h / 3), (1, h)])
                try stage(3, (t1, nil), [(0, h), (1, -h), (2, h)])
                update([(0, h / 8), (1, 3 * h / 8), (2, 3 * h / 8), (3, h / 8)])
            case .meanflow:
                // z_r = z_t − (t − r)·u(z_t, r, t) with t = t0 (noisier), r = t1 (MeanFlow, eq. 6)
                try stage(0, (t1, t0), [])
                update([(0, -(t0 - t1))])
            case .flowmap:
                // x_{k+1} = X(x_k, t_k, t_{k+1})
                try stage(0, (t0, t1), [])
                for e in 0..<(rows * n) { state[e] = stages[0][e] }
            case .dopri5:
                fatalError("dopri5 is adaptive (Dopri5Solver)")
            }
        }
    }
}
