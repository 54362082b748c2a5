import FlowCodegen
import FlowIR
import FlowInterpreter
import FlowRandom
import FlowRuntime
import FlowTestSupport
import Foundation
import XCTest

/// Compiled conv2d against the interpreter in each of its lowerings: the dense rewrite (small
/// image, most taps inside), im2col over groups of samples (16 samples per product for a 4×4
/// output, then the leftovers one by one), strides and paddings whose taps fall partly
/// outside, with the bias and a ReLU in the epilogue. The convolution is the conditioner of an
/// additive coupling, z = (a, c + P·relu(conv(a))), so the forward pass has no inverse rule to
/// need; P (a fixed linear map) brings any output size back to c's.
/// Tolerance 1e-5 + 1e-5·|v|: f32 sums of at most 72 products of values below 1 in another
/// order than the interpreter's (a few ulps of sums of magnitude ≤ 10).
final class ConvolutionTests: XCTestCase {
    struct Case { var channels: Int; var height: Int; var width: Int; var outputs: Int; var kernel: Int; var stride: Int; var padding: Int }

    func spec(_ c: Case) -> (text: String, convolutionOutput: Int) {
        let oh = (c.height + 2 * c.padding - c.kernel) / c.stride + 1, ow = (c.width + 2 * c.padding - c.kernel) / c.stride + 1
        let produced = c.outputs * oh * ow, pixels = c.height * c.width
        let needed = c.outputs * c.channels * c.kernel * c.kernel + c.outputs + pixels * produced
        var random = Philox.normals(seed: 9, firstRow: 0, rows: 1, perRow: needed).makeIterator()
        func values(_ n: Int, _ scale: Double) -> String { (0..<n).map { _ in String(format: "%.6f", scale * tanh(random.next()!)) }.joined(separator: ", ") }
        let text = """
        model m {
          input x: f32[B, \(c.channels + 1), \(c.height), \(c.width)]
          flow {
            a = slice(x, axis=1, start=0, end=\(c.channels))
            rest = slice(x, axis=1, start=\(c.channels))
            w = const([\(values(c.outputs * c.channels * c.kernel * c.kernel, 0.5))], shape=[\(c.outputs), \(c.channels), \(c.kernel), \(c.kernel)])
            bias = const([\(values(c.outputs, 0.5))], shape=[\(c.outputs)])
            h = relu(conv2d(a, w, bias, stride=\(c.stride), padding=\(c.padding)))
            p = const([\(values(pixels * produced, 0.3))], shape=[\(pixels), \(produced)])
            shift = reshape(linear(reshape(h, [B, \(produced)]), p), [B, 1, \(c.height), \(c.width)])
            return concat(a, rest + shift, axis=1)
          }
        }

        """
        return (text, produced)
    }

    func testEveryLoweringMatchesTheInterpreter() throws {
        let cases = [
            Case(channels: 2, height: 4, width: 4, outputs: 8, kernel: 3, stride: 1, padding: 1),   // dense rewrite
            Case(channels: 3, height: 4, width: 4, outputs: 5, kernel: 1, stride: 1, padding: 0),   // im2col, groups of 16
            Case(channels: 2, height: 5, width: 7, outputs: 3, kernel: 3, stride: 2, padding: 1),   // strided, taps outside
            Case(channels: 1, height: 9, width: 6, outputs: 4, kernel: 2, stride: 1, padding: 0),   // even kernel, no padding
            Case(channels: 2, height: 12, width: 12, outputs: 6, kernel: 5, stride: 1, padding: 2), // im2col, 144 pixels per sample
        ]
        for (index, c) in cases.enumerated() {
            let (text, _) = spec(c)
            let model = try Elaborator.elaborate(text: text, path: "conv\(index).flow")
            let path = TestFiles.path("conv-\(index).so")
            try ArtifactCompiler.compile(model, output: path)
            let compiled = try CompiledModel(path: path)
            let batch = 37   // two groups of 16 and 5 leftovers for 4×4 outputs
            let x = Philox.normals(seed: UInt64(index), firstRow: 0, rows: batch, perRow: (c.channels + 1) * c.height * c.width)
            let z = try compiled.forward(x.map { Float($0) }).z
            let expected = try Interpreter(model: model, precision: .f64).run([Tensor(shape: [batch, c.channels + 1, c.height, c.width], values: x)])[0]
            let closeness = Closeness.compare(z.map(Double.init), expected.values, atol: 1e-5, rtol: 1e-5)
            XCTAssertTrue(closeness.passes, "case \(index) \(c): \(closeness)")
        }
    }

    /// The rewrite's choice: a 3×3 kernel on a 4×4 image becomes a dense product; a 1×1 kernel
    /// (16 times the work as a dense matrix) and a 5×5 image with a 3×3 kernel stay convolutions.
    func testDenseRewriteAppliesToSmallImagesOnly() throws {
        for (c, dense) in [(Case(channels: 2, height: 4, width: 4, outputs: 8, kernel: 3, stride: 1, padding: 1), true),
                           (Case(channels: 3, height: 4, width: 4, outputs: 5, kernel: 1, stride: 1, padding: 0), false),
                           (Case(channels: 2, height: 5, width: 7, outputs: 3, kernel: 3, stride: 2, padding: 1), false)] {
            let model = try Elaborator.elaborate(text: spec(c).text, path: "conv.flow")
            let listing = try ArtifactCompiler.compile(model, output: TestFiles.path("conv-listing.so"), listing: .kernels)
            XCTAssertEqual(listing?.contains("im2col"), !dense, "\(c)\n\(listing ?? "")")
        }
    }
}
