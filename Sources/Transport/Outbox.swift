import Foundation
import Protocol

/// A connection's send queue, shared between sender threads and the loop thread.
/// Senders encode frames straight into `staged` under the lock; the loop takes the
/// whole staged run at once for one write. `inFlight` counts bytes handed to the
/// kernel but not yet confirmed, so the bound covers everything not yet written.
final class Outbox: @unchecked Sendable {
    private let lock = NSLock()
    private var staged = WireWriter(reservingCapacity: 64 << 10)
    private var inFlight = 0
    private var scheduled = false
    private var blocked = false
    private(set) var established = false
    private(set) var closed = false
    let limit: Int

    init(limit: Int) { self.limit = limit }

    enum Enqueue { case queued(schedule: Bool), full, closed }

    func enqueue(_ message: Message) -> Enqueue {
        lock.lock()
        defer { lock.unlock() }
        if closed { return .closed }
        if staged.bytes.count + inFlight >= limit {
            blocked = true
            return .full
        }
        message.encodeFrame(into: &staged)
        let schedule = established && !scheduled
        if schedule { scheduled = true }
        return .queued(schedule: schedule)
    }

    /// Loop thread: moves the staged bytes into `buffer` (swapped, not copied) and
    /// counts them in flight. Returns nothing before the handshake completes.
    func take(into buffer: inout [UInt8]) {
        lock.lock()
        scheduled = false
        if established && !staged.bytes.isEmpty {
            swap(&staged.bytes, &buffer)
            inFlight += buffer.count
        }
        lock.unlock()
    }

    /// Loop thread: a write of `count` bytes completed. Returns whether senders were
    /// refused and the queue is now below half its bound (emit `writable`), and whether
    /// more is staged.
    func written(_ count: Int) -> (wake: Bool, more: Bool) {
        lock.lock()
        defer { lock.unlock() }
        inFlight -= count
        let wake = blocked && staged.bytes.count + inFlight < limit / 2
        if wake { blocked = false }
        return (wake, !staged.bytes.isEmpty && established)
    }

    /// Staged and in-flight bytes (what the bound counts).
    var pendingBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return staged.bytes.count + inFlight
    }

    var hasStaged: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !staged.bytes.isEmpty
    }

    func setEstablished(_ value: Bool) {
        lock.lock()
        established = value
        lock.unlock()
    }

    /// The incarnation ended: what was queued is dropped.
    func reset(closeForGood: Bool) {
        lock.lock()
        staged.bytes.removeAll(keepingCapacity: true)
        inFlight = 0
        scheduled = false
        blocked = false
        established = false
        if closeForGood { closed = true }
        lock.unlock()
    }
}
