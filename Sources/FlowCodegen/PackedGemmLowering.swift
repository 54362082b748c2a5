import CLLVM
import FlowIR

/// The GEMM microkernel for `linear_packed` (see WeightPacking): y[R, N] = x[R, K] · Wᵀ[K, N]
/// with Wᵀ packed at compile time in panels of columns (`PackedLayout`). Register tiles of
/// `tileRows` rows × `tileWidth` 16-lane vectors of columns: per k, a vector load of Wᵀ per
/// vector, one broadcast of x per row, rows × vectors FMAs into accumulators that stay in
/// registers for the whole K loop (with AVX-512, 6 × 4: 24 of the 32 zmm registers; with AVX2,
/// where a 16-lane vector is two ymm registers, 6 × 1: 12 of the 16 — `RegisterFile`). The tiles
/// run in a loop across the columns, the vectors left (with the ragged end of N) are a tile of
/// their own; the rows left after whole tiles are one tile of their own height.
/// Each tile is a call of a function shared by all products of the module (`tileFunction`). No
/// BLAS call, no allocation; the bias and epilogue run afterwards over y (OpLowering.gemm).
extension OpLowering {
    static let tileRows = 6, lanes = 16
    /// Input columns per iteration of a tile's k loop (times its accumulator sets): LLVM's
    /// unroller is off (TargetEmitter), and one column per iteration spent ~9 integer
    /// instructions (pointer steps, counter, branch) per 12 FMAs of a 6-row tile. Four on a Zen 3
    /// core, one thread, blocks of calls alternated in one process: batch-256 e_fm sample 0.95x
    /// the time, RealNVP 64-d log_prob 0.955x, f_meanflow 0.97x; d_glow, TarFlow and every
    /// batch-1 call 0.985–1.008x. (Two: e_fm 0.96x.) Tiles of several rows only: a single row's
    /// weights are FMA memory operands, and the unrolled steps' addresses (the weights' row plus
    /// j·rowStride) become indexed, which Intel cores split into two µops per FMA.
    static let kUnroll = 4

    /// How Wᵀ [K, N16] (N rounded up to 16 with zero columns) is stored: panels of
    /// `panelWidth` = P columns, each its [K, P] block row-major, one after another; when P does
    /// not divide N16, a last panel of the `lastPanelWidth` = L columns left, [K, L]. Wᵀ[k, c]
    /// of panel j = c / P is at j·P·K + k·(j's width) + c % P. A row-major [K, N16] matrix (a
    /// convolution's patches, built at run time) is one panel, P = N16. P = 16: each vector of
    /// columns a panel of its own.
    struct PackedLayout: Equatable {
        var panelWidth: Int, lastPanelWidth = 0
    }

    /// Vectors of columns before the split point of a product run as two halves (see
    /// `ColumnSplit`): a multiple of 8 when a single row may split (its tiles are 8 wide;
    /// N ≥ 256), else an even count (N ≥ 64: TarFlow's 256 → 64 MLP layer at 16 tokens), which
    /// `tileWidth` then divides. nil when N is narrower.
    static func splitVector(n: Int, minimumRows: Int) -> Int? {
        let full = n / lanes
        if minimumRows == 1 { return full >= 16 ? 8 * (full / 16) : nil }
        return full >= 4 ? 2 * (full / 4) : nil
    }

    /// Leftover rows (after whole tiles of `tallest`) that the last whole tile shares as two
    /// tiles of nearly equal height (`tileHeights`). With 32 zmm registers 1 or 2: 8 rows as
    /// 4 + 4. (Up to 3, 9 rows as 5 + 4: 0.8% more instructions to compile TarFlow, for row
    /// counts no reference model's calls have; up to 2 costs 2.5%.) With 16 ymm registers only 3:
    /// a 3-row tile has 6 accumulators, too few to cover the FMA latency, and 6 + 3 rows as
    /// 5 + 4 (10 and 8) made TarFlow's batch-1 log_prob on one thread (15 rows: 6 + 5 + 4)
    /// 0.970x the time on a Zen 3 core; but 4-row tiles' 8 accumulators only just cover it, so
    /// 6 + 1 and 6 + 2 stay (a TarFlow region's 8 rows as 6 + 2 instead of 4 + 4: 0.906x on two
    /// threads). Only leftovers below `tallest`: products of 3-row tiles share none.
    static func sharedLeftovers(_ registers: RegisterFile, tallest: Int = tileRows) -> Range<Int> {
        (registers == .zmm32 ? 1..<3 : 3..<4).clamped(to: 1..<tallest)
    }

