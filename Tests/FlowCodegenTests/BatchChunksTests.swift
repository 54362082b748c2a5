@testable import FlowRuntime
import FlowRandom
import Synchronization
import XCTest

/// How a batch is cut into chunks (BatchChunks): the rule, the claims, and that no row's result
/// depends on the cut.
final class BatchChunksTests: XCTestCase {
    /// The largest of 64, 32, 16 rows that leaves at least 8 chunks (of 128, 64, 32, 16 that
    /// leaves 2, with weights over half the L2 cache) and a workspace within the budget; 16
    /// otherwise.
    func testRowsPerChunk() {
        let small: (Int) -> Int = { 100 * $0 }
        XCTAssertEqual(BatchChunks(rows: 1024, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 64)
        XCTAssertEqual(BatchChunks(rows: 512, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 64)
        XCTAssertEqual(BatchChunks(rows: 511, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 32)
        XCTAssertEqual(BatchChunks(rows: 256, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 32)
        XCTAssertEqual(BatchChunks(rows: 255, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 16)
        XCTAssertEqual(BatchChunks(rows: 3, weightBytes: 0, workspaceBytes: small).rowsPerChunk, 16)
        // a workspace over the budget at 64 and 32 rows (TarFlow's log_prob: 73 KB a sample)
        let budget = BatchChunks.workspaceBudget
        let large: (Int) -> Int = { $0 * (budget / 20) }
        XCTAssertEqual(BatchChunks(rows: 4096, weightBytes: 0, workspaceBytes: large).rowsPerChunk, 16)
        // weights that do not stay in L2 (RealNVP 64-d: 2.9 MB): 2 chunks are enough, of up to 128 rows
        let heavy = BatchChunks.l2Bytes
        XCTAssertEqual(BatchChunks(rows: 1024, weightBytes: heavy, workspaceBytes: small).rowsPerChunk, 128)
        XCTAssertEqual(BatchChunks(rows: 256, weightBytes: heavy, workspaceBytes: small).rowsPerChunk, 128)
        XCTAssertEqual(BatchChunks(rows: 255, weightBytes: heavy, workspaceBytes: small).rowsPerChunk, 64)
        XCTAssertEqual(BatchChunks(rows: 128, weightBytes: heavy, workspaceBytes: small).rowsPerChunk, 64)
        XCTAssertEqual(BatchChunks(rows: 127, weightBytes: heavy, workspaceBytes: small).rowsPerChunk, 32)
        XCTAssertEqual(BatchChunks(rows: 256, weightBytes: heavy, workspaceBytes: large).rowsPerChunk, 16)
        let chunks = BatchChunks(rows: 40, weightBytes: 0, workspaceBytes: small)
        XCTAssertEqual(chunks.count, 3)
        XCTAssertEqual((0..<chunks.count).map { chunks[$0] }, [0..<16, 16..<32, 32..<40])
    }

    /// A cut into fewer than 4 chunks has its last chunk, when of at least 32 rows, cut in two
    /// (the first half the larger); 4 or more chunks, or a last chunk under 32 rows, stay.
    func testFewChunksHaveTheirLastOneHalved() {
        let small: (Int) -> Int = { 100 * $0 }, heavy = BatchChunks.l2Bytes
        func cut(_ rows: Int, _ weights: Int) -> [Range<Int>] {
            let chunks = BatchChunks(rows: rows, weightBytes: weights, workspaceBytes: small)
            return (0..<chunks.count).map { chunks[$0] }
        }
        XCTAssertEqual(cut(256, heavy), [0..<128, 128..<192, 192..<256])
        XCTAssertEqual(cut(128, heavy), [0..<64, 64..<96, 96..<128])
        XCTAssertEqual(cut(255, heavy), [0..<64, 64..<128, 128..<192, 192..<255])
        XCTAssertEqual(cut(180, heavy), [0..<64, 64..<128, 128..<154, 154..<180])
        XCTAssertEqual(cut(97, heavy), [0..<32, 32..<64, 64..<96, 96..<97])
        XCTAssertEqual(cut(1024, heavy).count, 8)
        XCTAssertEqual(cut(40, 0), [0..<16, 16..<32, 32..<40])
        XCTAssertEqual(cut(33, heavy), [0..<16, 16..<32, 32..<33])
        for rows in [1, 33, 97, 128, 180, 200, 255, 256, 300, 1024] {
            let ranges = cut(rows, heavy)
            XCTAssertEqual(ranges.first?.lowerBound, 0)
            XCTAssertEqual(ranges.last?.upperBound, rows)
            XCTAssertTrue(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$1.isEmpty }, "\(rows) rows: \(ranges)")
        }
    }

    /// Two threads claiming the chunks of a batch run each chunk exactly once, whatever their
    /// speeds (one thread sleeps in its first chunk, so the other claims most of the rest).
    func testEveryChunkIsClaimedOnce() {
        for (rows, weights) in [(1, 0), (40, 0), (1000, 0), (256, BatchChunks.l2Bytes)] {
            let chunks = BatchChunks(rows: rows, weightBytes: weights) { _ in 0 }
            let runs = Mutex([Int](repeating: 0, count: chunks.count))
            chunks.run(threads: 2) { claim in
                var first = true
                while let (index, range) = claim() {
                    XCTAssertEqual(range, chunks[index])
                    if first && index == 0 { usleep(20_000) }
                    first = false
                    runs.withLock { $0[index] += 1 }
                }
            }
            XCTAssertEqual(runs.withLock { $0 }, [Int](repeating: 1, count: chunks.count), "\(rows) rows")
        }
    }

    /// Log-densities do not depend on how the batch is cut: the first 40 and 256 rows of a
    /// 1024-row batch (64-row chunks) alone (16 and 32-row chunks), on one thread and on two,
    /// give the same bits — every row is computed by the same code in any chunk and any tile.
    func testLogProbDoesNotDependOnTheCut() throws {
        for key in ["c_realnvp64", "d_glow", "g_tarflow"] {
            let model = try CompiledModel(path: try CompiledModelTests.artifact(key))
            let width = model.inputElements
            let x = Philox.normals(seed: 8, firstRow: 0, rows: 1024, perRow: width).map { Float($0) * 0.5 }
            model.threads = 2
            let whole = try model.logProb(x)
            for rows in [40, 256] {
                for threads in [1, 2] {
                    model.threads = threads
                    XCTAssertEqual(try model.logProb(Array(x[0..<(rows * width)])), Array(whole[0..<rows]), "\(key): \(rows) rows on \(threads) threads")
                }
            }
        }
    }
}
