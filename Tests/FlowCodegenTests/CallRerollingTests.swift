@testable import FlowCodegen
import XCTest

final class CallRerollingTests: XCTestCase {
    func testARepeatedRunBecomesOneLoop() {
        // a b c b c b c d: "b c" three times saves 4 calls
        XCTAssertEqual(CallRerolling.items([0, 1, 2, 1, 2, 1, 2, 3]), [.call(0), .loop(first: 1, period: 2, count: 3), .call(7)])
    }

    func testALoopMustSaveEnoughCalls() {
        // three equal calls save 2: calls stay calls; five save 4: one loop
        XCTAssertEqual(CallRerolling.items([5, 5, 5]), [.call(0), .call(1), .call(2)])
        XCTAssertEqual(CallRerolling.items([5, 5, 5, 5, 5]), [.loop(first: 0, period: 1, count: 5)])
        XCTAssertEqual(CallRerolling.items([0, 1, 2, 3, 4, 5]), (0..<6).map { .call($0) })
    }

    func testTheShortestPeriodCoveringTheMostCallsWins() {
        // period 2 × 4 and period 4 × 2 both cover 8 calls: the shorter period is kept;
        // a trailing partial repetition stays outside the loop
        XCTAssertEqual(CallRerolling.items([1, 2, 1, 2, 1, 2, 1, 2, 1]), [.loop(first: 0, period: 2, count: 4), .call(8)])
        // a longer period that covers more beats a shorter one that starts the same way
        XCTAssertEqual(CallRerolling.items([7, 7, 8, 7, 7, 8, 7, 7, 8]), [.loop(first: 0, period: 3, count: 3)])
    }

    func testLoopsCoverEveryCallOnceInOrder() {
        // a token-by-token decoder's shape: a prologue, then blocks of a body repeated per token
        var shapes = [100, 101]
        for block in 0..<3 { shapes += [200 + block]; for _ in 0..<15 { shapes += [1, 2, 3, 4, 5, 6, 7] } }
        var next = 0
        for item in CallRerolling.items(shapes) {
            switch item {
            case .call(let i): XCTAssertEqual(i, next); next += 1
            case .loop(let first, let period, let count):
                XCTAssertEqual(first, next)
                for r in 1..<count { XCTAssertEqual(Array(shapes[first..<first + period]), Array(shapes[first + r * period..<first + (r + 1) * period])) }
                next += period * count
            }
        }
        XCTAssertEqual(next, shapes.count)
        XCTAssertEqual(CallRerolling.items(shapes).filter { if case .loop = $0 { return true }; return false }.count, 3)
    }
}
