import CFlowcABI
import CLLVM

/// Products of few rows and many columns (a batch-1 MLP's 256×256 layers) are bound by
/// reading the packed weights from the core's L2; two cores each read half. A shared object
/// holds a parallel-for hook, null until the host sets it with `flowc_set_parallel` (the Swift
/// runtime does, with its worker pool; a C host may, or runs everything on its thread):
///
///     int32_t hook(int64_t tasks, void (*task)(void *context, int64_t index), void *context)
///
/// A splittable product kernel called with part 0, few rows (`minimumRows`) and a hook set,
/// packs its own arguments into a context and asks the hook to run `task(context, 0)` and
/// `task(context, 1)` concurrently — the trampoline calls the same kernel with part 1 and
/// part 2, each computing the columns on its side of `OpLowering.splitVector` (bias and
/// epilogue included). The hook returns 1 when it ran them, 0 when it declines (no idle
/// thread, or a single-threaded caller): the kernel then computes all columns itself.
/// Each output is computed by one part in the same order: results do not depend on the split.
enum ColumnSplit {
    static let hookName = "flowc.parallel", setterName = "flowc_set_parallel"
    /// The `part` of a kernel that computes all columns and never splits (inside a row-parallel
    /// region, which already runs on both threads: RowParallelRegions).
    static let noSplit = 3
    /// Rows (batch × rows per sample) up to which a product is split. A half must outlast the
    /// hand-over to another core (~1 µs): at few rows a product's time is reading its weights
    /// (K·N ≥ `minimumWeights`: 128 KB of f32), at more rows its multiply-adds (rows·K·N ≥
    /// `minimumWork`). Measured: TarFlow's 64→256 MLP layer pays at 16 rows (log_prob batch 1,
    /// 87 → 76 µs), not at 1 (token decoding: slower split).
    static let maximumRows = Int(FLOWC_SPLIT_MAXIMUM_ROWS), minimumWeights = 32768, minimumWork = 1 << 18

    /// The fewest rows at which a K × N product is split (nil: never, up to `maximumRows`).
    static func minimumRows(k: Int, n: Int) -> Int? {
        let rows = k * n >= minimumWeights ? 1 : (minimumWork + k * n - 1) / (k * n)
        return rows <= maximumRows ? rows : nil
    }

    /// The hook's global (a pointer, null until set).
    static func hook(_ b: IRBuilder) -> IRBuilder.Value {
        if let existing = LLVMGetNamedGlobal(b.module, hookName) { return existing }
        let global = LLVMAddGlobal(b.module, b.pointer, hookName)!
        LLVMSetInitializer(global, LLVMConstNull(b.pointer))
        LLVMSetLinkage(global, LLVMInternalLinkage)
        return global
    }

    /// `void flowc_set_parallel(void *hook)`, exported.
    static func emitSetter(_ b: IRBuilder) {
        let setter = b.declare(setterName, b.functionType(b.void, [b.pointer]))
        b.begin(setter)
        LLVMBuildStore(b.builder, b.parameter(0), hook(b))
        b.ret()
    }

    /// `void task(ctx, index)` for kernels of `arguments` pointer arguments: ctx holds the
    /// kernel, its pointers, batch, scratch and weights; calls the kernel with part index + 1.
    static func trampoline(_ b: IRBuilder, arguments: Int, kernelType: LLVMTypeRef) -> IRBuilder.Value {
        let name = "flowc.task.\(arguments)"
        if let existing = LLVMGetNamedFunction(b.module, name) { return existing }
        let (function, block) = (b.function, b.currentBlock)
        let task = b.declare(name, b.functionType(b.void, [b.pointer, b.i64]))
        LLVMSetLinkage(task, LLVMInternalLinkage)
        b.begin(task)
        let context = b.parameter(0)
        func slot(_ i: Int) -> IRBuilder.Value { LLVMBuildLoad2(b.builder, b.pointer, b.element(context, b.i64(i), type: b.pointer), "")! }
        var values = (0..<arguments).map { slot(1 + $0) }
        values.append(LLVMBuildPtrToInt(b.builder, slot(arguments + 1), b.i64, "")!)
        values += [slot(arguments + 2), slot(arguments + 3), b.add(b.parameter(1), b.i64(1)), b.i64(0)]   // extent: 0 in products
        _ = b.call(slot(0), kernelType, values)
        b.ret()
        b.function = function
        b.position(at: block)
        return task
    }

    /// In a kernel: when `part` is 0, minimumRows ≤ rows ≤ maximumRows and the hook is set and
    /// accepts, both halves run through the hook; otherwise `compute` runs (it honours `part`).
    static func dispatch(_ b: IRBuilder, rows: IRBuilder.Value, minimumRows: Int, part: IRBuilder.Value, kernelType: LLVMTypeRef, compute: () throws -> Void) rethrows {
        let kernel = b.function!
        let parameters = Int(LLVMCountParams(kernel)), arguments = parameters - 5
        let whole = LLVMBuildICmp(b.builder, LLVMIntEQ, part, b.i64(0), "")!
        let few = LLVMBuildAnd(b.builder, LLVMBuildICmp(b.builder, LLVMIntULE, rows, b.i64(maximumRows), "")!,
                               LLVMBuildICmp(b.builder, LLVMIntUGE, rows, b.i64(minimumRows), "")!, "")!
        let context = [kernel] + (0..<arguments).map { b.parameter($0) }
            + [LLVMBuildIntToPtr(b.builder, b.parameter(arguments), b.pointer, "")!, b.parameter(arguments + 1), b.parameter(arguments + 2)]
        try offer(b, when: LLVMBuildAnd(b.builder, whole, few, "")!, task: trampoline(b, arguments: arguments, kernelType: kernelType),
                  context: context, otherwise: compute)
    }

    /// When `condition` holds and the hook is set: `hook(2, task, context)`, the context an array
    /// of the given pointers on the stack. When the condition fails, the hook is unset or it
    /// declines, `otherwise` runs (emitted once, after the call).
    static func offer(_ b: IRBuilder, when condition: IRBuilder.Value, task: IRBuilder.Value, context values: [IRBuilder.Value],
                      otherwise: () throws -> Void) rethrows {
        let installed = LLVMBuildLoad2(b.builder, b.pointer, hook(b), "")!
        let set = LLVMBuildICmp(b.builder, LLVMIntNE, LLVMBuildPtrToInt(b.builder, installed, b.i64, "")!, b.i64(0), "")!
        let split = b.block("split"), direct = b.block("direct"), done = b.block("split_done")
        b.condBranch(LLVMBuildAnd(b.builder, condition, set, "")!, split, direct)
        b.position(at: split)
        let context = b.variable("split_context", type: LLVMArrayType2(b.pointer, UInt64(values.count)))
        for (i, value) in values.enumerated() { LLVMBuildStore(b.builder, value, b.element(context, b.i64(i), type: b.pointer)) }
        let ran = b.call(installed, b.functionType(b.i32, [b.i64, b.pointer, b.pointer]), [b.i64(2), task, context])
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntNE, ran, b.i32(0), "")!, done, direct)
        b.position(at: direct)
        try otherwise()
        b.branch(done)
        b.position(at: done)
    }
}
