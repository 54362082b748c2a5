/// Runs a sampler on a batch of noise: the entry point of the solvers, for compiled and
/// interpreted fields alike. Samples are independent (dopri5 controls each one's steps), so the
/// results of a row do not depend on which other rows share its batch.
public enum ODESolve {
    /// noise: rows × N standard normals (already scaled by any temperature); labels: one class
    /// per row for a class-conditional model (nil: the null label ∅). Returns the samples.
    public static func sample(_ field: VectorField, noise: [Float], labels: [Int]? = nil, settings: SamplerSettings) throws -> (samples: [Float], report: SolveReport) {
        let layout = field.layout, n = layout.stateWidth
        try settings.validate(for: layout)
        guard n > 0, !noise.isEmpty, noise.count % n == 0 else {
            throw SolverError("expected rows of \(n) noise values, got \(noise.count) values")
        }
        let rows = noise.count / n
        var rowLabels = labels
        if let classes = layout.classes {
            if let labels {
                guard labels.count == rows else { throw SolverError("\(labels.count) class labels for \(rows) samples") }
                if let bad = labels.firstIndex(where: { !(0...classes).contains($0) }) {
                    throw SolverError("class label \(labels[bad]) of sample \(bad) is outside 0..<\(classes) (or \(classes) for the null class)")
                }
            } else {
                rowLabels = Array(repeating: classes, count: rows)
            }
        } else if labels != nil {
            throw SolverError("class labels given to an unconditional model")
        }
        let evaluator = FieldEvaluator(field: field, rows: rows, guidance: settings.guidance)
        var state = noise.map(Double.init)
        var report = SolveReport(samples: rows)
        if settings.method == .dopri5 {
            try Dopri5Solver.run(evaluator, state: &state, rows: rows, labels: rowLabels, settings: settings, report: &report)
        } else {
            try FixedStepSolver.run(evaluator, state: &state, rows: rows, labels: rowLabels, settings: settings)
            report.acceptedSteps = Array(repeating: settings.steps, count: rows)
        }
        report.evaluatedRows = evaluator.evaluatedRows
        return (state.map { Float($0) }, report)
    }
}
