import FlowCodegen
import FlowIR
import FlowPictures
import FlowPasses
import FlowRuntime
import FlowSolvers
import Foundation

/// The commands that build and run compiled models.
enum CompiledCommands {
    static let all: [Command] = [
        Command(name: "compile", summary: "compile a spec to a shared object (.so) with the C ABI of flowc.h",
                usage: """
                flowc compile SPEC -o MODEL.so [--weights FILE] [--param NAME=VALUE]... [-O 0|1|2|3] [--target CPU]
                                   [--emit-llvm FILE | --emit-asm FILE | --emit-kernels FILE]
                \(Commands.specOptions)
                  -o FILE             the shared object to write
                  -O N                optimisation level: 3 (default) Flowc's LLVM pass pipeline, 0–2 LLVM's default<ON>
                  --target CPU        a CPU for portable artifacts (for example x86-64-v3); default: this machine
                  --emit-llvm FILE    also write the optimised LLVM IR
                  --emit-asm FILE     also write the assembly
                  --emit-kernels FILE also write the kernels (fused loop nests) and memory plan of each entry point
                  --external-weights  read the weights from the .safetensors file when the model is opened (checked
                                      by size and checksum) instead of embedding them
                  --guidance W [--guidance-annealed] [--attention-temperature T] [--guide a,b]
                                      class-conditional flows: classifier-free guidance compiled into flowc_sample
                  --denoise SIGMA     flows: append TarFlow's denoising step x + σ²·∇ log p(x) to flowc_sample
                  --score             flows: also compile flowc_score, ∇ₓ log p(x) (flowc score)
                  --method M, --steps N, --grid G  velocity, mean-velocity and flow-map models: the fixed-step
                                      sampler compiled into flowc_sample as one loop (default rk4-38 with 8 steps,
                                      meanflow or flowmap with 1); `flowc sample` can choose any other at sample time
                """,
                valued: Set(["--weights", "--param", "-o", "-O", "--target", "--emit-llvm", "--emit-asm", "--emit-kernels", "--method", "--steps", "--grid", "--guidance", "--denoise"])
                    .union(FlowGuidanceOptions.valued),
                switches: Set(["--external-weights", "--score"]).union(FlowGuidanceOptions.switches), repeatable: ["--param"], run: compile),
        Command(name: "info", summary: "print a compiled model's metadata", usage: "flowc info MODEL.so [--weights FILE]", valued: ["--weights"], switches: [], run: info),
        Command(name: "logprob", summary: "log p(x) of a batch with a compiled model",
                usage: "flowc logprob MODEL.so --input X.npy -o LOGP.npy [--threads N] [--class C[,C...]]", valued: ["--input", "-o", "--threads", "--weights", "--class"], switches: [], run: logProb),
        Command(name: "score", summary: "∇ₓ log p(x) of a batch with a compiled flow",
                usage: "flowc score MODEL.so --input X.npy -o GRAD.npy [--threads N] [--class C[,C...]]",
                valued: ["--input", "-o", "--threads", "--weights", "--class"], switches: [], run: score),
        Command(name: "forward", summary: "x → z (and logdet) with a compiled model",
                usage: "flowc forward MODEL.so --input X.npy -o Z.npy [--logdet LD.npy] [--threads N] [--class C[,C...]]",
                valued: ["--input", "-o", "--logdet", "--threads", "--weights", "--class"], switches: [], run: forward),
        Command(name: "inverse", summary: "z → x (and logdet of the inverse) with a compiled model",
                usage: "flowc inverse MODEL.so --input Z.npy -o X.npy [--logdet LD.npy] [--threads N] [--class C[,C...]]",
                valued: ["--input", "-o", "--logdet", "--threads", "--weights", "--class"], switches: [], run: inverse),
        Command(name: "sample", summary: "draw samples with a compiled model",
                usage: """
                flowc sample MODEL.so -n N --seed S [--temperature T] -o OUT.npy [--png PICTURE.png] [--threads N] [sampler options]
                  --png FILE          also draw the samples: a density plot of 2-D points, a grid of images
                \(SamplerOptions.usage)
                """,
                valued: Set(["-n", "--seed", "--temperature", "-o", "--threads", "--weights", "--png"]).union(SamplerOptions.valued), switches: [], run: sample),
    ]

