import CLLVM
import FlowIR

/// Two consecutive products of an MLP, h = epi₁(x·W₁ᵀ + b₁) and y = epi₂(h·W₂ᵀ + b₂), at few
/// rows are each bound by reading their weights from the core's L2 and split over two cores
/// (ColumnSplit): two hand-overs, each ~0.5 µs of a ~2 µs product at batch 1. As one kernel
/// they take one. With s the first product's split column:
///
///     half 1: h[:, ..<s] = its columns of the first product;  y  = h[:, ..<s]·W₂ᵀ[..<s, :]
///     half 2: h[:, s...] = its columns of the first product;  y' = h[:, s...]·W₂ᵀ[s..., :]
///     then:   y = epi₂(y + y' + b₂)
///
/// (One thread computes all of h, then y and y'.)
/// Each half reads only the h it wrote, so neither waits for the other; each reads half of both
/// weight matrices. Every call sums the second product's inputs as these two halves — split or
/// not, any batch — so a sample's result does not depend on the threads or on where it is in
/// the batch (the sum is in another order than one pass over all K: last-bit differences from
/// the unpaired product, within its tolerance).
/// Pairs are products of one row per sample ([B, N] values: a velocity or coupling MLP) whose
/// first result has no other use; TarFlow's [B, T, C] layers are row-parallel regions instead.
///
/// A small product just before a pair whose result only the pair reads (a velocity MLP's first
/// layer from the 2-d state, the time folded into its bias) is the pair's lead: each half
/// computes all of it, the second into its own copy in the scratch. The second core then reads
/// the pair's input from the other core's cache (the state, one line) instead of the lead's
/// result (16 lines for 256 values), and the calling thread hands over before computing it.
/// (e_fm's batch-1 sample 0.944–0.977x the time of the plain pair, f_meanflow's 0.939–0.950x.)
enum ProductPairs {
    /// Weights (K·N) of a product cheap enough for both halves to compute: ~0.05 µs on a core.
    static let leadMaximumWeights = 4096

    /// The kernels with each eligible consecutive pair of products replaced by one kernel
    /// (left to right: of three products in a row the first two pair).
    static func pair(_ kernels: [Kernel], in g: Graph) -> [Kernel] {
        let uses = KernelPlanner.useCounts(g)
        var result: [Kernel] = []
        var i = 0
        while i < kernels.count {
            if i + 1 < kernels.count, var pair = pair(kernels[i], kernels[i + 1], in: g, uses: uses) {
                if let previous = result.last, let led = lead(previous, pair, in: g, uses: uses) {
                    result.removeLast()
                    pair = led
                }
                result.append(pair)
                i += 2
            } else {
                result.append(kernels[i])
                i += 1
            }
        }
        return result
    }

    /// The pair kernel of `first` then `second`, when the second product reads the first's
    /// result (its only use) and both split at the same row count.
    static func pair(_ first: Kernel, _ second: Kernel, in g: Graph, uses: [Int]) -> Kernel? {
        guard case .gemm(let a, let aEpilogue) = first.body, case .gemm(let c, let cEpilogue) = second.body,
              a.op == WeightPacking.op, c.op == WeightPacking.op, first.outputs.count == 1,
              let h = first.outputs.first, c.operands[0] == h, uses[h] == 1 else { return nil }
        let x = g.type(of: a.operands[0]), hidden = g.type(of: h), y = g.type(of: c.results[0])
        guard x.batched, x.dims.count == 1, hidden.batched, hidden.dims.count == 1, y.batched, y.dims.count == 1,
              let split = splitColumn(k: x.dims[0], n: hidden.dims[0]),
              ColumnSplit.minimumRows(k: hidden.dims[0], n: y.dims[0]) == split.minimumRows else { return nil }
        return Kernel(body: .productPair(lead: [], a, firstEpilogue: aEpilogue, c, secondEpilogue: cEpilogue),
                      inputs: joinedInputs(first, second, through: h), outputs: second.outputs + [h])
    }

    /// `pair` with `previous` as its lead, when previous is a packed product of at most
    /// `leadMaximumWeights` weights, on one row per sample, whose result is the pair's input
    /// and has no other use.
    static func lead(_ previous: Kernel, _ pair: Kernel, in g: Graph, uses: [Int]) -> Kernel? {
        guard case .gemm(let l, let lEpilogue) = previous.body, l.op == WeightPacking.op, previous.outputs.count == 1,
              case .productPair(let lead, let a, let aEpilogue, let c, let cEpilogue) = pair.body, lead.isEmpty,
              let x = previous.outputs.first, a.operands[0] == x, uses[x] == 1 else { return nil }
        let input = g.type(of: l.operands[0]), result = g.type(of: x)
        guard input.batched, input.dims.count == 1, result.batched, result.dims.count == 1,
              input.dims[0] * result.dims[0] <= leadMaximumWeights else { return nil }
        return Kernel(body: .productPair(lead: [l] + lEpilogue, a, firstEpilogue: aEpilogue, c, secondEpilogue: cEpilogue),
                      inputs: joinedInputs(previous, pair, through: x), outputs: pair.outputs + [x])
    }

    /// The inputs of `first` then `second` as one kernel: first's, then second's other than
    /// `value` (first's result, now written inside the kernel), each once.
    static func joinedInputs(_ first: Kernel, _ second: Kernel, through value: ValueID) -> [ValueID] {
        var inputs = first.inputs
        for v in second.inputs where v != value && !inputs.contains(v) { inputs.append(v) }
        return inputs
    }

