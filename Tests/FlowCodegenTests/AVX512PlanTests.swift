@testable import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowPasses
import FlowRandom
import FlowRuntime
import FlowTestSupport
import Foundation
import XCTest

/// The GEMM plan for 32 zmm registers (AVX-512: 6 × 4-vector tiles, a single row's 8-vector
/// tile, 128-column weight panels, leftover rows 1–2 shared with the last whole tile, 4
/// accumulator sets for one vector of columns), compiled for this machine whatever its vector
/// unit (`ArtifactCompiler.Options.plannedRegisters`): LLVM runs each 16-lane operation as two
/// 8-lane ones where there is no AVX-512. So the plan that AVX-512 machines run is checked here,
/// where the only cores at hand may be AVX2 ones; what is left untested is LLVM's choice of
/// AVX-512 instructions for the same IR.
final class AVX512PlanTests: XCTestCase {
    nonisolated(unsafe) static var compiled: [String: String] = [:]

    /// Each model compiled once per test run with the AVX-512 plan.
    static func artifact(_ key: String) throws -> String {
        if let path = compiled[key] { return path }
        let path = TestFiles.path("zmm32-\(key).so")
        var options = ArtifactCompiler.Options()
        options.plannedRegisters = .zmm32
        try ArtifactCompiler.compile(try ReferenceFixture(key).model(), options: options, output: path)
        compiled[key] = path
        return path
    }

    /// Row counts that reach every tile shape of the plan: 1 row (8 vectors wide; split over two
    /// threads at batch 1), 8 rows (6 + 2 shared as 4 + 4), 13 rows (6 + 4 + 3), and 70 (4 chunks
    /// of 16 rows, 6 + 6 + 4, and one of 6).
    static let batches = [1, 8, 13, 70]

    /// Every reference model's log_prob (flows) and sample from given noise against the
    /// interpreter (the oracle), within 1e-4 + 1e-4·|b| as CompiledModelTests: f32 code vs f32
    /// interpretation, which differ only in the order of float operations and in the
    /// polynomial vs Foundation exp and log; a tile that read another panel's weights, skipped a
    /// leftover row or summed a vector twice is off by O(1).
    func testEveryReferenceModelMatchesTheInterpreter() throws {
        for key in ["a_nsf", "b_maf", "c_realnvp2", "c_realnvp64", "d_glow", "e_fm", "f_meanflow", "g_tarflow"] {
            let spec = try ReferenceFixture(key).model()
            let model = try CompiledModel(path: try Self.artifact(key))
            let store = try WeightStore(path: spec.weightsPath!)
            let input = spec.flow.type(of: spec.flow.inputs[0]), latent = spec.flow.type(of: spec.flow.outputs[0])
            for batch in Self.batches {
                func check(_ what: String, _ a: [Float], _ expected: Tensor) {
                    let c = Closeness.compare(a.map(Double.init), expected.values, atol: 1e-4, rtol: 1e-4)
                    XCTAssertTrue(c.passes, "\(key) \(what), batch \(batch): \(c)")
                }
                if spec.kind == .flow {
                    let x = Philox.normals(seed: 6, firstRow: 0, rows: batch, perRow: input.elementsPerSample).map { Double(Float(0.8 * $0)) }
                    let interpreter = try Interpreter(graph: try EntryPoints.graph(.logProb, of: spec), weights: store, precision: .f32)
                    check("log_prob", try model.logProb(x.map { Float($0) }), try interpreter.run([Tensor(shape: input.shape(batch: batch), values: x)])[0])
                }
                let noise = Philox.normals(seed: 7, firstRow: 0, rows: batch, perRow: latent.elementsPerSample).map { Double(Float(0.8 * $0)) }
                let interpreter = try Interpreter(graph: try EntryPoints.graph(.sample, of: spec), weights: store, precision: .f32)
                check("sample", try model.sample(noise: noise.map { Float($0) }), try interpreter.run([Tensor(shape: latent.shape(batch: batch), values: noise)])[0])
            }
        }
    }

    /// The plan's bit-for-bit guarantees: e_fm's 256 × 256 products split over two threads at
    /// batches 1 and 3 (in 8-vector halves) give one thread's bits, with the halves on the pool and in
    /// reverse order on one thread; and a sample does not depend on its row's place in a batch
    /// of 37 (row 0 in a 6-row tile, row 36 in the 4 + 3 left) for e_fm and TarFlow.
    func testSplitsAndTilesGiveTheSameBits() throws {
        try CompiledModelTests.assertSplitHalvesGiveTheSameBits(path: try Self.artifact("e_fm"), batches: [1, 3])
        try CompiledModelTests.assertSamplesDoNotDependOnTheirPlace(Self.artifact)
    }
}