    static func compile(_ args: Arguments) throws {
        let output = try args.required("-o")
        guard let level = Int(args.value("-O") ?? "3"), (0...3).contains(level) else { throw UsageError(message: "-O expects 0, 1, 2 or 3") }
        let listings = ["--emit-llvm", "--emit-asm", "--emit-kernels"].filter { args.value($0) != nil }
        if listings.count > 1 { throw UsageError(message: "\(listings.joined(separator: " and ")) are exclusive") }
        let model = try Commands.loadModel(args)
        let start = Date()
        let listing: ArtifactCompiler.Listing? = args.value("--emit-llvm") != nil ? .llvm : args.value("--emit-asm") != nil ? .assembly
            : args.value("--emit-kernels") != nil ? .kernels : nil
        let conditionalFlow = model.kind == .flow && model.classes != nil
        let sampler = conditionalFlow ? nil : try Commands.samplerSettings(args, model)
        if let sampler, sampler.method == .dopri5 || sampler.guidance != 0 || args.value("--class") != nil {
            throw UsageError(message: "flowc compile builds fixed-step samplers into flowc_sample; choose dopri5, --class and --guidance with flowc sample")
        }
        var options = ArtifactCompiler.Options(optimization: level, cpu: args.value("--target"), externalWeights: args.flag("--external-weights"), sampler: sampler)
        options.guidance = conditionalFlow ? try FlowGuidanceOptions.guidance(args, model) : nil
        if let text = args.value("--denoise") {
            guard model.kind == .flow, let sigma = Double(text), sigma.isFinite, sigma > 0 else {
                throw UsageError(message: "--denoise expects σ > 0 and applies to normalizing flows, got '\(text)'")
            }
            options.denoise = sigma
        }
        options.score = args.flag("--score")
        let progress = Progress()
        options.progress = { phase in progress.update("compiling \(model.name): \(phase)") }
        defer { progress.finish() }
        let text = try ArtifactCompiler.compile(model, options: options, output: output, listing: listing)
        if let text, let path = args.value("--emit-llvm") ?? args.value("--emit-asm") ?? args.value("--emit-kernels") {
            do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { throw FlowError("cannot write: \(error.localizedDescription)", in: path) }
        }
        print(String(format: "%@ → %@ (O%d, %@) in %.2f s", model.name, output, level, args.value("--target") ?? "host CPU", Date().timeIntervalSince(start)))
    }

    static func load(_ args: Arguments) throws -> CompiledModel {
        guard args.positionals.count == 1 else { throw UsageError(message: "expected one MODEL.so") }
        do {
            let model = try CompiledModel(path: args.positionals[0], weights: args.value("--weights"))
            if let t = args.value("--threads") {
                guard let n = Int(t), n >= 1 else { throw UsageError(message: "--threads expects a positive integer") }
                model.threads = n
            }
            return model
        } catch let e as RuntimeError { throw FlowError(e.message, in: "") }
    }

    static func info(_ args: Arguments) throws {
        let m = try load(args)
        print("""
        \(m.metadata.name): \(m.path)
          input  \(m.metadata.dtype)[B, \(m.metadata.inputShape.map(String.init).joined(separator: ", "))]
          latent \(m.metadata.dtype)[B, \(m.metadata.latentShape.map(String.init).joined(separator: ", "))]
          base   \(m.metadata.base)
          entry points \(m.metadata.entries.joined(separator: ", "))
          weights \(m.metadata.externalWeightFile.map { "external: \($0)" } ?? "embedded")
        """)
        if m.metadata.kind == "flow", let classes = m.metadata.classes {
            print("  class-conditional: \(classes) classes (label \(classes) = unconditional); inputs are packed rows (values, label)")
            if let g = m.metadata.guidance {
                print("  sample: classifier-free guidance \(g.scale)\(g.annealed ? " annealed" : ""), attention temperature \(g.attentionTemperature) (compiled in)")
            }
        }
        if let layout = m.fieldLayout, let s = m.compiledSampler {
            print("  kind \(layout.kind.rawValue), noise at t = \(Int(layout.noiseAt))\(layout.classes.map { ", \($0) classes (label \($0) = null)" } ?? "")")
            print("  sampler \(s.method.rawValue), \(s.steps) steps, \(s.grid) grid (compiled loop); flowc sample --method ... chooses others")
        }
    }

    static func input(_ args: Arguments, width: Int, shape: [Int]) throws -> (values: [Float], rows: Int) {
        let path = try args.required("--input")
        let a = try NpyArray.readFloat32(path: path)
        guard a.shape.count == shape.count + 1, Array(a.shape.dropFirst()) == shape, a.shape[0] >= 1 else {
            throw FlowError("array has shape \(a.shape); expected (N, \(shape.map(String.init).joined(separator: ", "))) with N ≥ 1", in: path)
        }
        return (a.values, a.shape[0])
    }

    /// Writes the array and shows its first rows.
    static func write(_ values: [Float], shape: [Int], to path: String) throws {
        try NpyArray.writeFloat32(values, shape: shape, path: path)
        let width = shape.dropFirst().reduce(1, *)
        print("wrote \(path): shape \(shape)")
        for row in 0..<min(shape[0], 5) {
            let shown = values[(row * width)..<((row + 1) * width)].prefix(8).map { String(format: "%.6g", $0) }.joined(separator: " ")
            print("  [\(row)] \(shown)\(width > 8 ? " …" : "")")
        }
        if shape[0] > 5 { print("  … \(shape[0] - 5) more rows") }
    }

