import CFlowcABI
import CLLVM
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRuntime
import FlowSolvers
import Foundation

/// Compiles a model to a shared object with the C ABI of flowc.h: derives the entry points,
/// evaluates everything that does not depend on the input at compile time (weights, masked
/// weights, log-determinants of constant matrices) into constant globals, lowers each entry
/// point to LLVM IR, optimises with the new pass manager, emits an object in-process and links
/// it with the system `cc` against OpenBLAS.
public enum ArtifactCompiler {
    public struct Options: Sendable {
        /// 0 ... 2: LLVM's pass pipeline `default<O0>` ... `default<O2>`; 3: Flowc's (`TargetEmitter.pipeline`).
        public var optimization = 3
        /// A CPU name for portable artifacts (`x86-64-v3`); nil: this machine's CPU and features.
        public var cpu: String?
        /// Keep the float32 weights that kernels read as they are in the .safetensors file
        /// (read and checked when the model is opened) instead of embedding them; values
        /// computed from weights at compile time (masked weights, LU products) stay embedded.
        public var externalWeights: Bool
        /// For velocity, mean-velocity and flow-map models: the fixed-step sampler compiled into
        /// `flowc_sample` (default: `SamplerSettings.defaults`), recorded in the metadata.
        public var sampler: SamplerSettings?
        /// For class-conditional flows: classifier-free guidance compiled into `flowc_sample`.
        public var guidance: FlowGuidance?
        /// For flows: σ of the self-denoising step x + σ²·∇ log p(x) appended to `flowc_sample`.
        public var denoise: Double?
        /// For flows: also compile `flowc_score` (∇ₓ log p(x); off by default, as it about doubles
        /// the code and the compile time).
        public var score = false
        /// Told each phase as it starts ("derive flowc_sample", "optimise and emit").
        public var progress: (@Sendable (String) -> Void)?
        /// The registers the GEMM tiles and weight panels are planned for, instead of the
        /// target's (`TargetEmitter.registerFile`). Tests set `.zmm32` on an AVX2 machine: LLVM
        /// splits each 16-lane operation into two 8-lane ones and spills, which is slow but
        /// computes the AVX-512 plan's tiles, panels and splits, so that they are checked where
        /// no AVX-512 core is at hand.
        var plannedRegisters: RegisterFile?
        public init(optimization: Int = 3, cpu: String? = nil, externalWeights: Bool = false, sampler: SamplerSettings? = nil) {
            self.optimization = optimization
            self.cpu = cpu
            self.externalWeights = externalWeights
            self.sampler = sampler
        }
    }

    public enum Listing: String, Sendable { case llvm, assembly, kernels }

    static let entries: [(EntryPoints.Entry, String, Int32)] = [
        (.forward, "flowc_forward", FLOWC_ENTRY_FORWARD), (.logProb, "flowc_log_prob", FLOWC_ENTRY_LOG_PROB),
        (.inverse, "flowc_inverse", FLOWC_ENTRY_INVERSE), (.sample, "flowc_sample", FLOWC_ENTRY_SAMPLE),
        (.field, "flowc_field", FLOWC_ENTRY_FIELD), (.score, "flowc_score", FLOWC_ENTRY_SCORE),
    ]

