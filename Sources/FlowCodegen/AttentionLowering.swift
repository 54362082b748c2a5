import CLLVM
import FlowIR

/// Multi-head attention as one loop nest per (sample, head, query), in three passes over the
/// visible keys (the causal mask bounds them at s ≤ t): the scores (q_t · k_s)/(√d·τ) into a
/// row of `keys` floats on the stack, then their maximum μ, then the weights e^(score − μ) and
/// their sum ℓ, and last o_t = Σ_s (e^(score_s − μ)/ℓ)·v_s. The scores are independent dot
/// products and the weights one vectorised exp loop; an online softmax (Milakov & Gimelshein
/// 2018), which this replaced, chains every key through its running maximum and rescales the
/// output row per key: TarFlow's attention took 12% of its batch-1 log_prob that way.
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
        /// 16-lane vectors that hold `count` values
        func wholeVectors(_ count: IRBuilder.Value) -> IRBuilder.Value {
            LLVMBuildUDiv(b.builder, b.add(count, b.i64(OpLowering.lanes - 1)), b.i64(OpLowering.lanes), "")!
        }
        // one query's scores, then weights (whole vectors of them, allocated once per call)
        let scores = LLVMBuildArrayAlloca(b.builder, b.f32, b.mul(wholeVectors(keys), b.i64(OpLowering.lanes)), "scores")!
        // the query rows (flat over samples × tokens): all of them, or in a row-parallel region
        // rows [part, part + batch) (RowParallelRegions.queryRowsAttribute)
        let inRegion = node.attributes[RowParallelRegions.queryRowsAttribute] != nil
        let firstRow = inRegion ? f.kernelPart! : b.i64(0)
        let rowCount = inRegion ? f.batch! : b.mul(f.batch, b.i64(tokens))
        b.loops([rowCount, b.i64(heads)]) { index in
            let flatRow = b.add(firstRow, index[0]), head = index[1]
            let sample = LLVMBuildUDiv(b.builder, flatRow, b.i64(tokens), "")!, t = LLVMBuildURem(b.builder, flatRow, b.i64(tokens), "")!
            let sampleBase = b.mul(sample, b.i64(tokens * channels))
            let headOffset = b.mul(head, b.i64(d))
            let row = b.add(b.add(sampleBase, b.mul(t, b.i64(channels))), headOffset)
            // each sample's keys and values: `keys` rows, or the prefix of a cache chain's row of
            // `capacity` floats (CacheChains)
            func first(_ capacityAttribute: String) -> IRBuilder.Value {
                let stride = node.attributes[capacityAttribute] != nil ? b.i64(int(node, capacityAttribute)) : b.mul(keys, b.i64(channels))
                return b.add(b.mul(sample, stride), headOffset)
            }
            let key0 = first(CacheChains.keyCapacityAttribute), value0 = first(CacheChains.valueCapacityAttribute)
            func key(_ s: IRBuilder.Value) -> IRBuilder.Value { b.add(key0, b.mul(s, b.i64(channels))) }
            func value(_ s: IRBuilder.Value) -> IRBuilder.Value { b.add(value0, b.mul(s, b.i64(channels))) }
            // query t is position t + S − T: it sees keys 0 ... t + S − T (all S without the mask)
            let visible = causal ? b.add(t, b.sub(keys, b.i64(tokens - 1))) : keys
            b.loop(visible) { s in
                let dot = b.variable("dot")
                LLVMBuildStore(b.builder, b.f32(0), dot)
                b.loop(b.i64(d)) { j in
                    // reassociation lets LLVM vectorise the dot product
                    let product = b.fmul(b.load(q, b.add(row, j)), b.load(k, b.add(key(s), j)))
                    let sum = b.fadd(LLVMBuildLoad2(b.builder, b.f32, dot, "")!, product)
                    b.reassociable(product, sum)
                    LLVMBuildStore(b.builder, sum, dot)
                }
                b.store(b.fmul(LLVMBuildLoad2(b.builder, b.f32, dot, "")!, scale), scores, s)
            }
            // The maximum and the weights run over whole vectors of scores, the ones past the
            // visible keys −∞ (weight 0). The fill and the maximum are one pass of explicit
            // 16-lane vectors: LLVM does not vectorise a maxnum reduction (without `nnan`), and
            // its scalar loop was a quarter of TarFlow's attention. The exponentials are loops
            // of 16 inside a loop over the vectors, which the vectoriser takes whole; over the
            // visible count (1 ... 16 for TarFlow's 16 tokens, known at run time only) they
            // stayed scalar: the vector body needs more trips.
            let vectors = wholeVectors(visible)
            func overVectors(_ body: (IRBuilder.Value) -> Void) {
                b.loop(vectors) { vector in
                    b.loop(b.i64(OpLowering.lanes)) { lane in body(b.add(b.mul(vector, b.i64(OpLowering.lanes)), lane)) }
                }
            }
            let largest = b.variable("max", type: b.vector)
            LLVMBuildStore(b.builder, b.splat(b.f32(-Double.infinity)), largest)
            b.loop(vectors) { vector in
                let first = b.mul(vector, b.i64(OpLowering.lanes))
                let remaining = LLVMBuildTrunc(b.builder, b.sub(visible, first), b.i32, "")!
                let shown = LLVMBuildICmp(b.builder, LLVMIntSGT, b.splat(remaining, type: b.i32), b.laneIndices, "")!
                let scoresHere = b.select(shown, b.vectorLoad(scores, first), b.splat(b.f32(-Double.infinity)))
                b.vectorStore(scoresHere, scores, first)
                LLVMBuildStore(b.builder, b.intrinsic("llvm.maxnum", [LLVMBuildLoad2(b.builder, b.vector, largest, "")!, scoresHere], type: b.vector), largest)
            }
            let maximum = b.reduceMaximum(LLVMBuildLoad2(b.builder, b.vector, largest, "")!)
            let total = b.variable("total")
            LLVMBuildStore(b.builder, b.f32(0), total)
            overVectors { s in
                let weight = ScalarMath.exp(b, b.fsub(b.load(scores, s), maximum))
                b.store(weight, scores, s)
                let sum = b.fadd(LLVMBuildLoad2(b.builder, b.f32, total, ""), weight)
                b.reassociable(sum)
                LLVMBuildStore(b.builder, sum, total)
            }
            let inverse = b.fdiv(b.f32(1), LLVMBuildLoad2(b.builder, b.f32, total, "")!)
            let parts = d / OpLowering.lanes
            guard d % OpLowering.lanes == 0, parts <= 8 else {
                b.loop(b.i64(d)) { j in b.store(b.f32(0), out, b.add(row, j)) }
                b.loop(visible) { s in
                    let weight = b.fmul(b.load(scores, s), inverse)
                    b.loop(b.i64(d)) { j in
                        let o = b.add(row, j)
                        b.store(PolynomialMath.multiplyAdd(b, weight, b.load(v, b.add(value(s), j)), b.load(out, o)), out, o)
                    }
                }
                return
            }
            // o_t summed over the keys in ≤ 8 vector registers, one per 16 channels (the same
            // multiply-adds in the same order as over the row in memory, without a load and a
            // store of it per key)
            let sums = (0..<parts).map { _ in b.variable("weighted", type: b.vector) }
            for sum in sums { LLVMBuildStore(b.builder, LLVMConstNull(b.vector), sum) }
            b.loop(visible) { s in
                let weight = b.splat(b.fmul(b.load(scores, s), inverse))
                for (part, sum) in sums.enumerated() {
                    let values = b.vectorLoad(v, b.add(value(s), b.i64(part * OpLowering.lanes)))
                    let sofar = LLVMBuildLoad2(b.builder, b.vector, sum, "")!
                    LLVMBuildStore(b.builder, PolynomialMath.multiplyAdd(b, weight, values, sofar, type: b.vector), sum)
                }
            }
            for (part, sum) in sums.enumerated() {
                b.vectorStore(LLVMBuildLoad2(b.builder, b.vector, sum, "")!, out, b.add(row, b.i64(part * OpLowering.lanes)))
            }
        }
    }
}
