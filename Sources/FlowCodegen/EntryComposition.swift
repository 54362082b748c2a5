import CFlowcABI
import CLLVM

/// An entry point of a flow as two functions run in turn, so that the flow is derived, lowered
/// and compiled once rather than once per entry point:
///
///     flowc_log_prob(x)  = density(flowc_forward(x))      log p_base(z) + logdet
///     flowc_sample(ε)    = flowc_inverse(base(ε))          z = loc + scale·ε, then x = f⁻¹(z)
///
/// (`EntryPoints.baseLogDensity` and `EntryPoints.baseTransform`; the graphs the interpreter runs
/// for these entry points are the same compositions, as one graph.) The values passed between
/// the two (z and logdet, or z) sit at the start of the workspace, each rounded up to 16 floats
/// (64 bytes: every workspace starts 64-byte aligned), and the callees' workspace after them.
/// Each callee checks its own inputs and outputs (a non-finite value returns
/// FLOWC_ERROR_NONFINITE_OUTPUT from whichever produced it, as the whole entry point would); the
/// composition checks the batch and its own buffers for overlap, and returns the first error.
enum EntryComposition {
    /// A buffer a call reads or writes: one of the entry point's (its input, then its outputs)
    /// or one passed between the calls.
    enum Buffer {
        case parameter(Int)
        case passed(Int)
    }

    /// A function with the entry points' signature: (buffers..., batch, workspace, weights) → status.
    struct Call {
        let function: String
        let buffers: [Buffer]
        /// Its workspace in floats: fixed + batch · perSample.
        let workspace: (fixed: Int, perSample: Int)
    }

    /// Emits `symbol`(input, outputs..., batch, workspace, weights) running `calls` in turn.
    /// `parameterFloats`: floats per sample of the input and each output; `passedFloats`: of each
    /// buffer passed between the calls. Returns the entry point's workspace in floats.
    static func emit(_ b: IRBuilder, symbol: String, parameterFloats: [Int], passedFloats: [Int], calls: [Call]) -> (fixed: Int, perSample: Int) {
        // ⌈n/16⌉·16 ≤ n + 15 for each passed buffer of batch · floats values
        let workspace = (fixed: 15 * passedFloats.count + calls.map(\.workspace.fixed).max()!,
                         perSample: passedFloats.reduce(0, +) + calls.map(\.workspace.perSample).max()!)
        let pointer = b.pointer
        let f = b.declare(symbol, b.functionType(b.i32, Array(repeating: pointer, count: parameterFloats.count) + [b.i64, pointer, pointer]))
        b.begin(f)
        let parameters = parameterFloats.indices.map { b.parameter($0) }
        let (batch, space, weights) = (b.parameter(parameterFloats.count), b.parameter(parameterFloats.count + 1), b.parameter(parameterFloats.count + 2))
        FunctionLowering.returnIfBadBatch(b, batch)
        // the entry points' rule: no output may overlap another buffer, nor the input the workspace
        FunctionLowering.returnIfBuffersOverlap(b, parameters: parameters, floatsPerSample: parameterFloats, inputs: 1, batch: batch,
                                                workspace: space, workspaceFloats: workspace, code: FLOWC_ERROR_OVERLAP)
        var passed: [IRBuilder.Value] = [], start = b.i64(0)
        for floats in passedFloats {
            passed.append(b.element(space, start))
            start = b.add(start, LLVMBuildAnd(b.builder, b.add(b.mul(batch, b.i64(floats)), b.i64(15)), b.i64(-16), "")!)
        }
        let calleeSpace = b.element(space, start)
        for (index, call) in calls.enumerated() {
            let arguments = call.buffers.map { buffer -> IRBuilder.Value in
                switch buffer {
                case .parameter(let p): return parameters[p]
                case .passed(let p): return passed[p]
                }
            }
            let type = b.functionType(b.i32, Array(repeating: pointer, count: arguments.count) + [b.i64, pointer, pointer])
            let status = b.call(LLVMGetNamedFunction(b.module, call.function)!, type, arguments + [batch, calleeSpace, weights])
            if index == calls.count - 1 {
                b.ret(status)
            } else {
                let failed = b.block("\(call.function)_failed"), succeeded = b.block("\(call.function)_succeeded")
                b.condBranch(LLVMBuildICmp(b.builder, LLVMIntNE, status, b.i32(Int(FLOWC_OK)), "")!, failed, succeeded)
                b.position(at: failed)
                b.ret(status)
                b.position(at: succeeded)
            }
        }
        return workspace
    }
}
