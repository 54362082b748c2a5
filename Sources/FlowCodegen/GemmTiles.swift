import CLLVM

/// The GEMM microkernel's register tiles (PackedGemmLowering), one function per tile shape,
/// shared by every product of a module. The shapes every model of a register file uses
/// (`standardShapes`) are compiled once per compile in the prelude's object, on a thread of its
/// own at the lowest priority from the start of the compile (PreludeCompilation); the module
/// then only declares them.
struct GemmTiles {
    let b: IRBuilder

    /// A register tile's shape: the tile functions of a module are one per shape.
    struct Shape: Hashable {
        var rows: Int, vectors: Int
        /// Lanes stored of the last vector (16 when N fills it).
        var lastLanes: Int
        /// Sets of accumulators the k loop steps through (see `function`).
        var copies: Int
        /// Whether each vector of columns is a panel of its own (16-column panels: the next
        /// vector 16·K floats on, an index register per vector), or the vectors are adjacent in
        /// one panel (16 floats apart: constant offsets, which Intel cores fold into the FMA
        /// where an indexed address splits it in two µops).
        var vectorPanels: Bool
    }

    /// The shapes of whole tiles of 1–6 rows over whole vectors (the widest `OpLowering.tileWidth`
    /// gives, one accumulator set): every reference model's products use these and only some
    /// add others (ragged N, several accumulator sets, narrower split halves).
    static func standardShapes(_ registers: RegisterFile) -> [Shape] {
        (1...OpLowering.tileRows).map { rows in
            let vectors = OpLowering.tileWidth(rows: rows, split: nil, registers: registers, tallest: OpLowering.tileRows)
            return Shape(rows: rows, vectors: vectors, lastLanes: OpLowering.lanes, copies: 1,
                         vectorPanels: vectors > 1 && WeightPacking.panel(registers: registers) == OpLowering.lanes)
        }
    }

    /// Defines the standard shapes' functions in `b`'s module, external with hidden visibility,
    /// for modules that declare them (`IRBuilder.tilesDefinedElsewhere`) to call.
    static func defineStandard(in b: IRBuilder) {
        let tiles = GemmTiles(b: b)
        for shape in standardShapes(b.registers) {
            let (function, _) = tiles.function(shape)
            LLVMSetLinkage(function, LLVMExternalLinkage)
            LLVMSetVisibility(function, LLVMHiddenVisibility)
        }
    }

    /// The tile function's symbol.
    static func name(_ shape: Shape) -> String {
        "flowc.tile.\(shape.rows).\(shape.vectors).\(shape.lastLanes).\(shape.copies)" + (shape.vectorPanels ? ".p" : "")
    }

    /// `void flowc.tile.R.V.L.C(x, W, y, i64 firstRow, i64 firstColumn, i64 tiles, i64 K, i64 N,
    /// i64 P, i64 lastPanelColumn, i64 lastPanelWidth, i64 firstInput, i64 inputs)`: for each of
    /// `tiles` tiles of 16V columns from firstColumn, y[firstRow ..< +R, columns] =
    /// x[rows, f ..< f + inputs] · Wᵀ[f ..< f + inputs, columns] (f = firstInput), R × V
    /// accumulators in registers over the whole K; Wᵀ as `PackedLayout` says, its last panel
    /// from column lastPanelColumn. Shared by every product of the module (K and the layout are
    /// arguments), so each shape is compiled once; one call per row of tiles. Tiles over
    /// 16-column panels (`Shape.vectorPanels`) are `flowc.tile.R.V.L.C.p`.
    ///
    /// The function of this shape in `b`'s module: declared only when it is one of
    /// `b.tilesDefinedElsewhere` (the prelude's object defines it), else defined here, internal.
    func function(_ shape: Shape) -> (IRBuilder.Value, LLVMTypeRef) {
        let type = b.functionType(b.void, [b.pointer, b.pointer, b.pointer] + Array(repeating: b.i64, count: 10))
        let name = GemmTiles.name(shape)
        if let existing = LLVMGetNamedFunction(b.module, name) { return (existing, type) }
        let function = b.declare(name, type)
        if b.tilesDefinedElsewhere.contains(name) {
            LLVMSetVisibility(function, LLVMHiddenVisibility)
            return (function, type)
        }
        define(function, shape)
        LLVMSetLinkage(function, LLVMInternalLinkage)
        return (function, type)
    }

