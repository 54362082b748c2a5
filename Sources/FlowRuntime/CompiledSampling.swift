import CFlowcABI
import Dispatch
import FlowSolvers

/// Sampling velocity, mean-velocity and flow-map models with any sampler chosen at sample time.
extension CompiledModel {
    /// The sampler view of the model (nil for a normalizing flow).
    public var fieldLayout: FieldLayout? {
        guard let kind = FieldKind(rawValue: metadata.kind), let noiseAt = metadata.noiseAt else { return nil }
        return FieldLayout(kind: kind, noiseAt: Double(noiseAt), stateWidth: inputElements, classes: metadata.classes)
    }

    /// The fixed-step sampler compiled into `flowc_sample` (nil for a normalizing flow).
    public var compiledSampler: SamplerSettings? {
        guard let s = metadata.sampler, let method = ODESampler(name: s.method), let grid = try? TimeGrid(parsing: s.grid) else { return nil }
        return SamplerSettings(method: method, steps: s.steps, grid: grid)
    }

    /// Samples from given standard-normal noise with `settings`. The compiled whole-loop sampler
    /// runs when the settings are the compiled ones (no labels, no guidance); otherwise the
    /// solver (`ODESolve`) calls the compiled network, on chunks of samples the threads claim
    /// (`BatchChunks`). `labels`: one class per sample of a class-conditional model (nil: the
    /// null label, i.e. unconditional).
    public func sample(noise: [Float], settings: SamplerSettings, labels: [Int]? = nil) throws -> (samples: [Float], report: SolveReport) {
        let (layout, rows) = try samplingBatch(noise, labels)
        if labels == nil, settings.guidance == 0, settings == compiledSampler {
            var report = SolveReport(samples: rows)
            report.acceptedSteps = Array(repeating: settings.steps, count: rows)
            report.evaluatedRows = rows * settings.steps * settings.method.evaluationsPerStep
            return (try sample(noise: noise), report)
        }
        return try solve(noise: noise, rows: rows, layout: layout, settings: settings, labels: labels)
    }

    /// Samples with `settings` through the solver over the compiled network (`flowc_field`),
    /// always — also for the compiled fixed-step sampler (to compare the two).
    public func solve(noise: [Float], settings: SamplerSettings, labels: [Int]? = nil) throws -> (samples: [Float], report: SolveReport) {
        let (layout, rows) = try samplingBatch(noise, labels)
        return try solve(noise: noise, rows: rows, layout: layout, settings: settings, labels: labels)
    }

    /// The field's layout and the number of samples, checking that the model is integrated and
    /// that noise and labels fill whole rows.
    private func samplingBatch(_ noise: [Float], _ labels: [Int]?) throws -> (FieldLayout, Int) {
        guard let layout = fieldLayout else {
            throw RuntimeError(message: "\(metadata.name) is a normalizing flow: it samples through its inverse, with no ODE sampler to choose")
        }
        let rows = noise.count / max(1, latentElements)
        guard rows >= 1, noise.count == rows * latentElements else {
            throw RuntimeError(message: "expected a batch of rows of \(latentElements) values, got \(noise.count) values")
        }
        if let labels, labels.count != rows { throw RuntimeError(message: "\(labels.count) class labels for \(rows) samples") }
        return (layout, rows)
    }

    private func solve(noise: [Float], rows: Int, layout: FieldLayout, settings: SamplerSettings, labels: [Int]?) throws -> (samples: [Float], report: SolveReport) {
        try requireEntry(FLOWC_ENTRY_FIELD)
        do { try settings.validate(for: layout) } catch let e as SolverError { throw RuntimeError(message: e.message) }
        // guidance evaluates the network on two rows (with and without the label) per sample
        let rowsPerSample = settings.guidance == 0 ? 1 : 2
        let chunks = chunks(of: rows, entry: FLOWC_ENTRY_FIELD, rowsPerSample: rowsPerSample)
        // Each chunk writes only its own slot: no two threads share memory.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Result<([Float], SolveReport), Error>?>.allocate(capacity: chunks.count)
        defer { results.deallocate() }
        results.initialize(repeating: nil)
        // the solver's field calls: one chooser timing per whole solve
        splittingAsChosen(entry: FLOWC_ENTRY_FIELD, rows: rows) {
            chunks.run(threads: threads) { claim in
                let field = CompiledField(model: self, layout: layout, rows: rowsPerSample * chunks.rowsPerChunk)
                while let (index, samples) = claim() {
                    let part = Array(noise[(samples.lowerBound * latentElements)..<(samples.upperBound * latentElements)])
                    results[index] = Result { try ODESolve.sample(field, noise: part, labels: labels.map { Array($0[samples]) }, settings: settings) }
                }
            }
        }
        var samples: [Float] = []
        samples.reserveCapacity(noise.count)
        var report = SolveReport(samples: 0)
        for index in 0..<chunks.count {
            do {
                let (part, partReport) = try results[index]!.get()
                samples += part
                report.append(partReport, offset: chunks[index].lowerBound)
            } catch let e as SolverError {
                throw RuntimeError(message: "\(metadata.name): samples \(chunks[index]): \(e.message)")
            }
        }
        return (samples, report)
    }

    /// `count` samples from counter-based noise (as `sample(count:seed:temperature:)`) with `settings`.
    public func sample(count: Int, seed: UInt64, temperature: Float = 1, settings: SamplerSettings, labels: [Int]? = nil) throws -> (samples: [Float], report: SolveReport) {
        try sample(noise: noise(seed: seed, firstRow: 0, rows: count, temperature: temperature), settings: settings, labels: labels)
    }
}
