import Foundation

/// Hands items from the transport's loop thread to another thread (a node's execution
/// thread): `post` from any thread, `take` or `wait` on the consumer. The consumer can
/// block until something arrives or a deadline passes, so an idle node sleeps instead
/// of spinning; `wake` interrupts a wait without an item (stop requests, timers).
public final class Mailbox<Item>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Item] = []
    private var woken = false

    public init() {}

    public func post(_ item: Item) {
        condition.lock()
        items.append(item)
        condition.signal()
        condition.unlock()
    }

    private var stopReason: String?
    private var wakeHandler: (@Sendable () -> Void)?

    /// Also called by `wake` and `requestStop` (outside the lock): a consumer that waits
    /// somewhere else (in a driven transport's loop) is woken there.
    public func onWake(_ handler: @escaping @Sendable () -> Void) {
        condition.lock()
        wakeHandler = handler
        condition.unlock()
    }

    /// Asks the consumer to stop (any thread): wakes it, and `stopRequested` tells it why.
    /// The first reason given is kept.
    public func requestStop(_ reason: String) {
        condition.lock()
        if stopReason == nil { stopReason = reason }
        woken = true
        condition.signal()
        let handler = wakeHandler
        condition.unlock()
        handler?()
    }

    public var stopRequested: String? {
        condition.lock()
        defer { condition.unlock() }
        return stopReason
    }

    /// Interrupts a `wait` that would otherwise sleep.
    public func wake() {
        condition.lock()
        woken = true
        condition.signal()
        let handler = wakeHandler
        condition.unlock()
        handler?()
    }

    /// Everything posted so far, oldest first, without blocking.
    public func takeAll() -> [Item] {
        condition.lock()
        defer { condition.unlock() }
        let out = items
        items.removeAll(keepingCapacity: true)
        woken = false
        return out
    }

    /// Blocks until an item is posted, `wake` is called or `deadline` passes; returns
    /// everything posted (possibly nothing).
    public func wait(until deadline: Date) -> [Item] {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !woken {
            if !condition.wait(until: deadline) { break }
        }
        let out = items
        items.removeAll(keepingCapacity: true)
        woken = false
        return out
    }

    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count
    }
}
