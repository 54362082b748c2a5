import CFlowcABI
import Foundation
import Synchronization

/// Persistent threads that split one call's batch (or one product) over the cores.
/// `DispatchQueue.concurrentPerform` wakes parked threads on every call (~20 µs here, a tenth of
/// a batch-256 MeanFlow call); these workers spin for `spinNanoseconds` after each job before
/// parking on a condition variable, so back-to-back calls start at once. The participants of a
/// job are claimed, not assigned: the caller and the workers take the next unclaimed index
/// until none is left, so a worker that is not running (the other core busy with another
/// process) delays nothing — the caller runs its share too. One job at a time: a call that
/// finds the pool busy (another thread's call in flight) runs its participants through
/// concurrentPerform instead. The two halves of a split product or row region (the compiled
/// model's parallel hook) go through a leaner lane of their own (`split`): f_meanflow's batch-1
/// sample 5.68 µs against 5.96 through the job path, on average over four processes each
/// (runs with both pools in one process also move with where each pool's worker runs).
final class WorkerPool: @unchecked Sendable {
    /// One worker per processor beyond the caller's.
    static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))
    static let spinNanoseconds: UInt64 = 200_000

    let workers: Int
    private let busy = Atomic<Bool>(false)
    private let padding0 = CacheLinePadding()
    /// generation << 32 | participants << 16 | next unclaimed index. A new job stores a new
    /// generation (release) after setting `job`, and clears `job` only after every index has
    /// completed. A worker reads `job` after seeing a new generation and runs it only for
    /// indices of that generation it claims: a job it read after the caller moved on (stale, or
    /// half-written by the next job) is never run, since every index of the old generation is
    /// claimed by then and the next generation's are not its own.
    private let state = Atomic<Int>(0)
    private let padding1 = CacheLinePadding()
    /// Indices of the current job that have returned.
    private let completed = Atomic<Int>(0)
    private let padding2 = CacheLinePadding()
    /// Workers waiting on `parked` (not spinning).
    private let parkedWorkers = Atomic<Int>(0)
    private let parked = NSCondition()
    /// Requests to wake the parked workers without work (`wakeParkedWorkers`), counted under
    /// `parked`'s lock.
    private let wakeRequests = Atomic<Int>(0)
    /// The current job: a C function called with its context and an index — a split product's
    /// own task, or `callClosure` with a pointer to a Swift closure on the caller's stack. No
    /// Swift closure is copied to another thread, so no reference count is touched by two cores
    /// (that, and the condition's lock, cost e_fm's batch-1 sample ~2.5 µs over 16 splits).
    private nonisolated(unsafe) var job: (task: SplitTask, context: UnsafeMutableRawPointer?)?
    private let padding3 = CacheLinePadding()
    /// The split lane (see `split`): the caller's post — the task's and context's bits, then
    /// the generation — on one line; the worker's claim and completion on another.
    private let laneTask = Atomic<UInt>(0), laneContext = Atomic<UInt>(0), laneGeneration = Atomic<Int>(0), laneCallerCPU = Atomic<Int>(-1)
    private let padding4 = CacheLinePadding()
    private let laneClaimed = Atomic<Int>(0)
    private let padding5 = CacheLinePadding()
    private let laneDone = Atomic<Int>(0)
    private let padding6 = CacheLinePadding()
    /// Workers running a job's indices (a batch's chunks), not watching the split lane: while
    /// every worker is, a split declines at once (the kernel computes its product whole) rather
    /// than run half 0 and then wait as long again for a worker that cannot come. (A batch-256
    /// call in chunks of at most 16 rows offered every product's halves: 2-thread times,
    /// median of 7 blocks of calls, processes of both versions alternated: e_fm's sample
    /// 6.2–7.1 → 4.3–4.9 ms, TarFlow's log_prob 23.2 → 12.7 ms, d_glow's sample 1.11 → 0.63 ms,
    /// f_meanflow's 0.98 → 0.82 ms.)
    private let workersInJobs = Atomic<Int>(0)
    private let padding7 = CacheLinePadding()
    /// Callers' only: taken while a split is in flight (one at a time), and the last generation.
    private let laneBusy = Atomic<Bool>(false)
    private nonisolated(unsafe) var laneLast = 0

    private init(workers: Int) {
        self.workers = workers
        for index in 0..<workers {
            let thread = Thread { [self] in work() }
            thread.name = "flowc-worker-\(index + 1)"
            thread.start()
        }
    }

    /// Runs body(0), …, body(participants − 1) concurrently and returns when all have returned.
    func run(participants: Int, _ body: @Sendable (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var closure = body
            withUnsafeMutablePointer(to: &closure) { pointer in
                run(participants: participants, whenBusy: { DispatchQueue.concurrentPerform(iterations: participants, execute: body) },
                    task: WorkerPool.callClosure, context: UnsafeMutableRawPointer(pointer))
            }
        }
    }

    /// The task of a Swift closure job: calls the closure `context` points to.
    private static let callClosure: SplitTask = { context, index in
        context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(Int(index))
    }

    /// task(context, 0), …, task(context, participants − 1) as `run` when the pool is idle and
    /// this thread is not in `withoutSplitting`; otherwise runs nothing and returns false (a
    /// product split inside a call that already runs on the pool, or a single-threaded caller:
    /// the compiled kernel then computes it whole). Whether splitting pays on this machine is
    /// `SplitChooser`'s call, made around whole calls.
    func runIfIdle(participants: Int, task: SplitTask, context: UnsafeMutableRawPointer?) -> Bool {
        guard pthread_getspecific(WorkerPool.noSplitting) == nil else { return false }
        if participants == 2 { return split(task: task, context: context) }
        var ran = true
        run(participants: participants, whenBusy: { ran = false }, task: task, context: context)
        return ran
    }

    /// task(context, 0) here and task(context, 1) on a worker, when the lane is free (else
    /// false). A split product's halves take ~1 µs, so the hand-over is kept to a few cache-line
    /// transfers: the post is one line and no fence; the worker claims half 1 on its own line
    /// (a CAS, so the caller can take it instead) and marks it done there. The caller never
    /// waits for a worker that has not claimed: after its half it claims the other itself if
    /// it is still unclaimed (the worker parked or descheduled). While every worker is inside a
    /// job (a batch's chunks) it declines at once (`workersInJobs`).
    private func split(task: SplitTask, context: UnsafeMutableRawPointer?) -> Bool {
        guard workers > 0, workersInJobs.load(ordering: .relaxed) < workers, laneBusy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        let generation = laneLast + 1
        laneLast = generation
        laneTask.store(UInt(bitPattern: unsafeBitCast(task, to: Int.self)), ordering: .relaxed)
        laneContext.store(UInt(bitPattern: context), ordering: .relaxed)
        laneCallerCPU.store(Int(flowc_current_cpu()), ordering: .relaxed)
        laneGeneration.store(generation, ordering: .releasing)
        let start = flowc_ticks()
        task(context, 0)
        // A worker that took half 1 finishes about when half 0 does: wait for it up to as long
        // again without touching its claim (a read would cost its next claim a cache-line
        // transfer), then take half 1 if it is still unclaimed.
        let halfDone = flowc_ticks(), patience = halfDone &- start
        var spins = 0
        while laneDone.load(ordering: .acquiring) < generation {
            flowc_spin_pause()
            spins += 1
            if spins % 16 == 0 && flowc_ticks() &- halfDone > patience { break }
        }
        let claimed = laneDone.load(ordering: .acquiring) < generation ? laneClaimed.load(ordering: .acquiring) : generation
        if claimed < generation, laneClaimed.compareExchange(expected: claimed, desired: generation, ordering: .acquiringAndReleasing).exchanged {
            task(context, 1)
            // a parked worker takes the next split (rare: parking takes 200 µs idle)
            wakeParkedWorkers()
        } else {
            while laneDone.load(ordering: .acquiring) < generation {
                spins += 1
                if spins > 100_000 { sched_yield() } else { flowc_spin_pause() }
            }
        }
        laneBusy.store(false, ordering: .releasing)
        return true
    }

    /// A worker's part of split `generation`: half 1, unless the caller has claimed it.
    private func helpSplit(_ generation: Int) {
        let task = laneTask.load(ordering: .relaxed), context = laneContext.load(ordering: .relaxed)
        let claimed = laneClaimed.load(ordering: .relaxed)
        // a later generation's post may have replaced task and context: then the caller has
        // finished this one, claiming half 1 itself, and the CAS fails
        guard claimed < generation, laneClaimed.compareExchange(expected: claimed, desired: generation, ordering: .acquiringAndReleasing).exchanged else { return }
        unsafeBitCast(Int(bitPattern: task), to: SplitTask.self)(UnsafeMutableRawPointer(bitPattern: context), 1)
        laneDone.store(generation, ordering: .releasing)
    }

    private func run(participants: Int, whenBusy: () -> Void, task: SplitTask, context: UnsafeMutableRawPointer?) {
        guard participants > 1 else { return task(context, 0) }
        guard workers > 0, participants < 1 << 16, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return whenBusy()
        }
        job = (task, context)
        completed.store(0, ordering: .relaxed)
        let generation = (state.load(ordering: .relaxed) >> 32) + 1
        // Spinning workers see the new generation by themselves; the condition is signalled
        // only when one has parked. Dekker's pattern, both sides sequentially consistent: a
        // worker counts itself parked, then reads `state`; the caller stores `state`, then
        // reads the count; at least one of the two sees the other's write, so no worker
        // sleeps through a job.
        state.store(generation << 32 | participants << 16, ordering: .sequentiallyConsistent)
        if parkedWorkers.load(ordering: .sequentiallyConsistent) > 0 {
            parked.lock()
            parked.broadcast()
            parked.unlock()
        }
        runClaimed(generation: generation, task: task, context: context)
        var spins = 0
        while completed.load(ordering: .acquiring) < participants {
            spins += 1
            if spins > 1000 { sched_yield() } else { flowc_spin_pause() }
        }
        job = nil
        busy.store(false, ordering: .releasing)
    }

    /// Claims and runs indices of job `generation` until none is left.
    private func runClaimed(generation: Int, task: SplitTask, context: UnsafeMutableRawPointer?) {
        var current = state.load(ordering: .acquiring)
        while current >> 32 == generation, current & 0xFFFF < (current >> 16) & 0xFFFF {
            let (claimed, found) = state.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if claimed {
                task(context, Int64(current & 0xFFFF))
                completed.add(1, ordering: .releasing)
                current = state.load(ordering: .acquiring)
            } else {
                current = found
            }
        }
    }

    private func work() {
        var seen = 0, laneSeen = 0
        while true {
            var start = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            while state.load(ordering: .acquiring) >> 32 == seen {
                let lane = laneGeneration.load(ordering: .acquiring)
                if lane != laneSeen {
                    laneSeen = lane
                    // A worker woken from the park by the caller runs on the caller's core: the
                    // scheduler puts a wakee near its waker, and on this VM kept it there for
                    // 20–60 ms, the other vCPU halted, while the caller ran both halves. It moves.
                    let callerCPU = laneCallerCPU.load(ordering: .relaxed)
                    if callerCPU >= 0, callerCPU == Int(flowc_current_cpu()) { flowc_leave_cpu(Int32(callerCPU)) }
                    helpSplit(lane)
                    start = DispatchTime.now().uptimeNanoseconds   // spin on after a split, as after a job
                    continue
                }
                flowc_spin_pause()
                spins += 1
                guard spins % 64 == 0, DispatchTime.now().uptimeNanoseconds - start > WorkerPool.spinNanoseconds else { continue }
                parked.lock()
                parkedWorkers.add(1, ordering: .sequentiallyConsistent)
                let wakes = wakeRequests.load(ordering: .relaxed)
                while state.load(ordering: .sequentiallyConsistent) >> 32 == seen && laneGeneration.load(ordering: .sequentiallyConsistent) == laneSeen
                        && wakeRequests.load(ordering: .relaxed) == wakes {
                    parked.wait()
                }
                parkedWorkers.subtract(1, ordering: .relaxed)
                parked.unlock()
                start = DispatchTime.now().uptimeNanoseconds   // spin again before parking
            }
            seen = state.load(ordering: .acquiring) >> 32
            // a job is posted before its generation, and cleared only after every index has
            // completed: a worker that sees the generation reads the current job
            guard let (task, context) = job else { continue }
            workersInJobs.add(1, ordering: .relaxed)
            runClaimed(generation: seen, task: task, context: context)
            workersInJobs.subtract(1, ordering: .relaxed)
        }
    }

    /// Whether a worker is awake — spinning for work or running some — rather than parked (or
    /// there is no worker to wait for).
    var hasAwakeWorker: Bool { workers == 0 || parkedWorkers.load(ordering: .relaxed) < workers }

    /// Wakes the parked workers (they spin for `spinNanoseconds` again, then park).
    func wakeParkedWorkers() {
        guard parkedWorkers.load(ordering: .relaxed) > 0 else { return }
        parked.lock()
        wakeRequests.add(1, ordering: .relaxed)
        parked.broadcast()
        parked.unlock()
    }

    // MARK: products split inside a call (ColumnSplit in FlowCodegen)

    /// Set (non-nil) on a thread inside `withoutSplitting`.
    private static let noSplitting: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `body` with the products of compiled calls on this thread kept on this thread
    /// (a model opened with threads = 1).
    static func withoutSplitting<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(noSplitting)
        pthread_setspecific(noSplitting, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(noSplitting, previous) }
        return try body()
    }

    typealias SplitTask = @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void
    /// The parallel-for a compiled model calls to split a product of few rows over the cores
    /// (installed with its `flowc_set_parallel` when the model is opened).
    /// Returns 1 when it ran the tasks, 0 when it declines.
    static let splitHook: @convention(c) (Int64, SplitTask?, UnsafeMutableRawPointer?) -> Int32 = { tasks, task, context in
        guard let task, WorkerPool.shared.workers > 0 else { return 0 }
        return WorkerPool.shared.runIfIdle(participants: Int(tasks), task: task, context: context) ? 1 : 0
    }
}

/// 64 bytes between atomics that different cores write (no false sharing).
struct CacheLinePadding { let bytes: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0) }
