import CFlowcABI
import Foundation
import Synchronization

/// Decides by timing whether the products inside a small-batch call are split over the worker
/// pool (ColumnSplit in FlowCodegen). On a shared machine the second core can be slower than none:
/// measured on this VM, e_fm's batch-1 sample took 30 µs split, 41 µs whole, and 61 µs split
/// while the other virtual CPU was stalling (judging each split by itself, as the pool once
/// did, did not catch it). Per entry point (the ODE solver's calls count as `FLOWC_ENTRY_FIELD`)
/// and row count, an estimate of the whole call's time with splits and without (in
/// `flowc_ticks`); the faster way runs, the other for `exploreCalls` calls every `exploreEvery`
/// so its estimate stays current — every `exploreEveryApart` when one way takes over
/// `apartRatio` times the other's. Explored calls are slow calls: at 3 in 16, TarFlow's batch-1
/// log_prob (57 µs split, 86 whole) had its median call among them, a median of 72–89 µs over
/// calls against 57–65 for the same calls always split. A way that was fast and becomes slow is
/// left without exploring (its own calls raise its estimate); one that was slow and becomes fast
/// is found within `exploreEveryApart` calls (6 ms of TarFlow's).
/// The estimate follows the lower envelope of the times: a faster call sets it, a slower one
/// moves it an eighth of the way (counting at most twice the estimate), because the noise of a
/// shared machine only ever adds time — a mean let one slow early split (measured: 250 µs
/// against 107) keep e_fm's RK4 sample on one core at 156 µs. The first call each way, and of
/// each exploration (idle workers park after 200 µs), is a warm-up and not counted; the first
/// choice waits for `firstCounted` counted calls each way.
final class SplitChooser: Sendable {
    static let exploreEvery = 16, exploreEveryApart = 64, apartRatio = 1.25, exploreCalls = 3, firstCounted = 3
    /// The most calls in a row that run whole while the split way waits for a parked worker.
    static let maximumWaking = 64
    /// The batches up to which products split (flowc.h): only these are timed.
    static let maximumRows = Int(FLOWC_SPLIT_MAXIMUM_ROWS)

    /// The next call's way: split or not, whether its time counts (`record`), and whether it
    /// only waits for the pool's parked workers to wake (it runs whole and is not recorded).
    struct Decision: Equatable {
        var split: Bool, counts: Bool, waking = false
    }

    struct Timing {
        /// Estimates in ticks (`flowc_ticks`: lower envelopes), and the calls timed, with splits and without.
        var split = 0.0, whole = 0.0
        var splitCalls = 0, wholeCalls = 0
        var calls = 0
        /// Calls left in the current exploration of the slower way.
        var exploring = 0
        /// Waking calls in a row (see `next`).
        var waking = 0

        /// The way the next call runs, and whether its time counts: the first call each way,
        /// and the first call of an exploration, do not. `workerAwake`: a pool worker spins or
        /// works (none has parked). A worker parks after 200 µs without work — between the
        /// explorations of the split way while the whole way is faster — and a split call then
        /// times its wake-up (the caller runs both halves, after waiting as long again for it),
        /// not the split: so measured, the split way of f_meanflow's batch-1 sample stayed
        /// slower than the whole (8.2–8.3 µs per call at the 10th percentile, against 4.9–6.2
        /// always split). Instead, calls that would start such an exploration (or the first split
        /// calls) run whole, uncounted, and wake the workers — at most `maximumWaking` in a row.
        mutating func next(workerAwake: Bool = true) -> Decision {
            calls += 1
            func exploreSplit(counts: Bool) -> Decision {
                if !workerAwake && waking < SplitChooser.maximumWaking {
                    waking += 1
                    return Decision(split: false, counts: false, waking: true)
                }
                waking = 0
                return Decision(split: true, counts: counts)
            }
            if splitCalls <= SplitChooser.firstCounted { return exploreSplit(counts: splitCalls > 0) }
            if wholeCalls <= SplitChooser.firstCounted { return Decision(split: false, counts: wholeCalls > 0) }
            let faster = split <= whole
            let apart = max(split, whole) > SplitChooser.apartRatio * min(split, whole)
            if exploring == 0 && calls % (apart ? SplitChooser.exploreEveryApart : SplitChooser.exploreEvery) == 0 { exploring = SplitChooser.exploreCalls }
            guard exploring > 0 else { return Decision(split: faster, counts: true) }
            let counts = exploring < SplitChooser.exploreCalls
            if faster { exploring -= 1; return Decision(split: false, counts: counts) }
            let decision = exploreSplit(counts: counts)
            if !decision.waking { exploring -= 1 }
            return decision
        }

        mutating func record(_ ticks: Double, split wasSplit: Bool, counts: Bool) {
            func update(_ estimate: inout Double, _ count: inout Int) {
                count += 1
                guard counts else { return }
                estimate = estimate == 0 || ticks < estimate ? ticks : estimate + (min(ticks, 2 * estimate) - estimate) / 8
            }
            if wasSplit { update(&split, &splitCalls) } else { update(&whole, &wholeCalls) }
        }
    }

    /// Entry points (FLOWC_ENTRY_*) the table has room for.
    static let entries = 8
    /// One timing per entry point and row count 1 ... maximumRows, at (entry · maximumRows + rows − 1):
    /// an array, not a dictionary, as a batch-1 call takes a few µs.
    private let timings = Mutex<[Timing]>(Array(repeating: Timing(), count: SplitChooser.entries * SplitChooser.maximumRows))

    /// Runs `call` (an entry point on `rows` rows) with splits allowed or not, and times it.
    func run<T>(entry: Int32, rows: Int, _ call: () throws -> T) rethrows -> T {
        guard rows >= 1, rows <= SplitChooser.maximumRows, (0..<SplitChooser.entries).contains(Int(entry)) else { return try call() }
        let key = Int(entry) * SplitChooser.maximumRows + rows - 1
        let awake = WorkerPool.shared.hasAwakeWorker
        let decision = timings.withLock { table in table[key].next(workerAwake: awake) }
        if decision.waking {
            WorkerPool.shared.wakeParkedWorkers()
            return try WorkerPool.withoutSplitting(call)
        }
        // ticks, not seconds: the two ways' estimates are only compared with each other
        let start = flowc_ticks()
        let result = decision.split ? try call() : try WorkerPool.withoutSplitting(call)
        let elapsed = Double(flowc_ticks() &- start)
        timings.withLock { table in table[key].record(elapsed, split: decision.split, counts: decision.counts) }
        return result
    }
}
