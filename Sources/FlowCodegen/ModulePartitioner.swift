import CLLVM
import FlowIR

/// Splits a module into parts, each in its own LLVM context, that can be optimised and emitted
/// on separate threads (LLVM's pipeline is single-threaded; a model's hundreds of kernels are
/// independent functions). Every part is a copy of the whole module (through bitcode) in which
/// the functions of the other parts are reduced to declarations; functions go to the part with
/// the fewest instructions so far, largest first; the constants (embedded weights) all stay in
/// part 0 and are declarations elsewhere. Internal symbols become external with hidden
/// visibility first, so that parts can reference each other's and the linked shared object
/// still exports only the ABI's symbols.
struct ModulePartitioner {
    let parts: Int

    /// The parts' modules and their contexts (the caller disposes both).
    func split(_ module: LLVMModuleRef) throws -> [(context: LLVMContextRef, module: LLVMModuleRef)] {
        ModulePartitioner.exposeInternalSymbols(module)
        let owner = assignFunctions(module)
        let bitcode = LLVMWriteBitcodeToMemoryBuffer(module)!
        defer { LLVMDisposeMemoryBuffer(bitcode) }
        return try (0..<parts).map { part in
            let context = LLVMContextCreate()!
            let copy = LLVMCreateMemoryBufferWithMemoryRangeCopy(LLVMGetBufferStart(bitcode), LLVMGetBufferSize(bitcode), "flowc-part")!
            defer { LLVMDisposeMemoryBuffer(copy) }
            var parsed: LLVMModuleRef?
            guard LLVMParseBitcodeInContext2(context, copy, &parsed) == 0, let parsed else {
                LLVMContextDispose(context)
                throw FlowError("internal: the generated module does not read back from bitcode", at: .synthetic("codegen"))
            }
            for function in ModulePartitioner.definedFunctions(parsed) where owner[ModulePartitioner.name(function)] != part {
                ModulePartitioner.reduceToDeclaration(function, in: parsed)
            }
            if part != 0 {
                var global = LLVMGetFirstGlobal(parsed)
                while let g = global {
                    if LLVMIsDeclaration(g) == 0 { LLVMSetInitializer(g, nil) }
                    global = LLVMGetNextGlobal(g)
                }
            }
            return (context, parsed)
        }
    }

    /// Function name → part, balancing instruction counts.
    private func assignFunctions(_ module: LLVMModuleRef) -> [String: Int] {
        let functions = ModulePartitioner.definedFunctions(module).map { (ModulePartitioner.name($0), ModulePartitioner.instructionCount($0)) }
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
        var function = LLVMGetFirstFunction(module)
        while let f = function { expose(f); function = LLVMGetNextFunction(f) }
        var global = LLVMGetFirstGlobal(module)
        while let g = global { expose(g); global = LLVMGetNextGlobal(g) }
    }

    static func definedFunctions(_ module: LLVMModuleRef) -> [LLVMValueRef] {
        var result: [LLVMValueRef] = []
        var function = LLVMGetFirstFunction(module)
        while let f = function {
            if LLVMIsDeclaration(f) == 0 { result.append(f) }
            function = LLVMGetNextFunction(f)
        }
        return result
    }

    static func name(_ value: LLVMValueRef) -> String {
        var length = 0
        return String(cString: LLVMGetValueName2(value, &length))
    }

    static func instructionCount(_ function: LLVMValueRef) -> Int {
        var count = 0
        var block = LLVMGetFirstBasicBlock(function)
        while let bb = block {
            var instruction = LLVMGetFirstInstruction(bb)
            while let i = instruction { count += 1; instruction = LLVMGetNextInstruction(i) }
            block = LLVMGetNextBasicBlock(bb)
        }
        return count
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
