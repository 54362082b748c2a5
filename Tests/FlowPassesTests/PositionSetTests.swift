@testable import FlowPasses
import XCTest

/// Position sets against a plain Set<Int>, below and beyond the 64 positions held inline.
final class PositionSetTests: XCTestCase {
    func testMatchesASetOfIntegers() {
        for capacity in [1, 64, 65, 200] {
            var a = PositionSet(capacity: capacity), b = PositionSet(capacity: capacity)
            var plainA = Set<Int>(), plainB = Set<Int>()
            XCTAssertTrue(a.isEmpty)
            for i in stride(from: 0, to: capacity, by: 3) { a.insert(i); plainA.insert(i) }
            for i in stride(from: capacity - 1, through: 0, by: -7) { b.insert(i); plainB.insert(i) }
            XCTAssertEqual(a.members, plainA.sorted())
            XCTAssertEqual((0..<capacity).filter(a.contains), plainA.sorted())
            XCTAssertFalse(a.isEmpty)
            a.formUnion(b)
            XCTAssertEqual(a.members, plainA.union(plainB).sorted())
            var c = PositionSet(capacity: capacity)
            for i in plainA.union(plainB) { c.insert(i) }
            XCTAssertEqual(a, c)
            if capacity > 64 {
                // a position beyond the inline word alone is not empty and not equal to none
                var high = PositionSet(capacity: capacity)
                high.insert(capacity - 1)
                XCTAssertFalse(high.isEmpty)
                XCTAssertNotEqual(high, PositionSet(capacity: capacity))
                XCTAssertEqual(high.members, [capacity - 1])
            }
        }
    }
}