    /// Fails before any work when `output` cannot become the shared object: its directory does
    /// not exist or is not writable, or the path is a directory. (The linker would report it
    /// too, naming `output`, but only after the whole compile and in its own words.)
    static func checkOutputPath(_ output: String) throws {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
            throw FlowError("the output is a directory; expected the path of the shared object to write, such as \(output)/model.so", in: output)
        }
        let directory = (output as NSString).deletingLastPathComponent
        let parent = directory.isEmpty ? "." : directory
        guard files.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FlowError("cannot write the shared object: directory '\(parent)' does not exist", in: output)
        }
        guard files.isWritableFile(atPath: parent) else {
            throw FlowError("cannot write the shared object: directory '\(parent)' is not writable", in: output)
        }
    }

    /// Writes the shared object to `output`; with `listing`, also returns the optimised LLVM IR
    /// or assembly text.
    @discardableResult
    public static func compile(_ model: Model, options: Options = Options(), output: String, listing: Listing? = nil) throws -> String? {
        try checkOutputPath(output)
        let weights = try model.weightsPath.map { try WeightStore(path: $0) }
        let b = IRBuilder(moduleName: model.name, registers: try options.plannedRegisters ?? TargetEmitter.registerFile(cpu: options.cpu))
        let globals = ConstantGlobals(builder: b, external: options.externalWeights ? weights : nil)
        let kernels = KernelCache(builder: b)
        var sizes: [(Int32, Int, Int)] = []
        var kernelListing = ""
        var timer = PhaseTimer()
        var available = EntryPoints.entries(of: model).filter { $0 != .score || options.score }
        // a flow sampling by its inverse derives that graph once (flowc_sample calls flowc_inverse)
        let sampleIsInverse = EntryPoints.sampleIsInverse(model, guidance: options.guidance, denoise: options.denoise)
        // a flow's log_prob is its forward followed by the base density, and its sample from a
        // diagonal Gaussian base the base's transform of the noise followed by its inverse
        // (EntryComposition): each derived and compiled once
        let logProbIsForward = model.kind == .flow
        let sampleIsTransform = EntryPoints.sampleIsTransformThenInverse(model, guidance: options.guidance, denoise: options.denoise)
        // the entry points' graphs are independent: derived on all cores at once, the costliest
        // (the inverse, the sampler, the score) handed out first
        let wanted = [EntryPoints.Entry.inverse, .sample, .score, .logProb, .forward, .field]
            .filter { available.contains($0) && !($0 == .sample && (sampleIsInverse || sampleIsTransform)) && !($0 == .logProb && logProbIsForward) }
        // flowc_noise and the standard GEMM tiles do not depend on the model: compiled on a
        // thread of its own at the lowest priority from now on, unless a listing of the whole
        // module should show them
        let prelude = listing == nil || listing == .kernels ? PreludeCompilation(options: options, registers: b.registers, output: output) : nil
        defer { prelude?.discard() }
        if prelude != nil { b.tilesDefinedElsewhere = Set(GemmTiles.standardShapes(b.registers).map(GemmTiles.name)) }
        prelude?.start()
        nonisolated(unsafe) var results = [Result<Graph, Error>?](repeating: nil, count: wanted.count)
        DispatchQueue.concurrentPerform(iterations: wanted.count) { i in
            let entry = wanted[i]
            results[i] = Result { try EntryPoints.graph(entry, of: model, weights: weights, sampler: options.sampler,
                                                        guidance: entry == .sample ? options.guidance : nil, denoise: entry == .sample ? options.denoise : nil) }
        }
        let derivations = Dictionary(uniqueKeysWithValues: zip(wanted, results.map { $0! }))
        timer.lap("derive \(wanted.count) entry points")
        let panel = WeightPacking.panel(registers: b.registers)
        for (entry, symbol, id) in entries {
            let outputs = [.logProb, .field, .score].contains(entry) ? 1 : 2
            guard available.contains(entry) else {
                emitMissingEntry(b, symbol: symbol, outputs: outputs)
                continue
            }
            options.progress?("derive and lower \(symbol)")
            if entry == .sample && sampleIsInverse, let size = sizes.first(where: { $0.0 == FLOWC_ENTRY_INVERSE }) {
                // a flow with a standard normal base samples by its inverse: one function, not two
                emitAlias(b, symbol: symbol, of: "flowc_inverse")
                sizes.append((id, size.1, size.2))
                timer.lap("\(symbol) = flowc_inverse")
                continue
            }
            // a flow's log_prob: its forward, then the base density; its sample from a diagonal
            // Gaussian base: the base's transform of the noise, then its inverse (EntryComposition)
            let composedWith = entry == .logProb && logProbIsForward ? FLOWC_ENTRY_FORWARD : entry == .sample && sampleIsTransform ? FLOWC_ENTRY_INVERSE : nil
            if let composedWith {
                guard let other = sizes.first(where: { $0.0 == composedWith }) else {
                    throw FlowError("internal: \(symbol) calls an entry point compiled after it", at: .synthetic("codegen"))
                }
                let (graph, part, description) = entry == .logProb
                    ? (try EntryPoints.baseLogDensity(of: model, weights: weights), "\(symbol)_base_density", "flowc_forward (z and logdet into the workspace), then the base density")
                    : (try EntryPoints.baseTransform(of: model, weights: weights), "\(symbol)_base_transform", "the base's transform of the noise (z into the workspace), then flowc_inverse")
                var lowering = try FunctionLowering(graph: graph, builder: b, fold: { try globals.fold($0, weights: weights) }, kernels: kernels)
                try lowering.emit(name: part)
                LLVMSetLinkage(LLVMGetNamedFunction(b.module, part), LLVMInternalLinkage)
                let space = emitComposition(b, entry, symbol: symbol, model: model, part: (part, lowering.workspaceFloats), other: (other.1, other.2))
                if listing == .kernels { kernelListing += "\(symbol): \(description):\n" + lowering.describeKernels(name: part) }
                sizes.append((id, space.fixed, space.perSample))
                timer.lap("\(symbol): \(description)")
                continue
            }
            let derived: Graph
            do {
                derived = try derivations[entry]!.get()
            } catch let e as FlowError where entry == .score {
                throw FlowError("the score (--score) needs a gradient rule for every op: \(e.message)", in: e.location)
            } catch let e as FlowError where entry == .logProb && model.kind != .flow && e.kind == .noForwardModeRule {
                // a velocity field with an op that has no forward-mode rule samples, but has no likelihood
                available.removeAll { $0 == .logProb }
                emitMissingEntry(b, symbol: symbol, outputs: outputs)
                timer.lap("no \(symbol): \(e.message)")
                continue
            }
            // several inputs (x and a class label) become packed rows
            let graph = try WeightPacking.pack(try DenseConvolution.rewrite(try EntryPoints.packed(derived)), keepExternal: options.externalWeights, panel: panel)
            timer.lap("prepare \(symbol) (\(graph.nodes.count) ops)")
            var lowering = try FunctionLowering(graph: graph, builder: b, fold: { try globals.fold($0, weights: weights) }, kernels: kernels)
            timer.lap("fold constants")
            try lowering.emit(name: symbol)
            if listing == .kernels { kernelListing += lowering.describeKernels(name: symbol) }
            timer.lap("lower (\(kernels.count) kernels so far)")
            sizes.append((id, lowering.workspaceFloats.fixed, lowering.workspaceFloats.perSample))
        }
        emitWorkspaceSize(b, sizes)
        if prelude == nil { NoiseLowering.emit(b) }
        ColumnSplit.emitSetter(b)
        try emitMetadata(b, model, entries: available, options: options, external: globals.externalWeights, file: weights?.file.path,
                         weightBytes: globals.bytes)
        options.progress?("optimise (LLVM O\(options.optimization)), emit and link \(kernels.count) kernels")
        let text = try TargetEmitter(options: options).emit(b, output: output, listing: listing == .kernels ? nil : listing) {
            try prelude.map { [try $0.object()] } ?? []
        }
        return listing == .kernels ? kernelListing + "\n\(kernels.count) distinct kernel functions in the module\n" : text
    }

    /// A flow's log_prob as flowc_forward then `part` (the base density), or its sample as
    /// `part` (the base's transform of the noise) then flowc_inverse; `part` and `other` (the
    /// entry point called) with their workspaces in floats. Returns the composition's workspace.
    static func emitComposition(_ b: IRBuilder, _ entry: EntryPoints.Entry, symbol: String, model: Model, part: (name: String, workspace: (fixed: Int, perSample: Int)),
                                other: (fixed: Int, perSample: Int)) -> (fixed: Int, perSample: Int) {
        let flow = model.flow
        let latent = flow.type(of: flow.outputs[0]).elementsPerSample
        let input = flow.inputs.map { flow.type(of: $0).elementsPerSample }.reduce(0, +)
        if entry == .logProb {
            // (x; out): forward(x; z, logdet), then density(z, logdet; out)
            return EntryComposition.emit(b, symbol: symbol, parameterFloats: [input, 1], passedFloats: [latent, 1], calls: [
                .init(function: "flowc_forward", buffers: [.parameter(0), .passed(0), .passed(1)], workspace: other),
                .init(function: part.name, buffers: [.passed(0), .passed(1), .parameter(1)], workspace: part.workspace)])
        }
        // (ε; x, logdet): transform(ε; z), then inverse(z; x, logdet)
        return EntryComposition.emit(b, symbol: symbol, parameterFloats: [latent, input, 1], passedFloats: [latent], calls: [
            .init(function: part.name, buffers: [.parameter(0), .passed(0)], workspace: part.workspace),
            .init(function: "flowc_inverse", buffers: [.passed(0), .parameter(1), .parameter(2)], workspace: other)])
    }

    /// An entry point the model does not have: returns FLOWC_ERROR_NO_ENTRY.
    static func emitMissingEntry(_ b: IRBuilder, symbol: String, outputs: Int) {
        let f = b.declare(symbol, b.functionType(b.i32, Array(repeating: b.pointer, count: 1 + outputs) + [b.i64, b.pointer, b.pointer]))
        b.begin(f)
        b.ret(b.i32(Int(FLOWC_ERROR_NO_ENTRY)))
    }

    /// An entry point that calls another with the same arguments (the Forward signature).
    static func emitAlias(_ b: IRBuilder, symbol: String, of target: String) {
        let type = b.functionType(b.i32, [b.pointer, b.pointer, b.pointer, b.i64, b.pointer, b.pointer])
        let callee = LLVMGetNamedFunction(b.module, target)!
        let f = b.declare(symbol, type)
        b.begin(f)
        b.ret(b.call(callee, type, (0..<6).map { b.parameter($0) }))
    }

    /// uint64 flowc_workspace_size(int32 entry, int64 batch) = 4·(fixed + batch·perSample) + 64
    static func emitWorkspaceSize(_ b: IRBuilder, _ sizes: [(Int32, Int, Int)]) {
        let f = b.declare("flowc_workspace_size", b.functionType(b.i64, [b.i32, b.i64]))
        b.begin(f)
        let entry = b.parameter(0), batch = b.parameter(1)
        var result = b.i64(64)
        for (id, fixed, perSample) in sizes {
            let bytes = b.add(b.i64(4 * fixed + 64), b.mul(batch, b.i64(4 * perSample)))
            result = b.select(LLVMBuildICmp(b.builder, LLVMIntEQ, entry, b.i32(Int(id)), "")!, bytes, result)
        }
        b.ret(result)
    }

    /// `weightBytes`: the constants' bytes, recorded as "weight_bytes" (the runtime's chunk size,
    /// BatchChunks, reads it).
    static func emitMetadata(_ b: IRBuilder, _ model: Model, entries: [EntryPoints.Entry], options: Options, external: [(name: String, shape: [Int])], file: String?,
                             weightBytes: Int) throws {
        let (sampler, guidance) = (options.sampler, options.guidance)
        let version = b.declare("flowc_abi_version", b.functionType(b.i32, []))
        b.begin(version)
        b.ret(b.i32(Int(FLOWC_ABI_VERSION)))
        let input = model.flow.type(of: model.flow.inputs[0]).dims, latent = model.flow.type(of: model.flow.outputs[0]).dims
        var kind = "\"kind\": \"flow\", \"classes\": \(model.classes.map(String.init) ?? "null")"
        if let sigma = options.denoise { kind += ", \"denoise\": \(sigma)" }
        if let guidance {
            kind += ", \"guidance\": {\"scale\": \(guidance.scale), \"annealed\": \(guidance.annealed), \"attention_temperature\": \(guidance.attentionTemperature)}"
        }
        if model.kind != .flow {
            // the field's layout and the sampler compiled into flowc_sample
            let layout = try FieldCall.layout(of: model)
            let compiled = sampler ?? SamplerSettings.defaults(for: layout.kind)
            kind = "\"kind\": \"\(layout.kind.rawValue)\", \"noise_at\": \(Int(layout.noiseAt)), \"classes\": \(layout.classes.map(String.init) ?? "null"), " +
                "\"field_width\": \(layout.width), \"sampler\": {\"method\": \"\(compiled.method.rawValue)\", \"steps\": \(compiled.steps), " +
                "\"grid\": \(Attribute.string(compiled.grid.description))}"
        }
        let base: String
        switch model.base {
        case .standardNormal: base = "normal"
        case .diagonalNormal: base = "diagonal normal"
        }
        let json = """
        {"name": \(Attribute.string(model.name)), "dtype": "f32", "input_shape": \(input), "latent_shape": \(latent), \
        "entries": [\(entries.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))], \(kind), "base": "\(base)", \
        "weight_bytes": \(weightBytes), "abi_version": \(FLOWC_ABI_VERSION)\(try externalJSON(external, file))}
        """
        let text = b.constantString(json, name: "metadata")
        let metadata = b.declare("flowc_metadata", b.functionType(b.pointer, []))
        b.begin(metadata)
        b.ret(text)
    }
}