    /// The first product's split column (a multiple of 16, `OpLowering.splitVector`) and the
    /// fewest rows split, for a K × N product that splits at all.
    static func splitColumn(k: Int, n: Int) -> (column: Int, minimumRows: Int)? {
        guard let minimumRows = ColumnSplit.minimumRows(k: k, n: n), let vector = OpLowering.splitVector(n: n, minimumRows: minimumRows) else { return nil }
        return (vector * OpLowering.lanes, minimumRows)
    }

    /// Scratch floats per row of a pair: the second half's partial y', then its copy of the
    /// lead's result.
    static func scratchPerRow(_ k: Kernel, in g: Graph) -> Int {
        guard case .productPair(let lead, _, _, _, _) = k.body else { return 0 }
        return MemoryPlan.rounded(g.type(of: k.outputs[0]).elementsPerSample) + (lead.isEmpty ? 0 : MemoryPlan.rounded(g.type(of: k.outputs[2]).elementsPerSample))
    }
}

extension OpLowering {
    /// A pair kernel (ProductPairs), `outputs` [y, h] (and the lead's x). Each part first
    /// computes all of the lead when there is one (half 2 into its own copy, after y' in the
    /// scratch). Part 1 or 2 then computes its half: its
    /// columns of h, then the second product over those inputs, half 1 into y and half 2 into
    /// the scratch. Part 0 runs the halves through the parallel hook when it accepts
    /// (ColumnSplit.dispatch); otherwise — and part 3 — all of h, then both input halves. Then,
    /// for parts 0 and 3, y = epi₂(y + y' + b₂). Each product and epilogue is emitted once, its
    /// columns and inputs chosen at run time (a copy per path made e_fm 50% more instructions
    /// to compile; adding y' as the second half's tiles store it, 8% more for TarFlow, whose
    /// tiles would all have carried the add).
    func productPair(lead: (node: Node, epilogue: [Node])?, first: (node: Node, epilogue: [Node]), second: (node: Node, epilogue: [Node]), outputs: [ValueID]) throws {
        let (y, h) = (outputs[0], outputs[1])
        let x = first.node.operands[0]
        let (k, hidden, n) = (g.type(of: x).dims[0], g.type(of: h).dims[0], g.type(of: y).dims[0])
        guard let split = ProductPairs.splitColumn(k: k, n: hidden), let part = f.kernelPart, let scratch = f.kernelScratch else {
            fatalError("a product pair is planned only for products that split (ProductPairs.pair)")
        }
        let rows = f.batch!, ys = f.address(y), hs = f.address(h)
        func isPart(_ p: Int) -> IRBuilder.Value { LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(p), "")! }
        let middle = b.i64(split.column)
        try ColumnSplit.dispatch(b, rows: rows, minimumRows: split.minimumRows, part: part, kernelType: LLVMGlobalGetValueType(b.function!)) {
            // the lead, all of it: half 2 into its copy after y' in the scratch, the others into x
            var xs = f.address(x)
            if let lead {
                let copy = b.element(scratch, b.mul(rows, b.i64(MemoryPlan.rounded(n))))
                xs = b.select(isPart(2), copy, xs)
                let leadInput = lead.node.operands[0]
                try packedProduct(x: f.address(leadInput), packed: f.address(lead.node.operands[1]), y: xs, rows: rows, n: k, k: g.type(of: leadInput).dims[0],
                                  layout: WeightPacking.layout(of: lead.node, n: k))
                if OpLowering.hasFinish(lead.node, epilogue: lead.epilogue) {
                    finishInPlace(try epilogueFunction(lead.node, epilogue: lead.epilogue, output: x), y: xs, rows: rows, n: k)
                }
            }
            // h: the part's columns (parts 0 and 3 all), with the first epilogue
            try packedProduct(x: xs, packed: f.address(first.node.operands[1]), y: hs, rows: rows, n: hidden, k: k,
                              layout: WeightPacking.layout(of: first.node, n: hidden), split: (part, split.column / OpLowering.lanes, split.minimumRows))
            if OpLowering.hasFinish(first.node, epilogue: first.epilogue) {
                let finish = try epilogueFunction(first.node, epilogue: first.epilogue, output: h)
                finishInPlace(finish, y: hs, rows: rows, n: hidden, columns: b.select(isPart(2), middle, b.i64(0)), b.select(isPart(1), middle, b.i64(hidden)))
            }
            // the second product over input half 1 (into y) and/or half 2 (into the scratch)
            let firstHalf = b.select(isPart(2), b.i64(2), b.i64(1)), lastHalf = b.select(isPart(1), b.i64(1), b.i64(2))
            try b.loop(b.add(b.sub(lastHalf, firstHalf), b.i64(1))) { i in
                let secondHalf = LLVMBuildICmp(b.builder, LLVMIntEQ, b.add(firstHalf, i), b.i64(2), "")!
                let inputs = (b.select(secondHalf, middle, b.i64(0)), b.select(secondHalf, b.i64(hidden - split.column), middle))
                try packedProduct(x: hs, packed: f.address(second.node.operands[1]), y: b.select(secondHalf, scratch, ys), rows: rows, n: n, k: hidden,
                                  layout: WeightPacking.layout(of: second.node, n: n), inputs: inputs)
            }
        }
        // parts 0 and 3 (never inside a half): y = epi₂(y + y' + b₂)
        let finish = try epilogueFunction(second.node, epilogue: second.epilogue, output: y)
        let run = b.block("pair_sum"), done = b.block("pair_done")
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntUGE, b.sub(part, b.i64(1)), b.i64(2), "")!, run, done)
        b.position(at: run)
        finishInPlace(finish, y: ys, rows: rows, n: n, adding: scratch)
        b.branch(done)
        b.position(at: done)
    }
}
