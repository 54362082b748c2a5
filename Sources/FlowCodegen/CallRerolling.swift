/// Finds the runs of an entry point's kernel calls that repeat, so that code generation emits
/// one loop over a table of their arguments instead of every call. A token-by-token sampler
/// (TarFlow: per block, T tokens of the same ~14 calls on other buffers) or a sampler's sweeps
/// repeat the same kernels; what changes from one repetition to the next is which workspace
/// slices, which weights (a position embedding's row) and which decoding position they get.
/// Unrolled, TarFlow's sampler was ~900 calls in 9 functions, a fifth of the module's compile time.
///
/// The input is one shape number per call (equal: the same kernel, arguments of the same kinds,
/// the same rows; `FunctionLowering.CallSite.Shape`). A loop is `count` ≥ 2 repetitions of
/// `period` consecutive shapes that saves at least `minimumSaving` calls. Greedy from the left:
/// at each call, the period covering the most calls (the shortest among equals), else one call.
enum CallRerolling {
    enum Item: Equatable {
        case call(Int)
        /// calls first ..< first + period · count, shapes repeating with this period
        case loop(first: Int, period: Int, count: Int)
    }

    /// A loop must save this many calls: below, its table and counter cost about what it saves.
    static let minimumSaving = 4

    /// Periods longer than this are not looked for (bounds the search to O(n · maximumPeriod²)).
    static let maximumPeriod = 128

    static func items(_ shapes: [Int]) -> [Item] {
        var items: [Item] = []
        var i = 0
        while i < shapes.count {
            var best: (period: Int, count: Int)?
            for period in stride(from: 1, through: min(maximumPeriod, (shapes.count - i) / 2), by: 1) {
                // shapes[i ..< i + period + run] is periodic with this period
                var run = 0
                while i + run + period < shapes.count && shapes[i + run] == shapes[i + run + period] { run += 1 }
                let count = (run + period) / period
                if period * (count - 1) >= minimumSaving, period * count > (best.map { $0.period * $0.count } ?? 0) { best = (period, count) }
            }
            if let best {
                items.append(.loop(first: i, period: best.period, count: best.count))
                i += best.period * best.count
            } else {
                items.append(.call(i))
                i += 1
            }
        }
        return items
    }
}