/// `, "external_weights": {file, size, checksum, tensors}` or nothing.
func externalJSON(_ external: [(name: String, shape: [Int])], _ file: String?) throws -> String {
    guard !external.isEmpty, let file else { return "" }
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped) } catch {
        throw FlowError("cannot read the weight file: \(error.localizedDescription)", in: file)
    }
    let tensors = external.map { "{\"name\": \(Attribute.string($0.name)), \"shape\": \($0.shape)}" }.joined(separator: ", ")
    return ", \"external_weights\": {\"file\": \(Attribute.string(URL(fileURLWithPath: file).lastPathComponent)), \"size\": \(data.count), " +
        "\"checksum\": \"\(String(WeightChecksum.fnv1a64(data), radix: 16))\", \"tensors\": [\(tensors)]}"
}

/// The compile-time values of the entry points as constant f32 globals, shared between entry
/// points when their contents are equal (each weight is embedded once).
final class ConstantGlobals {
    let builder: IRBuilder
    var byContents: [[Float]: IRBuilder.Value] = [:]
    /// Globals by the expression that computed them (`expression`): the entry points of a model
    /// read the same packed weights, evaluated (in f64) and compared by contents once, not once
    /// per entry point (RealNVP 64-d: 4 × 2.9 MB).
    var byExpression: [String: IRBuilder.Value] = [:]
    /// With external weights: the weight file; raw F32 weights are then read through the table.
    let external: WeightStore?
    /// External weights in table order, by resolved name.
    private(set) var externalWeights: [(name: String, shape: [Int])] = []

