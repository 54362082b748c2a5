import FlowIR

/// Classifier-free guidance of a class-conditional flow's sample, as TarFlow's reverse does it:
/// every value marked `guided` (a and b of each autoregressive step) becomes
/// x_c + g·(x_c − x_∅), with x_c computed with the sample's label and x_∅ with the null label and,
/// there, attention scores divided by `attentionTemperature`.
public struct FlowGuidance: Sendable, Equatable {
    /// g (0: no guidance).
    public var scale: Double
    /// g·t/(T − 1) at token t instead of g (TarFlow's annealed_guidance).
    public var annealed = false
    /// Attention temperature of the unconditional branch (TarFlow's attn_temp).
    public var attentionTemperature = 1.0
    /// Names of the `guided` markers to apply (TarFlow's guide_what: "a", "b"); nil: all.
    public var targets: Set<String>?
    /// The label of the unconditional model; set from the model's `classes`.
    public var nullLabel: Double = 0

    public init(scale: Double, annealed: Bool = false, attentionTemperature: Double = 1, targets: Set<String>? = nil) {
        self.scale = scale
        self.annealed = annealed
        self.attentionTemperature = attentionTemperature
        self.targets = targets
    }

    func applies(to node: Node) -> Bool {
        guard let targets else { return true }
        if case .string(let name)? = node.attributes["name"] { return targets.contains(name) }
        return false
    }
}