    /// The heights of the register tiles over `rows` rows, top to bottom: tiles of 6 and one
    /// of the 1–5 rows left, except that a leftover in `shared` (`sharedLeftovers`) is shared
    /// with the last whole tile as two tiles of nearly equal height: with 32 zmm registers 8 rows
    /// are 4 + 4, not 6 + 2 (a TarFlow region's half of 16 tokens); with 16 ymm registers 9 are
    /// 5 + 4. Each tile streams the weights of its columns from L2 (64 KB for a
    /// 64 → 256 layer), so a 2-row tile costs about what a 4-row one does (measured: the
    /// 2-row tiles took 7% of TarFlow's batch-1 log_prob, the 6-row ones 40%). A row's sums
    /// do not depend on its tile's height. TarFlow's batch-1 log_prob 0.96–0.98x the time
    /// (alternating calls; its sample and batch-256 calls, and the other models, 0.98–1.00x).
    /// `tallest`: the tallest tile (`tallestTile`), tileRows unless the product keeps several
    /// accumulator sets in 16 ymm registers.
    static func tileHeights(rows: Int, tallest: Int = tileRows, shared: Range<Int> = sharedLeftovers(.zmm32)) -> [Int] {
        let whole = rows / tallest, left = rows % tallest
        guard whole >= 1, shared.contains(left) else { return Array(repeating: tallest, count: whole) + (left > 0 ? [left] : []) }
        return Array(repeating: tallest, count: whole - 1) + [(tallest + left + 1) / 2, (tallest + left) / 2]
    }

    /// The tallest tile of a product that keeps `copies` accumulator sets: 6 rows, or 3 when two
    /// sets of one 16-lane vector per row are in ymm registers (3 · 2 · 2 = 12 of the 16).
    static func tallestTile(copies: Int, registers: RegisterFile) -> Int {
        registers == .ymm16 && copies > 1 ? 3 : tileRows
    }

    /// Vectors of columns of a tile of `rows` (1–6) rows (`tileHeights`). Each accumulator is a
    /// chain of dependent FMAs (4 cycles), so a tile keeps both FMA units busy with ≥ 8
    /// accumulators. With 32 zmm registers: 8 vectors for 1 row, 4 for 2–6. (With 2 vectors a
    /// single row's 256 → 64 product took twice as long: 2 chains over K. The 6-row tile of 4
    /// vectors loads 10 values per 24 FMAs, where 2 vectors loaded 8 per 12: batch-256 products
    /// 9–15% faster.) With 16 ymm registers, where a vector is 2 accumulators: 4 vectors for 1
    /// row (its weights are FMA memory operands), 2 for 2 rows, 1 for 3–6 (6 × 1: 12
    /// accumulators, 2 for the weights, 1 for the broadcast). (3 × 2 does not fit: LLVM kept its
    /// 4 weight vectors in registers and spilled an accumulator; 3 × 1 instead made TarFlow's
    /// batch-1 log_prob 0.88x the time on a Zen 3 core.) When a split call can reach this
    /// tile — some row count in minimumRows...maximumRows has a tile of that height (13 rows are
    /// 6 + 4 + 3) — each half must own whole tiles: the width then divides the split vector.
    static func tileWidth(rows: Int, split: (splitVector: Int, minimumRows: Int)?, registers: RegisterFile, tallest: Int) -> Int {
        let wanted = switch registers {
        case .zmm32: rows == 1 ? 8 : 4
        case .ymm16: rows == 1 ? 4 : rows == 2 ? 2 : 1
        }
        let reached = { (count: Int) in tileHeights(rows: count, tallest: tallest, shared: sharedLeftovers(registers, tallest: tallest)).contains(rows) }
        guard let split, (split.minimumRows...ColumnSplit.maximumRows).contains(where: reached) else { return wanted }
        return [8, 4, 2, 1].first { $0 <= wanted && split.splitVector % $0 == 0 }!
    }

