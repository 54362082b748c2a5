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
enum ProductPairs {
    /// The kernels with each eligible consecutive pair of products replaced by one kernel
    /// (left to right: of three products in a row the first two pair).
    static func pair(_ kernels: [Kernel], in g: Graph) -> [Kernel] {
        let uses = KernelPlanner.useCounts(g)
        var result: [Kernel] = []
        var i = 0
        while i < kernels.count {
            if i + 1 < kernels.count, let pair = pair(kernels[i], kernels[i + 1], in: g, uses: uses) {
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
        var inputs = first.inputs
        for v in second.inputs where v != h && !inputs.contains(v) { inputs.append(v) }
        return Kernel(body: .productPair(a, firstEpilogue: aEpilogue, c, secondEpilogue: cEpilogue), inputs: inputs, outputs: second.outputs + [h])
    }

    /// The first product's split column (a multiple of 16, `OpLowering.splitVector`) and the
    /// fewest rows split, for a K × N product that splits at all.
    static func splitColumn(k: Int, n: Int) -> (column: Int, minimumRows: Int)? {
        guard let minimumRows = ColumnSplit.minimumRows(k: k, n: n), let vector = OpLowering.splitVector(n: n, minimumRows: minimumRows) else { return nil }
        return (vector * OpLowering.lanes, minimumRows)
    }

    /// Scratch floats per row of a pair: the second half's partial y'.
    static func scratchPerRow(_ k: Kernel, in g: Graph) -> Int {
        guard case .productPair = k.body else { return 0 }
        return MemoryPlan.rounded(g.type(of: k.outputs[0]).elementsPerSample)
    }
}

extension OpLowering {
    /// A pair kernel (ProductPairs), `outputs` [y, h]. Part 1 or 2 computes its half: its
    /// columns of h, then the second product over those inputs, half 1 into y and half 2 into
    /// the scratch. Part 0 runs the halves through the parallel hook when it accepts
    /// (ColumnSplit.dispatch); otherwise — and part 3 — all of h, then both input halves. Then,
    /// for parts 0 and 3, y = epi₂(y + y' + b₂). Each product and epilogue is emitted once, its
    /// columns and inputs chosen at run time (a copy per path made e_fm 50% more instructions
    /// to compile; adding y' as the second half's tiles store it, 8% more for TarFlow, whose
    /// tiles would all have carried the add).
    func productPair(first: (node: Node, epilogue: [Node]), second: (node: Node, epilogue: [Node]), outputs: [ValueID]) throws {
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
            // h: the part's columns (parts 0 and 3 all), with the first epilogue
            try packedProduct(x: f.address(x), packed: f.address(first.node.operands[1]), y: hs, rows: rows, n: hidden, k: k,
                              layout: WeightPacking.layout(n: hidden), split: (part, split.column / OpLowering.lanes, split.minimumRows))
            if first.node.operands.count > 2 || !first.epilogue.isEmpty {
                let finish = try epilogueFunction(first.node, epilogue: first.epilogue, output: h)
                finishInPlace(finish, y: hs, rows: rows, n: hidden, columns: b.select(isPart(2), middle, b.i64(0)), b.select(isPart(1), middle, b.i64(hidden)))
            }
            // the second product over input half 1 (into y) and/or half 2 (into the scratch)
            let firstHalf = b.select(isPart(2), b.i64(2), b.i64(1)), lastHalf = b.select(isPart(1), b.i64(1), b.i64(2))
            try b.loop(b.add(b.sub(lastHalf, firstHalf), b.i64(1))) { i in
                let secondHalf = LLVMBuildICmp(b.builder, LLVMIntEQ, b.add(firstHalf, i), b.i64(2), "")!
                let inputs = (b.select(secondHalf, middle, b.i64(0)), b.select(secondHalf, b.i64(hidden - split.column), middle))
                try packedProduct(x: hs, packed: f.address(second.node.operands[1]), y: b.select(secondHalf, scratch, ys), rows: rows, n: n, k: hidden,
                                  layout: WeightPacking.layout(n: n), inputs: inputs)
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
