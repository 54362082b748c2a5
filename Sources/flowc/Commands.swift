import FlowIR
import FlowInterpreter
import FlowPasses
import Foundation

/// One subcommand: its usage text and what it does.
struct Command: Sendable {
    var name: String
    var summary: String
    var usage: String
    var valued: Set<String>
    var switches: Set<String>
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
                valued: ["--weights", "--param"], switches: [], run: check),
        Command(name: "run", summary: "interpret an entry point (the flow x → z by default) on a batch from a .npy file",
                usage: """
                flowc run SPEC --input X.npy --output OUT.npy [--entry ENTRY] [--logdet LD.npy] [--weights FILE]
                              [--param NAME=VALUE]... [--f64] [--print]
                \(specOptions)
                  --entry ENTRY       flow (x → z, the default), forward (x → z and logdet) or log_prob (x → log p(x))
                  --input FILE        batch of inputs, shape (N, ...) matching the model's input, f32 or f64
                  --output FILE       where to write the result: z, or log p(x) for log_prob (.npy, f32; f64 with --f64)
                  --logdet FILE       with --entry forward: where to write ln |det ∂z/∂x|, shape (N,)
                  --f64               interpret in double precision (the f64 oracle)
                  --print             also print the result rows
                """,
                valued: ["--weights", "--param", "--input", "--output", "--entry", "--logdet"], switches: ["--f64", "--print"], run: run),
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

    static func check(_ args: Arguments) throws {
        let model = try loadModel(args)
        print(Printer.print(model), terminator: "")
        let g = model.flow
        print("# \(g.nodes.count) ops; input \(g.type(of: g.inputs[0])) → output \(g.outputs.map { g.type(of: $0).description }.joined(separator: ", ")); verified")
        let steps = try InvertibilityAnalysis.analyze(g)
        print("# invertible: the output determines the input in \(steps.count) inversion steps; log-det derived")
    }

    static func run(_ args: Arguments) throws {
        let inputPath = try args.required("--input"), outputPath = try args.required("--output")
        let entryName = args.value("--entry") ?? "flow"
        let entry = EntryPoints.Entry(rawValue: entryName)
        guard entryName == "flow" || entry != nil else {
            throw UsageError(message: "unknown entry '\(entryName)'; expected flow, forward or log_prob")
        }
        if args.value("--logdet") != nil && entry != .forward { throw UsageError(message: "--logdet needs --entry forward") }
        let model = try loadModel(args)
        let graph = try entry.map { try EntryPoints.graph($0, of: model) } ?? model.flow
        let precision: Precision = args.flag("--f64") ? .f64 : .f32
        let interpreter = try Interpreter(graph: graph, weights: try model.weightsPath.map { try WeightStore(path: $0) }, precision: precision)
        let array = try NpyArray.read(path: inputPath)
        let outputs: [Tensor]
        do { outputs = try interpreter.run([Tensor(shape: array.shape, values: array.values)]) } catch var e as FlowError {
            if e.location.hasPrefix("input") { e.location = "\(inputPath): \(e.location)" }
            throw e
        }
        try NpyArray(shape: outputs[0].shape, values: outputs[0].values, isF64: precision == .f64).write(path: outputPath)
        if let logdetPath = args.value("--logdet") {
            try NpyArray(shape: outputs[1].shape, values: outputs[1].values, isF64: precision == .f64).write(path: logdetPath)
        }
        print("\(model.name) \(entryName): \(array.shape) → \(outputs[0].shape) (\(precision.rawValue), interpreted) → \(outputPath)")
        if args.flag("--print") {
            let width = outputs[0].shape.dropFirst().reduce(1, *)
            for row in 0..<outputs[0].shape[0] {
                let values = outputs[0].values[(row * width)..<((row + 1) * width)].prefix(8).map { String(format: "%.6g", $0) }
                print("  [\(row)] " + values.joined(separator: " ") + (width > 8 ? " …" : ""))
            }
        }
    }

    static func ops(_ args: Arguments) throws {
        print(args.flag("--markdown") ? OpDocumentation.markdown() : OpCatalog.all.map(\.name).joined(separator: " "))
    }
}
