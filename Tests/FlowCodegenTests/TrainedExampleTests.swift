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
        for name in ["realnvp", "nsf"] {
            let model = try Elaborator.elaborate(path: "\(folder)/\(name).flow", options: .init())
            let path = NSTemporaryDirectory() + "flowc-two-moons-\(getpid())-\(name).so"
            try ArtifactCompiler.compile(model, output: path)
            let logp = try CompiledModel(path: path).logProb(heldout.values.map { Float($0) })
            let mean = logp.map(Double.init).reduce(0, +) / Double(logp.count)
            XCTAssertEqual(mean, reference[name]!, accuracy: 1e-3, name)
        }
    }
}
