import FlowCodegen
import FlowIR
import FlowRuntime
import FlowTestSupport
import Foundation
import XCTest

/// The trained examples: the held-out mean log-likelihood from the compiled model equals the
/// figure PyTorch reported for the same weights (examples/*/reference.json) within 1e-3 nats.
final class TrainedExampleTests: XCTestCase {
    func testTwoMoonsHeldOutLikelihood() throws {
        let folder = Repository.path("examples/two_moons")
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/reference.json"))) as? [String: Double])
        let heldout = try NpyArray.read(path: "\(folder)/heldout.npy")
        // the flow-matching model's likelihood is the continuous-flow one (exact divergence, 32 RK4
        // steps), which train_velocity.py computes the same way in PyTorch
        for name in ["realnvp", "nsf", "fm"] {
            let model = try Elaborator.elaborate(path: "\(folder)/\(name).flow", options: .init())
            let path = TestFiles.path("two-moons-\(name).so")
            try ArtifactCompiler.compile(model, output: path)
            let logp = try CompiledModel(path: path).logProb(heldout.values.map { Float($0) })
            let mean = logp.map(Double.init).reduce(0, +) / Double(logp.count)
            XCTAssertEqual(mean, reference[name]!, accuracy: 1e-3, name)
        }
    }

    /// The MeanFlow example's one-step samples from the training script's noise equal PyTorch's
    /// (1e-4 + 1e-4·|b|, the fixtures' tolerance for samples).
    func testTwoMoonsMeanFlowOneStepSamples() throws {
        let folder = Repository.path("examples/two_moons")
        let model = try Elaborator.elaborate(path: "\(folder)/meanflow.flow", options: .init())
        let path = TestFiles.path("two-moons-meanflow.so")
        try ArtifactCompiler.compile(model, output: path)
        let noise = try NpyArray.read(path: "\(folder)/meanflow_noise.npy").values.map { Float($0) }
        let samples = try CompiledModel(path: path).sample(noise: noise)
        let c = Closeness.compare(samples.map(Double.init), try NpyArray.read(path: "\(folder)/meanflow_samples.npy").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
    }

    /// The digits TarFlow and Glow: held-out log-likelihood of the compiled models against PyTorch's.
    func testDigitsHeldOutLikelihood() throws {
        let folder = Repository.path("examples/digits")
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/reference.json"))) as? [String: Double])
        for (name, heldout) in [("tarflow", "heldout.npy"), ("glow", "heldout_glow.npy")] {
            let model = try Elaborator.elaborate(path: "\(folder)/\(name).flow", options: .init())
            let path = TestFiles.path("digits-\(name).so")
            try ArtifactCompiler.compile(model, output: path)
            let logp = try CompiledModel(path: path).logProb(try NpyArray.read(path: "\(folder)/\(heldout)").values.map { Float($0) })
            XCTAssertEqual(logp.map(Double.init).reduce(0, +) / Double(logp.count), try XCTUnwrap(reference[name]), accuracy: 1e-3, name)
        }
    }
}
