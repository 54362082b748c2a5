@testable import FlowCodegen
import FlowIR
import XCTest

/// AttentionKeyFolding as kernel in → kernel out: a one-query attention over a 5-token cache
/// becomes the kernel whose keys and values are typed as one token, marked to read the key count
/// from its extent argument (5); caches of different lengths then share one kernel key.
final class AttentionKeyFoldingTests: XCTestCase {
    func attentionKernel(cache: Int) throws -> (Kernel, Graph) {
        let at = SourceLocation.synthetic("test")
        var g = Graph()
        let q = g.addInput(name: "q", type: TensorType(.f32, batched: true, [1, 8]))
        let k = g.addInput(name: "k", type: TensorType(.f32, batched: true, [cache, 8]))
        let v = g.addInput(name: "v", type: TensorType(.f32, batched: true, [cache, 8]))
        g.outputs = [try g.apply("attention", [q, k, v], ["heads": .int(2), "causal": .int(1)], at: at)]
        return (KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())[0], g)
    }

    func testKeyCountMovesToTheExtentArgument() throws {
        let (k, g) = try attentionKernel(cache: 5)
        let folded = try XCTUnwrap(AttentionKeyFolding.fold(k, in: g))
        XCTAssertEqual(folded.keys, 5)
        XCTAssertEqual(folded.kernel.inputs.map { folded.graph.type(of: $0).description }, ["f32[B, 1, 8]", "f32[B, 1, 8]", "f32[B, 1, 8]"])
        XCTAssertEqual(folded.kernel.nodes[0].attributes[AttentionKeyFolding.runtimeKeysAttribute], .int(1))
        let (other, h) = try attentionKernel(cache: 12)
        let otherFolded = try XCTUnwrap(AttentionKeyFolding.fold(other, in: h))
        XCTAssertEqual(KernelCache.key(folded.kernel, folded.graph), KernelCache.key(otherFolded.kernel, otherFolded.graph))
        XCTAssertNotEqual(KernelCache.key(k, g), KernelCache.key(other, h))
    }
}
