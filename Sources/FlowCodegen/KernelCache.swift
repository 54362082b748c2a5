import CLLVM
import FlowIR

/// The kernel functions of a module, one per distinct (op, attributes, operand and result
/// types): `void kernel(float *operands..., float *results..., i64 batch)`, never inlined, so each
/// stays small for LLVM and repeated ops (the sweeps of an unrolled inverse, the same layer in
/// several entry points) are compiled once.
final class KernelCache {
    let b: IRBuilder
    private var byKey: [String: IRBuilder.Value] = [:]
    private let noinline: LLVMAttributeRef

    init(builder: IRBuilder) {
        b = builder
        noinline = LLVMCreateEnumAttribute(builder.context, LLVMGetEnumAttributeKindForName("noinline", 8), 0)
    }

    var count: Int { byKey.count }

    func type(arguments: Int) -> LLVMTypeRef { b.functionType(b.void, Array(repeating: b.pointer, count: arguments) + [b.i64]) }

    /// The kernel for `node`, creating it with `build` (which emits its body) the first time.
    func kernel(for node: Node, in g: Graph, build: (IRBuilder.Value) throws -> Void) throws -> IRBuilder.Value {
        let attributes = node.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let types = (node.operands + node.results).map { g.type(of: $0).description }.joined(separator: ";")
        let key = "\(node.op)(\(attributes))\(types)"
        if let k = byKey[key] { return k }
        let kernel = b.declare("kernel_\(byKey.count)_\(node.op)", type(arguments: node.operands.count + node.results.count))
        LLVMSetLinkage(kernel, LLVMInternalLinkage)
        LLVMAddAttributeAtIndex(kernel, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), noinline)
        byKey[key] = kernel
        try build(kernel)
        return kernel
    }
}
