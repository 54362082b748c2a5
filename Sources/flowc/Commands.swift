import FlowIR
import FlowInterpreter
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
        Command(name: "run", summary: "interpret the flow x → z on a batch read from a .npy file",
                usage: """
                flowc run SPEC --input X.npy --output Z.npy [--weights FILE] [--param NAME=VALUE]... [--f64]
                \(specOptions)
                  --input FILE        batch of inputs, shape (N, ...) matching the model's input, f32 or f64
                  --output FILE       where to write z (.npy, f32; f64 with --f64)
                  --f64               interpret in double precision (the f64 oracle)
                """,
                valued: ["--weights", "--param", "--input", "--output"], switches: ["--f64"], run: run),
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
    }

    static func run(_ args: Arguments) throws {
        let inputPath = try args.required("--input"), outputPath = try args.required("--output")
        let model = try loadModel(args)
        let precision: Precision = args.flag("--f64") ? .f64 : .f32
        let interpreter = try Interpreter(model: model, precision: precision)
        let array = try NpyArray.read(path: inputPath)
        let outputs: [Tensor]
        do { outputs = try interpreter.run([Tensor(shape: array.shape, values: array.values)]) } catch var e as FlowError {
            if e.location.hasPrefix("input") { e.location = "\(inputPath): \(e.location)" }
            throw e
        }
        try NpyArray(shape: outputs[0].shape, values: outputs[0].values, isF64: precision == .f64).write(path: outputPath)
        print("\(model.name): \(array.shape) → \(outputs[0].shape) (\(precision.rawValue), interpreted) → \(outputPath)")
    }

    static func ops(_ args: Arguments) throws {
        print(args.flag("--markdown") ? OpDocumentation.markdown() : OpCatalog.all.map(\.name).joined(separator: " "))
    }
}
