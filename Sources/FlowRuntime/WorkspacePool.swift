import Foundation

/// Entry-point workspaces kept between calls. A fresh allocation per call costs more than small
/// batches' work: glibc serves large blocks with mmap, so every call faulted in and zeroed new
/// pages (f_meanflow at batch 256 spent ~10% of a call there). A call takes a workspace that is
/// large enough (or allocates one) and gives it back; the pool then holds at most as many as
/// were ever in use at once. Thread-safe.
final class WorkspacePool: @unchecked Sendable {
    private struct Block { let address: UnsafeMutableRawPointer; let bytes: Int }
    private var idle: [Block] = []
    private let lock = NSLock()

    /// A workspace of at least `bytes` bytes, 64-byte aligned; return it with `giveBack`.
    func take(bytes: Int) -> (address: UnsafeMutableRawPointer, bytes: Int) {
        let wanted = max(bytes, 64)
        lock.lock()
        let found = idle.firstIndex { $0.bytes >= wanted }.map { idle.remove(at: $0) }
        // a block too small for this call is freed rather than kept forever
        let tooSmall = found == nil && !idle.isEmpty ? idle.removeLast() : nil
        lock.unlock()
        tooSmall?.address.deallocate()
        if let found { return (found.address, found.bytes) }
        return (UnsafeMutableRawPointer.allocate(byteCount: wanted, alignment: 64), wanted)
    }

    func giveBack(_ address: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        idle.append(Block(address: address, bytes: bytes))
        lock.unlock()
    }

    deinit { for block in idle { block.address.deallocate() } }
}
