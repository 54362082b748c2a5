import CLLVM

/// A thin Swift face over LLVM's C API builder: the types, constants, arithmetic, memory and
/// loop helpers the lowering needs, in one place.
final class IRBuilder {
    typealias Value = LLVMValueRef

    let context: LLVMContextRef
    let module: LLVMModuleRef
    let builder: LLVMBuilderRef
    /// The function being emitted.
    var function: Value?
    /// The target's vector registers, which the GEMM microkernel's tiles must fit.
    let registers: RegisterFile
    /// GEMM tile functions another object file defines (the prelude's: GemmTiles), which this
    /// module declares instead of defining.
    var tilesDefinedElsewhere: Set<String> = []

    init(moduleName: String, registers: RegisterFile) {
        self.registers = registers
        context = LLVMContextCreate()
        module = LLVMModuleCreateWithNameInContext(moduleName, context)
        builder = LLVMCreateBuilderInContext(context)
    }

    deinit {
        LLVMDisposeBuilder(builder)
        LLVMDisposeModule(module)
        LLVMContextDispose(context)
    }

    // MARK: types

    var f32: LLVMTypeRef { LLVMFloatTypeInContext(context) }
    var f64: LLVMTypeRef { LLVMDoubleTypeInContext(context) }
    var i1: LLVMTypeRef { LLVMInt1TypeInContext(context) }
    var i32: LLVMTypeRef { LLVMInt32TypeInContext(context) }
    var i64: LLVMTypeRef { LLVMInt64TypeInContext(context) }
    var i8: LLVMTypeRef { LLVMInt8TypeInContext(context) }
    var pointer: LLVMTypeRef { LLVMPointerTypeInContext(context, 0) }
    var void: LLVMTypeRef { LLVMVoidTypeInContext(context) }
    /// 16 f32 lanes (OpLowering.lanes): one AVX-512 register, two AVX2 registers.
    var vector: LLVMTypeRef { LLVMVectorType(f32, UInt32(OpLowering.lanes)) }

    func functionType(_ result: LLVMTypeRef, _ parameters: [LLVMTypeRef]) -> LLVMTypeRef {
        var p: [LLVMTypeRef?] = parameters
        return p.withUnsafeMutableBufferPointer { LLVMFunctionType(result, $0.baseAddress, UInt32(parameters.count), 0) }
    }

    // MARK: constants

    func f32(_ v: Double) -> Value { LLVMConstReal(f32, v) }
    func i64(_ v: Int) -> Value { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }
    func i32(_ v: Int) -> Value { LLVMConstInt(i32, UInt64(bitPattern: Int64(v)), 1) }

    /// A global initialised with the bytes of `values` (x86-64 is little-endian, as the
    /// target): one byte array for LLVM instead of one uniqued constant per element, which
    /// took most of `fold constants` for megabytes of weights. Code only takes its address.
    private func rawConstant<T>(_ values: [T], name: String) -> Value {
        let initializer = values.withUnsafeBytes { bytes in
            LLVMConstStringInContext2(context, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count, 1)!
        }
        let global = LLVMAddGlobal(module, LLVMTypeOf(initializer), name)!
        LLVMSetInitializer(global, initializer)
        return global
    }

    /// A private constant global array of f32 (weights, literals), 64-byte aligned.
    func constantArray(_ values: [Float], name: String) -> Value {
        let global = rawConstant(values, name: name)
        LLVMSetGlobalConstant(global, 1)
        LLVMSetLinkage(global, LLVMPrivateLinkage)
        LLVMSetAlignment(global, 64)
        return global
    }

    /// A private constant global array of i64 (gather indices).
    func constantIndexArray(_ values: [Int], name: String) -> Value {
        let global = rawConstant(values.map { Int64($0) }, name: name)
        LLVMSetGlobalConstant(global, 1)
        LLVMSetLinkage(global, LLVMPrivateLinkage)
        return global
    }

