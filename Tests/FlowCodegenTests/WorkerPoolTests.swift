@testable import FlowRuntime
import Foundation
import Synchronization
import XCTest

/// The worker pool's split lane (`WorkerPool.split`, the parallel hook's two halves): every half
/// runs exactly once, and a caller whose worker is busy with another job does not wait for it.
final class WorkerPoolTests: XCTestCase {
    /// What the halves of one test's splits record.
    final class Record: @unchecked Sendable {
        let halfZero = Atomic<Int>(0), halfOne = Atomic<Int>(0)
        var runs: [Int] { [halfZero.load(ordering: .relaxed), halfOne.load(ordering: .relaxed)] }
    }

    static let countHalf: WorkerPool.SplitTask = { context, index in
        let record = Unmanaged<Record>.fromOpaque(context!).takeUnretainedValue()
        if index == 0 { record.halfZero.add(1, ordering: .relaxed) } else { record.halfOne.add(1, ordering: .relaxed) }
    }

    /// 20 000 splits back to back: each half ran once per split (a half claimed by both the
    /// caller and the worker, or by neither, changes a count).
    func testEachHalfRunsOncePerSplit() throws {
        try XCTSkipIf(WorkerPool.shared.workers == 0, "one processor: the hook declines every split")
        let record = Record()
        let context = Unmanaged.passUnretained(record).toOpaque()
        var accepted = 0
        for _ in 0..<20_000 where WorkerPool.shared.runIfIdle(participants: 2, task: Self.countHalf, context: context) { accepted += 1 }
        XCTAssertEqual(accepted, 20_000, "the lane is free between calls of one thread")
        XCTAssertEqual(record.runs, [20_000, 20_000])
    }

    /// While the worker sleeps 300 ms inside another thread's job, a split declines at once
    /// (returns false within 100 ms, no half run): the kernel then computes its product whole
    /// instead of running half 0 and waiting for a worker that cannot come.
    func testASplitDoesNotWaitForABusyWorker() throws {
        try XCTSkipIf(WorkerPool.shared.workers == 0, "one processor: the hook declines every split")
        let busyThread = Atomic<Int>(0)
        // a job whose two participants sleep; retried until a worker (not the posting thread)
        // took one, so that the worker is busy for the split below
        for _ in 0..<20 {
            WorkerPool.shared.run(participants: 2) { _ in }   // the worker spins after a job
            let started = Atomic<Int>(0)
            let job = Thread {
                let poster = pthread_self()
                WorkerPool.shared.run(participants: 2) { _ in
                    if pthread_equal(pthread_self(), poster) == 0 { busyThread.store(1, ordering: .relaxed) }
                    started.add(1, ordering: .relaxed)
                    usleep(300_000)
                }
            }
            job.start()
            while started.load(ordering: .relaxed) == 0 { usleep(100) }
            usleep(1000)
            if busyThread.load(ordering: .relaxed) == 1 { break }
            while started.load(ordering: .relaxed) < 2 || !job.isFinished { usleep(1000) }
        }
        try XCTSkipIf(busyThread.load(ordering: .relaxed) == 0, "no worker took the job's second participant in 20 tries")
        let record = Record()
        let start = Date()
        XCTAssertFalse(WorkerPool.shared.runIfIdle(participants: 2, task: Self.countHalf, context: Unmanaged.passUnretained(record).toOpaque()),
                       "a split accepted while the only worker is inside a job")
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.1, "the split waited for the busy worker")
        XCTAssertEqual(record.runs, [0, 0])
        usleep(350_000)   // the sleeping job ends before the next test
    }
}
