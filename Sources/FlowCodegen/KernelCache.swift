import CLLVM
import FlowIR

/// The kernel functions of a module, one per distinct (op, attributes, operand and result
/// types): `void kernel(float *operands..., float *results..., i64 batch, float *scratch, weights, i64 part)`, never inlined, so each
/// stays small for LLVM and repeated ops (the sweeps of an unrolled inverse, the same layer in
/// several entry points) are compiled once.
final class KernelCache {
    let b: IRBuilder
    private var byKey: [String: IRBuilder.Value] = [:]
    /// The `noinline` function attribute (kernels, and entry-point segments).
    let noinline: LLVMAttributeRef
    /// The `optnone` function attribute (entry-point segments: calls only).
    let optnone: LLVMAttributeRef
    /// The `noalias` parameter attribute (see `pointersDoNotAlias`).
    let noalias: LLVMAttributeRef

    init(builder: IRBuilder) {
        b = builder
        noinline = LLVMCreateEnumAttribute(builder.context, LLVMGetEnumAttributeKindForName("noinline", 8), 0)
        optnone = LLVMCreateEnumAttribute(builder.context, LLVMGetEnumAttributeKindForName("optnone", 7), 0)
        noalias = LLVMCreateEnumAttribute(builder.context, LLVMGetEnumAttributeKindForName("noalias", 7), 0)
    }

    var count: Int { byKey.count }

    /// `void kernel(pointers..., i64 batch, float *scratch, weights, i64 part, i64 extent)`:
    /// `part` is 0 except in the halves of a product split over threads (ColumnSplit), in a
    /// row-parallel region (`ColumnSplit.noSplit`; an attention's first query row there:
    /// RowParallelRegions);
    /// `extent` is a decoding step's position (DecodingStepFolding), else 0.
    func type(arguments: Int) -> LLVMTypeRef { b.functionType(b.void, Array(repeating: b.pointer, count: arguments) + [b.i64, b.pointer, b.pointer, b.i64, b.i64]) }

    /// The structure of a kernel: each node's op, attributes and operands (as positions among the
    /// kernel's parameters or earlier nodes), and every parameter's type.
    static func key(_ k: Kernel, _ g: Graph) -> String {
        let parameters = k.inputs + k.outputs
        var produced: [ValueID: Int] = [:]
        var parts: [String] = []
        for (i, n) in k.nodes.enumerated() {
            let attributes = n.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let operands = n.operands.map { v in produced[v].map { "n\($0)" } ?? "p\(parameters.firstIndex(of: v)!)" }.joined(separator: ",")
            parts.append("\(n.op)[\(attributes)](\(operands))")
            for r in n.results { produced[r] = i }
        }
        let body: String
        switch k.body {
        case .single: body = "single"
        case .fused: body = "fused"
        case .gemm: body = "gemm"
        case .productPair: body = "pair"
        }
        return "\(body):" + parts.joined(separator: ";") + "|" + parameters.map { g.type(of: $0).description }.joined(separator: ";")
    }

    /// Whether a kernel's operand and result pointers are `noalias`: no result overlaps another
    /// pointer parameter during a call. The memory plan guarantees it for every kernel call (a
    /// kernel's inputs are live while it writes its outputs), FunctionLowering checks it at every
    /// compile (`MemoryPlan.firstOverlap`), and the entry points reject overlapping caller
    /// buffers (FLOWC_ERROR_OVERLAP). Without
    /// it LLVM's vectoriser versions each elementwise loop with run-time overlap checks and a
    /// scalar copy: e_fm's `flowc compile` 1.80G → 1.57G instructions (callgrind), TarFlow's
    /// 1.99G → 1.93G. Only for kernels that run as one call on one thread: products may hand
    /// halves of themselves to another thread through the parallel hook (ColumnSplit), and a
    /// `fixed_point` passes its pointers on to its body function.
    static func pointersDoNotAlias(_ k: Kernel) -> Bool {
        switch k.body {
        case .fused: return true
        case .single(let node): return node.op != "fixed_point"
        case .gemm, .productPair: return false
        }
    }

    /// The function of a kernel, creating it with `build` (which emits its body) the first time.
    func kernel(for k: Kernel, in g: Graph, build: (IRBuilder.Value) throws -> Void) throws -> IRBuilder.Value {
        var key = KernelCache.key(k, g)
        // loops call a body function of their own entry point: never shared
        if k.nodes.contains(where: { $0.op == "fixed_point" }) { key += "#\(byKey.count)" }
        if let existing = byKey[key] { return existing }
        let name = k.nodes.count == 1 ? k.nodes[0].op : "\(k.nodes[0].op)_\(k.nodes.count)"
        let kernel = b.declare("kernel_\(byKey.count)_\(name)", type(arguments: k.inputs.count + k.outputs.count))
        LLVMSetLinkage(kernel, LLVMInternalLinkage)
        LLVMAddAttributeAtIndex(kernel, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), noinline)
        // 512-bit vectors in every kernel, not only the microkernel's (the host tuning prefers
        // 256): TarFlow's batch-1 calls 0.978x the time, a_nsf's 0.95–0.97x, d_glow's batch-256
        // 0.976x, the others within ±1.6% (alternating calls); the same instructions to compile
        b.preferWideVectors(kernel)
        if KernelCache.pointersDoNotAlias(k) {
            for p in 0..<(k.inputs.count + k.outputs.count) { LLVMAddAttributeAtIndex(kernel, UInt32(p + 1), noalias) }
        }
        byKey[key] = kernel
        try build(kernel)
        return kernel
    }
}
