@testable import FlowCodegen
import FlowIR
import XCTest

/// MemoryPlan.firstOverlap, which kernels' `noalias` pointers rest on: the plan of an MLP has no
/// kernel writing over its own operand, and a slice moved onto an operand's is found — batched
/// slices by their per-sample ranges, fixed ones by their offsets, parameters by identity.
final class MemoryPlanTests: XCTestCase {
    let at = SourceLocation.synthetic("test")

    /// x: [B, 8] → tanh(x·W1ᵀ) (16) → ·W2ᵀ (8) → + x, and a fixed (unbatched) value.
    func mlp() throws -> (Graph, [Kernel], MemoryPlan) {
        var g = Graph()
        let x = g.addInput(name: "x", type: TensorType(.f32, batched: true, [8]))
        var constants: Set<ValueID> = []
        func weight(_ n: Int, _ k: Int) throws -> ValueID {
            let w = try g.apply("const", [], ["values": .floats((0..<(n * k)).map { Double($0 % 5) / 5 }), "shape": .shape(batched: false, [n, k])], at: at)
            constants.insert(w)
            return w
        }
        let h = try g.apply("tanh", [try g.apply("linear", [x, try weight(16, 8)], at: at)], at: at)
        let y = try g.apply("linear", [h, try weight(8, 16)], at: at)
        g.outputs = [try g.apply("add", [y, x], at: at)]
        let kernels = KernelPlanner.plan(g, dependsOnInput: g.valuesDependingOnInputs())
        let plan = MemoryPlan(graph: g, kernels: kernels, constants: constants, outputParameters: [g.outputs[0]: 1], inputParameters: [x: 0])
        return (g, kernels, plan)
    }

    func testNoKernelWritesOverItsOperand() throws {
        let (g, kernels, plan) = try mlp()
        XCTAssertGreaterThanOrEqual(kernels.count, 2)
        XCTAssertNil(plan.firstOverlap(in: kernels, graph: g))
    }

    func testAnOverlapIsFound() throws {
        let (g, kernels, plan) = try mlp()
        // the second product's kernel: its operand h in the workspace, its result y
        let (index, second) = try XCTUnwrap(kernels.enumerated().first { $0.element.inputs.contains { v in
            if case .workspace = plan.location(v) { return true } else { return false }
        } })
        let operand = try XCTUnwrap(second.inputs.first { if case .workspace = plan.location($0) { return true } else { return false } })
        let result = second.outputs[0]
        guard case .workspace(let fixed, let perSample) = plan.location(operand) else { return XCTFail("h is in the workspace") }
        // y's per-sample slice moved to end inside h's (h has 16 floats per sample, y 8)
        var moved = plan
        moved.locations[result] = .workspace(fixed: fixed, perSample: perSample + 8)
        let clash = try XCTUnwrap(moved.firstOverlap(in: kernels, graph: g))
        XCTAssertEqual(clash.kernel, index)
        XCTAssertEqual(clash.output, result)
        XCTAssertEqual(clash.input, operand)
        // right after h's 16 floats: no overlap
        moved.locations[result] = .workspace(fixed: fixed, perSample: perSample + 16)
        XCTAssertNil(moved.firstOverlap(in: kernels, graph: g))
        // a result in the input parameter x, which the same kernel reads (the residual add)
        let last = kernels.count - 1
        moved = plan
        moved.locations[kernels[last].outputs[0]] = .parameter(0)
        XCTAssertEqual(moved.firstOverlap(in: kernels, graph: g)?.kernel, last)
    }
}
