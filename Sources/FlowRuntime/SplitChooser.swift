import CFlowcABI
import Foundation
import Synchronization

/// Decides by timing whether the products inside a small-batch call are split over the worker
/// pool (ColumnSplit in FlowCodegen). On a shared machine the second core can be slower than none:
/// measured on this VM, e_fm's batch-1 sample took 30 µs split, 41 µs whole, and 61 µs split
/// while the other virtual CPU was stalling (judging each split by itself, as the pool once
/// did, did not catch it). Per entry point (the ODE solver's calls count as `FLOWC_ENTRY_FIELD`)
/// and row count, an estimate of the whole call's time with splits and without; the faster way
/// runs, the other for `exploreCalls` calls every `exploreEvery` so its estimate stays current.
/// The estimate follows the lower envelope of the times: a faster call sets it, a slower one
/// moves it an eighth of the way (counting at most twice the estimate), because the noise of a
/// shared machine only ever adds time — a mean let one slow early split (measured: 250 µs
/// against 107) keep e_fm's RK4 sample on one core at 156 µs. The first call each way, and of
/// each exploration (idle workers park after 200 µs), is a warm-up and not counted; the first
/// choice waits for `firstCounted` counted calls each way.
final class SplitChooser: Sendable {
    static let exploreEvery = 16, exploreCalls = 3, firstCounted = 3
    /// The batches up to which products split (flowc.h): only these are timed.
    static let maximumRows = Int(FLOWC_SPLIT_MAXIMUM_ROWS)

    struct Timing {
        /// Estimates in ticks (`flowc_ticks`: lower envelopes), and the calls timed, with splits and without.
        var split = 0.0, whole = 0.0
        var splitCalls = 0, wholeCalls = 0
        var calls = 0
        /// Calls left in the current exploration of the slower way.
        var exploring = 0

        /// The way the next call runs, and whether its time counts: the first call each way,
        /// and the first call of an exploration (the workers may have parked meanwhile), do not.
        mutating func next() -> (split: Bool, counts: Bool) {
            calls += 1
            if splitCalls <= SplitChooser.firstCounted { return (true, splitCalls > 0) }
            if wholeCalls <= SplitChooser.firstCounted { return (false, wholeCalls > 0) }
            let faster = split <= whole
            if exploring == 0 && calls % SplitChooser.exploreEvery == 0 { exploring = SplitChooser.exploreCalls }
            guard exploring > 0 else { return (faster, true) }
            exploring -= 1
            return (!faster, exploring < SplitChooser.exploreCalls - 1)
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
        let (split, counts) = timings.withLock { table in table[key].next() }
        // ticks, not seconds: the two ways' estimates are only compared with each other
        let start = flowc_ticks()
        let result = split ? try call() : try WorkerPool.withoutSplitting(call)
        let elapsed = Double(flowc_ticks() &- start)
        timings.withLock { table in table[key].record(elapsed, split: split, counts: counts) }
        return result
    }
}
