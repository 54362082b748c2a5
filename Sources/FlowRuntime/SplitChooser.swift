import CFlowcABI
import Foundation
import Synchronization

/// Decides by timing whether the products inside a small-batch call are split over the worker
/// pool (ColumnSplit in FlowCodegen). On a shared machine the second core can be slower than none:
/// measured on this VM, e_fm's batch-1 sample took 30 µs split, 41 µs whole, and 61 µs split
/// while the other virtual CPU was stalling — which the pool's own back-off, judging each split
/// by itself, did not catch. Per entry point and row count, running averages of the whole call's
/// time with splits and without; the faster way runs, the other for `exploreCalls` calls every
/// `exploreEvery` so its average stays current. The first call each way, and of each
/// exploration (idle workers park after 200 µs), is a warm-up and not counted; a call slower
/// than twice the average (a preemption) counts as twice the average.
final class SplitChooser: Sendable {
    static let exploreEvery = 16, exploreCalls = 3
    /// The batches up to which products split (flowc.h): only these are timed.
    static let maximumRows = Int(FLOWC_SPLIT_MAXIMUM_ROWS)

    struct Timing {
        /// Running averages in nanoseconds, and the calls timed, with splits and without.
        var split = 0.0, whole = 0.0
        var splitCalls = 0, wholeCalls = 0
        var calls = 0
        /// Calls left in the current exploration of the slower way.
        var exploring = 0

        /// The way the next call runs, and whether its time counts: the first call each way,
        /// and the first call of an exploration (the workers may have parked meanwhile), do not.
        mutating func next() -> (split: Bool, counts: Bool) {
            calls += 1
            if splitCalls < 2 { return (true, splitCalls == 1) }
            if wholeCalls < 2 { return (false, wholeCalls == 1) }
            let faster = split <= whole
            if exploring == 0 && calls % SplitChooser.exploreEvery == 0 { exploring = SplitChooser.exploreCalls }
            guard exploring > 0 else { return (faster, true) }
            exploring -= 1
            return (!faster, exploring < SplitChooser.exploreCalls - 1)
        }

        mutating func record(_ nanoseconds: Double, split wasSplit: Bool, counts: Bool) {
            func update(_ average: inout Double, _ count: inout Int) {
                count += 1
                guard counts else { return }
                average = average == 0 ? nanoseconds : average + (min(nanoseconds, 2 * average) - average) / 8
            }
            if wasSplit { update(&split, &splitCalls) } else { update(&whole, &wholeCalls) }
        }
    }

    private let timings = Mutex<[Int: Timing]>([:])

    /// Runs `call` (an entry point on `rows` rows) with splits allowed or not, and times it.
    func run<T>(entry: Int32, rows: Int, _ call: () throws -> T) rethrows -> T {
        guard rows <= SplitChooser.maximumRows else { return try call() }
        let key = Int(entry) << 32 | rows
        let (split, counts) = timings.withLock { table in table[key, default: Timing()].next() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = split ? try call() : try WorkerPool.withoutSplitting(call)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
        timings.withLock { table in table[key]?.record(elapsed, split: split, counts: counts) }
        return result
    }
}
