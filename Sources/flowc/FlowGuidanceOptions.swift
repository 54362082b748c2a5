import FlowIR
import FlowPasses

/// Labels and classifier-free guidance of class-conditional flows (TarFlow), for `flowc run
/// --entry sample` and `flowc compile` (guidance is compiled into `flowc_sample`).
enum FlowGuidanceOptions {
    static let valued: Set<String> = ["--attention-temperature", "--guide"]
    static let switches: Set<String> = ["--guidance-annealed"]

    static let usage = """
      --class C           class-conditional flows: the label of every sample (or labels cycled: 0,1,2);
                          default: the unconditional model
      --guidance W        class-conditional flows: classifier-free guidance on the values marked guided
                          (TarFlow's a and b): x_c + W·(x_c − x_∅)
      --guidance-annealed W·t/(T − 1) at token t (TarFlow's annealed guidance)
      --attention-temperature T  attention temperature of the unconditional branch (default 1)
      --guide a,b         which marked values to guide (default: all)
    """

    /// The guidance asked for on the command line (nil: none) for a flow.
    static func guidance(_ args: Arguments, _ model: Model) throws -> FlowGuidance? {
        guard let text = args.value("--guidance") else {
            if args.flag("--guidance-annealed") || args.value("--attention-temperature") != nil || args.value("--guide") != nil {
                throw UsageError(message: "--guidance-annealed, --attention-temperature and --guide need --guidance W")
            }
            return nil
        }
        guard let w = Double(text), w.isFinite else { throw UsageError(message: "--guidance expects a finite number, got '\(text)'") }
        var g = FlowGuidance(scale: w, annealed: args.flag("--guidance-annealed"))
        if let t = args.value("--attention-temperature") {
            guard let v = Double(t), v.isFinite, v > 0 else { throw UsageError(message: "--attention-temperature expects a number > 0, got '\(t)'") }
            g.attentionTemperature = v
        }
        if let names = args.value("--guide") { g.targets = Set(names.split(separator: ",").map(String.init)) }
        guard model.classes != nil else { throw UsageError(message: "--guidance needs a class-conditional model (kind flow(classes=K)); \(model.name) is unconditional") }
        return g
    }
}
