import FlowIR
import Foundation

/// Uniform numbers in [−bound, bound] from a 64-bit LCG (Knuth's MMIX constants): reproducible
/// random weights for the test models.
struct SeededUniform {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next(_ n: Int, _ bound: Double) -> [Double] {
        (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Double(state >> 11) / Double(1 << 53) * 2 - 1) * bound
        }
    }
}

/// Models with generated weights that exercise IR/std beyond the reference fixtures, shared by
/// the derivation, interpreter and codegen tests.
public enum TestModels {
    /// NICE and tanh-RealNVP couplings, a reversal, a permutation and an nflows spline coupling.
    public enum StandardMix {
        public static let spec = """
        import "std/coupling.flow"
        import "std/nflows.flow"
        import "std/permutations.flow"

        model std_mix {
          input x: f32[B, 6]
          flow {
            x = additive_coupling(x, "add", 2, "tanh")
            x = reverse_features(x)
            x = affine_coupling(x, "aff", 2, "relu")
            x = permute_features(x, [2, 0, 4, 1, 5, 3])
            xa = slice(x, axis=1, start=0, end=3)
            xb = slice(x, axis=1, start=3)
            p = reshape(mlp(xa, "spl", 2, "relu"), [B, 3, 11])
            return concat(xa, nflows_spline(xb, p, 4, 3.0), axis=1)
          }
        }
        """

    /// Deterministic pseudo-random weights with PyTorch's default Linear initialisation,
        /// U(-1/√fan_in, 1/√fan_in) for weights and biases, from a seed; the spline network's last
        /// layer is scaled by 0.1 (flows are initialised near the identity). With the plain scale
        /// some random splines get slopes near nflows' minimum 1e-3 and the map's condition number
        /// reaches 1e4, which no f32 round trip survives to 1e-4.
            public static func weights(seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
            var random = SeededUniform(seed: seed)
            func uniform(_ n: Int, bound: Double) -> [Double] { random.next(n, bound) }
            let h = 8
            let layers: [(String, Int, Int)] = [("add.0", 3, h), ("add.2", h, 3), ("aff.0", 3, h), ("aff.2", h, 6), ("spl.0", 3, h), ("spl.2", h, 33)]
            return layers.flatMap { name, fanIn, fanOut in
                let bound = (name == "spl.2" ? 0.1 : 1) / Double(fanIn).squareRoot()
                return [(name: "\(name).weight", shape: [fanOut, fanIn], values: uniform(fanOut * fanIn, bound: bound)),
                        (name: "\(name).bias", shape: [fanOut], values: uniform(fanOut, bound: bound))]
            }
        }


        public static func model(seed: UInt64 = 7) throws -> Model {
            let path = TestFiles.path("std-\(seed).safetensors")
            try SafetensorsFile.write(weights(seed: seed), to: path)
            return try Elaborator.elaborate(text: spec, path: Repository.path("Tests/std_mix.flow"), options: .init(weightsPath: path))
        }
    }

    /// A two-level Glow on 8x8x1 with the learned conditional prior.
    public enum GlowMultiscale {
        public static let spec = """
        import "std/glow.flow"

        param K = 2

        model glow_multiscale {
          input x: f32[B, 1, 8, 8]
          base normal
          flow {
            h = squeeze2x2(x)
            for k in 0..<K { h = glow_step(h, "levels.0.steps.{k}") }
            h, e1 = split_prior(h, "levels.0.prior")
            h = squeeze2x2(h)
            for k in 0..<K { h = glow_step(h, "levels.1.steps.{k}") }
            return concat(flatten(e1), flatten(top_prior(h, "top")), axis=1)
          }
        }
        """

        public static func weights(seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
            var random = SeededUniform(seed: seed)
            func uniform(_ n: Int, _ bound: Double) -> [Double] { random.next(n, bound) }
            var out: [(name: String, shape: [Int], values: [Double])] = []
            func add(_ name: String, _ shape: [Int], _ values: [Double]) { out.append((name, shape, values)) }
            for (level, c) in [(0, 4), (1, 8)] {
                for k in 0..<2 {
                    let p = "levels.\(level).steps.\(k)"
                    add("\(p).actnorm.loc", [1, c, 1, 1], uniform(c, 0.3))
                    add("\(p).actnorm.logs", [1, c, 1, 1], uniform(c, 0.3))
                    // a cyclic-shift permutation matrix
                    add("\(p).invconv.w_p", [c, c], (0..<(c * c)).map { ($0 / c + k + 1) % c == $0 % c ? 1 : 0 })
                    add("\(p).invconv.sign_s", [c], (0..<c).map { $0 % 2 == 0 ? 1 : -1 })
                    add("\(p).invconv.log_s", [c], uniform(c, 0.2))
                    add("\(p).invconv.w_l", [c, c], uniform(c * c, 0.3))
                    add("\(p).invconv.w_u", [c, c], uniform(c * c, 0.3))
                    let hidden = 8
                    add("\(p).coupling.net.0.weight", [hidden, c / 2, 3, 3], uniform(hidden * c / 2 * 9, 1 / Double(c / 2 * 9).squareRoot()))
                    add("\(p).coupling.net.0.bias", [hidden], uniform(hidden, 0.1))
                    add("\(p).coupling.net.2.weight", [hidden, hidden, 1, 1], uniform(hidden * hidden, 1 / Double(hidden).squareRoot()))
                    add("\(p).coupling.net.2.bias", [hidden], uniform(hidden, 0.1))
                    add("\(p).coupling.net.4.weight", [c, hidden, 3, 3], uniform(c * hidden * 9, 0.05))
                    add("\(p).coupling.net.4.bias", [c], uniform(c, 0.1))
                }
            }
            add("levels.0.prior.weight", [4, 2, 3, 3], uniform(72, 0.1))
            add("levels.0.prior.bias", [4], uniform(4, 0.1))
            add("levels.0.prior.logs", [1, 4, 1, 1], uniform(4, 0.1))
            add("top.mean", [1, 8, 2, 2], uniform(32, 0.5))
            add("top.logs", [1, 8, 2, 2], uniform(32, 0.3))
            return out
        }

