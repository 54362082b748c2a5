import CFlowcABI
import FlowIR

/// A run of consecutive row-wise kernels (RowFolding) with the same rows per sample R reads
/// and writes row r of its values only: two threads can run the whole run, each on its own
/// rows, with one hand-over for all of it. TarFlow's layer between two attentions (proj,
/// residual, layernorm, the MLP, layernorm, qkv and its split: 1.5 MFLOP at batch 1) is one
/// such region; splitting each product's columns instead took a hand-over per product, and
/// the layernorms and splits ran on one core. A region may open with an attention, whose keys
/// and values are complete before it: each half computes its own query rows (and TarFlow's
/// region then runs from one attention to the next qkv).
///
/// The entry point (or its segment) runs a region through the parallel hook when the batch is
/// at most `FLOWC_SPLIT_MAXIMUM_ROWS` (the calls the runtime's SplitChooser times) and the
/// region has at least `minimumRows` rows: `task(context, i)` calls the region's kernels on
/// rows [0, m) for i = 0 and [m, n) for i = 1 (n = batch · R, m = ⌈n/2⌉: the caller, which runs
/// half 0 at once while the worker first sees the hand-over, takes an odd row; TarFlow's 15 live
/// tokens as 8 + 7 took 0.96–1.02x the time of 7 + 8 at batch 1, median 0.975x over 8 runs),
/// their batched pointers offset to the first row, with part `ColumnSplit.noSplit` (the kernels
/// do not split again).
/// Each row is computed by the same code in either case: results do not depend on the split.
/// The memory plan keeps every value a region touches live through the whole region, so no
/// thread's rows share memory with another value's rows (MemoryPlan `regions`).
enum RowParallelRegions {
    struct Region: Equatable {
        /// Indices into the entry point's kernels.
        var kernels: Range<Int>
        var rowsPerSample: Int
        /// The fewest rows (batch · R) at which both halves outlast the hand-over.
        var minimumRows: Int
    }

    /// Multiply-adds (a product's K·N per row; other kernels count `elementCost` per element)
    /// a region needs before it is split: ~2 µs on one core, against a hand-over of 0.1–0.5 µs.
    static let minimumWork = 1 << 17, elementCost = 4

    /// The regions of `kernels`.
    static func find(_ kernels: [Kernel], in g: Graph) -> [Region] {
        var regions: [Region] = []
        var first = 0
        while first < kernels.count {
            let start: (rowsPerSample: Int, work: Int)
            if let folded = RowFolding.fold(kernels[first], in: g), folded.rowsPerSample >= 2 {
                start = (folded.rowsPerSample, rowWork(folded))
            } else if let attention = queryRows(kernels[first], in: g) {
                start = attention
            } else {
                first += 1
                continue
            }
            var end = first + 1, work = start.work
            while end < kernels.count, let next = RowFolding.fold(kernels[end], in: g),
                  next.rowsPerSample == start.rowsPerSample {
                work += rowWork(next)
                end += 1
            }
            let minimumRows = max(2, (minimumWork + work - 1) / work)
            // a lone product splits its columns instead: at few rows each half then reads half
            // the weights (ColumnSplit)
            if end - first >= 2, minimumRows <= Int(FLOWC_SPLIT_MAXIMUM_ROWS) * start.rowsPerSample {
                regions.append(Region(kernels: first..<end, rowsPerSample: start.rowsPerSample, minimumRows: minimumRows))
            }
            first = end
        }
        return regions
    }

    /// Marks a region's attention kernel: it computes query rows [part, part + batch) of the
    /// whole batch (flat over samples × tokens), reading every sample's keys and values.
    static let queryRowsAttribute = "query_rows_in_region"

    /// An attention kernel opening a region: its keys and values come from before the region
    /// (complete when it starts), so each query row is independent of the others. Its rows per
    /// sample (the tokens) and its work per row (scores and weighted values over the keys).
    static func queryRows(_ k: Kernel, in g: Graph) -> (rowsPerSample: Int, work: Int)? {
        guard case .single(let node) = k.body, node.op == "attention" else { return nil }
        let out = g.type(of: node.results[0]), keys = g.type(of: node.operands[1])
        guard out.batched, out.dims.count == 2, out.dims[0] >= 2, keys.batched, keys.dims.count == 2 else { return nil }
        return (out.dims[0], 2 * keys.dims[0] * out.dims[1])
    }

    /// The kernel a region calls for its attention: `kernel` with `queryRowsAttribute`.
    static func queryRowKernel(_ kernel: Kernel) -> Kernel {
        guard case .single(var node) = kernel.body else { fatalError("an attention kernel is one node") }
        node.attributes[queryRowsAttribute] = .int(1)
        return Kernel(body: .single(node), inputs: kernel.inputs, outputs: kernel.outputs)
    }

    /// A folded kernel's work per row, in multiply-adds.
    static func rowWork(_ folded: RowFolding.Folded) -> Int {
        let g = folded.graph, k = folded.kernel
        let outputs = k.outputs.reduce(0) { $0 + g.type(of: $1).elementsPerSample }
        if case .gemm(let product, _) = k.body, product.op == "linear" || product.op == WeightPacking.op {
            return g.type(of: product.operands[0]).elementsPerSample * g.type(of: product.results[0]).elementsPerSample
        }
        return outputs * elementCost
    }
}
