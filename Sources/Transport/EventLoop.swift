import CLibUV
import Foundation

/// A libuv loop, run by a thread of its own (`start`) or driven by the thread that made
/// it (`driven`: that thread calls `drive` between its own work, so a node's execution
/// thread reads and writes its sockets itself, with no hand-off to another thread).
/// Other threads hand it work through `execute` (a locked queue plus uv_async_send,
/// which libuv coalesces) and mark connections with staged output through
/// `markDirty`. Dirty connections are flushed once per loop turn (in the async callback
/// for other threads' sends, in a prepare callback for sends made on the loop thread),
/// which is where many small messages become one write.
final class EventLoop: @unchecked Sendable {
    let loop: UnsafeMutablePointer<uv_loop_t>
    private let async: UnsafeMutablePointer<uv_async_t>
    private let prepare: UnsafeMutablePointer<uv_prepare_t>
    /// Driven loops: bounds a blocking `drive`.
    private let timer: UnsafeMutablePointer<uv_timer_t>
    let isDriven: Bool
    private let lock = NSLock()
    private var commands: [() -> Void] = []
    private var dirtyFromOtherThreads: [StreamConnection] = []
    // Loop-thread only:
    private var dirtyOnLoop: [StreamConnection] = []
    private var loopThread: pthread_t?
    private let finished = DispatchSemaphore(value: 0)
    private var stopping = false
    /// The result of uv_loop_close after the loop ended: 0 when every handle was closed.
    private(set) var closeStatus: Int32 = 0

    init(driven: Bool = false) throws(TransportError) {
        isDriven = driven
        loop = uvAllocate(uv_loop_t.self)
        try uvCheck(uv_loop_init(loop), "uv_loop_init")
        async = uvAllocate(uv_async_t.self)
        prepare = uvAllocate(uv_prepare_t.self)
        timer = uvAllocate(uv_timer_t.self)
        if driven { loopThread = pthread_self() }
        let me = Unmanaged.passUnretained(self).toOpaque()
        loop.pointee.data = me
        try uvCheck(uv_async_init(loop, async) { handle in
            EventLoop.from(handle!.pointee.loop).drainCommands()
        }, "uv_async_init")
        try uvCheck(uv_prepare_init(loop, prepare), "uv_prepare_init")
        try uvCheck(uv_prepare_start(prepare) { handle in
            EventLoop.from(handle!.pointee.loop).flushLoopDirty()
        }, "uv_prepare_start")
        uv_unref(asHandle(prepare))
        try uvCheck(uv_timer_init(loop, timer), "uv_timer_init")
        uv_unref(asHandle(timer))
    }

    deinit {
        loop.deallocate()
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>?) -> EventLoop {
        Unmanaged<EventLoop>.fromOpaque(loop!.pointee.data).takeUnretainedValue()
    }

    func start(name: String) {
        let thread = Thread { [self] in
            loopThread = pthread_self()
            // Nonzero only if uv_stop ended it with handles still active; uv_loop_close
            // then reports that (closeStatus).
            uv_run(loop, UV_RUN_DEFAULT)
            closeStatus = uv_loop_close(loop)
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Driven loops, on the thread that made the loop: handles what is ready (flushes
    /// staged output, reads, runs callbacks) and returns; with a `deadline`, first
    /// blocks until something happens, `wake` is called from another thread, or the
    /// deadline passes.
    func drive(until deadline: Date? = nil) {
        precondition(isDriven && isOnLoopThread, "drive: only a driven loop, on its own thread")
        let millis = deadline.map { $0.timeIntervalSinceNow * 1000 } ?? 0
        guard millis >= 1 else {
            uv_run(loop, UV_RUN_NOWAIT)
            return
        }
        uv_timer_start(timer, { _ in }, UInt64(millis.rounded(.up)), 0)
        uv_run(loop, UV_RUN_ONCE)
        uv_timer_stop(timer)
    }

    /// Interrupts a blocking `drive` (any thread).
    func wake() {
        lock.lock()
        if !stopping { wakeLocked() }
        lock.unlock()
    }

    var isOnLoopThread: Bool {
        guard let t = loopThread else { return false }
        return pthread_equal(t, pthread_self()) != 0
    }

    /// Runs `block` on the loop thread (soon; never inline).
    func execute(_ block: @escaping () -> Void) {
        lock.lock()
        if !stopping {
            commands.append(block)
            wakeLocked()
        }
        lock.unlock()
    }

    /// uv_async_send on the loop's own async handle: on Unix it fails only for a handle
    /// that is not an async handle, and ours is one from init until closeOwnHandles.
    /// Called with `lock` held and `stopping` false: closeOwnHandles sets `stopping`
    /// under the lock before it closes the handle, so no other thread can signal a
    /// handle that is closed or freed.
    private func wakeLocked() {
        let status = uv_async_send(async)
        assert(status == 0, "uv_async_send: \(uvErrorName(Int(status)))")
    }

    /// Runs `block` on the loop thread and waits for its result.
    func executeAndWait<T>(_ block: @escaping () -> T) -> T? {
        if isOnLoopThread { return block() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        lock.lock()
        let accepted = !stopping
        if accepted {
            commands.append {
                result = block()
                done.signal()
            }
            wakeLocked()
        }
        lock.unlock()
        guard accepted else { return nil }
        done.wait()
        return result
    }

    /// `connection` has staged output: flush it this loop turn.
    func markDirty(_ connection: StreamConnection) {
        if isOnLoopThread {
            dirtyOnLoop.append(connection)
            return
        }
        lock.lock()
        if !stopping {
            dirtyFromOtherThreads.append(connection)
            wakeLocked()
        }
        lock.unlock()
    }

    private func drainCommands() {
        lock.lock()
        let work = commands
        let dirty = dirtyFromOtherThreads
        commands.removeAll(keepingCapacity: true)
        dirtyFromOtherThreads.removeAll(keepingCapacity: true)
        lock.unlock()
        for block in work { block() }
        for c in dirty { c.flush() }
    }

    /// Writes the output staged on the loop thread (also called by a driven loop's owner
    /// between its turns, outside uv_run: uv_write starts writing at once).
    func flushLoopDirty() {
        guard !dirtyOnLoop.isEmpty else { return }
        let dirty = dirtyOnLoop
        dirtyOnLoop.removeAll(keepingCapacity: true)
        for c in dirty { c.flush() }
    }

    /// Called on the loop thread once every other handle is closing: closes the loop's
    /// own handles so that uv_run returns.
    func closeOwnHandles() {
        lock.lock()
        stopping = true
        lock.unlock()
        dirtyOnLoop.removeAll()
        uv_close(asHandle(async)) { h in h!.deallocate() }
        uv_close(asHandle(prepare)) { h in h!.deallocate() }
        uv_close(asHandle(timer)) { h in h!.deallocate() }
    }

    /// Waits for the loop thread to finish (after `closeOwnHandles`); a driven loop runs
    /// here, on its own thread, until every handle has closed.
    func join() {
        if isDriven {
            uv_run(loop, UV_RUN_DEFAULT)
            closeStatus = uv_loop_close(loop)
            return
        }
        finished.wait()
    }
}