    /// A private constant global array of addresses (of other globals).
    func constantPointerArray(_ values: [Value?], name: String) -> Value {
        var elements = values
        let initializer = elements.withUnsafeMutableBufferPointer { LLVMConstArray2(pointer, $0.baseAddress, UInt64($0.count))! }
        let global = LLVMAddGlobal(module, LLVMTypeOf(initializer), name)!
        LLVMSetInitializer(global, initializer)
        LLVMSetGlobalConstant(global, 1)
        LLVMSetLinkage(global, LLVMPrivateLinkage)
        return global
    }

    /// A constant NUL-terminated string, exported through a function returning its address.
    func constantString(_ text: String, name: String) -> Value {
        let bytes = Array(text.utf8)
        let global = LLVMAddGlobal(module, LLVMArrayType2(i8, UInt64(bytes.count + 1)), name)!
        LLVMSetInitializer(global, LLVMConstStringInContext2(context, text, bytes.count, 0))
        LLVMSetGlobalConstant(global, 1)
        LLVMSetLinkage(global, LLVMPrivateLinkage)
        return global
    }

    // MARK: functions and blocks

    @discardableResult
    func declare(_ name: String, _ type: LLVMTypeRef) -> Value {
        if let existing = LLVMGetNamedFunction(module, name) { return existing }
        return LLVMAddFunction(module, name, type)
    }

