import CLLVM
import FlowIR

/// Multi-head attention as one loop nest per (sample, head, query) with an online softmax
/// (Milakov & Gimelshein 2018): a running maximum μ and sum ℓ, rescaling the accumulated output
/// row by e^(μ_old − μ_new) when the maximum grows, so no score buffer is needed; the causal
/// mask bounds the key loop at s ≤ t.
extension OpLowering {
    func attention(_ node: Node) throws {
        let (q, k, v, out) = (f.address(node.operands[0]), f.address(node.operands[1]), f.address(node.operands[2]), f.address(node.results[0]))
        let dims = g.type(of: node.results[0]).dims
        let (tokens, channels) = (dims[0], dims[1])
        // a decoding step's key count is the kernel's extent argument (DecodingStepFolding)
        let keys: IRBuilder.Value = node.attributes[DecodingStepFolding.positionAttribute] != nil
            ? f.kernelExtent! : b.i64(g.type(of: node.operands[1]).dims[0])
        let heads = int(node, "heads"), causal = int(node, "causal") != 0
        let d = channels / heads
        guard case .float(let temperature)? = node.attributes["temperature"] else { fatalError("temperature verified") }
        let scale = b.f32(1 / (Double(d).squareRoot() * temperature))
        try b.loops([f.batch, b.i64(heads), b.i64(tokens)]) { index in
            let (sample, head, t) = (index[0], index[1], index[2])
            let sampleBase = b.mul(sample, b.i64(tokens * channels)), keyBase = b.mul(b.mul(sample, keys), b.i64(channels))
            let headOffset = b.mul(head, b.i64(d))
            let row = b.add(b.add(sampleBase, b.mul(t, b.i64(channels))), headOffset)
            /// (q_t · k_s)/√d for the key row starting at `key`
            func score(_ key: IRBuilder.Value) throws -> IRBuilder.Value {
                let dot = b.variable("dot")
                LLVMBuildStore(b.builder, b.f32(0), dot)
                b.loop(b.i64(d)) { j in
                    // reassociation lets LLVM vectorise the dot product
                    let product = b.fmul(b.load(q, b.add(row, j)), b.load(k, b.add(key, j)))
                    let sum = b.fadd(LLVMBuildLoad2(b.builder, b.f32, dot, "")!, product)
                    b.reassociable(product, sum)
                    LLVMBuildStore(b.builder, sum, dot)
                }
                return b.fmul(LLVMBuildLoad2(b.builder, b.f32, dot, "")!, scale)
            }
            // key 0 is always visible: start from its score, weight 1 and value row
            let key0 = b.add(keyBase, headOffset)
            let running = b.variable("max"), total = b.variable("total")
            LLVMBuildStore(b.builder, try score(key0), running)
            LLVMBuildStore(b.builder, b.f32(1), total)
            b.loop(b.i64(d)) { j in b.store(b.load(v, b.add(key0, j)), out, b.add(row, j)) }
            // query t is position t + S − T: it sees keys 0 ... t + S − T (all S without the mask)
            let remaining = causal ? b.add(t, b.sub(keys, b.i64(tokens))) : b.sub(keys, b.i64(1))
            try b.loop(remaining) { i in
                let key = b.add(key0, b.mul(b.add(i, b.i64(1)), b.i64(channels)))
                let s = try score(key)
                let old = LLVMBuildLoad2(b.builder, b.f32, running, "")!
                let new = b.intrinsic("llvm.maxnum", [old, s])
                let correction = ScalarMath.exp(b, b.fsub(old, new)), weight = ScalarMath.exp(b, b.fsub(s, new))
                LLVMBuildStore(b.builder, new, running)
                LLVMBuildStore(b.builder, b.fadd(b.fmul(LLVMBuildLoad2(b.builder, b.f32, total, "")!, correction), weight), total)
                b.loop(b.i64(d)) { j in
                    let o = b.add(row, j)
                    b.store(b.fadd(b.fmul(b.load(out, o), correction), b.fmul(weight, b.load(v, b.add(key, j)))), out, o)
                }
            }
            let inverse = b.fdiv(b.f32(1), LLVMBuildLoad2(b.builder, b.f32, total, "")!)
            b.loop(b.i64(d)) { j in b.store(b.fmul(b.load(out, b.add(row, j)), inverse), out, b.add(row, j)) }
        }
    }
}
