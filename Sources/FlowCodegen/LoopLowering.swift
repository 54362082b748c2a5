import CLLVM
import FlowIR

/// `fixed_point` regions: a loop calling the body function until convergence.
extension OpLowering {
    /// u ← body(u, captured…) from u = initial, at most `sweeps` times, stopping once no element
    /// moved by more than tolerance·(1 + |u|) (tolerance > 0): the interpreter's semantics.
    /// The next iterate and the body's workspace live in the kernel's scratch.
    func fixedPoint(_ node: Node) throws {
        guard case .int(let index)? = node.attributes["body"], case .int(let sweeps)? = node.attributes["sweeps"],
              case .float(let tolerance)? = node.attributes["tolerance"], let body = f.bodies[index], let scratch = f.kernelScratch,
              let weights = f.kernelWeights else {
            fatalError("fixed_point lowered with its body")
        }
        let u = node.results[0], type = g.type(of: u)
        let samples: IRBuilder.Value = type.batched ? f.batch! : b.i64(1)
        let count = b.mul(samples, b.i64(type.elementsPerSample))
        let current = f.address(u), initial = f.address(node.operands[0])
        let next = scratch
        let bodyWorkspace = b.element(scratch, b.mul(samples, b.i64(2 * MemoryPlan.rounded(type.elementsPerSample))))
        b.loop(count) { i in b.store(b.load(initial, i), current, i) }
        let sweep = b.variable("sweep", type: b.i64), moved = b.variable("moved", type: b.i1)
        LLVMBuildStore(b.builder, b.i64(0), sweep)
        let header = b.block("sweep"), run = b.block("run"), exit = b.block("converged")
        b.branch(header)
        b.position(at: header)
        let s = LLVMBuildLoad2(b.builder, b.i64, sweep, "")!
        b.condBranch(LLVMBuildICmp(b.builder, LLVMIntSLT, s, b.i64(sweeps), "")!, run, exit)
        b.position(at: run)
        let captured = node.operands.dropFirst().map { f.address($0) }
        _ = b.call(body.function, body.type, [current] + captured + [next, f.batch!, bodyWorkspace, weights])
        LLVMBuildStore(b.builder, LLVMConstInt(b.i1, 0, 0), moved)
        b.loop(count) { i in
            let old = b.load(current, i), new = b.load(next, i)
            let limit = b.fmul(b.f32(tolerance), b.fadd(b.f32(1), b.intrinsic("llvm.fabs", [old])))
            let far = b.fcmp(LLVMRealUGT, b.intrinsic("llvm.fabs", [b.fsub(new, old)]), limit)
            LLVMBuildStore(b.builder, LLVMBuildOr(b.builder, LLVMBuildLoad2(b.builder, b.i1, moved, "")!, far, "")!, moved)
            b.store(new, current, i)
        }
        LLVMBuildStore(b.builder, b.add(s, b.i64(1)), sweep)
        let stop: IRBuilder.Value = tolerance > 0 ? LLVMBuildNot(b.builder, LLVMBuildLoad2(b.builder, b.i1, moved, "")!, "")! : LLVMConstInt(b.i1, 0, 0)!
        b.condBranch(stop, exit, header)
        b.position(at: exit)
    }
}