    /// Lets the backend use 512-bit vectors in function `f` (the host tuning may prefer 256).
    func preferWideVectors(_ f: Value) {
        for (key, value) in [("prefer-vector-width", "512"), ("min-legal-vector-width", "512")] {
            let attribute = LLVMCreateStringAttribute(context, key, UInt32(key.utf8.count), value, UInt32(value.utf8.count))
            LLVMAddAttributeAtIndex(f, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), attribute)
        }
    }

    func begin(_ f: Value) {
        function = f
        let entry = LLVMAppendBasicBlockInContext(context, f, "entry")
        LLVMPositionBuilderAtEnd(builder, entry)
    }

    func parameter(_ i: Int) -> Value { LLVMGetParam(function!, UInt32(i)) }

    func block(_ name: String) -> LLVMBasicBlockRef { LLVMAppendBasicBlockInContext(context, function!, name) }

    func position(at block: LLVMBasicBlockRef) { LLVMPositionBuilderAtEnd(builder, block) }

    var currentBlock: LLVMBasicBlockRef { LLVMGetInsertBlock(builder) }

    func branch(_ to: LLVMBasicBlockRef) { LLVMBuildBr(builder, to) }

    func condBranch(_ c: Value, _ then: LLVMBasicBlockRef, _ otherwise: LLVMBasicBlockRef) { LLVMBuildCondBr(builder, c, then, otherwise) }

    func ret(_ v: Value? = nil) {
        if let v { LLVMBuildRet(builder, v) } else { LLVMBuildRetVoid(builder) }
    }

    func call(_ f: Value, _ type: LLVMTypeRef, _ args: [Value], _ name: String = "") -> Value {
        var a: [LLVMValueRef?] = args
        return a.withUnsafeMutableBufferPointer { LLVMBuildCall2(builder, type, f, $0.baseAddress, UInt32(args.count), name) }
    }

    /// for i in 0..<count { body(i) } with an i64 counter.
    func loop(_ count: Value, _ body: (Value) throws -> Void) rethrows {
        let preheader = currentBlock
        let header = block("loop"), bodyBlock = block("body"), exit = block("exit")
        branch(header)
        position(at: header)
        let i = LLVMBuildPhi(builder, i64, "i")!
        let more = LLVMBuildICmp(builder, LLVMIntSLT, i, count, "more")!
        condBranch(more, bodyBlock, exit)
        position(at: bodyBlock)
        try body(i)
        let next = add(i, i64(1))
        let latch = currentBlock
        branch(header)
        var incoming: [LLVMValueRef?] = [i64(0), next]
        var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
        incoming.withUnsafeMutableBufferPointer { v in
            blocks.withUnsafeMutableBufferPointer { b in LLVMAddIncoming(i, v.baseAddress, b.baseAddress, 2) }
        }
        position(at: exit)
    }

    /// for i in 0..<count { body(i) } with a count known at compile time: straight-line code for
    /// counts up to `maximumUnrolled` (LLVM's unroller is off: TargetEmitter), so the SLP
    /// vectoriser can turn a run of neighbouring scalar copies into one vector move; a loop
    /// beyond.
    func unrolledLoop(_ count: Int, maximumUnrolled: Int = 16, _ body: (Value) throws -> Void) rethrows {
        if count > maximumUnrolled { return try loop(i64(count), body) }
        for i in 0..<count { try body(i64(i)) }
    }

    /// Nested loops over `counts` (outermost first); `body` gets one index per loop.
    func loops(_ counts: [Value], _ body: ([Value]) throws -> Void) rethrows {
        func nest(_ level: Int, _ indices: [Value]) throws {
            if level == counts.count { try body(indices); return }
            try loop(counts[level]) { i in try nest(level + 1, indices + [i]) }
        }
        try nest(0, [])
    }

    // MARK: integer arithmetic

    func add(_ a: Value, _ b: Value) -> Value { LLVMBuildAdd(builder, a, b, "") }
    func mul(_ a: Value, _ b: Value) -> Value { LLVMBuildMul(builder, a, b, "") }
    func sub(_ a: Value, _ b: Value) -> Value { LLVMBuildSub(builder, a, b, "") }

    /// Σ indices[i]·strides[i] (+ base), skipping zero strides.
    func offset(_ indices: [Value], _ strides: [Int], base: Value? = nil) -> Value {
        var total = base ?? i64(0)
        for (i, s) in zip(indices, strides) where s != 0 { total = add(total, s == 1 ? i : mul(i, i64(s))) }
        return total
    }

    // MARK: float arithmetic

    func fadd(_ a: Value, _ b: Value) -> Value { LLVMBuildFAdd(builder, a, b, "") }

    /// Lets LLVM reassociate and contract these float ops (to vectorise a reduction, as BLAS does).
    func reassociable(_ values: Value...) {
        for v in values { LLVMSetFastMathFlags(v, LLVMFastMathFlags(LLVMFastMathAllowReassoc | LLVMFastMathAllowContract)) }
    }
    func fsub(_ a: Value, _ b: Value) -> Value { LLVMBuildFSub(builder, a, b, "") }
    func fmul(_ a: Value, _ b: Value) -> Value { LLVMBuildFMul(builder, a, b, "") }
    func fdiv(_ a: Value, _ b: Value) -> Value { LLVMBuildFDiv(builder, a, b, "") }
    func fneg(_ a: Value) -> Value { LLVMBuildFNeg(builder, a, "") }
    func fcmp(_ p: LLVMRealPredicate, _ a: Value, _ b: Value) -> Value { LLVMBuildFCmp(builder, p, a, b, "") }
    func select(_ c: Value, _ a: Value, _ b: Value) -> Value { LLVMBuildSelect(builder, c, a, b, "") }
    func boolToFloat(_ c: Value) -> Value { LLVMBuildUIToFP(builder, c, f32, "") }

    /// An LLVM intrinsic whose operands and result all have one type: f32 (`llvm.fabs`,
    /// `llvm.maxnum`, ...) or a vector of f32 (`llvm.fma` on 16 lanes).
    func intrinsic(_ name: String, _ args: [Value], type element: LLVMTypeRef? = nil) -> Value {
        let element = element ?? f32
        let type = functionType(element, args.map { _ in element })
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var overloads: [LLVMTypeRef?] = [element]
        let f = overloads.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(module, id, $0.baseAddress, 1) }!
        return call(f, type, args)
    }

    // MARK: memory

    /// A stack slot for one f32 (or another type), placed in the entry block (where mem2reg
    /// turns it into a register).
    func variable(_ name: String, type: LLVMTypeRef? = nil) -> Value {
        let entry = LLVMGetEntryBasicBlock(function!)!
        let temporary = LLVMCreateBuilderInContext(context)!
        defer { LLVMDisposeBuilder(temporary) }
        if let first = LLVMGetFirstInstruction(entry) { LLVMPositionBuilderBefore(temporary, first) } else { LLVMPositionBuilderAtEnd(temporary, entry) }
        return LLVMBuildAlloca(temporary, type ?? f32, name)!
    }

    func read(_ slot: Value) -> Value { LLVMBuildLoad2(builder, f32, slot, "") }
    func write(_ v: Value, _ slot: Value) { LLVMBuildStore(builder, v, slot) }

    func element(_ base: Value, _ index: Value, type: LLVMTypeRef? = nil) -> Value {
        var i: [LLVMValueRef?] = [index]
        return i.withUnsafeMutableBufferPointer { LLVMBuildInBoundsGEP2(builder, type ?? f32, base, $0.baseAddress, 1, "") }
    }

    func load(_ base: Value, _ index: Value) -> Value { LLVMBuildLoad2(builder, f32, element(base, index), "") }

    func loadIndex(_ base: Value, _ index: Value) -> Value { LLVMBuildLoad2(builder, i64, element(base, index, type: i64), "") }

    func store(_ v: Value, _ base: Value, _ index: Value) { LLVMBuildStore(builder, v, element(base, index)) }

    // MARK: 16-lane vectors (explicit where LLVM's vectoriser would not take a loop)

    /// 16 floats from base[index], no alignment assumed.
    func vectorLoad(_ base: Value, _ index: Value) -> Value {
        let load = LLVMBuildLoad2(builder, vector, element(base, index), "")!
        LLVMSetAlignment(load, 4)
        return load
    }

    /// Stores 16 floats at base[index], no alignment assumed.
    func vectorStore(_ value: Value, _ base: Value, _ index: Value) {
        LLVMSetAlignment(LLVMBuildStore(builder, value, element(base, index)), 4)
    }

    /// A scalar (f32, or of `type`) in every lane.
    func splat(_ scalar: Value, type: LLVMTypeRef? = nil) -> Value {
        let lanes = LLVMVectorType(type ?? f32, UInt32(OpLowering.lanes))!
        let inserted = LLVMBuildInsertElement(builder, LLVMGetPoison(lanes), scalar, i32(0), "")!
        return LLVMBuildShuffleVector(builder, inserted, LLVMGetPoison(lanes), LLVMConstNull(LLVMVectorType(i32, UInt32(OpLowering.lanes))), "")!
    }

    /// The i32 vector 0, 1, ..., 15.
    var laneIndices: Value {
        var lanes: [LLVMValueRef?] = (0..<OpLowering.lanes).map { i32($0) }
        return lanes.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32($0.count))! }
    }

    /// The largest of 16 lanes, with maxnum's rule for NaN: a tree of four maxnum of the vector
    /// and its upper half moved down (llvm.vector.reduce.fmax became 15 scalar steps on x86).
    func reduceMaximum(_ v: Value) -> Value {
        var v = v, width = OpLowering.lanes
        while width > 1 {
            width /= 2
            var lanes: [LLVMValueRef?] = (0..<OpLowering.lanes).map { i32(($0 % width) + width) }
            let upper = lanes.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32($0.count))! }
            v = intrinsic("llvm.maxnum", [v, LLVMBuildShuffleVector(builder, v, LLVMGetPoison(vector), upper, "")!], type: vector)
        }
        return LLVMBuildExtractElement(builder, v, i32(0), "")!
    }

    /// a·x + c on 16 lanes, one rounding each (llvm.fma).
    func fma(_ a: Value, _ x: Value, _ c: Value) -> Value {
        intrinsic("llvm.fma", [a, x, c], type: vector)
    }
}
