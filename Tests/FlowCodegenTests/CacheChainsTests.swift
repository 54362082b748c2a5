@testable import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowTestSupport
import XCTest

/// Decoding caches grown in place (CacheChains): which concats a chain takes (IR in → marks
/// out), the buffer its members share in the memory plan, and a compiled TarFlow of 64 tokens
/// whose inverse decodes through such chains at batch 5, against the interpreter.
final class CacheChainsTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    /// A decoding-like graph on [B, 1, 4] tokens: c1 = concat(x0, n1), c2 = concat(c1, n2), each
    /// read by an attention as keys and values; `extraUse` adds another reader of c1.
    func decoding(extraUse: String? = nil) throws -> (graph: Graph, c1: ValueID, c2: ValueID) {
        var g = Graph()
        let token = TensorType(.f32, batched: true, [1, 4])
        let (x0, n1, n2) = (g.addInput(name: "x0", type: token), g.addInput(name: "n1", type: token), g.addInput(name: "n2", type: token))
        let c1 = try g.apply("concat", [x0, n1], ["axis": .int(1)], at: at)
        let c2 = try g.apply("concat", [c1, n2], ["axis": .int(1)], at: at)
        let a1 = try g.apply("attention", [n1, c1, c1], ["heads": .int(1), "causal": .int(1)], at: at)
        let a2 = try g.apply("attention", [n2, c2, c2], ["heads": .int(1), "causal": .int(1)], at: at)
        g.outputs = [a1, a2]
        switch extraUse {
        case "output"?: g.outputs.append(c1)
        case "exp"?: g.outputs.append(try g.apply("exp", [c1], at: at))
        case "query"?: g.outputs.append(try g.apply("attention", [c1, c1, c1], ["heads": .int(1), "causal": .int(1)], at: at))
        default: break
        }
        return (g, c1, c2)
    }

    func attributes(of v: ValueID, in g: Graph) -> [String: Attribute] {
        g.nodes[g.producers()[v]!].attributes
    }

    /// The chain's concats carry its capacity (3 tokens · 4 channels), the second also in place,
    /// and both attentions read keys and values with that stride; the plan gives c1 and c2 one
    /// buffer of 12 floats per sample (16 after rounding) that no kernel result overlaps.
    func testAChainIsMarkedAndSharesOneBuffer() throws {
        let (g, c1, c2) = try decoding()
        let marked = CacheChains.mark(g)
        XCTAssertEqual(attributes(of: c1, in: marked.graph)[CacheChains.capacityAttribute], .int(12))
        XCTAssertNil(attributes(of: c1, in: marked.graph)[CacheChains.inPlaceAttribute])
        XCTAssertEqual(attributes(of: c2, in: marked.graph)[CacheChains.inPlaceAttribute], .int(1))
        let attentions = marked.graph.nodes.filter { $0.op == "attention" }
        XCTAssertEqual(attentions.count, 2)
        for node in attentions {
            XCTAssertEqual(node.attributes[CacheChains.keyCapacityAttribute], .int(12))
            XCTAssertEqual(node.attributes[CacheChains.valueCapacityAttribute], .int(12))
        }
        XCTAssertEqual(marked.roots, [c1: c1, c2: c1])
        let kernels = KernelPlanner.plan(marked.graph, dependsOnInput: marked.graph.valuesDependingOnInputs())
        let inputs = Dictionary(uniqueKeysWithValues: g.inputs.enumerated().map { ($1, $0) })
        let outputs = Dictionary(uniqueKeysWithValues: g.outputs.enumerated().map { ($1, g.inputs.count + $0) })
        let plan = MemoryPlan(graph: marked.graph, kernels: kernels, constants: [], outputParameters: outputs, inputParameters: inputs, chains: marked)
        XCTAssertEqual(plan.location(c1), plan.location(c2))
        XCTAssertEqual(plan.perSampleFloats, 16, "one buffer of 12 floats, rounded to 16")
        XCTAssertNil(plan.firstOverlap(in: kernels, graph: marked.graph))
        // unmarked, c2 (12 floats) is a buffer of its own next to c1 (8)
        let unmarkedKernels = KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())
        let unmarked = MemoryPlan(graph: g, kernels: unmarkedKernels, constants: [], outputParameters: outputs, inputParameters: inputs)
        XCTAssertNotEqual(unmarked.location(c1), unmarked.location(c2))
    }

    /// A member read by anything but attention keys or values and the next concat — a graph
    /// output, an elementwise op, an attention's queries — leaves the chain unmarked.
    func testAChainWithAnotherReaderIsLeftAlone() throws {
        for use in ["output", "exp", "query"] {
            let (g, c1, c2) = try decoding(extraUse: use)
            let marked = CacheChains.mark(g)
            XCTAssertTrue(marked.roots.isEmpty, use)
            XCTAssertNil(attributes(of: c1, in: marked.graph)[CacheChains.capacityAttribute], use)
            XCTAssertNil(attributes(of: c2, in: marked.graph)[CacheChains.capacityAttribute], use)
            XCTAssertFalse(marked.graph.nodes.contains { $0.attributes[CacheChains.keyCapacityAttribute] != nil }, use)
        }
    }

    /// A TarFlow of 64 tokens (16×16 image, patches of 2) decoded token by token: each block's
    /// two caches (the layernorm's keys and the folded values) are chains of 62 concats in
    /// buffers of 63 tokens · 64 channels per sample, and the compiled inverse at batch 5 —
    /// every sample's row of a buffer 4032 floats from the next — equals the interpreter's within
    /// 1e-4 + 1e-4·|b| (f32 both, sums in another order), as does the forward pass; a cache read
    /// with the wrong stride or a token appended at the wrong place is off by O(1).
    func testLongTarFlowDecodesThroughCachesGrownInPlace() throws {
        let model = try TestModels.RandomTarFlow.model(channels: 64, blocks: 2, layers: 1, image: (1, 16, 2), seed: 9)
        let path = TestFiles.path("tarflow64tokens.so")
        let listing = try XCTUnwrap(try ArtifactCompiler.compile(model, output: path, listing: .kernels))
        let inverse = String(listing[try XCTUnwrap(listing.range(of: "flowc_inverse:")).lowerBound...])
        XCTAssertEqual(inverse.matches(of: try Regex("starts a cache of 4032 floats per sample")).count, 4, inverse)
        let compiled = try CompiledModel(path: path)
        let store = try WeightStore(path: model.weightsPath!)
        let x = Philox.normals(seed: 11, firstRow: 0, rows: 5, perRow: 256).map { 0.5 * $0 }
        let forward = try Interpreter(graph: try EntryPoints.graph(.forward, of: model), weights: store, precision: .f32)
            .run([Tensor(shape: [5, 1, 16, 16], values: x.map { Double(Float($0)) })])
        let (z, _) = try compiled.forward(x.map { Float($0) })
        XCTAssertTrue(Closeness.compare(z.map(Double.init), forward[0].values, atol: 1e-4, rtol: 1e-4).passes)
        let expected = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: store, precision: .f32)
            .run([Tensor(shape: forward[0].shape, values: z.map(Double.init))])
        let back = try compiled.inverse(z)
        let c = Closeness.compare(back.x.map(Double.init), expected[0].values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "inverse x: \(c)")
        let logdet = Closeness.compare(back.logdet.map(Double.init), expected[1].values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(logdet.passes, "inverse logdet: \(logdet)")
    }
}
