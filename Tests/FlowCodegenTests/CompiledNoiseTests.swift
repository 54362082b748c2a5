@testable import FlowRuntime
import FlowRandom
import FlowTestSupport
import Foundation
import XCTest

/// The base noise of compiled sampling (flowc_noise, NoiseLowering) against the stream's
/// definition, `Philox.normals` (Box–Muller in f64 through libm), rounded to f32.
final class CompiledNoiseTests: XCTestCase {
    static func model(threads: Int = 2) throws -> CompiledModel {
        try CompiledModel(path: try CompiledModelTests.artifact("c_realnvp2"), threads: threads)
    }

    /// Entries of several seeds and ranges (ranges that start and end inside a Philox block,
    /// a block counter above 2³², a range inside one block, block counts around a group's)
    /// equal `Float(Philox.normals)` exactly. The comparison is exact because flowc_noise's f64 log, sine and cosine are within
    /// 2 f64 ulps of libm's, so an f32 rounding can differ only for an f64 value within 2 ulps
    /// of a point halfway between two floats: about once in 10⁹ entries. A wrong polynomial
    /// coefficient, quadrant or lane would change thousands of the 1.2 million entries.
    func testNoiseIsTheStreamRoundedToFloat() throws {
        let model = try Self.model()
        let cases: [(seed: UInt64, entries: Range<Int>)] = [
            (0, 0..<400_000), (0xDEAD_BEEF_1234_5678, 3..<400_002), (.max, 1..<400_001),
            (7, (1 << 34) + 1..<(1 << 34) + 23), (9, 5..<7), (9, 4..<5),
            // flowc_noise draws groups of 4 blocks (NoiseLowering.group): 7, 8, 13 and 14 whole
            // blocks, every remainder modulo 4
            (13, 0..<28), (12, 0..<32), (3, 0..<52), (14, 2..<63),
        ]
        for (seed, entries) in cases {
            let expected = Philox.normals(seed: seed, firstRow: entries.lowerBound, rows: entries.count, perRow: 1).map { Float($0) }
            var drawn = [Float](repeating: .nan, count: entries.count)
            drawn.withUnsafeMutableBufferPointer { model.drawNoise(seed: seed, entries: entries, scale: 1, into: $0.baseAddress!) }
            let differing = zip(drawn, expected).enumerated().filter { $0.element.0 != $0.element.1 }
            XCTAssertEqual(differing.count, 0, "seed \(seed), entries \(entries): first differing \(differing.prefix(3).map { "\(entries.lowerBound + $0.offset): \($0.element.0) vs \($0.element.1)" })")
        }
    }

    /// `noise` is the stream rounded to f32 and then times the temperature in f32, and a row's
    /// noise does not depend on the rows drawn with it or the thread count.
    func testNoiseScalesByTheTemperatureAndDoesNotDependOnTheSplit() throws {
        let (two, one) = (try Self.model(threads: 2), try Self.model(threads: 1))
        let width = two.latentElements
        let reference = Philox.normals(seed: 11, firstRow: 0, rows: 300, perRow: width).map { Float($0) * 0.7 }
        XCTAssertEqual(try two.noise(seed: 11, firstRow: 0, rows: 300, temperature: 0.7), reference)
        XCTAssertEqual(try one.noise(seed: 11, firstRow: 0, rows: 300, temperature: 0.7), reference)
        XCTAssertEqual(try two.noise(seed: 11, firstRow: 37, rows: 5, temperature: 0.7), Array(reference[(37 * width)..<(42 * width)]))
    }

    /// examples/c/sample.c, built with cc and run on a 2-D RealNVP, draws its noise with
    /// flowc_noise (seed 7) and prints the samples `sample(count: 4, seed: 7)` returns in Swift,
    /// to its 6 printed decimals (5e-7, the rounding of the print).
    func testTheCExampleDrawsTheSameSamplesAsSwift() throws {
        let program = TestFiles.path("c-example")
        let build = try ProcessResult.run("/usr/bin/env", ["cc", "-I", Repository.path("Sources/CFlowcABI/include"), Repository.path("examples/c/sample.c"),
                                                           "-o", program, "-ldl"])
        XCTAssertEqual(build.status, 0, build.stderr)
        let run = try ProcessResult.run(program, [try CompiledModelTests.artifact("c_realnvp2")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let printed = run.stdout.split(separator: "\n").filter { $0.hasPrefix("x = (") }.flatMap { line in
            line.dropFirst(5).prefix { $0 != ")" }.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        }
        let swift = try Self.model().sample(count: 4, seed: 7)
        XCTAssertEqual(printed.count, swift.count, run.stdout)
        for (c, s) in zip(printed, swift) { XCTAssertEqual(c, s, accuracy: 5e-7 + 1e-7 * abs(s), run.stdout) }
    }
}