    init(builder: IRBuilder, external: WeightStore?) {
        self.builder = builder
        self.external = external
    }

    /// Bytes of all constants: the embedded globals and the external weights.
    var bytes: Int {
        4 * (byContents.keys.reduce(0) { $0 + $1.count } + externalWeights.reduce(0) { $0 + $1.shape.reduce(1, *) })
    }

    /// A compile-time value: an embedded global, or a position in the external weight table.
    enum Constant {
        case global(IRBuilder.Value)
        case external(Int)
    }

    /// Values not depending on the input that an input-dependent node (or an output) reads.
    func fold(_ g: Graph, weights: WeightStore?) throws -> [ValueID: Constant] {
        let dependsOnInput = g.valuesDependingOnInputs()
        var needed = Set<ValueID>()
        for node in g.nodes where node.operands.contains(where: dependsOnInput.contains) {
            needed.formUnion(node.operands.filter { !dependsOnInput.contains($0) })
        }
        needed.formUnion(g.outputs.filter { !dependsOnInput.contains($0) })
        var evaluator = ConstantEvaluator(graph: g, weights: weights)
        var result: [ValueID: Constant] = [:]
        let producers = g.producers()
        for v in needed.sorted() {
            if let store = external, let p = producers[v], g.nodes[p].op == "weight", case .string(let name)? = g.nodes[p].attributes["name"],
               let resolved = store.resolve(name), store.file.tensors[resolved]?.dtype == "F32" {
                let shape = store.file.tensors[resolved]!.shape
                if let i = externalWeights.firstIndex(where: { $0.name == resolved }) { result[v] = .external(i); continue }
                externalWeights.append((resolved, shape))
                result[v] = .external(externalWeights.count - 1)
                continue
            }
            let key = expression(v, in: g, producers: producers)
            if let key, let existing = byExpression[key] { result[v] = .global(existing); continue }
            let values = try evaluator.value(v).values.map { Float($0) }
            let global = byContents[values] ?? builder.constantArray(values, name: "constant")
            byContents[values] = global
            if let key { byExpression[key] = global }
            result[v] = .global(global)
        }
        return result
    }

    /// The ops, attributes and weight names that compute constant `v`, as text (nil when it
    /// would be long: a large literal is compared by contents instead).
    func expression(_ v: ValueID, in g: Graph, producers: [Int?], limit: Int = 4096) -> String? {
        guard let p = producers[v] else { return nil }
        let node = g.nodes[p]
        var text = node.op + "(" + node.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        for operand in node.operands {
            guard let inner = expression(operand, in: g, producers: producers, limit: limit) else { return nil }
            text += ";" + inner
        }
        text += ")#\(node.results.firstIndex(of: v)!)"
        return text.utf8.count <= limit ? text : nil
    }
}
