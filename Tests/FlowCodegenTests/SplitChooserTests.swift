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
        var times = [true: [3_000_000.0, 30_000], false: [6_000_000.0, 60_000]]
        for _ in 0..<4 {
            let (runsSplit, counts) = timing.next()
            timing.record(times[runsSplit]!.removeFirst(), split: runsSplit, counts: counts)
        }
        XCTAssertEqual(timing.split, 30_000)
        XCTAssertEqual(timing.whole, 60_000)
    }
}
