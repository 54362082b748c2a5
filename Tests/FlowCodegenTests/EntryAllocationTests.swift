import FlowTestSupport
import Foundation
import XCTest

/// Entry points allocate nothing: Benchmarks/entry_allocations.c (a C program whose own malloc
/// family counts every allocation in the process: the model's code, OpenBLAS, libm) calls each
/// entry point of compiled reference models, once and then three more times, at batch 1 and at a
/// batch that is not a multiple of any tile or chunk size. The later calls must make zero
/// allocations (an exact count, no tolerance); the first call may initialise libraries lazily,
/// but with no BLAS call left in these models it makes none either.
final class EntryAllocationTests: XCTestCase {
    func testEntryPointsMakeNoHeapAllocations() throws {
        let tool = TestFiles.path("entry-allocations")
        let build = try ProcessResult.run("/usr/bin/env", ["cc", "-O1", "-o", tool, Repository.path("Benchmarks/entry_allocations.c"), "-ldl", "-lm"])
        XCTAssertEqual(build.status, 0, build.stderr)
        for key in ["c_realnvp64", "a_nsf", "d_glow", "e_fm", "f_meanflow", "g_tarflow"] {
            let so = try CompiledModelTests.artifact(key)
            for batch in [1, 203] {
                let run = try ProcessResult.run(tool, [so, String(batch), "3"])
                XCTAssertEqual(run.status, 0, "\(key): \(run.stderr)")
                let lines = run.stdout.split(separator: "\n")
                XCTAssertFalse(lines.isEmpty, "\(key): no entry points reported")
                for line in lines {
                    XCTAssertTrue(line.hasSuffix("first=0 steady=0 code=0"), "\(key) batch \(batch): \(line)")
                }
            }
        }
    }
}
