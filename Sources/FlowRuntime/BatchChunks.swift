import Foundation
import Synchronization

/// How a call's batch is cut into chunks of rows for the worker pool, and how the threads share
/// them. Chunks are claimed, not dealt: each thread takes the next unclaimed chunk when it is
/// done with one. On this shared VM one core is often slower than the other for milliseconds at
/// a time; with every other 64-row chunk dealt to each thread, a batch-256 call waited for the
/// slower one (measured, alternating calls in one process: claimed 32-row chunks took 0.78x the
/// time of dealt 64-row chunks for TarFlow's log_prob, 0.84x for e_fm's sample, 0.90x for
/// d_glow's, 0.97–1.01x for RealNVP's).
///
/// Rows per chunk: the largest of 64, 32, 16 that cuts the batch into at least 8 chunks and
/// keeps a chunk's workspace within a quarter of the L2 cache, else 16. More chunks balance the
/// threads; but every chunk reads all the weights, and weights over half the L2 come from L3
/// (~25 GB/s a core here) once per chunk: such a model takes the largest of 128, 64, 32, 16
/// that leaves at least 2 chunks (RealNVP 64-d's 2.9 MB, measured against the 4 chunks of the
/// previous rule: batch 256 in 128-row chunks 0.94–0.98x the time, batch 128 in 64-row chunks
/// 0.87–0.91x; batches of 512 and 1024 in 128-row chunks 0.95–1.02x; 32-row chunks at batch
/// 256 had taken 1.10x, 16-row 1.26x). A workspace that stays in L2 keeps TarFlow's activations
/// there (its batch-1024 log_prob, whose 64-row workspace is 4.7 MB: 0.86x the time with 16-row
/// chunks). Batches of 17–64 rows, one chunk on one core before, now run on both (RealNVP at
/// 32 rows: 0.60x the time).
///
/// A cut into fewer than 4 chunks (RealNVP 64-d's batch of 256: two of 128 rows) cannot
/// balance the threads: when one core is slowed (another process, or this VM's second vCPU
/// away), the other finishes its chunk and waits. Its last chunk, when of at least 32 rows, is
/// cut in two, so that the thread that finishes first takes one half (256 rows: 128 + 64 + 64).
/// Measured with a C host claiming chunks on two pinned threads, blocks of calls alternated
/// (RealNVP 64-d's batch-256 sample): 0.82x the time with a busy loop on the second core,
/// 0.87x and 0.92x with one busy half the time (3 ms on, 3 off), and 0.99–1.02x with the
/// second core free (one more pass over the weights from L3). With 8 chunks (e_fm's batch of
/// 256 in 32-row chunks) halving the last one or two took 0.97–1.02x the time, the second core
/// free or busy: not done.
///
/// The cut depends on the batch and the model only, never on the thread count, and each row is
/// computed by the same code whichever chunk holds it: results are identical for any number of
/// threads and any order of claims.
struct BatchChunks: Sendable {
    /// Rows per chunk to choose from, largest first; 128 only for weights over half the L2.
    static let candidateRows = [128, 64, 32, 16]

    /// The L2 cache's bytes per core (sysconf), or 2 MB where the system does not say.
    static let l2Bytes: Int = {
        let l2 = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        return l2 > 0 ? l2 : 1 << 21
    }()
    /// Bytes of workspace a chunk may take.
    static var workspaceBudget: Int { l2Bytes / 4 }

    /// Fewer chunks than this cannot balance the threads: the last is then cut in two.
    static let balancingChunks = 4
    /// The fewest rows of a last chunk that is cut in two (halves of at least 16 rows).
    static let smallestSplitChunk = 32

    let rows: Int
    /// Rows of every chunk but the last one or two (the largest chunk).
    let rowsPerChunk: Int
    /// Whether the last chunk of `rowsPerChunk` rows (or fewer) is cut in two halves.
    let splitsLast: Bool
    /// Chunks of `rowsPerChunk` rows, the last one possibly shorter, before any halving.
    private var wholeCount: Int { (rows + rowsPerChunk - 1) / rowsPerChunk }
    var count: Int { wholeCount + (splitsLast ? 1 : 0) }

    /// The chunks of a batch of `rows` rows of a model with `weightBytes` of weights,
    /// `workspaceBytes(r)` the workspace a call on r rows needs.
    init(rows: Int, weightBytes: Int, workspaceBytes: (Int) -> Int) {
        self.rows = rows
        let weightsInL3 = weightBytes > BatchChunks.l2Bytes / 2
        let (candidates, minimumChunks) = weightsInL3 ? (BatchChunks.candidateRows[...], 2) : (BatchChunks.candidateRows.dropFirst(), 8)
        self.rowsPerChunk = candidates.first { r in
            rows >= r * minimumChunks && workspaceBytes(r) <= BatchChunks.workspaceBudget
        } ?? BatchChunks.candidateRows.last!
        let whole = (rows + rowsPerChunk - 1) / rowsPerChunk
        splitsLast = whole < BatchChunks.balancingChunks && rows - (whole - 1) * rowsPerChunk >= BatchChunks.smallestSplitChunk
    }

    /// The rows of chunk `index`.
    subscript(index: Int) -> Range<Int> {
        let lastStart = (wholeCount - 1) * rowsPerChunk
        guard splitsLast, index >= wholeCount - 1 else { return (index * rowsPerChunk)..<min(rows, (index + 1) * rowsPerChunk) }
        let middle = lastStart + (rows - lastStart + 1) / 2
        return index == wholeCount - 1 ? lastStart..<middle : middle..<rows
    }

    /// Runs `body` on up to `threads` threads of the pool (the caller's among them); each calls
    /// its `claim` argument for the (index, rows) of its next chunk until it returns nil.
    /// Returns when every chunk is done.
    func run(threads: Int, _ body: @Sendable (_ claim: () -> (index: Int, rows: Range<Int>)?) -> Void) {
        let claimed = Atomic<Int>(0)
        WorkerPool.shared.run(participants: min(threads, count)) { _ in
            body {
                let index = claimed.add(1, ordering: .relaxed).oldValue
                return index < count ? (index, self[index]) : nil
            }
        }
    }
}
