@testable import FlowCodegen
import FlowTestSupport
import XCTest

/// How the GEMM microkernel cuts rows into register tiles (OpLowering.tileHeights).
final class TileHeightsTests: XCTestCase {
    func testTilesCoverEveryRowOnceAndShareSmallLeftovers() {
        for rows in 1...64 {
            let heights = OpLowering.tileHeights(rows: rows)
            XCTAssertEqual(heights.reduce(0, +), rows, "\(rows) rows: \(heights)")
            XCTAssertTrue(heights.allSatisfy { (1...OpLowering.tileRows).contains($0) }, "\(rows) rows: \(heights)")
        }
        // a leftover of 1 or 2 rows is shared with the last whole tile; 3–5 are a tile of their own
        XCTAssertEqual(OpLowering.tileHeights(rows: 8), [4, 4])
        XCTAssertEqual(OpLowering.tileHeights(rows: 7), [4, 3])
        XCTAssertEqual(OpLowering.tileHeights(rows: 13), [6, 4, 3])
        XCTAssertEqual(OpLowering.tileHeights(rows: 9), [6, 3])
        XCTAssertEqual(OpLowering.tileHeights(rows: 16), [6, 6, 4])
        XCTAssertEqual(OpLowering.tileHeights(rows: 2), [2])
        XCTAssertEqual(OpLowering.tileHeights(rows: 12), [6, 6])
        // products that keep two accumulator sets in 16 ymm registers: tiles of at most 3 rows
        for rows in 1...64 {
            let heights = OpLowering.tileHeights(rows: rows, tallest: 3)
            XCTAssertEqual(heights.reduce(0, +), rows, "\(rows) rows: \(heights)")
            XCTAssertTrue(heights.allSatisfy { (1...3).contains($0) }, "\(rows) rows: \(heights)")
        }
        XCTAssertEqual(OpLowering.tileHeights(rows: 4, tallest: 3), [2, 2])
        XCTAssertEqual(OpLowering.tileHeights(rows: 5, tallest: 3), [3, 2])
        XCTAssertEqual(OpLowering.tileHeights(rows: 16, tallest: 3), [3, 3, 3, 3, 2, 2])
        // 16 ymm registers share only a leftover of 3 (a 3-row tile's 6 accumulators do not cover
        // the FMA latency; a 4-row tile's 8 barely do): 6 + 3 rows are 5 + 4, 6 + 1 and 6 + 2 stay
        let ymm = OpLowering.sharedLeftovers(.ymm16)
        for rows in 1...64 {
            let heights = OpLowering.tileHeights(rows: rows, shared: ymm)
            XCTAssertEqual(heights.reduce(0, +), rows, "\(rows) rows: \(heights)")
            let whole = rows >= 9 && rows % 6 == 3 ? heights.dropLast(2) : heights.dropLast()
            XCTAssertEqual(whole, Array(repeating: 6, count: whole.count)[...], "\(rows) rows: \(heights)")
        }
        XCTAssertEqual(OpLowering.tileHeights(rows: 8, shared: ymm), [6, 2])
        XCTAssertEqual(OpLowering.tileHeights(rows: 7, shared: ymm), [6, 1])
        XCTAssertEqual(OpLowering.tileHeights(rows: 9, shared: ymm), [5, 4])
        XCTAssertEqual(OpLowering.tileHeights(rows: 15, shared: ymm), [6, 5, 4])
        XCTAssertEqual(OpLowering.tileHeights(rows: 3, shared: ymm), [3])
        // products of 3-row tiles (two accumulator sets in ymm registers) share none
        XCTAssertEqual(OpLowering.tileHeights(rows: 16, tallest: 3, shared: OpLowering.sharedLeftovers(.ymm16, tallest: 3)), [3, 3, 3, 3, 3, 1])
    }

    /// Which register file a CPU has, read from LLVM's code for it (a tile planned for 32
    /// registers on a 16-register CPU spills its accumulators on every FMA).
    func testRegisterFileOfNamedCPUs() throws {
        XCTAssertEqual(try TargetEmitter.registerFile(cpu: "x86-64-v3"), .ymm16)
        XCTAssertEqual(try TargetEmitter.registerFile(cpu: "znver3"), .ymm16)
        XCTAssertEqual(try TargetEmitter.registerFile(cpu: "x86-64-v4"), .zmm32)
        XCTAssertEqual(try TargetEmitter.registerFile(cpu: "sapphirerapids"), .zmm32)
        // a name LLVM does not know: an error naming it (LLVM itself would abort the process)
        XCTAssertThrowsError(try TargetEmitter.registerFile(cpu: "znver99")) { error in
            XCTAssertTrue("\(error)".contains("unknown CPU 'znver99' for --target"), "\(error)")
        }
    }

    /// The register file reaches the code: e_fm's 256 → 256 layers at batch 256 run 6 × 4 tiles
    /// of zmm registers for x86-64-v4 (AVX-512) and 6 × 1 tiles of ymm pairs, with no zmm, for
    /// x86-64-v3 (compiled only: this machine may not run AVX-512 code, and the packed-layout
    /// test runs the x86-64-v3 code on any machine); `--emit-kernels` names the same tiles for
    /// RealNVP 64-d's products.
    func testTilesFollowTheTargetsRegisters() throws {
        let model = try ReferenceFixture("e_fm").model(), coupling = try ReferenceFixture("c_realnvp64").model()
        for (cpu, tile, zmm, listed) in [("x86-64-v4", "flowc.tile.6.4.16.1:", true, "GEMM microkernel (6×64 register tiles"),
                                         ("x86-64-v3", "flowc.tile.6.1.16.1:", false, "GEMM microkernel (6×16 register tiles")] {
            let assembly = try XCTUnwrap(try ArtifactCompiler.compile(model, options: .init(cpu: cpu), output: TestFiles.path("test-e_fm-\(cpu).so"), listing: .assembly))
            XCTAssertTrue(assembly.contains("\n" + tile), "\(cpu): no \(tile)")
            XCTAssertEqual(assembly.contains("%zmm"), zmm, cpu)
            let kernels = try XCTUnwrap(try ArtifactCompiler.compile(coupling, options: .init(cpu: cpu), output: TestFiles.path("test-c_realnvp64-\(cpu).so"), listing: .kernels))
            XCTAssertTrue(kernels.contains(listed), "\(cpu): the kernel listing does not say \(listed)")
        }
    }
}
