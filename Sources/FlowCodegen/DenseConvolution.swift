import FlowIR

/// A convolution over a small image is a dense linear map whose matrix is mostly taps: a 3×3
/// kernel on a 4×4 image touches 9 of 16 input pixels per output pixel. Lowered as im2col +
/// product per sample, such a convolution spends more time copying patches than multiplying
/// (d_glow: 3/4 of a call). This rewrite turns it into one `linear` over the flattened image,
/// with the matrix M[(o, i, j), (c, y, x)] = W[o, c, y − i·s + p, x − j·s + p] (0 where the
/// tap falls outside the kernel) built at compile time, so the GEMM microkernel runs it with
/// samples as rows and the bias and activation in its epilogue:
///
///     conv2d(x, W, b) → reshape(linear(reshape(x, [B, C·H·W]), gather(pad(flat W, 1 zero), taps), bias per output), [B, O, OH, OW])
///
/// Applied when the dense matrix costs at most `maximumExtraWork` times the convolution's
/// multiply-adds and has at most `maximumElements` entries; W (and b) must be constants.
enum DenseConvolution {
    static let maximumExtraWork = 2.0, maximumElements = 1 << 20

    static func rewrite(_ graph: Graph) throws -> Graph {
        var g = graph
        let dependsOnInput = g.valuesDependingOnInputs()
        var rewritten: [Node] = []
        for node in graph.nodes {
            guard node.op == "conv2d", dependsOnInput.contains(node.operands[0]), g.type(of: node.operands[0]).batched,
                  !node.operands.dropFirst().contains(where: dependsOnInput.contains),
                  let taps = taps(node, g) else {
                rewritten.append(node)
                continue
            }
            let x = node.operands[0], w = node.operands[1], out = node.results[0], at = node.location
            let inputType = g.type(of: x), outputType = g.type(of: out)
            let (o, pixels) = (g.type(of: w).dims[0], outputType.elementsPerSample / g.type(of: w).dims[0])
            let start = g.nodes.count
            let flatWeight = try g.apply("reshape", [w], ["shape": .shape(batched: false, [g.type(of: w).elementsPerSample])], at: at)
            let withZero = try g.apply("pad", [flatWeight], ["axis": .int(0), "after": .int(1)], at: at)
            let taken = try g.apply("gather", [withZero], ["axis": .int(0), "indices": .ints(taps)], at: at)
            let matrix = try g.apply("reshape", [taken], ["shape": .shape(batched: false, [outputType.elementsPerSample, inputType.elementsPerSample])], at: at)
            var operands = [try g.apply("reshape", [x], ["shape": .shape(batched: true, [inputType.elementsPerSample])], at: at), matrix]
            if node.operands.count > 2 {
                // output (o, i, j) adds b[o]
                operands.append(try g.apply("gather", [node.operands[2]], ["axis": .int(0), "indices": .ints((0..<o).flatMap { Array(repeating: $0, count: pixels) })], at: at))
            }
            let product = try g.apply("linear", operands, at: at)
            _ = try g.apply("reshape", [product], ["shape": .shape(batched: true, outputType.dims)], at: at)
            g.nodes[g.nodes.count - 1].results = [out]   // the reshape defines the convolution's result
            rewritten += g.nodes[start...]
            g.nodes.removeSubrange(start...)
        }
        g.nodes = rewritten
        g.bodies = try graph.bodies.map(rewrite)
        return g
    }

    /// For each entry of the dense matrix in row-major order, the index of its tap in W
    /// flattened (W's element count, the appended zero, where no tap applies); nil when the
    /// convolution is not worth densifying.
    static func taps(_ node: Node, _ g: Graph) -> [Int]? {
        let input = g.type(of: node.operands[0]), wdims = g.type(of: node.operands[1]).dims, output = g.type(of: node.results[0])
        guard case .int(let stride)? = node.attributes["stride"], case .int(let padding)? = node.attributes["padding"],
              let c = input.size(ofAxis: 1), let h = input.size(ofAxis: 2), let wd = input.size(ofAxis: 3),
              let oh = output.size(ofAxis: 2), let ow = output.size(ofAxis: 3) else { return nil }
        let (o, kh, kw) = (wdims[0], wdims[2], wdims[3])
        let dense = o * oh * ow * c * h * wd, convolution = o * oh * ow * c * kh * kw
        guard dense <= maximumElements, Double(dense) <= maximumExtraWork * Double(convolution) else { return nil }
        let zero = o * c * kh * kw
        var taps = [Int](repeating: zero, count: dense)
        let columns = c * h * wd
        for oc in 0..<o { for i in 0..<oh { for j in 0..<ow {
            let row = (oc * oh + i) * ow + j
            for ic in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let (y, x) = (i * stride + u - padding, j * stride + v - padding)
                guard y >= 0, y < h, x >= 0, x < wd else { continue }
                taps[row * columns + (ic * h + y) * wd + x] = ((oc * c + ic) * kh + u) * kw + v
            } } }
        } } }
        return taps
    }
}
