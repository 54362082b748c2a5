// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Flowc",
    products: [
        .executable(name: "flowc", targets: ["flowc"]),
        .library(name: "FlowIR", targets: ["FlowIR"]),
        .library(name: "FlowPasses", targets: ["FlowPasses"]),
        .library(name: "FlowInterpreter", targets: ["FlowInterpreter"]),
    ],
    targets: [
        // OpenBLAS's cblas.h as a Swift module (system library: no flags needed).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .target(name: "FlowIR"),
        .target(name: "FlowPasses", dependencies: ["FlowIR", "FlowInterpreter"]),
        .target(name: "FlowInterpreter", dependencies: ["FlowIR", "CBLAS"]),
        .executableTarget(name: "flowc", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter"]),
        .target(name: "FlowTestSupport", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter"]),
        .testTarget(name: "FlowIRTests", dependencies: ["FlowIR", "FlowTestSupport"]),
        .testTarget(name: "FlowPassesTests", dependencies: ["FlowIR", "FlowPasses", "FlowInterpreter", "FlowTestSupport"]),
        .testTarget(name: "FlowInterpreterTests", dependencies: ["FlowIR", "FlowInterpreter", "FlowTestSupport"]),
        .testTarget(name: "FlowcCLITests", dependencies: ["FlowTestSupport"]),
    ]
)
