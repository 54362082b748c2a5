import FlowIR
import FlowPictures
import FlowInterpreter
import FlowPasses
import FlowSolvers
import Foundation

/// One subcommand: its usage text and what it does.
struct Command: Sendable {
    var name: String
    var summary: String
    var usage: String
    var valued: Set<String>
    var switches: Set<String>
    /// The valued options that may be given more than once; any other one given twice is an error.
    var repeatable: Set<String> = []
    var run: @Sendable (Arguments) throws -> Void
}

enum Commands {
    static let specOptions = """
      --weights FILE      .safetensors weight file (default: the model's 'weights' line)
      --param NAME=VALUE  override a 'param' of the spec (repeatable)
    """

    static let all: [Command] = [
        Command(name: "check", summary: "parse, verify and print a spec's graph with every shape",
                usage: "flowc check SPEC [--weights FILE] [--param NAME=VALUE]...\n\(specOptions)",
                valued: ["--weights", "--param"], switches: [], repeatable: ["--param"], run: check),
        Command(name: "run", summary: "interpret an entry point (the flow x → z by default) on a batch from a .npy file",
                usage: """
                flowc run SPEC [--entry ENTRY] (--input X.npy | -n N --seed S [--temperature T]) --output OUT.npy
                              [--logdet LD.npy] [--weights FILE] [--param NAME=VALUE]... [--f64] [--print]
                \(specOptions)
                  --entry ENTRY       flow (x → z, the default), forward (x → z, logdet), log_prob (x → log p(x)),
                                      inverse (z → x, logdet of the inverse) or sample (seed, n → x)
                  --input FILE        batch of inputs, shape (N, ...) matching the model's input (or latent for
                                      inverse), f32 or f64; once per input for models with several (x, t)
                  -n N, --seed S      sample: how many samples and the seed of the counter-based noise
                  --temperature T     sample: scale of the base noise (default 1)
                \(SamplerOptions.usage)
                \(FlowGuidanceOptions.usage)
                  --output FILE       where to write the result (.npy, f32; f64 with --f64)
                  --png FILE          sample: also draw the samples (density of 2-D points, grid of images)
                  --logdet FILE       forward / inverse: where to write the log-determinant, shape (N,)
                  --f64               interpret in double precision (the f64 oracle)
                  --print             also print the result rows
                """,
                valued: Set(["--weights", "--param", "--input", "--output", "--entry", "--logdet", "-n", "--seed", "--temperature", "--png"]).union(SamplerOptions.valued).union(FlowGuidanceOptions.valued),
                switches: Set(["--f64", "--print"]).union(FlowGuidanceOptions.switches), repeatable: ["--param", "--input"], run: run),
        Command(name: "inspect", summary: "print the derived graphs (forward, log-det, inverse, log_prob) in the IR text form",
                usage: """
                flowc inspect SPEC [--show forward|logdet|inverse|log_prob|sample|all] [--weights FILE] [--param NAME=VALUE]...
                \(specOptions)
                  --show WHAT         which graph to print (default all): forward (the flow as written, simplified),
                                      logdet (x → z, logdet), inverse (z → x, logdet of the inverse), log_prob,
                                      sample (base noise → x)
                Each graph is printed as a model that `flowc check` reads back.
                """,
                valued: ["--weights", "--param", "--show"], switches: [], repeatable: ["--param"], run: inspect),
        Command(name: "ops", summary: "list the IR's primitive ops (--markdown: the catalogue IR/OPS.md)",
                usage: "flowc ops [--markdown]", valued: [], switches: ["--markdown"], run: ops),
    ]

    static func loadModel(_ args: Arguments) throws -> Model {
        guard args.positionals.count == 1 else {
            throw UsageError(message: args.positionals.isEmpty ? "missing SPEC (a .flow file)" : "expected one SPEC, got \(args.positionals.count) positional arguments")
        }
        var options = Elaborator.Options(weightsPath: args.value("--weights"))
        for p in args.values("--param") {
            let parts = p.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let v = Double(parts[1]) else {
                throw UsageError(message: "--param expects NAME=NUMBER, got '\(p)'")
            }
            options.params[String(parts[0])] = v
        }
        return try Elaborator.elaborate(path: args.positionals[0], options: options)
    }

    /// The sampler of `--entry sample` / `flowc compile` for a model that is integrated (nil for flows).
    static func samplerSettings(_ args: Arguments, _ model: Model) throws -> SamplerSettings? {
        guard model.kind != .flow else {
            if SamplerOptions.given(args) { throw UsageError(message: "sampler options apply to velocity, mean-velocity and flow-map models; \(model.name) is a normalizing flow") }
            return nil
        }
        let layout = try FieldCall.layout(of: model)
        return try SamplerOptions.settings(args, layout: layout, base: SamplerSettings.defaults(for: layout.kind))
    }

