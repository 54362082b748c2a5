import Foundation
import Synchronization

/// Persistent threads that split one call's batch over the cores. `DispatchQueue.concurrentPerform`
/// wakes parked threads on every call (~20 µs here, a tenth of a batch-256 MeanFlow call); these
/// workers spin for `spinNanoseconds` after each job before parking on a condition variable, so
/// back-to-back calls (a sampling loop, a benchmark) start at once. The caller is participant 0.
/// One job at a time: a call that finds the pool busy (another thread's call in flight) runs
/// its participants through concurrentPerform instead.
final class WorkerPool: @unchecked Sendable {
    /// One worker per processor beyond the caller's.
    static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))
    static let spinNanoseconds: UInt64 = 200_000

    private let workers: Int
    /// Bumped (release) once per job, after `job` is set: a worker that sees a new generation
    /// (acquire) sees the job.
    private let generation = Atomic<Int>(0)
    /// Workers that have not finished the current job (each decrements with release after its part).
    private let unfinished = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let parked = NSCondition()
    private nonisolated(unsafe) var job: (participants: Int, body: @Sendable (Int) -> Void)?

    private init(workers: Int) {
        self.workers = workers
        for index in 0..<workers {
            let thread = Thread { [self] in work(participant: index + 1) }
            thread.name = "flowc-worker-\(index + 1)"
            thread.start()
        }
    }

    /// Runs body(0), …, body(participants − 1) concurrently and returns when all have returned.
    func run(participants: Int, _ body: @Sendable (Int) -> Void) {
        guard participants > 1 else { body(0); return }
        guard participants <= workers + 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            DispatchQueue.concurrentPerform(iterations: participants, execute: body)
            return
        }
        withoutActuallyEscaping(body) { body in
            job = (participants, body)
            unfinished.store(workers, ordering: .relaxed)
            parked.lock()
            generation.add(1, ordering: .releasing)
            parked.broadcast()
            parked.unlock()
            body(0)
            var spins = 0
            while unfinished.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 1000 { sched_yield() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func work(participant: Int) {
        var seen = 0
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            while generation.load(ordering: .acquiring) == seen {
                guard DispatchTime.now().uptimeNanoseconds - start > WorkerPool.spinNanoseconds else { continue }
                parked.lock()
                while generation.load(ordering: .acquiring) == seen { parked.wait() }
                parked.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if let job, participant < job.participants { job.body(participant) }
            unfinished.subtract(1, ordering: .releasing)
        }
    }
}
