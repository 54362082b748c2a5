@testable import FlowCodegen
import FlowIR
import XCTest

/// RowFolding as kernel in → kernel out: a product with its epilogue over [B, 4, 8] becomes the
/// kernel over [B, 8] called with 4 rows per sample; an operand that varies along a leading
/// axis (a per-token table) keeps the kernel as it is.
final class RowFoldingTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    /// linear(x, W, b) → add(·, y), x: [B, 4, 8], W: [6, 8], y as given.
    func kernel(addend: TensorType) throws -> (Kernel, Graph) {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [4, 8]))
        let y = g.addInput(name: "y", type: addend)
        let w = try g.apply("const", [], ["values": .floats((0..<48).map(Double.init)), "shape": .shape(batched: false, [6, 8])], at: at)
        let bias = try g.apply("const", [], ["values": .floats((0..<6).map(Double.init)), "shape": .shape(batched: false, [6])], at: at)
        let product = try g.apply("linear", [x, w, bias], at: at)
        g.outputs = [try g.apply("add", [product, y], at: at)]
        let kernels = KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())
        XCTAssertEqual(kernels.count, 1)
        return (kernels[0], g)
    }

    func testProductAndEpilogueFoldTheTokensIntoRows() throws {
        let (k, g) = try kernel(addend: TensorType(.f32, batched: true, [4, 6]))
        let folded = try XCTUnwrap(RowFolding.fold(k, in: g))
        XCTAssertEqual(folded.rowsPerSample, 4)
        let types = (folded.kernel.inputs + folded.kernel.outputs).map { folded.graph.type(of: $0).description }
        XCTAssertEqual(types, ["f32[B, 8]", "f32[6, 8]", "f32[6]", "f32[B, 6]", "f32[B, 6]"])
        XCTAssertEqual(folded.kernel.nodes.map(\.op), ["linear", "add"])
        XCTAssertEqual(KernelCache.key(folded.kernel, folded.graph).hasPrefix("gemm:linear[](p0,p1,p2);add[](n0,p3)|"), true)
    }

    func testOperandVaryingAlongTokensKeepsTheKernel() throws {
        let (k, g) = try kernel(addend: TensorType(.f32, batched: false, [4, 6]))
        XCTAssertNil(RowFolding.fold(k, in: g))
    }

    func testOneRowPerSampleFoldsToo() throws {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [1, 8]))
        g.outputs = [try g.apply("silu", [try g.apply("exp", [x], at: at)], at: at)]
        let k = KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())[0]
        let folded = try XCTUnwrap(RowFolding.fold(k, in: g))
        XCTAssertEqual(folded.rowsPerSample, 1)
        XCTAssertEqual(folded.graph.type(of: folded.kernel.outputs[0]).description, "f32[B, 8]")
    }
}
