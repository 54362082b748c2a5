import CLLVM
import FlowIR

/// Splits a module into parts, each in its own LLVM context, that can be optimised and emitted
/// on separate threads (LLVM's pipeline is single-threaded; a model's hundreds of kernels are
/// independent functions). Part 0 is the module itself and every other part a copy of it
/// (through bitcode), in which the functions of the other parts are reduced to declarations;
/// functions go to the part with the least estimated compile time so far, largest first; the constants
/// (embedded weights) all stay in part 0 and are declarations elsewhere. Internal symbols
/// become external with hidden visibility first, so that parts can reference each other's and
/// the linked shared object still exports only the ABI's symbols.
struct ModulePartitioner {
    let parts: Int

    /// The parts' modules and their contexts. Part 0 is `module` itself, reduced in place (its
    /// context is the caller's); the caller disposes the other parts' modules and contexts.
    func split(_ module: LLVMModuleRef, context: LLVMContextRef) throws -> [(context: LLVMContextRef, module: LLVMModuleRef)] {
        ModulePartitioner.exposeInternalSymbols(module)
        let owner = assignFunctions(module)
        // the other parts declare the constants without their data: written as undef, then restored
        let initializers = ModulePartitioner.definedGlobals(module).compactMap { g in LLVMGetInitializer(g).map { (g, $0) } }
        for (g, value) in initializers { LLVMSetInitializer(g, LLVMGetUndef(LLVMTypeOf(value))) }
        let bitcode = LLVMWriteBitcodeToMemoryBuffer(module)!
        for (g, value) in initializers { LLVMSetInitializer(g, value) }
        defer { LLVMDisposeMemoryBuffer(bitcode) }
        let copies = try (1..<parts).map { part in
            let context = LLVMContextCreate()!
            let copy = LLVMCreateMemoryBufferWithMemoryRangeCopy(LLVMGetBufferStart(bitcode), LLVMGetBufferSize(bitcode), "flowc-part")!
            defer { LLVMDisposeMemoryBuffer(copy) }
            var parsed: LLVMModuleRef?
            guard LLVMParseBitcodeInContext2(context, copy, &parsed) == 0, let parsed else {
                LLVMContextDispose(context)
                throw FlowError("internal: the generated module does not read back from bitcode", at: .synthetic("codegen"))
            }
            ModulePartitioner.keep(part, of: owner, in: parsed)
            // the constants (embedded weights) are defined in part 0 only
            for g in ModulePartitioner.definedGlobals(parsed) { LLVMSetInitializer(g, nil) }
            return (context, parsed)
        }
        ModulePartitioner.keep(0, of: owner, in: module)
        return [(context, module)] + copies
    }

    /// Reduces the functions of the other parts to declarations.
    private static func keep(_ part: Int, of owner: [String: Int], in module: LLVMModuleRef) {
        for function in definedFunctions(module) where owner[name(function)] != part {
            reduceToDeclaration(function, in: module)
        }
    }

    /// Function name → part, balancing estimated compile time (`compileCost`; instruction
    /// counts had put two of e_fm's three product-pair kernels, ~3x a tile each per
    /// instruction, into one part: its parts took 0.18 and 0.30 s). Medians of 7 compiles,
    /// both parts: e_fm 0.28 → 0.26 s, TarFlow 0.25 → 0.22, a_nsf 0.24 → 0.23, d_glow 0.18 →
    /// 0.17, RealNVP 64-d 0.17 either way.
    private func assignFunctions(_ module: LLVMModuleRef) -> [String: Int] {
        let optnone = LLVMGetEnumAttributeKindForName("optnone", 7)
        let functions = ModulePartitioner.definedFunctions(module).map { f in
            let unoptimised = LLVMGetEnumAttributeAtIndex(f, UInt32(bitPattern: Int32(LLVMAttributeFunctionIndex)), optnone) != nil
            return (ModulePartitioner.name(f), ModulePartitioner.compileCost(f, optimised: !unoptimised))
        }
        var load = [Int](repeating: 0, count: parts)
        var owner: [String: Int] = [:]
        for (name, size) in functions.sorted(by: { $0.1 > $1.1 }) {
            let part = load.indices.min { load[$0] < load[$1] }!
            owner[name] = part
            load[part] += size
        }
        return owner
    }