    static func check(_ args: Arguments) throws {
        let model = try loadModel(args)
        print(Printer.print(model), terminator: "")
        let g = model.flow
        print("# \(g.nodes.count) ops; input \(g.type(of: g.inputs[0])) → output \(g.outputs.map { g.type(of: $0).description }.joined(separator: ", ")); verified")
        guard model.kind == .flow else {
            print("# \(model.kind): a network that samplers integrate (no inverse to derive)")
            return
        }
        let steps = try InvertibilityAnalysis.analyze(g, weights: try model.weightsPath.map { try WeightStore(path: $0) })
        print("# invertible: the output determines the input in \(steps.count) inversion steps; log-det derived")
    }

    static func run(_ args: Arguments) throws {
        let outputPath = try args.required("--output")
        let entryName = args.value("--entry") ?? "flow"
        let entry = EntryPoints.Entry(rawValue: entryName)
        guard entryName == "flow" || entry != nil else {
            throw UsageError(message: "unknown entry '\(entryName)'; expected flow, forward, log_prob, inverse or sample")
        }
        if args.value("--logdet") != nil && entry != .forward && entry != .inverse {
            throw UsageError(message: "--logdet needs --entry forward or inverse")
        }
        let sampling = entry == .sample
        if sampling && args.value("--input") != nil { throw UsageError(message: "--entry sample takes -n and --seed, not --input") }
        let model = try loadModel(args)
        let conditionalFlow = model.kind == .flow && model.classes != nil
        let sampler = conditionalFlow ? nil : try samplerSettings(args, model)
        let guidance = conditionalFlow ? try FlowGuidanceOptions.guidance(args, model) : nil
        if !sampling && (SamplerOptions.given(args) || guidance != nil) { throw UsageError(message: "sampler and guidance options need --entry sample") }
        if sampling, let sampler, sampler.method == .dopri5 || sampler.guidance != 0 || args.value("--class") != nil {
            return try solve(args, model, sampler, output: outputPath)
        }
        let weights = try model.weightsPath.map { try WeightStore(path: $0) }
        let graph = try sampling ? EntryPoints.graph(.sample, of: model, weights: weights, sampler: sampler, guidance: guidance)
            : entry.map { try EntryPoints.graph($0, of: model, weights: weights) } ?? model.flow
        let precision: Precision = args.flag("--f64") ? .f64 : .f32
        let interpreter = try Interpreter(graph: graph, weights: weights, precision: precision)
        let input: Tensor
        var extraInputs: [Tensor] = []
        let inputName: String
        if sampling {
            let (n, seed, temperature) = try sampleCount(args)
            let latent = model.flow.type(of: model.flow.outputs[0])
            guard n.multipliedReportingOverflow(by: latent.elementsPerSample).partialValue <= Interpreter.maximumInputElements,
                  !n.multipliedReportingOverflow(by: latent.elementsPerSample).overflow else {
                throw UsageError(message: "-n \(n) samples of \(latent) exceed the interpreter's limit of 2^31 values per batch")
            }
            input = Tensor(shape: latent.shape(batch: n), values: EntryPoints.noise(of: model, seed: seed, firstRow: 0, rows: n, temperature: temperature))
            inputName = "noise(seed \(seed), n \(n))"
            if conditionalFlow {
                // the labels: --class, or the unconditional model
                let labels = try SamplerOptions.labels(args, count: n, classes: model.classes) ?? Array(repeating: model.classes!, count: n)
                extraInputs = [Tensor(shape: [n, 1], values: labels.map(Double.init))]
            }
        } else {
            let paths = args.values("--input")
            guard !paths.isEmpty else { throw UsageError(message: "missing required option --input") }
            guard paths.count == graph.inputs.count else {
                throw UsageError(message: "the model takes \(graph.inputs.count) input(s) (\(graph.inputNames.joined(separator: ", "))); give --input once for each, in that order")
            }
            extraInputs = try paths.dropFirst().map { let a = try NpyArray.read(path: $0); return Tensor(shape: a.shape, values: a.values) }
            let array = try NpyArray.read(path: paths[0])
            input = Tensor(shape: array.shape, values: array.values)
            inputName = paths[0]
        }
        let outputs: [Tensor]
        do { outputs = try interpreter.run([input] + extraInputs) } catch var e as FlowError {
            if e.location.hasPrefix("input") { e.location = "\(inputName): \(e.location)" }
            throw e
        }
        try NpyArray(shape: outputs[0].shape, values: outputs[0].values, isF64: precision == .f64).write(path: outputPath)
        if let logdetPath = args.value("--logdet") {
            try NpyArray(shape: outputs[1].shape, values: outputs[1].values, isF64: precision == .f64).write(path: logdetPath)
        }
        print("\(model.name) \(entryName): \(input.shape) → \(outputs[0].shape) (\(precision.rawValue), interpreted) → \(outputPath)")
        if let png = args.value("--png") {
            guard sampling else { throw UsageError(message: "--png needs --entry sample") }
            do { print("wrote \(png): \(try SamplePlot.write(outputs[0].values.map { Float($0) }, shape: outputs[0].shape, to: png))") } catch let e as SamplePlot.PictureError {
                throw FlowError(e.message, in: "")
            }
        }
        if args.flag("--print") {
            let width = outputs[0].shape.dropFirst().reduce(1, *)
            for row in 0..<outputs[0].shape[0] {
                let values = outputs[0].values[(row * width)..<((row + 1) * width)].prefix(8).map { String(format: "%.6g", $0) }
                print("  [\(row)] " + values.joined(separator: " ") + (width > 8 ? " …" : ""))
            }
        }
    }

