@testable import FlowCodegen
import FlowIR
import XCTest

/// RowParallelRegions and its memory plan, as kernels in → regions and slices out: a chain of
/// row-wise products over [B, 4, ·] is one region, and no two values it touches share memory,
/// where the plan without the region reuses a dead value's slice inside it.
final class RowParallelRegionsTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    /// x: [B, 4, 64] → a = x·W1ᵀ (64) → c = a·W2ᵀ (128) → d = c·W3ᵀ (64) → e = gelu(d·W4ᵀ) (64),
    /// then a sum over the tokens (not row-wise). `a` dies at c's kernel, so `d` fits in a's
    /// slice when the plan ignores the region.
    func chain() throws -> (Graph, [Kernel], constants: Set<ValueID>, values: [ValueID]) {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4, 64]))
        var constants: Set<ValueID> = []
        func product(_ v: ValueID, _ n: Int, _ k: Int) throws -> ValueID {
            let w = try g.apply("const", [], ["values": .floats((0..<(n * k)).map { Double($0 % 7) / 7 }), "shape": .shape(batched: false, [n, k])], at: at)
            constants.insert(w)
            return try g.apply("linear", [v, w], at: at)
        }
        let a = try product(x, 64, 64), c = try product(a, 128, 64), d = try product(c, 64, 128)
        let e = try g.apply("gelu", [try product(d, 64, 64)], at: at)
        g.outputs = [try g.apply("sum", [e], ["axes": .ints([1])], at: at)]
        let kernels = KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())
        return (g, kernels, constants, [a, c, d, e])
    }

    func testAChainOfRowWiseProductsIsOneRegion() throws {
        let (g, kernels, _, _) = try chain()
        XCTAssertEqual(kernels.count, 5)
        // per row 64·64 + 128·64 + 64·128 + 64·64 = 24576 multiply-adds: ⌈2^17 / 24576⌉ = 6 rows
        XCTAssertEqual(RowParallelRegions.find(kernels, in: g), [.init(kernels: 0..<4, rowsPerSample: 4, minimumRows: 6)])
    }

    func testValuesOfARegionNeverShareMemory() throws {
        let (g, kernels, constants, values) = try chain()
        func slices(_ regions: [Range<Int>]) -> [Range<Int>] {
            let plan = MemoryPlan(graph: g, kernels: kernels, constants: constants, outputParameters: [:], inputParameters: [g.inputs[0]: 0],
                                  regions: regions)
            return values.map { v in
                guard case .workspace(_, let perSample) = plan.location(v) else { fatalError("a workspace value") }
                return perSample..<(perSample + MemoryPlan.rounded(g.type(of: v).elementsPerSample))
            }
        }
        let (a, d) = (0, 2)
        XCTAssertEqual(slices([])[d], slices([])[a], "without the region, d reuses a's slice")
        let inRegion = slices([0..<4])
        for i in inRegion.indices {
            for j in inRegion.indices where j > i {
                XCTAssertFalse(inRegion[i].overlaps(inRegion[j]), "values \(i) and \(j): \(inRegion[i]) and \(inRegion[j])")
            }
        }
    }
}
