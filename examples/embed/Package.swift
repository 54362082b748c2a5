// swift-tools-version:6.0
// A program that embeds a compiled Flowc model: one dependency line, no LLVM, no unsafe flags.
import PackageDescription

let package = Package(
    name: "embed-demo",
    // `flowc` is a link to this repository (../..), so the package identity is the same in any clone.
    dependencies: [.package(path: "flowc")],
    targets: [
        .executableTarget(name: "embed-demo", dependencies: [.product(name: "FlowRuntime", package: "flowc")]),
    ]
)