    /// `--entry sample` through the solver (dopri5, labels, guidance) over the interpreted network.
    static func solve(_ args: Arguments, _ model: Model, _ settings: SamplerSettings, output: String) throws {
        let (n, seed, temperature) = try sampleCount(args)
        let field = try InterpretedField(model: model, precision: args.flag("--f64") ? .f64 : .f32)
        let noise = EntryPoints.noise(of: model, seed: seed, firstRow: 0, rows: n, temperature: temperature).map { Float($0) }
        let labels = try SamplerOptions.labels(args, count: n, classes: model.classes)
        let (samples, report): ([Float], SolveReport)
        do { (samples, report) = try ODESolve.sample(field, noise: noise, labels: labels, settings: settings) } catch let e as SolverError {
            throw FlowError(e.message, in: model.name)
        }
        let shape = model.flow.type(of: model.flow.inputs[0]).shape(batch: n)
        try NpyArray(shape: shape, values: samples.map(Double.init)).write(path: output)
        print("\(model.name) sample (\(settings.method.rawValue), interpreted): \(report.summary) → \(output)")
        SamplerOptions.warnIfUnfinished(report, settings)
    }

    /// `-n`, `--seed` and `--temperature` of a sampling command.
    static func sampleCount(_ args: Arguments) throws -> (Int, UInt64, Double) {
        guard let n = Int(try args.required("-n")), n >= 1, n <= 100_000_000 else { throw UsageError(message: "-n must be an integer in 1...100000000") }
        guard let seed = UInt64(try args.required("--seed")) else { throw UsageError(message: "--seed must be a non-negative integer below 2^64") }
        guard let temperature = Double(args.value("--temperature") ?? "1"), temperature.isFinite, temperature >= 0 else {
            throw UsageError(message: "--temperature must be a finite number ≥ 0")
        }
        return (n, seed, temperature)
    }

    static func inspect(_ args: Arguments) throws {
        let show = args.value("--show") ?? "all"
        let choices = ["forward", "logdet", "inverse", "log_prob", "sample"]
        guard show == "all" || choices.contains(show) else {
            throw UsageError(message: "--show expects forward, logdet, inverse, log_prob, sample or all, got '\(show)'")
        }
        let model = try loadModel(args)
        let weights = try model.weightsPath.map { try WeightStore(path: $0) }
        for what in show == "all" ? choices : [show] {
            let graph: Graph
            switch what {
            case "forward": graph = try Simplify.run(model.flow, weights: weights)
            case "logdet": graph = try EntryPoints.graph(.forward, of: model, weights: weights)
            case "inverse": graph = try EntryPoints.graph(.inverse, of: model, weights: weights)
            case "sample": graph = try EntryPoints.graph(.sample, of: model, weights: weights)
            default: graph = try EntryPoints.graph(.logProb, of: model, weights: weights)
            }
            var derived = model
            derived.name = "\(model.name)_\(what)"
            derived.flow = graph
            print("# \(what): \(graph.nodes.count) ops")
            print(Printer.print(derived))
        }
    }

    static func ops(_ args: Arguments) throws {
        print(args.flag("--markdown") ? OpDocumentation.markdown() : OpCatalog.all.map(\.name).joined(separator: " "))
    }
}
