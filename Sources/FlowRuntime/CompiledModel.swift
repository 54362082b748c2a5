import CFlowcABI
import Dispatch
import FlowRandom
import Foundation

/// An error from loading or calling a compiled model: what went wrong and where.
public struct RuntimeError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { "error: \(message)" }
}

/// A model compiled by `flowc compile`, loaded with dlopen. Thread-safe: entry points are
/// reentrant and every call uses its own workspace, so many threads can share one model.
/// Batches are split into chunks of rows that the threads claim (`BatchChunks`); the cut does not
/// depend on the thread count, so results are identical for any number of threads.
public final class CompiledModel: @unchecked Sendable {
    /// The artifact's metadata (`flowc_metadata()`).
    public struct Metadata: Decodable, Sendable {
        public var name: String
        public var dtype: String
        public var inputShape: [Int]
        public var latentShape: [Int]
        public var entries: [String]
        public var base: String
        /// "flow", "velocity", "mean_velocity" or "flow_map".
        public var kind: String
        /// Velocity, mean-velocity and flow-map models: where the path is noise (0 or 1).
        public var noiseAt: Int?
        /// Labels of a class-conditional field (nil: unconditional).
        public var classes: Int?
        /// Values of one packed `field` row.
        public var fieldWidth: Int?
        /// The fixed-step sampler compiled into `flowc_sample`.
        public var sampler: Sampler?
        /// Classifier-free guidance compiled into a class-conditional flow's `flowc_sample`.
        public var guidance: Guidance?

        public struct Guidance: Decodable, Sendable {
            public var scale: Double
            public var annealed: Bool
            public var attentionTemperature: Double
            enum CodingKeys: String, CodingKey {
                case scale, annealed
                case attentionTemperature = "attention_temperature"
            }
        }

        public struct Sampler: Decodable, Sendable {
            public var method: String
            public var steps: Int
            public var grid: String
        }
        /// The weight file a model compiled with --external-weights reads (its recorded name).
        public var externalWeightFile: String? { externalWeights?.file }
        var externalWeights: ExternalWeights.Manifest?
        /// Bytes of the model's constants (nil from artifacts that predate the field).
        public var weightBytes: Int?

        enum CodingKeys: String, CodingKey {
            case name, dtype, entries, base, kind, classes, sampler, guidance
            case noiseAt = "noise_at"
            case fieldWidth = "field_width"
            case externalWeights = "external_weights"
            case weightBytes = "weight_bytes"
            case inputShape = "input_shape"
            case latentShape = "latent_shape"
        }
    }