    static func exposeInternalSymbols(_ module: LLVMModuleRef) {
        var unnamed = 0
        func expose(_ value: LLVMValueRef) {
            let linkage = LLVMGetLinkage(value)
            guard linkage == LLVMInternalLinkage || linkage == LLVMPrivateLinkage else { return }
            if name(value).isEmpty {
                let fresh = "flowc.unnamed.\(unnamed)"
                unnamed += 1
                LLVMSetValueName2(value, fresh, fresh.utf8.count)
            }
            LLVMSetLinkage(value, LLVMExternalLinkage)
            LLVMSetVisibility(value, LLVMHiddenVisibility)
        }
        for value in functions(module) + globals(module) { expose(value) }
    }

    /// A module's functions and globals, declarations included, in the module's order.
    static func functions(_ module: LLVMModuleRef) -> [LLVMValueRef] { list(LLVMGetFirstFunction(module), next: LLVMGetNextFunction) }
    static func globals(_ module: LLVMModuleRef) -> [LLVMValueRef] { list(LLVMGetFirstGlobal(module), next: LLVMGetNextGlobal) }

    /// The functions and globals the module defines (not only declares).
    static func definedFunctions(_ module: LLVMModuleRef) -> [LLVMValueRef] { functions(module).filter { LLVMIsDeclaration($0) == 0 } }
    static func definedGlobals(_ module: LLVMModuleRef) -> [LLVMValueRef] { globals(module).filter { LLVMIsDeclaration($0) == 0 } }

    /// The values of one of LLVM's intrusive lists, from `first` through `next`.
    private static func list(_ first: LLVMValueRef?, next: (LLVMValueRef) -> LLVMValueRef?) -> [LLVMValueRef] {
        var result: [LLVMValueRef] = []
        var value = first
        while let v = value {
            result.append(v)
            value = next(v)
        }
        return result
    }

    static func name(_ value: LLVMValueRef) -> String {
        var length = 0
        return String(cString: LLVMGetValueName2(value, &length))
    }

    /// A function's compile time, estimated in units of one instruction of an optimised scalar
    /// kernel (~0.37M host instructions to optimise and emit). Fitted to each of e_fm's 66
    /// functions compiled alone (callgrind, opt with `pipeline` + llc): a scalar loop kernel
    /// costs ~14 units more than its instructions (a 15-instruction slice 9.5–18.6M, as the
    /// vectoriser versions its loop and codegen sees every copy); explicit vector code (the
    /// microkernel's tiles) is not vectorised again, half a unit per instruction (a 6 × 16 tile's
    /// 414: 73M); calls-only `optnone` segments a quarter (445: 38M).
    static func compileCost(_ function: LLVMValueRef, optimised: Bool) -> Int {
        var count = 0, blocks = 0, vector = false
        var block = LLVMGetFirstBasicBlock(function)
        while let bb = block {
            blocks += 1
            var instruction = LLVMGetFirstInstruction(bb)
            while let i = instruction {
                count += 1
                if LLVMGetTypeKind(LLVMTypeOf(i)) == LLVMVectorTypeKind { vector = true }
                instruction = LLVMGetNextInstruction(i)
            }
            block = LLVMGetNextBasicBlock(bb)
        }
        if !optimised { return count / 4 }
        return vector ? count / 2 : count + (blocks > 1 ? 14 : 0)
    }

    /// Replaces a defined function by a declaration of the same name, type and visibility.
    static func reduceToDeclaration(_ function: LLVMValueRef, in module: LLVMModuleRef) {
        let symbol = name(function)
        LLVMSetValueName2(function, "", 0)
        let declaration = LLVMAddFunction(module, symbol, LLVMGlobalGetValueType(function))!
        LLVMSetLinkage(declaration, LLVMExternalLinkage)
        LLVMSetVisibility(declaration, LLVMGetVisibility(function))
        LLVMSetFunctionCallConv(declaration, LLVMGetFunctionCallConv(function))
        LLVMReplaceAllUsesWith(function, declaration)
        LLVMDeleteFunction(function)
    }
}
