import CLibUV
import Foundation
import Logging
import Protocol

/// The loop-thread side shared by listeners and connections: configuration, the
/// event handler, and the table of live connections (locked: senders look up there).
final class TransportCore: @unchecked Sendable {
    let loop: EventLoop
    let configuration: TransportConfiguration
    let logger: Logger
    private let handler: @Sendable (TransportEvent) -> Void
    private let lock = NSLock()
    private var connections: [ConnectionID: StreamConnection] = [:]
    private var listeners: [Listener] = []
    private var nextID: UInt64 = 1
    private(set) var isShuttingDown = false
    /// Tests only: libuv set-up calls (by function name) that answer this status
    /// instead of being made. Loop thread only.
    var injectedFailures: [String: Int32] = [:]

    init(configuration: TransportConfiguration, logger: Logger, driven: Bool = false,
         handler: @escaping @Sendable (TransportEvent) -> Void) throws(TransportError) {
        self.loop = try EventLoop(driven: driven)
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
    }

    private let identityLock = NSLock()
    private var currentIdentity: Hello?

    /// This process's hello with a fresh nonce.
    func identity() -> Hello {
        identityLock.lock()
        var h = currentIdentity ?? configuration.identity
        identityLock.unlock()
        h.nonce = HandshakeStateMachine.makeNonce()
        return h
    }

    func setIdentity(_ hello: Hello) {
        identityLock.lock()
        currentIdentity = hello
        identityLock.unlock()
    }

    /// Makes the libuv set-up call `call`, named `name`, unless a test made it fail.
    @inline(__always) func uv(_ name: String, _ call: () -> Int32) -> Int32 {
        if !injectedFailures.isEmpty, let status = injectedFailures[name] { return status }
        return call()
    }

    func deliver(_ event: TransportEvent) {
        if !isShuttingDown { handler(event) }
    }

    func newConnection(_ direction: StreamConnection.Direction) -> StreamConnection {
        lock.lock()
        let id = ConnectionID(rawValue: nextID)
        nextID += 1
        let c = StreamConnection(id: id, direction: direction, core: self)
        connections[id] = c
        lock.unlock()
        return c
    }

    func connection(_ id: ConnectionID) -> StreamConnection? {
        lock.lock()
        defer { lock.unlock() }
        return connections[id]
    }

    func forget(_ c: StreamConnection) {
        lock.lock()
        connections[c.id] = nil
        lock.unlock()
    }

    var connectionCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return connections.count
    }

    var queuedBytes: Int {
        lock.lock()
        let all = Array(connections.values)
        lock.unlock()
        return all.reduce(0) { $0 + $1.outbox.pendingBytes }
    }

    func adopt(_ stream: UnsafeMutablePointer<uv_stream_t>) {
        newConnection(.incoming).adopt(stream)
    }

    func addListener(_ endpoint: Endpoint) throws(TransportError) -> Endpoint {
        let l = Listener(core: self, endpoint: endpoint)
        try l.start()
        listeners.append(l)
        logger.info("listening on \(l.bound)")
        return l.bound
    }

    /// Loop thread: close every handle; the loop ends when the last close callback ran.
    func closeAll() {
        isShuttingDown = true
        for l in listeners { l.close() }
        listeners.removeAll()
        lock.lock()
        let all = Array(connections.values)
        lock.unlock()
        for c in all { c.closeImmediately() }
        loop.closeOwnHandles()
    }
}

/// The cluster transport on libuv: one event loop, TCP and Unix listeners and
/// connections, framed and authenticated (HandshakeStateMachine), with per-turn write
/// coalescing, bounded send queues, reconnect with backoff.
///
/// The loop runs on a thread of its own, or (`driven`) on the thread that made the
/// transport, inside its calls to `poll` and `wait(until:)`: a node's execution thread
/// then reads and writes its sockets itself between VCPU slices, so a remote miss's
/// request and answer never wait for another thread to be scheduled.
///
/// Thread safety: every method may be called from any thread (`poll` and `wait` only
/// from the driving thread). Events reach `handler` on the loop's thread.
public final class NetworkTransport: MessageTransport, @unchecked Sendable {
    private let core: TransportCore
    private let stateLock = NSLock()
    private var isShutDown = false

    public init(configuration: TransportConfiguration, logger: Logger = Logger(label: "disco.transport"), driven: Bool = false,
                handler: @escaping @Sendable (TransportEvent) -> Void) throws(TransportError) {
        // A write to a peer that just vanished must fail with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        core = try TransportCore(configuration: configuration, logger: logger, driven: driven, handler: handler)
        if !driven { core.loop.start(name: "disco-transport") }
    }

    public var isDriven: Bool { core.loop.isDriven }

    public func poll() {
        if core.loop.isDriven { core.loop.drive() }
    }

    public func wait(until deadline: Date) {
        if core.loop.isDriven { core.loop.drive(until: deadline) }
    }

    public func sendQueued() {
        if core.loop.isDriven { core.loop.flushLoopDirty() }
    }

    public func wakeUp() {
        if core.loop.isDriven { core.loop.wake() }
    }

    public func listen(on endpoint: Endpoint) throws(TransportError) -> Endpoint {
        let core = self.core
        let result = core.loop.executeAndWait { () -> Result<Endpoint, TransportError> in
            do throws(TransportError) { return .success(try core.addListener(endpoint)) } catch { return .failure(error) }
        }
        guard let result else { throw .shutDown }
        return try result.get()
    }

    public func connect(to endpoint: Endpoint, reconnect: Bool) -> ConnectionID {
        let c = core.newConnection(.outgoing(endpoint, reconnect: reconnect))
        core.loop.execute { c.dial() }
        return c.id
    }

    public func send(_ message: Message, on connection: ConnectionID) -> SendResult {
        guard let c = core.connection(connection) else { return .closed }
        switch c.outbox.enqueue(message) {
        case .queued(let schedule):
            if schedule { core.loop.markDirty(c) }
            return .queued
        case .full: return .full
        case .closed: return .closed
        }
    }

    public func close(_ connection: ConnectionID) {
        guard let c = core.connection(connection) else { return }
        core.loop.execute { c.close() }
    }

    /// Tests only: makes the libuv set-up call `name` (say "uv_tcp_init") answer `status`
    /// from now on, without being made; nil makes it real again.
    func injectFailure(_ name: String, status: Int32?) {
        let core = self.core
        _ = core.loop.executeAndWait { core.injectedFailures[name] = status }
    }

    public func updateIdentity(_ identity: Hello) {
        core.setIdentity(identity)
    }

    /// Live connections (established, handshaking or waiting to reconnect).
    public var connectionCount: Int { core.connectionCount }

    public var queuedBytes: Int { core.queuedBytes }

    /// Whether the last shutdown found every libuv handle closed (uv_loop_close succeeded).
    public private(set) var shutDownCleanly = false

    public func shutdown() {
        stateLock.lock()
        let first = !isShutDown
        isShutDown = true
        stateLock.unlock()
        guard first else { return }
        let core = self.core
        if core.loop.isDriven {
            // What was sent last (a node's leave, a coordinator's vmStop) goes out first.
            if core.loop.isOnLoopThread { core.loop.drive() }
            core.closeAll()
        } else {
            core.loop.execute { core.closeAll() }
        }
        core.loop.join()
        shutDownCleanly = core.loop.closeStatus == 0
        if !shutDownCleanly {
            core.logger.error("event loop closed with handles still open: \(uvErrorName(Int(core.loop.closeStatus)))")
        }
    }

    deinit {
        shutdown()
    }
}