    typealias Table = UnsafePointer<UnsafePointer<Float>?>?
    typealias Forward = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?, Table) -> Int32
    typealias LogProb = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int64, UnsafeMutableRawPointer?, Table) -> Int32
    typealias WorkspaceSize = @convention(c) (Int32, Int64) -> UInt64
    typealias Noise = @convention(c) (UInt64, Int64, Int64, Float, UnsafeMutablePointer<Float>?) -> Void

    public let path: String
    public let metadata: Metadata
    /// Threads used to split a batch (default: the machine's active processors).
    public var threads: Int
    /// `body` (compiled calls of `entry` on `rows` rows) as the thread setting asks: with
    /// threads = 1 the products inside the calls are not split over the pool (ColumnSplit);
    /// otherwise `splitChooser` decides, by timing, whether they are.
    func splittingAsChosen<T>(entry: Int32, rows: Int, _ body: () throws -> T) rethrows -> T {
        threads > 1 ? try splitChooser.run(entry: entry, rows: rows, body) : try WorkerPool.withoutSplitting(body)
    }

    private let handle: UnsafeMutableRawPointer
    let workspaceSize: WorkspaceSize
    private let forwardEntry: Forward
    private let logProbEntry: LogProb
    private let inverseEntry: Forward
    private let sampleEntry: Forward
    let fieldEntry: LogProb
    private let scoreEntry: LogProb
    /// flowc_noise: the base noise, drawn by the artifact's vector code.
    private let noiseEntry: Noise
    /// The external weights' table (nil when the weights are embedded).
    private let external: ExternalWeights?
    var table: Table { external.map { UnsafePointer($0.table) } }
    /// Workspaces reused across calls (no allocation per call once warm).
    let workspaces = WorkspacePool()
    /// Whether small batches split their products over the pool, by timing both ways.
    let splitChooser = SplitChooser()
    /// Whether the model has entry point e (FLOWC_ENTRY_*), looked up once: a call checks it
    /// without hashing or string comparisons (a batch-1 MeanFlow sample takes ~4 µs).
    private let hasEntry: [Bool]

    /// Loads a compiled model, checking that it is a Flowc artifact of this ABI version. A model
    /// compiled with --external-weights reads `weights` (default: the recorded file name next to
    /// the .so), checked against the size and checksum recorded at compile time.
    public init(path: String, weights: String? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw RuntimeError(message: "\(path): no such file") }
        try ELFCheck.validate(path)
        // dlopen searches the library path for a name without a slash: give it the file's full path
        guard let handle = dlopen(URL(fileURLWithPath: path).standardizedFileURL.path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw RuntimeError(message: "\(path): cannot load the shared object (\(reason))")
        }
        func symbol<T>(_ name: String, as: T.Type) throws -> T {
            guard let s = dlsym(handle, name) else {
                dlclose(handle)
                throw RuntimeError(message: "\(path): not a Flowc model (no symbol \(name))")
            }
            return unsafeBitCast(s, to: T.self)
        }
        typealias Version = @convention(c) () -> UInt32
        typealias MetadataText = @convention(c) () -> UnsafePointer<CChar>?
        let version = try symbol("flowc_abi_version", as: Version.self)()
        guard version == UInt32(FLOWC_ABI_VERSION) else {
            dlclose(handle)
            throw RuntimeError(message: "\(path): compiled for Flowc ABI version \(version), this runtime reads version \(FLOWC_ABI_VERSION); recompile it with this flowc")
        }
        guard let text = try symbol("flowc_metadata", as: MetadataText.self)(),
              let decoded = try? JSONDecoder().decode(Metadata.self, from: Data(String(cString: text).utf8)) else {
            dlclose(handle)
            throw RuntimeError(message: "\(path): the model's metadata is not valid JSON")
        }
        // The runtime parallelises over chunks of the batch itself: OpenBLAS threads inside each
        // chunk's sgemm would oversubscribe the cores (2.5x slower RealNVP log_prob at batch 256
        // on 2 cores), so the model's OpenBLAS runs single-threaded.
        typealias SetThreads = @convention(c) (Int32) -> Void
        if let set = dlsym(handle, "openblas_set_num_threads") { unsafeBitCast(set, to: SetThreads.self)(1) }
        // Products of small batches split over the worker pool (ColumnSplit in FlowCodegen).
        typealias SetParallel = @convention(c) ((@convention(c) (Int64, WorkerPool.SplitTask?, UnsafeMutableRawPointer?) -> Int32)?) -> Void
        if let set = dlsym(handle, "flowc_set_parallel") { unsafeBitCast(set, to: SetParallel.self)(WorkerPool.splitHook) }
        self.path = path
        self.handle = handle
        self.metadata = decoded
        self.inputElements = decoded.inputShape.reduce(1, *)
        self.latentElements = decoded.latentShape.reduce(1, *)
        self.hasEntry = (0..<CompiledModel.entryNames.count).map { decoded.entries.contains(CompiledModel.entryNames[Int32($0)]!) }
        self.threads = max(1, threads)
        self.workspaceSize = try symbol("flowc_workspace_size", as: WorkspaceSize.self)
        self.forwardEntry = try symbol("flowc_forward", as: Forward.self)
        self.logProbEntry = try symbol("flowc_log_prob", as: LogProb.self)
        self.inverseEntry = try symbol("flowc_inverse", as: Forward.self)
        self.sampleEntry = try symbol("flowc_sample", as: Forward.self)
        self.fieldEntry = try symbol("flowc_field", as: LogProb.self)
        self.scoreEntry = try symbol("flowc_score", as: LogProb.self)
        self.noiseEntry = try symbol("flowc_noise", as: Noise.self)
        if let manifest = decoded.externalWeights {
            let file = weights ?? URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(manifest.file).path
            do { external = try ExternalWeights(path: file, manifest: manifest) } catch {
                dlclose(handle)
                throw error
            }
        } else {
            external = nil
        }
    }

    deinit { dlclose(handle) }

    /// Values per row of x and of z (the shapes' products, from the metadata).
    public let inputElements: Int, latentElements: Int

    /// x → (z, log |det ∂z/∂x|). `labels`: one class per row of a class-conditional flow (nil:
    /// the null label, i.e. the unconditional model).
    public func forward(_ x: [Float], labels: [Int]? = nil) throws -> (z: [Float], logdet: [Float]) {
        let (input, width) = try packed(x, inputElements, labels)
        return try twoOutputs(input, inWidth: width, outWidth: latentElements) { i, o, l in
            try buffers(FLOWC_ENTRY_FORWARD, forwardEntry, i, o, l, inWidth: width, outWidth: latentElements)
        }
    }

    /// z → (x, log |det ∂x/∂z|).
    public func inverse(_ z: [Float], labels: [Int]? = nil) throws -> (x: [Float], logdet: [Float]) {
        let (input, width) = try packed(z, latentElements, labels)
        let r = try twoOutputs(input, inWidth: width, outWidth: inputElements) { i, o, l in
            try buffers(FLOWC_ENTRY_INVERSE, inverseEntry, i, o, l, inWidth: width, outWidth: inputElements)
        }
        return (r.0, r.1)
    }

    /// log p(x) per row (log p(x | label) for a class-conditional flow).
    public func logProb(_ x: [Float], labels: [Int]? = nil) throws -> [Float] {
        let (input, width) = try packed(x, inputElements, labels)
        return try CompiledModel.outputArray(count: try rows(input.count, width)) { out in
            try input.withUnsafeBufferPointer { i in try logProb(i, into: out, inWidth: width) }
        }
    }

    /// Samples from given standard-normal base noise (rows of the latent shape).
    public func sample(noise: [Float], labels: [Int]? = nil) throws -> [Float] {
        let (input, width) = try packed(noise, latentElements, labels)
        let batch = try rows(input.count, width)
        // flowc_sample's logdet (0 for the ODE samplers) is not returned: scratch, not an array
        return try withUnsafeTemporaryAllocation(of: Float.self, capacity: batch) { logdet in
            try CompiledModel.outputArray(count: batch * inputElements) { x in
                try input.withUnsafeBufferPointer { n in try buffers(FLOWC_ENTRY_SAMPLE, sampleEntry, n, x, logdet, inWidth: width, outWidth: inputElements) }
            }
        }
    }

    /// `count` samples from counter-based noise: row r uses Philox stream entries of row r, so
    /// the same seed gives the same samples whatever the batch split.
    public func sample(count: Int, seed: UInt64, temperature: Float = 1, labels: [Int]? = nil) throws -> [Float] {
        try sample(noise: noise(seed: seed, firstRow: 0, rows: count, temperature: temperature), labels: labels)
    }

    /// The base noise of rows firstRow ..< firstRow + rows of the seed's counter-based stream
    /// (`Philox.normals`, rounded to f32), times the temperature: what `sample(count:seed:)` feeds
    /// the model. The artifact's flowc_noise draws it, in chunks of rows on the worker threads.
    public func noise(seed: UInt64, firstRow: Int, rows: Int, temperature: Float = 1) throws -> [Float] {
        guard rows >= 1 else { throw RuntimeError(message: "sample count must be at least 1, got \(rows)") }
        guard temperature.isFinite, temperature >= 0 else { throw RuntimeError(message: "temperature must be finite and ≥ 0, got \(temperature)") }
        let width = latentElements
        return [Float](unsafeUninitializedCapacity: rows * width) { buffer, initialized in
            // each chunk writes only its own rows
            nonisolated(unsafe) let buffer = buffer
            BatchChunks(rows: rows, weightBytes: 0) { _ in 0 }.run(threads: threads) { claim in
                while let (_, chunk) = claim() {
                    let first = (firstRow + chunk.lowerBound) * width
                    drawNoise(seed: seed, entries: first..<(first + chunk.count * width), scale: temperature, into: buffer.baseAddress! + chunk.lowerBound * width)
                }
            }
            initialized = rows * width
        }
    }

    /// Stream entries `entries` into out[0 ..< entries.count]: flowc_noise writes whole blocks of
    /// 4 entries; a block the range cuts is drawn whole into a scratch block and copied in part.
    func drawNoise(seed: UInt64, entries: Range<Int>, scale: Float, into out: UnsafeMutablePointer<Float>) {
        var k = entries.lowerBound
        while k < entries.upperBound {
            let block = k / 4, whole = (entries.upperBound - k) / 4
            if k % 4 == 0 && whole > 0 {
                noiseEntry(seed, Int64(block), Int64(whole), scale, out + (k - entries.lowerBound))
                k += 4 * whole
            } else {
                let end = min(entries.upperBound, 4 * block + 4)
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 4) { scratch in
                    noiseEntry(seed, Int64(block), 1, scale, scratch.baseAddress!)
                    for e in k..<end { out[e - entries.lowerBound] = scratch[e - 4 * block] }
                }
                k = end
            }
        }
    }

    /// ∇ₓ log p(x) per row (input-shaped rows), for flows whose ops all have gradient rules.
    public func score(_ x: [Float], labels: [Int]? = nil) throws -> [Float] {
        let (input, width) = try packed(x, inputElements, labels)
        let batch = try rows(input.count, width)
        var out = [Float](repeating: 0, count: batch * inputElements)
        try input.withUnsafeBufferPointer { i in
            try out.withUnsafeMutableBufferPointer { o in
                nonisolated(unsafe) let (i, o, weights) = (i, o, table)
                let n = inputElements
                try parallel(batch: batch, entry: FLOWC_ENTRY_SCORE) { first, count, workspace in
                    scoreEntry(i.baseAddress! + first * width, o.baseAddress! + first * n, Int64(count), workspace, weights)
                }
            }
        }
        return out
    }

    /// Rows of `width` values, with the label appended to each row for a class-conditional flow
    /// (the entry points' packed layout); returns the rows and their width.
    func packed(_ values: [Float], _ width: Int, _ labels: [Int]?) throws -> ([Float], Int) {
        let count = try rows(values.count, width)
        guard metadata.kind == "flow", let classes = metadata.classes else {
            if labels != nil { throw RuntimeError(message: "\(metadata.name) is not a class-conditional flow; it takes no labels") }
            return (values, width)
        }
        let rowLabels = labels ?? Array(repeating: classes, count: count)
        guard rowLabels.count == count else { throw RuntimeError(message: "\(rowLabels.count) labels for \(count) rows") }
        if let bad = rowLabels.firstIndex(where: { !(0...classes).contains($0) }) {
            throw RuntimeError(message: "label \(rowLabels[bad]) of row \(bad) is outside 0..<\(classes) (or \(classes) for the unconditional model)")
        }
        var out: [Float] = []
        out.reserveCapacity(count * (width + 1))
        for r in 0..<count {
            out += values[(r * width)..<((r + 1) * width)]
            out.append(Float(rowLabels[r]))
        }
        return (out, width + 1)
    }

    // MARK: unsafe-buffer variants (no copies; the caller owns the memory)

    /// Values per input row of the unsafe-buffer entry points: the sample's values, plus the
    /// label for a class-conditional flow (packed rows).
    public var labelColumns: Int { metadata.kind == "flow" && metadata.classes != nil ? 1 : 0 }

    /// x → z and logdet into caller-provided buffers (batch = x.count / (inputElements + labelColumns)).
    public func forward(_ x: UnsafeBufferPointer<Float>, z: UnsafeMutableBufferPointer<Float>, logdet: UnsafeMutableBufferPointer<Float>) throws {
        try buffers(FLOWC_ENTRY_FORWARD, forwardEntry, x, z, logdet, inWidth: inputElements + labelColumns, outWidth: latentElements)
    }

    /// z → x and the inverse's logdet into caller-provided buffers.
    public func inverse(_ z: UnsafeBufferPointer<Float>, x: UnsafeMutableBufferPointer<Float>, logdet: UnsafeMutableBufferPointer<Float>) throws {
        try buffers(FLOWC_ENTRY_INVERSE, inverseEntry, z, x, logdet, inWidth: latentElements + labelColumns, outWidth: inputElements)
    }

    /// log p(x) into a caller-provided buffer of one value per row.
    public func logProb(_ x: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        try logProb(x, into: output, inWidth: inputElements + labelColumns)
    }

    private func logProb(_ x: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, inWidth: Int) throws {
        let batch = try rows(x.count, inWidth)
        guard output.count >= batch else { throw RuntimeError(message: "the output buffer holds \(output.count) values; \(batch) rows need \(batch)") }
        nonisolated(unsafe) let (input, out, weights) = (x, output, table)
        try parallel(batch: batch, entry: FLOWC_ENTRY_LOG_PROB) { first, count, workspace in
            logProbEntry(input.baseAddress! + first * inWidth, out.baseAddress! + first, Int64(count), workspace, weights)
        }
    }

    private func buffers(_ entry: Int32, _ f: Forward, _ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>,
                         _ logdet: UnsafeMutableBufferPointer<Float>, inWidth: Int, outWidth: Int) throws {
        let batch = try rows(input.count, inWidth)
        guard output.count >= batch * outWidth, logdet.count >= batch else {
            throw RuntimeError(message: "output buffers too small for \(batch) rows: need \(batch * outWidth) and \(batch) values, got \(output.count) and \(logdet.count)")
        }
        nonisolated(unsafe) let (i, o, l, weights) = (input, output, logdet, table)
        try parallel(batch: batch, entry: entry) { first, count, workspace in
            f(i.baseAddress! + first * inWidth, o.baseAddress! + first * outWidth, l.baseAddress! + first, Int64(count), workspace, weights)
        }
    }

    private func rows(_ count: Int, _ width: Int) throws -> Int {
        guard count > 0, count % width == 0 else {
            throw RuntimeError(message: "expected a batch of rows of \(width) values, got \(count) values")
        }
        return count / width
    }

    private func twoOutputs(_ input: [Float], inWidth: Int, outWidth: Int,
                            _ run: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> ([Float], [Float]) {
        let batch = try rows(input.count, inWidth)
        var logdet: [Float] = []
        let out = try CompiledModel.outputArray(count: batch * outWidth) { o in
            logdet = try CompiledModel.outputArray(count: batch) { l in try input.withUnsafeBufferPointer { i in try run(i, o, l) } }
        }
        return (out, logdet)
    }

    /// An array of `count` values that `fill` writes in full (the entry points write every
    /// output value or fail): not zeroed first, as `[Float](repeating:count:)` would be.
    static func outputArray(count: Int, _ fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
        try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try fill(UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
            initialized = count
        }
    }

    static let entryNames = [FLOWC_ENTRY_FORWARD: "forward", FLOWC_ENTRY_LOG_PROB: "log_prob", FLOWC_ENTRY_INVERSE: "inverse",
                             FLOWC_ENTRY_SAMPLE: "sample", FLOWC_ENTRY_FIELD: "field", FLOWC_ENTRY_SCORE: "score"]

    func requireEntry(_ entry: Int32) throws {
        guard hasEntry.indices.contains(Int(entry)), hasEntry[Int(entry)] else {
            throw RuntimeError(message: "\(metadata.name) has no \(CompiledModel.entryNames[entry] ?? "such") entry point (it has: \(metadata.entries.joined(separator: ", ")))")
        }
    }

    /// The message for an entry point's error code.
    static func describe(_ code: Int32) -> String {
        code == FLOWC_ERROR_NONFINITE_INPUT ? "an input value is NaN or infinite"
            : code == FLOWC_ERROR_NONFINITE_OUTPUT ? "the model produced a NaN or infinite value (an input far outside the model's range?)"
            : code == FLOWC_ERROR_BAD_BATCH ? "bad batch size"
            : code == FLOWC_ERROR_OVERLAP ? "an output buffer overlaps an input, another output or the workspace"
            : code == FLOWC_ERROR_NO_ENTRY ? "the model has no such entry point (see its metadata's entries)" : "error code \(code)"
    }

    /// The chunks of `rows` rows (samples) for calls of `entry` on `rowsPerSample` rows each:
    /// sized by this model's weights and that entry point's workspace.
    func chunks(of rows: Int, entry: Int32, rowsPerSample: Int = 1) -> BatchChunks {
        BatchChunks(rows: rows, weightBytes: metadata.weightBytes ?? 0) { Int(workspaceSize(entry, Int64(rowsPerSample * $0))) }
    }

    /// Runs `call(firstRow, rows, workspace)` over the chunks of the batch (`BatchChunks`) on
    /// `threads` threads.
    private func parallel(batch: Int, entry: Int32, _ call: (Int, Int, UnsafeMutableRawPointer) -> Int32) throws {
        try requireEntry(entry)
        let chunks = chunks(of: batch, entry: entry)
        let bytes = Int(workspaceSize(entry, Int64(min(batch, chunks.rowsPerChunk))))
        if chunks.count == 1 {
            // one chunk: no pool job and no table of return codes (small batches' calls take a
            // few µs, of which this bookkeeping was a tenth)
            let code = splittingAsChosen(entry: entry, rows: batch) {
                let (workspace, capacity) = workspaces.take(bytes: bytes)
                defer { workspaces.giveBack(workspace, bytes: capacity) }
                return call(0, batch, workspace)
            }
            guard code == FLOWC_OK else { throw RuntimeError(message: "\(metadata.name): rows 0..<\(batch): \(CompiledModel.describe(code))") }
            return
        }
        // Each chunk writes only its own rows and return code: no two threads share memory.
        nonisolated(unsafe) let codes = UnsafeMutableBufferPointer<Int32>.allocate(capacity: chunks.count)
        defer { codes.deallocate() }
        codes.initialize(repeating: 0)
        nonisolated(unsafe) let call = call
        let runChunks = {
            chunks.run(threads: self.threads) { claim in
                let (workspace, capacity) = self.workspaces.take(bytes: bytes)
                defer { self.workspaces.giveBack(workspace, bytes: capacity) }
                while let (index, rows) = claim() {
                    codes[index] = call(rows.lowerBound, rows.count, workspace)
                }
            }
        }
        splittingAsChosen(entry: entry, rows: batch, runChunks)
        if let bad = codes.firstIndex(where: { $0 != FLOWC_OK }) {
            throw RuntimeError(message: "\(metadata.name): rows \(chunks[bad]): \(CompiledModel.describe(codes[bad]))")
        }
    }
}