        public static func model() throws -> Model {
            let path = TestFiles.path("glow-ms.safetensors")
            try SafetensorsFile.write(weights(seed: 11), to: path)
            return try Elaborator.elaborate(text: spec, path: Repository.path("Tests/glow_multiscale.flow"), options: .init(weightsPath: path))
        }

    }

    /// A class-conditional velocity MLP (3 classes and the null label) with random weights:
    /// v(x, t, c) = mlp(cat(x, t, emb(c))).
    public enum ConditionalVelocity {
        public static let spec = """
        import "std/mlp.flow"
        import "std/classes.flow"

        model cond_fm {
          input x: f32[B, 2]
          input t: f32[B, 1]
          input c: f32[B, 1]
          kind velocity(noise_at=0, classes=3)
          flow {
            return mlp(concat(x, t, class_embedding(c, "label"), axis=1), "net", 3, "silu")
          }
        }
        """

        public static func weights(seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
            var random = SeededUniform(seed: seed)
            func uniform(_ n: Int, _ bound: Double) -> [Double] { random.next(n, bound) }
            return [("label.weight", [4, 4], uniform(16, 1)),
                    ("net.0.weight", [32, 7], uniform(224, 0.4)), ("net.0.bias", [32], uniform(32, 0.1)),
                    ("net.2.weight", [32, 32], uniform(1024, 0.2)), ("net.2.bias", [32], uniform(32, 0.1)),
                    ("net.4.weight", [2, 32], uniform(64, 0.2)), ("net.4.bias", [2], uniform(2, 0.1))]
        }

        public static func model(seed: UInt64 = 5) throws -> Model {
            let path = TestFiles.path("cond-fm.safetensors")
            try SafetensorsFile.write(weights(seed: seed), to: path)
            return try Elaborator.elaborate(text: spec, path: Repository.path("Tests/cond_fm.flow"), options: .init(weightsPath: path))
        }
    }

    /// TarFlow weights of any size in apple/ml-tarflow's state_dict layout, random (proj_out
    /// ~ ±0.05 so that the flow is far from the identity), for `examples/reference/g_tarflow.flow`.
    public enum RandomTarFlow {
        public static func weights(channels: Int, blocks: Int, layers: Int, tokens: Int, values: Int, seed: UInt64) -> [(name: String, shape: [Int], values: [Double])] {
            var random = SeededUniform(seed: seed)
            func uniform(_ n: Int, _ bound: Double) -> [Double] { random.next(n, bound) }
            var out: [(name: String, shape: [Int], values: [Double])] = []
            func linear(_ name: String, _ outputs: Int, _ inputs: Int, _ bound: Double? = nil) {
                out.append(("\(name).weight", [outputs, inputs], uniform(outputs * inputs, bound ?? 1 / Double(inputs).squareRoot())))
                out.append(("\(name).bias", [outputs], uniform(outputs, 0.05)))
            }
            func norm(_ name: String) {
                out.append(("\(name).weight", [channels], uniform(channels, 0.2).map { 1 + $0 }))
                out.append(("\(name).bias", [channels], uniform(channels, 0.1)))
            }
            for b in 0..<blocks {
                let p = "blocks.\(b)"
                linear("\(p).proj_in", channels, values)
                out.append(("\(p).pos_embed", [tokens, channels], uniform(tokens * channels, 0.1)))
                for l in 0..<layers {
                    let a = "\(p).attn_blocks.\(l)"
                    norm("\(a).attention.norm")
                    linear("\(a).attention.qkv", 3 * channels, channels)
                    linear("\(a).attention.proj", channels, channels)
                    norm("\(a).mlp.norm")
                    linear("\(a).mlp.main.0", 4 * channels, channels)
                    linear("\(a).mlp.main.2", channels, 4 * channels)
                }
                linear("\(p).proj_out", 2 * values, channels, 0.05)
            }
            return out
        }

        /// The reference spec on random weights; `image` = (channels, size, patch).
        public static func model(channels: Int, blocks: Int, layers: Int, image: (Int, Int, Int), seed: UInt64) throws -> Model {
            let (c, size, patch) = image
            let tokens = (size / patch) * (size / patch), values = c * patch * patch
            let path = TestFiles.path("tarflow-\(channels)-\(blocks)-\(layers)-\(patch).safetensors")
            try SafetensorsFile.write(weights(channels: channels, blocks: blocks, layers: layers, tokens: tokens, values: values, seed: seed), to: path)
            return try Elaborator.elaborate(path: Repository.referenceSpec("g_tarflow"),
                                            options: .init(params: ["IMG": Double(size), "CH": Double(c), "P": Double(patch)], weightsPath: path))
        }
    }
}
