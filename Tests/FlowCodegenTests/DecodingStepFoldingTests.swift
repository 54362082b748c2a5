@testable import FlowCodegen
import FlowIR
import XCTest

/// DecodingStepFolding as kernel in → kernel out: the attention of one query over a 5-token
/// cache, the slice of token 3, the concat of a 5-token cache with a new token each become a
/// kernel whose varying axis is typed as one token (or whose slice starts at 0), marked to read
/// the position from its extent argument; different positions then share one kernel key.
final class DecodingStepFoldingTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    func kernel(_ build: (inout Graph) throws -> ValueID) throws -> (Kernel, Graph) {
        var g = Graph()
        g.outputs = [try build(&g)]
        return (KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())[0], g)
    }

    func attention(cache: Int) throws -> (Kernel, Graph) {
        try kernel { g in
            let q = g.addInput(name: "q", type: TensorType(.f32, batched: true, [1, 8]))
            let k = g.addInput(name: "k", type: TensorType(.f32, batched: true, [cache, 8]))
            let v = g.addInput(name: "v", type: TensorType(.f32, batched: true, [cache, 8]))
            return try g.apply("attention", [q, k, v], ["heads": .int(2), "causal": .int(1)], at: at)
        }
    }

    func slice(token: Int) throws -> (Kernel, Graph) {
        try kernel { g in
            let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [16, 4]))
            return try g.apply("slice", [x], ["axis": .int(1), "start": .int(token), "end": .int(token + 1)], at: at)
        }
    }

    func append(cache: Int) throws -> (Kernel, Graph) {
        try kernel { g in
            let c = g.addInput(name: "cache", type: TensorType(.f32, batched: true, [cache, 8]))
            let new = g.addInput(name: "new", type: TensorType(.f32, batched: true, [1, 8]))
            return try g.apply("concat", [c, new], ["axis": .int(1)], at: at)
        }
    }

    func folded(_ kernel: (Kernel, Graph)) throws -> DecodingStepFolding.Folded {
        try XCTUnwrap(DecodingStepFolding.fold(kernel.0, in: kernel.1))
    }

    func types(_ f: DecodingStepFolding.Folded) -> [String] {
        (f.kernel.inputs + f.kernel.outputs).map { f.graph.type(of: $0).description }
    }

    func testAttentionKeyCountMovesToTheExtent() throws {
        let five = try folded(try attention(cache: 5)), twelve = try folded(try attention(cache: 12))
        XCTAssertEqual(five.extent, 5)
        XCTAssertEqual(types(five), ["f32[B, 1, 8]", "f32[B, 1, 8]", "f32[B, 1, 8]", "f32[B, 1, 8]"])
        XCTAssertEqual(five.kernel.nodes[0].attributes[DecodingStepFolding.positionAttribute], .int(1))
        XCTAssertEqual(KernelCache.key(five.kernel, five.graph), KernelCache.key(twelve.kernel, twelve.graph))
        let (k5, g5) = try attention(cache: 5), (k12, g12) = try attention(cache: 12)
        XCTAssertNotEqual(KernelCache.key(k5, g5), KernelCache.key(k12, g12))
    }

    func testSliceStartMovesToTheExtent() throws {
        let third = try folded(try slice(token: 3)), last = try folded(try slice(token: 15))
        XCTAssertEqual(third.extent, 3)
        XCTAssertEqual(last.extent, 15)
        XCTAssertEqual(third.kernel.nodes[0].attributes["start"], .int(0))
        XCTAssertEqual(third.kernel.nodes[0].attributes["end"], .int(1))
        XCTAssertEqual(KernelCache.key(third.kernel, third.graph), KernelCache.key(last.kernel, last.graph))
    }

    func testConcatCacheLengthMovesToTheExtent() throws {
        let five = try folded(try append(cache: 5)), nine = try folded(try append(cache: 9))
        XCTAssertEqual(five.extent, 5)
        XCTAssertEqual(types(five), ["f32[B, 1, 8]", "f32[B, 1, 8]", "f32[B, 2, 8]"])
        XCTAssertEqual(KernelCache.key(five.kernel, five.graph), KernelCache.key(nine.kernel, nine.graph))
    }
}
