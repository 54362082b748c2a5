@testable import FlowRuntime
import XCTest

/// SplitChooser's policy on given call times: it settles on the faster way, keeps exploring the
/// other (3 calls every 16 while their estimates are within 1.25x, every 64 when further apart;
/// the first of them not counted), follows when they change places, and explores the split way
/// only once a parked worker is awake.
final class SplitChooserTests: XCTestCase {
    /// Runs `calls` calls through the policy with the given times; returns how many ran split.
    func simulate(_ timing: inout SplitChooser.Timing, calls: Int, split: Double, whole: Double) -> Int {
        var splits = 0
        for _ in 0..<calls {
            let d = timing.next()
            if d.split { splits += 1 }
            timing.record(d.split ? split : whole, split: d.split, counts: d.counts)
        }
        return splits
    }

    func testSettlesOnTheFasterWayAndFollowsAChange() {
        var timing = SplitChooser.Timing()
        // split twice as fast: all but the explorations of the whole way (3 in 64) split
        let first = simulate(&timing, calls: 1600, split: 30_000, whole: 60_000)
        XCTAssertEqual(Double(first) / 1600, 61.0 / 64, accuracy: 0.01)
        // the split becomes slower (the other core busy): within a few hundred calls the whole
        // way is preferred, the split explored 3 calls in 64
        _ = simulate(&timing, calls: 400, split: 90_000, whole: 60_000)
        let later = simulate(&timing, calls: 1600, split: 90_000, whole: 60_000)
        XCTAssertEqual(Double(later) / 1600, 3.0 / 64, accuracy: 0.01)
    }

    /// Ways within 1.25x of each other: the slower is explored 3 calls in 16.
    func testCloseWaysAreExploredEverySixteenCalls() {
        var timing = SplitChooser.Timing()
        _ = simulate(&timing, calls: 160, split: 50_000, whole: 55_000)
        let splits = simulate(&timing, calls: 1600, split: 50_000, whole: 55_000)
        XCTAssertEqual(Double(splits) / 1600, 13.0 / 16, accuracy: 0.01)
    }

    /// The whole way preferred, then the split way becomes twice as fast, while the pool's worker
    /// parks between explorations (20 calls without a split) and takes 5 calls to wake. A call
    /// that would explore the split way with the worker parked runs whole, unrecorded, and asks
    /// for the wake-up; the exploration's split calls follow once it is awake. So no split call
    /// runs with the worker parked, and the chooser finds the faster split way at its first
    /// exploration. (Split calls timed with a parked worker, 150 µs here, had kept it whole.)
    func testTheSplitWayIsExploredWithAnAwakeWorker() {
        var timing = SplitChooser.Timing()
        _ = simulate(&timing, calls: 200, split: 90_000, whole: 60_000)
        XCTAssertGreaterThan(timing.split, timing.whole)
        var awake = false, wakeIn: Int? = nil, idle = 0, splits = 0, splitsWhileParked = 0, wakings = 0
        for call in 0..<400 {
            let d = timing.next(workerAwake: awake)
            if d.waking {
                XCTAssertFalse(d.split)
                wakings += 1
                if wakeIn == nil { wakeIn = 5 }
            } else {
                if d.split && !awake { splitsWhileParked += 1 }
                timing.record(d.split ? (awake ? 30_000 : 150_000) : 60_000, split: d.split, counts: d.counts)
            }
            if d.split { idle = 0; if call >= 200 { splits += 1 } } else { idle += 1 }
            if let w = wakeIn { if w <= 1 { awake = true; wakeIn = nil; idle = 0 } else { wakeIn = w - 1 } }
            if awake && idle >= 20 { awake = false }
        }
        XCTAssertEqual(splitsWhileParked, 0)
        XCTAssertGreaterThan(wakings, 0)
        XCTAssertEqual(timing.split, 30_000)
        XCTAssertEqual(Double(splits) / 200, 61.0 / 64, accuracy: 0.03)
    }

    func testWarmUpCallsAreNotCounted() {
        var timing = SplitChooser.Timing()
        // the first call each way is 100x slower (cold caches, parked workers): ignored
        var times = [true: [3_000_000.0, 30_000, 31_000, 30_500], false: [6_000_000.0, 60_000, 61_000, 60_500]]
        for _ in 0..<8 {
            let d = timing.next()
            timing.record(times[d.split]!.removeFirst(), split: d.split, counts: d.counts)
        }
        // the estimate: the first counted time, then an eighth of the way to each slower one
        func estimate(_ t: [Double]) -> Double { t.dropFirst().reduce(t[0]) { e, x in x < e ? x : e + (x - e) / 8 } }
        XCTAssertEqual(timing.split, estimate([30_000, 31_000, 30_500]), accuracy: 1e-9)
        XCTAssertEqual(timing.whole, estimate([60_000, 61_000, 60_500]), accuracy: 1e-9)
    }

    /// Measured in a benchmark run: e_fm's RK4 sample at batch 1 takes 107 µs split and 156 µs
    /// whole, but one counted early split call took 250 µs. The estimate follows the faster
    /// calls, so the chooser splits after its first choice (a mean kept it whole for 200 calls).
    func testOneSlowEarlySplitDoesNotDecide() {
        var timing = SplitChooser.Timing()
        var splits = 0
        for call in 0..<200 {
            let d = timing.next()
            if d.split && call >= 8 { splits += 1 }
            timing.record(d.split ? (call == 1 ? 250_000 : 107_000) : 156_000, split: d.split, counts: d.counts)
        }
        XCTAssertEqual(timing.split, 107_000)
        XCTAssertEqual(Double(splits) / 192, 61.0 / 64, accuracy: 0.03)
    }
}
