@testable import FlowRuntime
import XCTest

/// SplitChooser's policy on given call times: it settles on the faster way, keeps exploring the
/// other (3 calls every 16, the first of them not counted), and follows when they change places.
final class SplitChooserTests: XCTestCase {
    /// Runs `calls` calls through the policy with the given times; returns how many ran split.
    func simulate(_ timing: inout SplitChooser.Timing, calls: Int, split: Double, whole: Double) -> Int {
        var splits = 0
        for _ in 0..<calls {
            let (runsSplit, counts) = timing.next()
            if runsSplit { splits += 1 }
            timing.record(runsSplit ? split : whole, split: runsSplit, counts: counts)
        }
        return splits
    }

    func testSettlesOnTheFasterWayAndFollowsAChange() {
        var timing = SplitChooser.Timing()
        // split twice as fast: all but the explorations of the whole way (3 in 16) split
        let first = simulate(&timing, calls: 1600, split: 30_000, whole: 60_000)
        XCTAssertEqual(Double(first) / 1600, 13.0 / 16, accuracy: 0.01)
        // the split becomes slower (the other core busy): within a few hundred calls the whole
        // way is preferred, the split explored 3 calls in 16
        _ = simulate(&timing, calls: 400, split: 90_000, whole: 60_000)
        let later = simulate(&timing, calls: 1600, split: 90_000, whole: 60_000)
        XCTAssertEqual(Double(later) / 1600, 3.0 / 16, accuracy: 0.01)
    }

    func testWarmUpCallsAreNotCounted() {
        var timing = SplitChooser.Timing()
        // the first call each way is 100x slower (cold caches, parked workers): ignored
        var times = [true: [3_000_000.0, 30_000, 31_000, 30_500], false: [6_000_000.0, 60_000, 61_000, 60_500]]
        for _ in 0..<8 {
            let (runsSplit, counts) = timing.next()
            timing.record(times[runsSplit]!.removeFirst(), split: runsSplit, counts: counts)
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
            let (runsSplit, counts) = timing.next()
            if runsSplit && call >= 8 { splits += 1 }
            timing.record(runsSplit ? (call == 1 ? 250_000 : 107_000) : 156_000, split: runsSplit, counts: counts)
        }
        XCTAssertEqual(timing.split, 107_000)
        XCTAssertEqual(Double(splits) / 192, 13.0 / 16, accuracy: 0.03)
    }
}
