import FlowIR
import FlowRandom
import XCTest

final class PhiloxTests: XCTestCase {
    /// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors.
    func testKnownAnswers() {
        let zero = Philox.block(counter: (0, 0, 0, 0), key: (0, 0))
        XCTAssertEqual([zero.0, zero.1, zero.2, zero.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = Philox.block(counter: (.max, .max, .max, .max), key: (.max, .max))
        XCTAssertEqual([ones.0, ones.1, ones.2, ones.3], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = Philox.block(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
        XCTAssertEqual([pi.0, pi.1, pi.2, pi.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    func testNoiseDoesNotDependOnTheBatchSplit() {
        let whole = Philox.normals(seed: 42, firstRow: 0, rows: 7, perRow: 3)
        let split = Philox.normals(seed: 42, firstRow: 0, rows: 2, perRow: 3) + Philox.normals(seed: 42, firstRow: 2, rows: 5, perRow: 3)
        XCTAssertEqual(whole, split)
        XCTAssertNotEqual(whole, Philox.normals(seed: 43, firstRow: 0, rows: 7, perRow: 3))
    }

    /// Moments of 200 000 draws: mean within 0.01 and variance within 0.02 of N(0, 1)
    /// (standard errors 0.0022 and 0.0032: over 4 standard errors of margin).
    func testNormalMoments() {
        let x = Philox.normals(seed: 7, firstRow: 0, rows: 1000, perRow: 200)
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
    }

    /// Entry k of the stream, computed from the definition in Philox.normals' documentation
    /// (block k/4, Box–Muller pair of lanes 2p, 2p + 1, cos for the even lane): the generator
    /// computes each pair once and may start or end in the middle of one (odd first entry).
    func testNormalsFollowTheirDefinition() {
        let (seed, firstRow, rows, perRow) = (UInt64(0x1234_5678_9abc), 1, 3, 5)
        let drawn = Philox.normals(seed: seed, firstRow: firstRow, rows: rows, perRow: perRow)
        for i in 0..<(rows * perRow) {
            let k = firstRow * perRow + i
            let r = Philox.block(counter: (UInt32(k / 4), 0, 0, 0), key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
            let lanes = [r.0, r.1, r.2, r.3], pair = (k % 4) / 2
            let u1 = (Double(lanes[2 * pair]) + 0.5) / 4_294_967_296.0, u2 = (Double(lanes[2 * pair + 1]) + 0.5) / 4_294_967_296.0
            let expected = (-2 * log(u1)).squareRoot() * (k % 2 == 0 ? cos(2 * Double.pi * u2) : sin(2 * Double.pi * u2))
            XCTAssertEqual(drawn[i], expected, "entry \(k)")
        }
    }
}
