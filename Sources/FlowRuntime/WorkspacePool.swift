import Foundation
import Synchronization

/// Entry-point workspaces kept between calls. A fresh allocation per call costs more than small
/// batches' work: glibc serves large blocks with mmap, so every call faulted in and zeroed new
/// pages (f_meanflow at batch 256 spent ~10% of a call there). A call takes a workspace that is
/// large enough (or allocates one) and gives it back; the pool then holds at most as many as
/// were ever in use at once. Thread-safe: the idle blocks are behind a `Mutex` (an NSLock and a
/// class's array took ~0.1 µs of a batch-1 call's ~0.6 µs of bookkeeping, with the array's
/// dynamic exclusivity checks).
final class WorkspacePool: Sendable {
    /// A workspace's memory, owned by whichever call holds it (the pool only while idle).
    private struct Block: @unchecked Sendable { let address: UnsafeMutableRawPointer; let bytes: Int }
    private let idle = Mutex<[Block]>([])

    /// A workspace of at least `bytes` bytes, 64-byte aligned; return it with `giveBack`.
    func take(bytes: Int) -> (address: UnsafeMutableRawPointer, bytes: Int) {
        let wanted = max(bytes, 64)
        let (found, tooSmall) = idle.withLock { idle -> (Block?, Block?) in
            let found = idle.firstIndex { $0.bytes >= wanted }.map { idle.remove(at: $0) }
            // a block too small for this call is freed rather than kept forever
            return (found, found == nil && !idle.isEmpty ? idle.removeLast() : nil)
        }
        tooSmall?.address.deallocate()
        if let found { return (found.address, found.bytes) }
        return (UnsafeMutableRawPointer.allocate(byteCount: wanted, alignment: 64), wanted)
    }

    func giveBack(_ address: UnsafeMutableRawPointer, bytes: Int) {
        let block = Block(address: address, bytes: bytes)
        idle.withLock { $0.append(block) }
    }

    deinit { idle.withLock { for block in $0 { block.address.deallocate() } } }
}
