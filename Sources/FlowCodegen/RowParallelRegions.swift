import CFlowcABI
import FlowIR

/// A run of consecutive row-wise kernels (RowFolding) with the same rows per sample R reads
/// and writes row r of its values only: two threads can run the whole run, each on its own
/// rows, with one hand-over for all of it. TarFlow's layer between two attentions (proj,
/// residual, layernorm, the MLP, layernorm, qkv and its split: 1.5 MFLOP at batch 1) is one
/// such region; splitting each product's columns instead took a hand-over per product, and
/// the layernorms and splits ran on one core.
///
/// The entry point (or its segment) runs a region through the parallel hook when the batch is
/// at most `FLOWC_SPLIT_MAXIMUM_ROWS` (the calls the runtime's SplitChooser times) and the
/// region has at least `minimumRows` rows: `task(context, i)` calls the region's kernels on
/// rows [0, n/2) for i = 0 and [n/2, n) for i = 1 (n = batch · R), their batched pointers
/// offset to the first row, with part `ColumnSplit.noSplit` (the kernels do not split again).
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

    /// The regions of `kernels` (none crossing a multiple of `segmentSize`: segments are
    /// functions of their own).
    static func find(_ kernels: [Kernel], in g: Graph, segmentSize: Int) -> [Region] {
        var regions: [Region] = []
        var first = 0
        while first < kernels.count {
            guard let folded = RowFolding.fold(kernels[first], in: g), folded.rowsPerSample >= 2 else {
                first += 1
                continue
            }
            let segmentEnd = (first / segmentSize + 1) * segmentSize
            var end = first + 1, work = rowWork(folded)
            while end < min(kernels.count, segmentEnd), let next = RowFolding.fold(kernels[end], in: g),
                  next.rowsPerSample == folded.rowsPerSample {
                work += rowWork(next)
                end += 1
            }
            let minimumRows = max(2, (minimumWork + work - 1) / work)
            // a lone product splits its columns instead: at few rows each half then reads half
            // the weights (ColumnSplit)
            if end - first >= 2, minimumRows <= Int(FLOWC_SPLIT_MAXIMUM_ROWS) * folded.rowsPerSample {
                regions.append(Region(kernels: first..<end, rowsPerSample: folded.rowsPerSample, minimumRows: minimumRows))
            }
            first = end
        }
        return regions
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
