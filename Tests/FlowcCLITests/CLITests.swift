import FlowIR
import FlowTestSupport
import Foundation
import XCTest

/// A user error: exit status 1 with `expected` on stderr, no crash and no Swift trap.
func assertUserError(_ result: ProcessResult, contains expected: String, _ context: String, line: UInt = #line) {
    XCTAssertFalse(result.terminatedBySignal, "\(context): crashed\n\(result.stderr)", line: line)
    XCTAssertEqual(result.status, 1, "\(context): exit status\n\(result.stderr)", line: line)
    XCTAssertTrue(result.stderr.contains(expected), "\(context):\n  got: \(result.stderr)\n  want: \(expected)", line: line)
    XCTAssertFalse(result.stderr.contains("Fatal error"), context, line: line)
}

/// The flowc tool end to end: exit codes (0 ok, 1 user error, 2 usage), clear located errors
/// for every malformed input, and the reference fixtures through the command line.
final class CLITests: XCTestCase {
    func flowc(_ args: [String]) throws -> ProcessResult { try ProcessResult.run(Repository.flowc, args) }

    /// Every spec in Tests/Fixtures/malformed states its expected message on its first line
    /// (`# expect: LINE:COL: error: ...`); each must fail with exit code 1 and that message.
    func testMalformedSpecCorpus() throws {
        let folder = Repository.fixture("malformed")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".flow") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 30)
        for name in files {
            let path = "\(folder)/\(name)"
            let firstLine = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[0]
            XCTAssertTrue(firstLine.hasPrefix("# expect: "), name)
            let expected = String(firstLine.dropFirst("# expect: ".count))
            assertUserError(try flowc(["check", path]), contains: expected, name)
        }
    }

    func testBadWeightAndDataFilesThroughTheCLI() throws {
        let dir = TestFiles.path("cli")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let spec = Repository.referenceSpec("c_realnvp2")
        let weights = Repository.fixture("c_realnvp2.safetensors")
        let good = try Data(contentsOf: URL(fileURLWithPath: weights))
        // truncated weight file
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: "\(dir)/truncated.safetensors"))
        assertUserError(try flowc(["check", spec, "--weights", "\(dir)/truncated.safetensors"]), contains: "outside the data section", "truncated weights")
        // a weight file that is not safetensors at all
        try Data("hello, this is not a weight file".utf8).write(to: URL(fileURLWithPath: "\(dir)/text.safetensors"))
        assertUserError(try flowc(["check", spec, "--weights", "\(dir)/text.safetensors"]), contains: "exceeds the limit", "text as weights")
        // a weight file from another model
        assertUserError(try flowc(["check", spec, "--weights", Repository.fixture("d_glow.safetensors")]), contains: "weight 'base.loc' is not in", "wrong model's weights")
        // another model's weights for a spec that counts its layers (count_indexed finds none:
        // it had compiled an empty TarFlow without a word)
        assertUserError(try flowc(["check", Repository.referenceSpec("g_tarflow"), "--weights", Repository.fixture("e_fm.safetensors")]),
                        contains: "e_fm.safetensors: error: model 'tarflow' reads none of the 17 tensors of this weight file", "weights matching no layer")
        // bad input arrays
        let wrongShape = NpyArray(shape: [3, 5], values: Array(repeating: 0, count: 15))
        try wrongShape.write(path: "\(dir)/wrong.npy")
        assertUserError(try flowc(["run", spec, "--weights", weights, "--input", "\(dir)/wrong.npy", "--output", "\(dir)/z.npy"]),
                        contains: "input 'x' has shape [3, 5]; expected f32[B, 2]", "wrong input shape")
        try NpyArray(shape: [1, 2], values: [1, .infinity]).write(path: "\(dir)/inf.npy")
        assertUserError(try flowc(["run", spec, "--weights", weights, "--input", "\(dir)/inf.npy", "--output", "\(dir)/z.npy"]),
                        contains: "holds inf at index (0, 1); inputs must be finite", "infinite input")
        try Data("not an array".utf8).write(to: URL(fileURLWithPath: "\(dir)/bad.npy"))
        assertUserError(try flowc(["run", spec, "--weights", weights, "--input", "\(dir)/bad.npy", "--output", "\(dir)/z.npy"]),
                        contains: "bad.npy (byte 0): error: not a .npy file", "not npy")
        assertUserError(try flowc(["run", spec, "--weights", weights, "--input", "\(dir)/missing.npy", "--output", "\(dir)/z.npy"]),
                        contains: "cannot read .npy file", "missing input")
        assertUserError(try flowc(["check", "\(dir)/nope.flow"]), contains: "cannot read spec", "missing spec")
        assertUserError(try flowc(["check", spec, "--weights", weights, "--param", "Q=3"]), contains: "the spec has no parameter 'Q'", "unknown param")
    }

    func testUsageErrorsExitWithTwo() throws {
        for args in [[], ["frobnicate"], ["run"], ["run", "a.flow"], ["check", "a.flow", "--bogus"], ["run", "a.flow", "--input"],
                     ["run", "a.flow", "--input", "x", "--output", "y", "--entry", "sideways"], ["check", "a.flow", "b.flow"],
                     ["run", "a.flow", "--input", "x", "--output", "y", "--output=z"]] {
            let r = try flowc(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("usage:"), "\(args): \(r.stderr)")
        }
        for args in [["--help"], ["run", "--help"], ["check", "-h"], ["help", "run"]] {
            let r = try flowc(args)
            XCTAssertEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stdout.contains("usage:"), "\(args)")
        }
    }

    /// `flowc run` on the command line reproduces the fixtures (tolerances as in
    /// ReferenceFixtureTests: z 1e-4 + 1e-4|b|, log_prob 1e-3 + 1e-5|b|).
    func testRunReproducesFixturesFromTheCommandLine() throws {
        let dir = TestFiles.path("run")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for key in ["a_nsf", "c_realnvp64", "d_glow"] {
            let fixture = try ReferenceFixture(key)
            let x = try fixture.tensor("x")
            try NpyArray(shape: x.shape, values: x.values).write(path: "\(dir)/x.npy")
            let r = try flowc(["run", Repository.referenceSpec(key), "--weights", Repository.fixture("\(key).safetensors"),
                               "--input", "\(dir)/x.npy", "--output", "\(dir)/z.npy"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let z = try NpyArray.read(path: "\(dir)/z.npy")
            let c = Closeness.compare(z.values, try fixture.tensor("z").values, atol: 1e-4, rtol: 1e-4)
            XCTAssertTrue(c.passes, "\(key): \(c)")
        }
        let fixture = try ReferenceFixture("d_glow")
        let r = try flowc(["run", Repository.referenceSpec("d_glow"), "--weights", Repository.fixture("d_glow.safetensors"),
                           "--input", "\(dir)/x.npy", "--output", "\(dir)/lp.npy", "--entry", "log_prob", "--f64"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lp = try NpyArray.read(path: "\(dir)/lp.npy")
        XCTAssertTrue(lp.isF64)
        let c = Closeness.compare(lp.values, try fixture.tensor("log_prob").values, atol: 1e-3, rtol: 1e-5)
        XCTAssertTrue(c.passes, "d_glow log_prob: \(c)")
    }

    /// IR/OPS.md is generated from the op definitions; it must be current.
    func testOpCatalogueDocumentIsCurrent() throws {
        let r = try flowc(["ops", "--markdown"])
        XCTAssertEqual(r.status, 0)
        let committed = try String(contentsOfFile: Repository.path("IR/OPS.md"), encoding: .utf8)
        XCTAssertEqual(committed, r.stdout, "IR/OPS.md is stale: run `make ops-doc`")
    }

    /// The default example of `make demo` runs as shipped.
    func testDefaultExampleRuns() throws {
        let out = TestFiles.path("demo.npy")
        let r = try flowc(["run", Repository.path("examples/default/realnvp2.flow"), "--entry", "log_prob",
                           "--input", Repository.path("examples/default/batch.npy"), "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = try ReferenceFixture("c_realnvp2").tensor("log_prob")
        let c = Closeness.compare(try NpyArray.read(path: out).values, expected.values, atol: 1e-3, rtol: 1e-5)
        XCTAssertTrue(c.passes, "\(c)")
    }
}

/// The compiled-model commands end to end on the default example.
final class CompiledCLITests: XCTestCase {
    func testCompileInfoRunAndErrors() throws {
        let dir = TestFiles.path("compiled-cli")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let so = "\(dir)/m.so"
        func flowc(_ args: [String]) throws -> ProcessResult { try ProcessResult.run(Repository.flowc, args) }
        let compile = try flowc(["compile", Repository.path("examples/default/realnvp2.flow"), "-o", so, "--emit-kernels", "\(dir)/kernels.txt"])
        XCTAssertEqual(compile.status, 0, compile.stderr)
        let kernels = try String(contentsOfFile: "\(dir)/kernels.txt", encoding: .utf8)
        XCTAssertTrue(kernels.contains("flowc_log_prob:") && kernels.contains("fused") && kernels.contains("epilogue"), kernels)
        let info = try flowc(["info", so])
        XCTAssertTrue(info.stdout.contains("input  f32[B, 2]"), info.stdout)
        // log p from the compiled model equals the fixture's (1e-3 + 1e-5|b|, as everywhere)
        let lp = try flowc(["logprob", so, "--input", Repository.path("examples/default/batch.npy"), "-o", "\(dir)/lp.npy"])
        XCTAssertEqual(lp.status, 0, lp.stderr)
        let expected = try ReferenceFixture("c_realnvp2").tensor("log_prob")
        let c = Closeness.compare(try NpyArray.read(path: "\(dir)/lp.npy").values, expected.values, atol: 1e-3, rtol: 1e-5)
        XCTAssertTrue(c.passes, "\(c)")
        // forward then inverse gives the batch back (f32 round trip: 1e-4·(1 + |x|))
        XCTAssertEqual(try flowc(["forward", so, "--input", Repository.path("examples/default/batch.npy"), "-o", "\(dir)/z.npy", "--logdet", "\(dir)/ld.npy"]).status, 0)
        XCTAssertEqual(try flowc(["inverse", so, "--input", "\(dir)/z.npy", "-o", "\(dir)/x.npy"]).status, 0)
        let back = try NpyArray.read(path: "\(dir)/x.npy").values, x = try NpyArray.read(path: Repository.path("examples/default/batch.npy")).values
        XCTAssertTrue(Closeness.compare(back, x, atol: 1e-4, rtol: 1e-4).passes)
        let sample = try flowc(["sample", so, "-n", "3", "--seed", "5", "-o", "\(dir)/s.npy"])
        XCTAssertEqual(try NpyArray.read(path: "\(dir)/s.npy").shape, [3, 2], sample.stderr)
        // misuse and bad input
        XCTAssertEqual(try flowc(["compile", Repository.path("examples/default/realnvp2.flow")]).status, 2)
        XCTAssertEqual(try flowc(["compile", Repository.path("examples/default/realnvp2.flow"), "-o", so, "-O", "7"]).status, 2)
        // a CPU LLVM does not know: an error, not LLVM's abort when it emits code
        let unknownCPU = try flowc(["compile", Repository.path("examples/default/realnvp2.flow"), "-o", "\(dir)/cpu.so", "--target", "znver99"])
        XCTAssertEqual(unknownCPU.status, 1, unknownCPU.stderr)
        XCTAssertTrue(unknownCPU.stderr.contains("unknown CPU 'znver99' for --target"), unknownCPU.stderr)
        // an output the linker could not write is named as given, before any work
        let missingDirectory = try flowc(["compile", Repository.path("examples/default/realnvp2.flow"), "-o", "\(dir)/no-such-dir/m.so"])
        assertUserError(missingDirectory, contains: "\(dir)/no-such-dir/m.so: error: cannot write the shared object: directory '\(dir)/no-such-dir' does not exist", "missing output directory")
        assertUserError(try flowc(["compile", Repository.path("examples/default/realnvp2.flow"), "-o", dir]), contains: "\(dir): error: the output is a directory", "directory as output")
        // the object files go to a private directory under TMPDIR: beside the output only the .so
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".o") }
        XCTAssertEqual(leftovers, [], "object files left beside the shared object")
        let noTemporary = try ProcessResult.run(Repository.flowc, ["compile", Repository.path("examples/default/realnvp2.flow"), "-o", "\(dir)/tmp.so"],
                                                environment: ["TMPDIR": "\(dir)/no-such-tmp"])
        assertUserError(noTemporary, contains: "\(dir)/tmp.so: error: cannot create a directory for the object files under '\(dir)/no-such-tmp' (TMPDIR)", "missing TMPDIR")
        XCTAssertEqual(try flowc(["sample", so, "-n", "0", "--seed", "1", "-o", "\(dir)/s.npy"]).status, 2)
        // an option given twice is an error, not the last value silently winning over an invalid first
        let twice = try flowc(["sample", so, "-n", "0", "--seed", "1", "-n", "5", "-o", "\(dir)/s.npy"])
        XCTAssertEqual(twice.status, 2, twice.stderr)
        XCTAssertTrue(twice.stderr.contains("-n given twice ('0', then '5'): give it once"), twice.stderr)
        let wrong = try flowc(["logprob", so, "--input", "\(dir)/z.npy", "-o", "\(dir)/lp.npy"])
        XCTAssertEqual(wrong.status, 0, "z has the input's shape for this 2-D flow")
        try NpyArray(shape: [2, 3], values: [0, 0, 0, 0, 0, 0]).write(path: "\(dir)/bad.npy")
        let bad = try flowc(["logprob", so, "--input", "\(dir)/bad.npy", "-o", "\(dir)/lp.npy"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("array has shape [2, 3]; expected (N, 2)"), bad.stderr)
        // values an f32 model cannot take: NaN, and an f64 beyond f32's range
        // (the data starts at byte 128, after the header padded to 64-byte lines; 8 bytes a value)
        for (values, expected) in [([0, 0, .nan, 0], "(byte 144): error: value nan at flat index 2 is not a finite f32"),
                                   ([0, 0, 0, 1e39], "(byte 152): error: value 1e+39 at flat index 3 is not a finite f32")] {
            try NpyArray(shape: [2, 2], values: values, isF64: true).write(path: "\(dir)/nonfinite.npy")
            assertUserError(try flowc(["logprob", so, "--input", "\(dir)/nonfinite.npy", "-o", "\(dir)/lp.npy"]), contains: "nonfinite.npy \(expected)", expected)
        }
    }

    /// `flowc sample` of a velocity model with samplers chosen at sample time: dopri5 reports its
    /// steps and agrees with the f64 RK4 oracle (1e-4 + 1e-4·|b| at the default tolerances 1e-5,
    /// see CompiledSolverTests); misuse is a usage error (exit 2) that says what is expected.
    func testSamplerOptionsOfCompiledVelocityModels() throws {
        let dir = TestFiles.path("sampler-cli")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let so = "\(dir)/fm.so"
        func flowc(_ args: [String]) throws -> ProcessResult { try ProcessResult.run(Repository.flowc, args) }
        let compile = try flowc(["compile", Repository.referenceSpec("e_fm"), "--weights", Repository.fixture("e_fm.safetensors"), "-o", so])
        XCTAssertEqual(compile.status, 0, compile.stderr)
        let info = try flowc(["info", so])
        XCTAssertTrue(info.stdout.contains("entry points log_prob, sample, field"), info.stdout)
        XCTAssertTrue(info.stdout.contains("sampler rk4-38, 8 steps, uniform grid (compiled loop)"), info.stdout)
        let dopri = try flowc(["sample", so, "-n", "300", "--seed", "3", "--method", "dopri5", "-o", "\(dir)/d.npy"])
        XCTAssertEqual(dopri.status, 0, dopri.stderr)
        XCTAssertTrue(dopri.stdout.contains("dopri5, solver over the compiled network") && dopri.stdout.contains("steps per sample: min"), dopri.stdout)
        XCTAssertEqual(dopri.stderr, "", "no progress output when stderr is not a terminal")
        let rk4 = try flowc(["sample", so, "-n", "300", "--seed", "3", "--method", "rk4", "--steps", "200", "-o", "\(dir)/h.npy"])
        XCTAssertEqual(rk4.status, 0, rk4.stderr)
        // two solvers of the same ODE from the same noise agree: classic RK4 with 200 steps (error
        // < 1e-6) and dopri5 at rtol = atol = 1e-5 (measured max error 1.8e-4 over these 300 samples)
        let c = Closeness.compare(try NpyArray.read(path: "\(dir)/d.npy").values, try NpyArray.read(path: "\(dir)/h.npy").values, atol: 1e-3, rtol: 1e-3)
        XCTAssertTrue(c.passes, "\(c)")
        let budget = try flowc(["sample", so, "-n", "4", "--seed", "3", "--method", "dopri5", "--max-steps", "2", "-o", "\(dir)/b.npy"])
        XCTAssertEqual(budget.status, 0, budget.stderr)
        XCTAssertTrue(budget.stderr.contains("warning: 4 samples hit the step budget of 2"), budget.stderr)
        for (args, message) in [(["--method", "rk5"], "--method expects one of euler, midpoint, heun, rk4, rk4-38, dopri5, meanflow, flowmap, got 'rk5'"),
                                (["--method", "euler", "--rtol", "1e-3"], "--rtol, --atol and --max-steps apply to --method dopri5"),
                                (["--guidance", "2"], "guidance needs a class-conditional model"),
                                (["--class", "1"], "--class needs a class-conditional model"),
                                (["--method", "meanflow"], "method meanflow does not apply to a velocity model; use rk4-38"),
                                (["--grid", "0,0.7,0.5,1", "--steps", "3"], "a custom grid must be strictly monotonic")] {
            let r = try flowc(["sample", so, "-n", "2", "--seed", "1", "-o", "\(dir)/x.npy"] + args)
            XCTAssertEqual(r.status, args.first == "--grid" ? 1 : 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    /// A class-conditional TarFlow through the CLI: guidance compiled in, labels at sample time;
    /// the compiled sample equals the interpreter's (`flowc run --entry sample`, same seed, labels
    /// and guidance) within 1e-4 + 1e-4·|b|.
    func testConditionalFlowWithGuidance() throws {
        let dir = TestFiles.path("cond-cli")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func flowc(_ args: [String]) throws -> ProcessResult { try ProcessResult.run(Repository.flowc, args) }
        let spec = Repository.referenceSpec("g_tarflow_cond"), weights = Repository.fixture("g_tarflow_cond.safetensors")
        let guidance = ["--guidance", "1.5", "--guidance-annealed"]
        let compile = try flowc(["compile", spec, "--weights", weights, "-o", "\(dir)/m.so"] + guidance)
        XCTAssertEqual(compile.status, 0, compile.stderr)
        let info = try flowc(["info", "\(dir)/m.so"])
        XCTAssertTrue(info.stdout.contains("10 classes") && info.stdout.contains("guidance 1.5 annealed"), info.stdout)
        let sample = try flowc(["sample", "\(dir)/m.so", "-n", "4", "--seed", "2", "--class", "3,7", "-o", "\(dir)/s.npy"])
        XCTAssertEqual(sample.status, 0, sample.stderr)
        let run = try flowc(["run", spec, "--weights", weights, "--entry", "sample", "-n", "4", "--seed", "2", "--class", "3,7", "--output", "\(dir)/r.npy"] + guidance)
        XCTAssertEqual(run.status, 0, run.stderr)
        let c = Closeness.compare(try NpyArray.read(path: "\(dir)/s.npy").values, try NpyArray.read(path: "\(dir)/r.npy").values, atol: 1e-4, rtol: 1e-4)
        XCTAssertTrue(c.passes, "\(c)")
        let bad = try flowc(["sample", "\(dir)/m.so", "-n", "2", "--seed", "2", "--class", "12", "-o", "\(dir)/s.npy"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--class expects labels in 0...9 (or 10 for the null class)"), bad.stderr)
        let unconditional = try flowc(["compile", Repository.referenceSpec("g_tarflow"), "--weights", Repository.fixture("g_tarflow.safetensors"), "-o", "\(dir)/u.so", "--guidance", "1"])
        XCTAssertEqual(unconditional.status, 2, unconditional.stderr)
    }
}
