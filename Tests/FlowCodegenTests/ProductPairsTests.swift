@testable import FlowCodegen
import FlowIR
import XCTest

/// ProductPairs as kernels in → kernels out: two packed products of one row per sample, the
/// second reading only the first's result, become one kernel; not when that result has another
/// use, nor over tokens ([B, T, C]: row-parallel regions), nor when either would not split.
final class ProductPairsTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    /// x [B, rows..., k] → h = silu(x·W1ᵀ + b1) (n1) → y = h·W2ᵀ (n2), packed, planned, paired;
    /// with `reuse`, the output is y + h[..n2] (h then has a second use). With `lead`, x is
    /// tanh(u·W0ᵀ) from u of `lead` values (x·2 is a second output when `leadReused`).
    func pairedKernels(tokens: [Int] = [], k: Int = 256, n1: Int = 256, n2: Int = 128, reuse: Bool = false, lead: Int? = nil, leadReused: Bool = false) throws -> (Graph, [Kernel]) {
        var g = Graph()
        func constant(_ shape: [Int]) throws -> ValueID {
            try g.apply("const", [], ["values": .floats((0..<shape.reduce(1, *)).map { Double($0 % 5) / 5 }), "shape": .shape(batched: false, shape)], at: at)
        }
        var x = g.addInput(name: "x", type: TensorType(.f32, batched: true, tokens + [lead ?? k]))
        if lead != nil { x = try g.apply("tanh", [try g.apply("linear", [x, try constant([k, lead!])], at: at)], at: at) }
        let h = try g.apply("silu", [try g.apply("linear", [x, try constant([n1, k]), try constant([n1])], at: at)], at: at)
        var y = try g.apply("linear", [h, try constant([n2, n1])], at: at)
        if reuse { y = try g.apply("add", [y, try g.apply("slice", [h], ["axis": .int(-1), "start": .int(0), "end": .int(n2)], at: at)], at: at) }
        g.outputs = [y] + (leadReused ? [try g.apply("mul", [x, try g.constant(2, at: at)], at: at)] : [])
        let packed = try WeightPacking.pack(g, keepExternal: false, panel: WeightPacking.panel(registers: .zmm32))
        return (packed, ProductPairs.pair(KernelPlanner.plan(packed, dependsOnInput: packed.valuesDependingOnInputs()), in: packed))
    }

    func testTwoSplittingProductsOfAnMLPAreOneKernel() throws {
        let (g, kernels) = try pairedKernels()
        XCTAssertEqual(kernels.count, 1)
        guard case .productPair(let lead, let first, let firstEpilogue, let second, let secondEpilogue) = kernels[0].body else { return XCTFail("\(kernels[0].body)") }
        XCTAssertEqual([first.op, second.op], [WeightPacking.op, WeightPacking.op])
        XCTAssertTrue(lead.isEmpty)
        XCTAssertEqual(firstEpilogue.map(\.op), ["silu"])
        XCTAssertTrue(secondEpilogue.isEmpty)
        // outputs: y, then h (written by the halves, read only inside the kernel)
        XCTAssertEqual(kernels[0].outputs, [g.outputs[0], firstEpilogue[0].results[0]])
        XCTAssertFalse(kernels[0].inputs.contains(firstEpilogue[0].results[0]))
        XCTAssertEqual(ProductPairs.scratchPerRow(kernels[0], in: g), 128)
    }

    func testNoPairWhenTheFirstResultHasAnotherUse() throws {
        let (_, kernels) = try pairedKernels(reuse: true)
        XCTAssertFalse(kernels.contains { if case .productPair = $0.body { return true } else { return false } })
    }

    func testNoPairOverTokensOrWhenAProductDoesNotSplitAtTheSameRows() throws {
        // tokens: row-parallel regions; 64 → 256 splits from 16 rows, 256 → 128 from 1
        for (tokens, k, n1, n2) in [([4], 256, 256, 128), ([], 64, 256, 128), ([], 256, 256, 8)] {
            let (_, kernels) = try pairedKernels(tokens: tokens, k: k, n1: n1, n2: n2)
            XCTAssertEqual(kernels.count, 2, "tokens \(tokens), \(k) → \(n1) → \(n2)")
        }
    }

    /// A small product before a pair (16 → 256: 4096 weights) whose result only the pair reads
    /// is its lead: one kernel, outputs y, h and the lead's x; half 2's copy of x after y' in
    /// the scratch. Not when x has another use, nor from 17 values (4352 weights).
    func testASmallProductBeforeAPairIsItsLead() throws {
        let (g, kernels) = try pairedKernels(lead: 16)
        XCTAssertEqual(kernels.count, 1)
        guard case .productPair(let lead, let first, _, _, _) = kernels[0].body else { return XCTFail("\(kernels[0].body)") }
        XCTAssertEqual(lead.map(\.op), [WeightPacking.op, "tanh"])
        XCTAssertEqual(kernels[0].outputs.count, 3)
        XCTAssertEqual(kernels[0].outputs.first, g.outputs[0])
        XCTAssertEqual(kernels[0].outputs.last, lead[1].results[0])
        XCTAssertEqual(first.operands[0], lead[1].results[0])
        XCTAssertEqual(kernels[0].inputs.first, g.inputs[0])
        XCTAssertEqual(ProductPairs.scratchPerRow(kernels[0], in: g), 128 + 256)
        for (width, reused) in [(16, true), (17, false)] {
            let (_, kernels) = try pairedKernels(lead: width, leadReused: reused)
            XCTAssertTrue(kernels.contains { if case .productPair(let lead, _, _, _, _) = $0.body { return lead.isEmpty } else { return false } }, "\(width), reused \(reused)")
            XCTAssertTrue(kernels.contains { if case .gemm = $0.body { return true } else { return false } }, "\(width), reused \(reused)")
        }
    }
}
