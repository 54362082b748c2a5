// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Flowc",
    products: [
        .executable(name: "flowc", targets: ["flowc"]),
        .library(name: "FlowIR", targets: ["FlowIR"]),
        .library(name: "FlowPasses", targets: ["FlowPasses"]),
        .library(name: "FlowInterpreter", targets: ["FlowInterpreter"]),
        .library(name: "FlowRuntime", targets: ["FlowRuntime"]),
        .library(name: "FlowRandom", targets: ["FlowRandom"]),
        .library(name: "FlowSolvers", targets: ["FlowSolvers"]),
    ],
    targets: [
        // OpenBLAS's cblas.h as a Swift module (system library: no flags needed).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // Counter-based random numbers shared by the interpreter and the runtime.
        .target(name: "FlowRandom"),
        .target(name: "FlowIR", dependencies: ["FlowRandom"]),
        // ODE samplers over any vector field (compiled or interpreted): fixed-step, dopri5, guidance.
        .target(name: "FlowSolvers"),
        // PNG pictures of samples (density plots, image grids), no library.
        .target(name: "FlowPictures"),
        // LLVM 19's C API (headers symlinked from /usr/lib/llvm-19/include); only FlowCodegen imports it.
        .target(name: "CLLVM", linkerSettings: [.linkedLibrary("LLVM-19")]),
        .target(name: "FlowCodegen", dependencies: ["FlowIR", "FlowRandom", "FlowPasses", "FlowInterpreter", "FlowRuntime", "CLLVM", "CFlowcABI"]),
        .target(name: "FlowPasses", dependencies: ["FlowIR", "FlowInterpreter", "FlowSolvers"]),
        .target(name: "FlowInterpreter", dependencies: ["FlowIR", "CBLAS"]),
        // Loads compiled models; no LLVM, no other Flowc module: embeddable with one dependency line.
        .target(name: "CFlowcABI"),
        .target(name: "FlowRuntime", dependencies: ["CFlowcABI", "FlowRandom", "FlowSolvers"]),
        .executableTarget(name: "flowc", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter", "FlowCodegen", "FlowRuntime", "FlowSolvers", "FlowPictures"]),
        // Compiled vs interpreted timings (release only: `make bench`).
        .executableTarget(name: "flowc-bench", dependencies: ["CBLAS", "FlowIR", "FlowRandom", "FlowPasses", "FlowInterpreter", "FlowCodegen", "FlowRuntime"], path: "Benchmarks",
                          exclude: ["pytorch_eager.py", "onnxruntime_peer.py", "jax_peer.py", "torch_compile_peer.py", "requirements-peers.txt", "HISTORY.md", "entry_allocations.c", "fma_peak.c"]),
        .target(name: "FlowTestSupport", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter"]),
        .testTarget(name: "FlowIRTests", dependencies: ["FlowIR", "FlowRandom", "FlowTestSupport"]),
        .testTarget(name: "FlowPassesTests", dependencies: ["FlowIR", "FlowRandom", "FlowPasses", "FlowInterpreter", "FlowSolvers", "FlowTestSupport"]),
        .testTarget(name: "FlowCodegenTests", dependencies: ["CFlowcABI", "FlowIR", "FlowRandom", "FlowPasses", "FlowInterpreter", "FlowCodegen", "FlowRuntime", "FlowSolvers", "FlowTestSupport"]),
        .testTarget(name: "FlowInterpreterTests", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter", "FlowTestSupport"]),
        .testTarget(name: "FlowcCLITests", dependencies: ["FlowTestSupport", "FlowPictures"]),
    ]
)