    static func run<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as RuntimeError { throw FlowError(e.message, in: "") }
    }

    static func logProb(_ args: Arguments) throws {
        let m = try load(args)
        let output = try args.required("-o")
        let (x, rows) = try input(args, width: m.inputElements, shape: m.metadata.inputShape)
        let labels = try flowLabels(args, m, rows)
        let logp = try run { try m.logProb(x, labels: labels) }
        try write(logp, shape: [rows], to: output)
        print(String(format: "mean log p(x) = %.6f nats over %d rows", logp.map(Double.init).reduce(0, +) / Double(rows), rows))
    }

    static func score(_ args: Arguments) throws {
        let m = try load(args)
        let output = try args.required("-o")
        let (x, rows) = try input(args, width: m.inputElements, shape: m.metadata.inputShape)
        let labels = try flowLabels(args, m, rows)
        try write(try run { try m.score(x, labels: labels) }, shape: [rows] + m.metadata.inputShape, to: output)
    }

    static func forward(_ args: Arguments) throws {
        try mapWithLogDet(args, from: \.inputShape, to: \.latentShape) { m, x in try m.forward(x, labels: try flowLabels(args, m, x.count / m.inputElements)) }
    }

    static func inverse(_ args: Arguments) throws {
        try mapWithLogDet(args, from: \.latentShape, to: \.inputShape) { m, z in try m.inverse(z, labels: try flowLabels(args, m, z.count / m.latentElements)) }
    }

    /// `--class` of a class-conditional flow (nil: the unconditional model).
    static func flowLabels(_ args: Arguments, _ m: CompiledModel, _ rows: Int) throws -> [Int]? {
        try SamplerOptions.labels(args, count: rows, classes: m.metadata.kind == "flow" ? m.metadata.classes : nil)
    }

    /// forward and inverse: read --input, write -o and optionally --logdet.
    static func mapWithLogDet(_ args: Arguments, from: KeyPath<CompiledModel.Metadata, [Int]>, to: KeyPath<CompiledModel.Metadata, [Int]>,
                              _ run: (CompiledModel, [Float]) throws -> ([Float], [Float])) throws {
        let m = try load(args)
        let output = try args.required("-o")
        let inShape = m.metadata[keyPath: from]
        let (values, rows) = try input(args, width: inShape.reduce(1, *), shape: inShape)
        let (mapped, logdet) = try CompiledCommands.run { try run(m, values) }
        try write(mapped, shape: [rows] + m.metadata[keyPath: to], to: output)
        if let path = args.value("--logdet") { try write(logdet, shape: [rows], to: path) }
    }

    static func sample(_ args: Arguments) throws {
        let m = try load(args)
        let output = try args.required("-o")
        let (n, seed, temperature) = try Commands.sampleCount(args)
        let start = Date()
        guard let layout = m.fieldLayout, let compiled = m.compiledSampler else {
            if args.value("--guidance") != nil { throw UsageError(message: "a flow's guidance is compiled in: flowc compile --guidance W") }
            if SamplerOptions.valued.subtracting(["--class"]).contains(where: { args.value($0) != nil }) {
                throw UsageError(message: "sampler options apply to velocity, mean-velocity and flow-map models; \(m.metadata.name) is a normalizing flow")
            }
            let x = try run { try m.sample(count: n, seed: seed, temperature: Float(temperature), labels: try flowLabels(args, m, n)) }
            print(String(format: "%@: %d samples (seed %llu, temperature %g) in %.3f s", m.metadata.name, n, seed, temperature, Date().timeIntervalSince(start)))
            try write(x, shape: [n] + m.metadata.inputShape, to: output)
            return try picture(args, x, [n] + m.metadata.inputShape)
        }
        let settings = try SamplerOptions.settings(args, layout: layout, base: compiled)
        let labels = try SamplerOptions.labels(args, count: n, classes: layout.classes)
        // in parts of 4096 samples, showing progress on a terminal (the noise of row r is the same either way)
        let progress = Progress()
        var x: [Float] = []
        var report = SolveReport(samples: 0)
        for first in stride(from: 0, to: n, by: 4096) {
            let rows = min(4096, n - first)
            if n > 4096 { progress.update("sampling: \(first) of \(n) (\(settings.method.rawValue))") }
            let (part, partReport) = try run {
                try m.sample(noise: try m.noise(seed: seed, firstRow: first, rows: rows, temperature: Float(temperature)), settings: settings, labels: labels.map { Array($0[first..<(first + rows)]) })
            }
            x += part
            report.append(partReport, offset: first)
        }
        progress.finish()
        let how = settings == compiled && labels == nil && settings.guidance == 0 ? "compiled loop" : "solver over the compiled network"
        print(String(format: "%@: %d samples (seed %llu, %@, %@) in %.3f s; %@", m.metadata.name, n, seed, settings.method.rawValue, how,
                     Date().timeIntervalSince(start), report.summary))
        SamplerOptions.warnIfUnfinished(report, settings)
        try write(x, shape: [n] + m.metadata.inputShape, to: output)
        try picture(args, x, [n] + m.metadata.inputShape)
    }

    /// `--png FILE`: the samples drawn (`SamplePlot`).
    static func picture(_ args: Arguments, _ values: [Float], _ shape: [Int]) throws {
        guard let path = args.value("--png") else { return }
        do { print("wrote \(path): \(try SamplePlot.write(values, shape: shape, to: path))") } catch let e as SamplePlot.PictureError { throw FlowError(e.message, in: "") }
    }
}