    /// `split`: nil, or the kernel's part argument, the split vector and the fewest rows split
    /// when the product may run as two column halves (part 0: all columns, 1: the vectors before
    /// the split vector, 2: the rest, 3: all columns inside a row-parallel region).
    /// `accumulatorSets`: the sets of accumulators (the order of each column's sum), by default
    /// `accumulatorSets(vectors:)` of this product's columns.
    /// `inputs`: the input columns summed over, by default all K (a product split along K sums
    /// columns first ..< first + count of x's rows of K: ProductPairs).
    func packedProduct(x: IRBuilder.Value, packed p: IRBuilder.Value, y: IRBuilder.Value, rows: IRBuilder.Value, n: Int, k: Int, layout: PackedLayout,
                       split: (part: IRBuilder.Value, splitVector: Int, minimumRows: Int)? = nil, accumulatorSets: Int? = nil,
                       inputs: (first: IRBuilder.Value, count: IRBuilder.Value)? = nil) throws {
        let inputs = inputs ?? (b.i64(0), b.i64(k))
        let allVectors = (n + OpLowering.lanes - 1) / OpLowering.lanes, ragged = n % OpLowering.lanes
        let sets = accumulatorSets ?? OpLowering.accumulatorSets(vectors: allVectors, registers: b.registers)
        let tallest = OpLowering.tallestTile(copies: sets, registers: b.registers)
        let tiles = LLVMBuildUDiv(b.builder, rows, b.i64(tallest), "")!
        let tailStart = b.mul(tiles, b.i64(tallest))
        /// The tiles across all columns of `rowCount` rows from `firstRow`: tiles of `width`
        /// vectors in a loop, then one narrower tile with the rest (and the ragged end of N);
        /// with a split, only the part's tiles (the split vector is a multiple of the width).
        func tilesAcross(firstRow: IRBuilder.Value, rowCount: Int, width: Int) throws {
            let whole = (n / OpLowering.lanes) / width
            var first = b.i64(0), last = b.i64(whole)
            if let (part, splitVector, _) = split {
                let middle = b.i64(splitVector / width)
                first = b.select(LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(2), "")!, middle, first)
                last = b.select(LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(1), "")!, middle, last)
            }
            if whole > 0 {
                try tile(firstRow: firstRow, rows: rowCount, firstVector: b.mul(first, b.i64(width)), vectors: width, lastLanes: OpLowering.lanes,
                         count: b.sub(last, first))
            }
            let rest = allVectors - whole * width
            if rest > 0 {
                let restTile = { try tile(firstRow: firstRow, rows: rowCount, firstVector: b.i64(whole * width), vectors: rest,
                                           lastLanes: ragged == 0 ? OpLowering.lanes : ragged, count: b.i64(1)) }
                if let (part, _, _) = split {
                    // the rest belongs to the second half
                    let run = b.block("rest_tile"), skip = b.block("rest_done")
                    b.condBranch(LLVMBuildICmp(b.builder, LLVMIntNE, part, b.i64(1), "")!, run, skip)
                    b.position(at: run)
                    try restTile()
                    b.branch(skip)
                    b.position(at: skip)
                } else {
                    try restTile()
                }
            }
        }
        /// Every row, in tiles of the heights `tileHeights` gives (a tile of r rows is
        /// `widths[r - 1]` vectors wide): whole tiles of `tallest` (6) in a loop, then the rest —
        /// 1–5 rows, or a whole tile and the leftover it shares (7–8 rows with zmm, 9 with ymm) —
        /// through a switch.
        func allRows(widths: [Int]) throws {
            let left = b.sub(rows, tailStart)
            let shared = OpLowering.sharedLeftovers(b.registers, tallest: tallest)
            let shares = LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntUGE, tiles, b.i64(1), "")!,
                                      LLVMBuildICmp(b.builder, LLVMIntULT, b.sub(left, b.i64(shared.lowerBound)), b.i64(shared.count), "")!, "")!
            let wholeTiles = b.sub(tiles, LLVMBuildZExt(b.builder, shares, b.i64, "")!)
            try b.loop(wholeTiles) { t in try tilesAcross(firstRow: b.mul(t, b.i64(tallest)), rowCount: tallest, width: widths[tallest - 1]) }
            let restStart = b.mul(wholeTiles, b.i64(tallest))
            let done = b.block("rows_done")
            let rests = Array(1..<tallest) + shared.map { tallest + $0 }
            let dispatch = LLVMBuildSwitch(b.builder, b.sub(rows, restStart), done, UInt32(rests.count))!
            for rest in rests {
                let block = b.block("rows_\(rest)")
                LLVMAddCase(dispatch, b.i64(rest), block)
                b.position(at: block)
                var first = restStart
                for height in OpLowering.tileHeights(rows: rest, tallest: tallest, shared: shared) {
                    try tilesAcross(firstRow: first, rowCount: height, width: widths[height - 1])
                    first = b.add(first, b.i64(height))
                }
                b.branch(done)
            }
            b.position(at: done)
        }
        let splitShape = split.map { ($0.splitVector, $0.minimumRows) }
        let splitWidths = (1...tallest).map { OpLowering.tileWidth(rows: $0, split: splitShape, registers: b.registers, tallest: tallest) }
        let wholeWidths = (1...tallest).map { OpLowering.tileWidth(rows: $0, split: nil, registers: b.registers, tallest: tallest) }
        if let part = split?.part, splitWidths != wholeWidths {
            // A call of the whole product (part 0: too many rows to split, or no second thread;
            // part 3: inside a row-parallel region) keeps the widest tiles; only the halves
            // (parts 1 and 2) need widths that divide the split vector (TarFlow's 256 → 64 and
            // 64 → 64 layers: 6 × 2 tiles took 10% of its batch-1 log_prob, 13% at batch 256).
            let whole = b.block("whole_product"), halves = b.block("product_halves"), done = b.block("product_done")
            let half = LLVMBuildICmp(b.builder, LLVMIntULT, b.sub(part, b.i64(1)), b.i64(2), "")!   // part 1 or 2
            b.condBranch(half, halves, whole)
            b.position(at: whole)
            try allRows(widths: wholeWidths)
            b.branch(done)
            b.position(at: halves)
            try allRows(widths: splitWidths)
            b.branch(done)
            b.position(at: done)
        } else {
            try allRows(widths: splitWidths)
        }

        /// `count` register tiles side by side from `firstVector`: a call of the module's
        /// function for this tile shape.
        func tile(firstRow: IRBuilder.Value, rows: Int, firstVector: IRBuilder.Value, vectors: Int, lastLanes: Int, count: IRBuilder.Value) throws {
            let shape = GemmTiles.Shape(rows: rows, vectors: vectors, lastLanes: lastLanes, copies: sets,
                                  vectorPanels: vectors > 1 && layout.panelWidth == OpLowering.lanes)
            let (function, type) = GemmTiles(b: b).function(shape)
            let lastPanelColumn = layout.lastPanelWidth == 0 ? Int(Int32.max) : allVectors * OpLowering.lanes - layout.lastPanelWidth
            _ = b.call(function, type, [x, p, y, firstRow, b.mul(firstVector, b.i64(OpLowering.lanes)), count, b.i64(k), b.i64(n),
                                        b.i64(layout.panelWidth), b.i64(lastPanelColumn), b.i64(layout.lastPanelWidth),
                                        inputs.first, inputs.count])
        }
    }

    /// Sets of accumulators a product of `vectors` output vectors keeps (see `tileFunction`): a
    /// single row has one chain of dependent FMAs per vector, and needs 8 to keep both FMA units
    /// busy (latency 4 cycles). N ≤ 16 keeps 4 sets. (Two sets for N ≤ 64 made TarFlow's 1-row
    /// 256 → 64 layers ~15% faster, its batch-1 sample 2%, but added six tile functions: 15%
    /// more instructions to compile it.) With 16 ymm registers, 2 sets (in tiles of up to 3
    /// rows: `tallestTile`).
    static func accumulatorSets(vectors: Int, registers: RegisterFile) -> Int {
        vectors == 1 ? (registers == .zmm32 ? 4 : 2) : 1
    }
}