    /// Defines the tile function of `shape` (see `function`) in `b`'s module.
    func define(_ function: IRBuilder.Value, _ shape: Shape) {
        let (caller, callerBlock) = (b.function, b.currentBlock)
        LLVMAddAttributeAtIndex(function, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)),
                                LLVMCreateEnumAttribute(b.context, LLVMGetEnumAttributeKindForName("noinline", 8), 0))
        b.preferWideVectors(function)
        b.begin(function)
        let (x, p, y, firstRow, firstColumn, tiles) = (b.parameter(0), b.parameter(1), b.parameter(2), b.parameter(3), b.parameter(4), b.parameter(5))
        let (k, n) = (b.parameter(6), b.parameter(7))
        let (panelWidth, lastPanelColumn, lastPanelWidth) = (b.parameter(8), b.parameter(9), b.parameter(10))
        let (firstInput, inputs) = (b.parameter(11), b.parameter(12))
        let (rows, vectors, copies) = (shape.rows, shape.vectors, shape.copies)
        let vector = b.vector
        // where each of the tile's rows of x starts (at its first input column summed)
        let rowStarts = (0..<rows).map { r in b.add(b.mul(b.add(firstRow, b.i64(r)), k), firstInput) }
        // The tile's rows of x, every 64-byte line requested at once: in a split product the
        // other core wrote them (the previous layer), and the k loop's broadcasts would
        // otherwise wait for them one line at a time (measured: the worker's half of e_fm's
        // batch-1 product took 2.0 µs against the caller's 1.5).
        // (One loop for all rows: a loop per row cost 5% more instructions to compile TarFlow.)
        let lines = LLVMBuildUDiv(b.builder, b.add(inputs, b.i64(OpLowering.lanes - 1)), b.i64(OpLowering.lanes), "")!
        b.loop(lines) { line in
            for start in rowStarts { prefetch(b.element(x, b.add(start, b.mul(line, b.i64(OpLowering.lanes))))) }
        }
        // Each accumulator is a chain of dependent FMAs (4 cycles each). An output of one vector
        // (N ≤ 16: a velocity's N = 2, TarFlow's proj_out) has a single chain per row, too few
        // at batch 1: the k loop then keeps `copies` sets of accumulators, k stepping through
        // them, summed at the end. Decided by N alone, not by the tile's height, so every row sums
        // in the same order and a sample's result does not depend on where it falls in the batch.
        b.loop(tiles) { t in
            let column = b.add(firstColumn, b.mul(t, b.i64(vectors * OpLowering.lanes)))
            // The tile's columns at k = 0: (c / P)·P·K + c % P. A tile never straddles two
            // panels wider than 16 columns (WeightPacking.layout), so vector v is 16v floats
            // further; in panels of 16 columns each vector is a panel, 16·K floats further
            // (`Shape.vectorPanels`). A row of the panel is P floats, or the last panel's width.
            let panelStart = b.mul(b.mul(LLVMBuildUDiv(b.builder, column, panelWidth, "")!, panelWidth), k)
            let tileWeights = b.element(p, b.add(panelStart, LLVMBuildURem(b.builder, column, panelWidth, "")!))
            let rowStride = b.select(LLVMBuildICmp(b.builder, LLVMIntSGE, column, lastPanelColumn, "")!, lastPanelWidth, panelWidth)
            let firstWeights = b.element(tileWeights, b.mul(firstInput, rowStride))
            let vectorStep = shape.vectorPanels ? b.mul(k, b.i64(OpLowering.lanes)) : b.i64(OpLowering.lanes)
            func zeroed() -> [[IRBuilder.Value]] {
                (0..<rows).map { _ in (0..<vectors).map { _ in
                    let slot = b.variable("acc", type: vector)
                    LLVMBuildStore(b.builder, LLVMConstNull(vector), slot)
                    return slot
                } }
            }
            let sets = (0..<copies).map { _ in zeroed() }
            // The weights of input column kk are read through a pointer stepped by rowStride (a
            // phi after mem2reg): from an index kk·rowStride, LLVM's loop strength reduction
            // kept a multiply per k and indexed addresses, which Intel cores split into two
            // µops per FMA (measured: 1-row products ~7% slower).
            let cursor = b.variable("weights", type: b.pointer)
            LLVMBuildStore(b.builder, firstWeights, cursor)
            /// the FMAs of input column kk (its weights at the cursor) into accumulator set `set`
            func step(_ kk: IRBuilder.Value, _ set: [[IRBuilder.Value]]) {
                let row = LLVMBuildLoad2(b.builder, b.pointer, cursor, "")!
                LLVMBuildStore(b.builder, b.element(row, rowStride), cursor)
                let weights = (0..<vectors).map { v in b.vectorLoad(row, b.mul(vectorStep, b.i64(v))) }
                for r in 0..<rows {
                    let xs = b.splat(b.load(x, b.add(rowStarts[r], kk)))
                    for v in 0..<vectors {
                        let sum = b.fma(xs, weights[v], LLVMBuildLoad2(b.builder, vector, set[r][v], "")!)
                        LLVMBuildStore(b.builder, sum, set[r][v])
                    }
                }
            }
            let unroll = rows > 1 ? OpLowering.kUnroll : 1
            let perIteration = copies * unroll
            let steps = perIteration == 1 ? inputs : LLVMBuildUDiv(b.builder, inputs, b.i64(perIteration), "")!
            b.loop(steps) { kk in
                for u in 0..<unroll { for (c, set) in sets.enumerated() { step(b.add(b.mul(kk, b.i64(perIteration)), b.i64(u * copies + c)), set) } }
            }
            // the k % (copies · unroll) columns left, into the first set (one loop: unrolled
            // conditional steps made the function 4x larger for the optimiser)
            if perIteration > 1 {
                let tailStart = b.mul(steps, b.i64(perIteration))
                b.loop(b.sub(inputs, tailStart)) { c in step(b.add(tailStart, c), sets[0]) }
            }
            let accumulators = sets[0]
            for set in sets.dropFirst() {
                for r in 0..<rows { for v in 0..<vectors {
                    let total = LLVMBuildFAdd(b.builder, LLVMBuildLoad2(b.builder, vector, accumulators[r][v], "")!, LLVMBuildLoad2(b.builder, vector, set[r][v], "")!, "")!
                    LLVMBuildStore(b.builder, total, accumulators[r][v])
                } }
            }
            for r in 0..<rows {
                let rowStart = b.add(b.mul(b.add(firstRow, b.i64(r)), n), column)
                for v in 0..<vectors {
                    let value = LLVMBuildLoad2(b.builder, vector, accumulators[r][v], "")!
                    let at = b.add(rowStart, b.i64(v * OpLowering.lanes))
                    if v < vectors - 1 || shape.lastLanes == OpLowering.lanes {
                        b.vectorStore(value, y, at)
                    } else {
                        maskedStore(value, to: b.element(y, at), lanes: shape.lastLanes, vector)
                    }
                }
            }
        }
        b.ret()
        b.function = caller
        if caller != nil { b.position(at: callerBlock) }
    }

    /// Asks for the cache line at `address` (llvm.prefetch: read, keep in all levels).
    private func prefetch(_ address: IRBuilder.Value) {
        let id = LLVMLookupIntrinsicID("llvm.prefetch", 13)
        var overloads: [LLVMTypeRef?] = [b.pointer]
        let function = overloads.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(b.module, id, $0.baseAddress, 1) }!
        let type = b.functionType(b.void, [b.pointer, b.i32, b.i32, b.i32])
        _ = b.call(function, type, [address, b.i32(0), b.i32(3), b.i32(1)])
    }

    /// Stores the first `lanes` of a 16-float vector (llvm.masked.store: one instruction with
    /// AVX-512, instead of a scalar store per lane for the optimiser to re-vectorise).
    private func maskedStore(_ value: IRBuilder.Value, to address: IRBuilder.Value, lanes: Int, _ vector: LLVMTypeRef) {
        let id = LLVMLookupIntrinsicID("llvm.masked.store", 17)
        var overloads: [LLVMTypeRef?] = [vector, b.pointer]
        let function = overloads.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(b.module, id, $0.baseAddress, 2) }!
        let bit = LLVMInt1TypeInContext(b.context)!
        var bits: [LLVMValueRef?] = (0..<OpLowering.lanes).map { LLVMConstInt(bit, $0 < lanes ? 1 : 0, 0) }
        let mask = bits.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32($0.count))! }
        let type = b.functionType(b.void, [vector, b.pointer, b.i32, LLVMVectorType(bit, UInt32(OpLowering.lanes))!])
        _ = b.call(function, type, [value, address, b.i32(4), mask])
    }
}
