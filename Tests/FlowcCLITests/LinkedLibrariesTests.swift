import FlowTestSupport
import Foundation
import XCTest

/// A compiled model names the libraries it calls (DT_NEEDED), so a C program that links neither
/// OpenBLAS nor libm can load it: `flowc compile` links with gold directly on the libraries this
/// process has loaded, or through the C compiler driver when gold is not on PATH
/// (SharedObjectLinker). A loader program (C, linked against neither) dlopens each artifact with
/// RTLD_NOW — every symbol resolved, or dlerror — and reports which of the two libraries it then
/// has mapped.
final class LinkedLibrariesTests: XCTestCase {
    static let loaderSource = """
    #include <dlfcn.h>
    #include <stdio.h>
    #include <string.h>
    int main(int argc, char **argv) {
        if (argc != 2) return 2;
        if (!dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) { fprintf(stderr, "%s\\n", dlerror()); return 1; }
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[4096];
        int blas = 0, m = 0;
        while (maps && fgets(line, sizeof line, maps)) {
            const char *name = strrchr(line, '/');
            if (!name) continue;
            if (!strncmp(name + 1, "libopenblas", 11)) blas = 1;
            if (!strncmp(name + 1, "libm.so.", 8)) m = 1;
        }
        printf("openblas=%d libm=%d\\n", blas, m);
        return 0;
    }
    """

    func testArtifactsLoadInAProcessWithoutOpenBLASOrLibm() throws {
        let source = TestFiles.path("loader.c"), loader = TestFiles.path("loader")
        try LinkedLibrariesTests.loaderSource.write(toFile: source, atomically: true, encoding: .utf8)
        let build = try ProcessResult.run("/usr/bin/env", ["cc", "-O1", "-o", loader, source, "-ldl"])
        XCTAssertEqual(build.status, 0, build.stderr)
        let unloaded = try ProcessResult.run(loader, [Repository.flowc])   // an executable: dlopen fails, nothing mapped yet
        XCTAssertEqual(unloaded.status, 1, "the loader must fail on a non-library")

        // a PATH with the driver and bfd's ld but no gold: the driver's link
        let driverOnly = TestFiles.path("driver-only-bin")
        try FileManager.default.createDirectory(atPath: driverOnly, withIntermediateDirectories: true)
        for tool in ["cc", "ld"] {
            let found = try ProcessResult.run("/usr/bin/env", ["sh", "-c", "command -v \(tool)"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertFalse(found.isEmpty, "\(tool) is not on PATH")
            try? FileManager.default.removeItem(atPath: "\(driverOnly)/\(tool)")
            try FileManager.default.createSymbolicLink(atPath: "\(driverOnly)/\(tool)", withDestinationPath: found)
        }
        // key: (calls OpenBLAS, calls libm) — the conditional TarFlow's label embedding goes
        // through sgemm, MeanFlow's time embedding calls sinf and cosf, RealNVP neither
        let expected = ["g_tarflow_cond": (true, nil as Bool?), "f_meanflow": (false, true), "c_realnvp2": (false, false)]
        for (key, (blas, m)) in expected.sorted(by: { $0.key < $1.key }) {
            for (linker, environment) in [("gold", [String: String]()), ("driver", ["PATH": driverOnly])] {
                let so = TestFiles.path("linked-\(key)-\(linker).so")
                let compile = try ProcessResult.run(Repository.flowc, ["compile", Repository.path("examples/reference/\(key).flow"),
                                                                       "--weights", Repository.fixture("\(key).safetensors"), "-o", so], environment: environment)
                XCTAssertEqual(compile.status, 0, "\(key) (\(linker)): \(compile.stderr)")
                let load = try ProcessResult.run(loader, [so])
                XCTAssertEqual(load.status, 0, "\(key) (\(linker)) does not load: \(load.stderr)")
                XCTAssertTrue(load.stdout.contains("openblas=\(blas ? 1 : 0)"), "\(key) (\(linker)): \(load.stdout)")
                if let m { XCTAssertTrue(load.stdout.contains("libm=\(m ? 1 : 0)"), "\(key) (\(linker)): \(load.stdout)") }
            }
        }
    }
}
