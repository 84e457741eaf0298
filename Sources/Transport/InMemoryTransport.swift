import Foundation
import Protocol

/// Where an in-memory transport does its work: one dispatch queue per transport (its
/// "loop thread"), or one `ManualExecutor` for the whole network, which runs nothing
/// until a test drives it.
public protocol InMemoryExecutor: AnyObject, Sendable {
    func async(_ block: @escaping @Sendable () -> Void)
    func asyncAfter(milliseconds: UInt64, _ block: @escaping @Sendable () -> Void)
    /// Runs `block` after everything already queued (dispatch), or now (manual: the
    /// caller is the thread that drives the executor).
    func sync(_ block: () -> Void)
}

final class DispatchExecutor: InMemoryExecutor, @unchecked Sendable {
    let queue: DispatchQueue
    init(label: String) { queue = DispatchQueue(label: label) }
    func async(_ block: @escaping @Sendable () -> Void) { queue.async(execute: block) }
    func asyncAfter(milliseconds: UInt64, _ block: @escaping @Sendable () -> Void) {
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(milliseconds)), execute: block)
    }
    func sync(_ block: () -> Void) { queue.sync(execute: block) }
}

/// A deterministic executor: work runs only in `runPending()`, in the order it was
/// queued, on the caller's thread; delayed work waits for `time` to pass its due time.
/// With it and `ManualTime`, a test that drives every runtime from one thread replays
/// the same run every time.
public final class ManualExecutor: InMemoryExecutor, @unchecked Sendable {
    private let lock = NSLock()
    private var ready: [@Sendable () -> Void] = []
    private var delayed: [(due: UInt64, seq: UInt64, block: @Sendable () -> Void)] = []
    private var seq: UInt64 = 0
    private let now: @Sendable () -> UInt64

    /// `now`: the virtual time in nanoseconds (a ManualTime's).
    public init(now: @escaping @Sendable () -> UInt64) { self.now = now }

    public func async(_ block: @escaping @Sendable () -> Void) {
        lock.lock()
        ready.append(block)
        lock.unlock()
    }

    public func asyncAfter(milliseconds: UInt64, _ block: @escaping @Sendable () -> Void) {
        lock.lock()
        seq += 1
        delayed.append((now() + milliseconds * 1_000_000, seq, block))
        lock.unlock()
    }

    public func sync(_ block: () -> Void) { block() }

    /// Runs queued work (and delayed work now due) until none is left; returns how
    /// many blocks ran.
    @discardableResult
    public func runPending() -> Int {
        var count = 0
        while true {
            lock.lock()
            let t = now()
            if let i = delayed.indices.filter({ delayed[$0].due <= t }).min(by: { (delayed[$0].due, delayed[$0].seq) < (delayed[$1].due, delayed[$1].seq) }) {
                ready.append(delayed.remove(at: i).block)
            }
            guard !ready.isEmpty else { lock.unlock(); return count }
            let block = ready.removeFirst()
            lock.unlock()
            block()
            count += 1
        }
    }
}

/// The address space of in-memory transports: a registry of listening endpoints. Each
/// test makes its own network, so tests never see each other's endpoints.
public final class InMemoryNetwork: @unchecked Sendable {
    private let lock = NSLock()
    private var listeners: [Endpoint: InMemoryTransport] = [:]
    private var nextPort = 1
    private let shared: InMemoryExecutor?

    /// Each transport on its own dispatch queue.
    public init() { shared = nil }

    /// Every transport on `executor` (a `ManualExecutor` for deterministic tests).
    public init(executor: InMemoryExecutor) { shared = executor }

    func makeExecutor() -> InMemoryExecutor { shared ?? DispatchExecutor(label: "disco.transport.memory") }

    func bind(_ endpoint: Endpoint, to transport: InMemoryTransport) throws(TransportError) -> Endpoint {
        lock.lock()
        defer { lock.unlock() }
        var bound = endpoint
        if case .tcp(let host, 0) = endpoint {
            bound = .tcp(host: host, port: 40000 + nextPort)
            nextPort += 1
        }
        guard listeners[bound] == nil else {
            throw .system(operation: "bind \(bound)", code: -98, message: "address already in use")
        }
        listeners[bound] = transport
        return bound
    }

    func lookup(_ endpoint: Endpoint) -> InMemoryTransport? {
        lock.lock()
        defer { lock.unlock() }
        return listeners[endpoint]
    }

    func unbind(_ transport: InMemoryTransport) {
        lock.lock()
        listeners = listeners.filter { $0.value !== transport }
        lock.unlock()
    }
}

/// The transport's twin without sockets, for unit tests of the layers above (node,
/// coordinator). It keeps the contract of `NetworkTransport`: the same handshake with
/// the same state machine, frames encoded and decoded with the real codec, per-turn
/// delivery in order on the transport's own thread, bounded queues with `writable`,
/// reconnect with backoff, and `disconnected` when a peer closes or shuts down.
public final class InMemoryTransport: MessageTransport, @unchecked Sendable {
    private final class Link {
        let id: ConnectionID
        let target: Endpoint?
        let reconnect: Bool
        var peer: (transport: InMemoryTransport, id: ConnectionID)?
        var handshake: HandshakeStateMachine
        var decoder: FrameDecoder
        var established = false
        var pendingFrames: [UInt8] = []   // application frames held until established
        var unacknowledged = 0            // bytes sent and not yet processed by the peer
        var blocked = false
        var closed = false
        /// `close` came before the handshake finished: deliver what is pending, then close.
        var closeWhenEstablished = false
        var backoff: Backoff
        init(id: ConnectionID, target: Endpoint?, reconnect: Bool, handshake: HandshakeStateMachine,
             payloadLimit: Int, backoff: Backoff) {
            self.id = id
            self.target = target
            self.reconnect = reconnect
            self.handshake = handshake
            self.decoder = FrameDecoder(payloadLimit: payloadLimit)
            self.backoff = backoff
        }
    }

    private let network: InMemoryNetwork
    private let configuration: TransportConfiguration
    private let handler: @Sendable (TransportEvent) -> Void
    /// Events are delivered here, one at a time, like the libuv loop thread.
    private let queue: InMemoryExecutor
    private let lock = NSLock()
    private var links: [ConnectionID: Link] = [:]
    private var nextID: UInt64 = 1
    private var isShutDown = false

    public init(network: InMemoryNetwork, configuration: TransportConfiguration,
                handler: @escaping @Sendable (TransportEvent) -> Void) {
        self.network = network
        self.queue = network.makeExecutor()
        self.configuration = configuration
        self.handler = handler
    }

    public func listen(on endpoint: Endpoint) throws(TransportError) -> Endpoint {
        try network.bind(endpoint, to: self)
    }

    public func connect(to endpoint: Endpoint, reconnect: Bool) -> ConnectionID {
        let link = makeLink(target: endpoint, reconnect: reconnect)
        queue.async { self.dial(link) }
        return link.id
    }

    public func send(_ message: Message, on connection: ConnectionID) -> SendResult {
        lock.lock()
        guard let link = links[connection], !link.closed else {
            lock.unlock()
            return .closed
        }
        if link.unacknowledged + link.pendingFrames.count >= configuration.maxQueuedBytes {
            link.blocked = true
            lock.unlock()
            return .full
        }
        let frame = message.frame()
        if link.established, let peer = link.peer {
            link.unacknowledged += frame.count
            lock.unlock()
            peer.transport.arrive(frame, on: peer.id, from: (self, link.id))
        } else {
            link.pendingFrames += frame
            lock.unlock()
        }
        return .queued
    }

    public func close(_ connection: ConnectionID) {
        queue.async {
            self.lock.lock()
            let wait = self.links[connection].map { !$0.established && !$0.pendingFrames.isEmpty && $0.peer != nil } ?? false
            if wait { self.links[connection]?.closeWhenEstablished = true }
            self.lock.unlock()
            if !wait { self.drop(connection, reason: "closed", forGood: true, tellPeer: true) }
        }
    }

    public func shutdown() {
        lock.lock()
        let first = !isShutDown
        isShutDown = true
        let ids = Array(links.keys)
        lock.unlock()
        guard first else { return }
        network.unbind(self)
        for id in ids { queue.sync { self.drop(id, reason: "transport shut down", forGood: true, tellPeer: true, quiet: true) } }
        queue.sync {}  // what was queued before the shutdown has run (dispatch)
    }

    public var connectionCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return links.count
    }

    // MARK: - Internals (on `queue` unless noted)

    private func makeLink(target: Endpoint?, reconnect: Bool) -> Link {
        lock.lock()
        defer { lock.unlock() }
        let id = ConnectionID(rawValue: nextID)
        nextID += 1
        let link = Link(id: id, target: target, reconnect: reconnect, handshake: freshHandshake(),
                        payloadLimit: configuration.payloadLimit, backoff: configuration.backoff)
        if isShutDown { link.closed = true } else { links[id] = link }
        return link
    }

    private var identityOverride: Hello?

    public func updateIdentity(_ identity: Hello) {
        lock.lock()
        identityOverride = identity
        lock.unlock()
    }

    /// Called with `lock` held.
    private func freshHandshake() -> HandshakeStateMachine {
        var me = identityOverride ?? configuration.identity
        me.nonce = HandshakeStateMachine.makeNonce()
        return HandshakeStateMachine(local: me, secret: configuration.secret)
    }

    private func dial(_ link: Link) {
        guard !link.closed, let target = link.target else { return }
        guard let listener = network.lookup(target), let peerID = listener.accept(from: (self, link.id)) else {
            retryOrGiveUp(link, reason: "connect to \(target) failed: connection refused", established: false)
            return
        }
        lock.lock()
        link.peer = (listener, peerID)
        link.handshake = freshHandshake()
        link.decoder = FrameDecoder(payloadLimit: configuration.payloadLimit)
        let hello = link.handshake.hello.frame()
        lock.unlock()
        listener.arrive(hello, on: peerID, from: (self, link.id))
    }

    /// Any thread: a dialler reaches this listening transport. Returns the new link's id.
    private func accept(from dialler: (InMemoryTransport, ConnectionID)) -> ConnectionID? {
        let link = makeLink(target: nil, reconnect: false)
        guard !link.closed else { return nil }
        lock.lock()
        link.peer = dialler
        let hello = link.handshake.hello.frame()
        lock.unlock()
        dialler.0.arrive(hello, on: dialler.1, from: (self, link.id))
        return link.id
    }

    /// Any thread: bytes from a peer; processed in order on this transport's queue.
    private func arrive(_ frame: [UInt8], on id: ConnectionID, from sender: (InMemoryTransport, ConnectionID)) {
        queue.async {
            self.process(frame, on: id)
            sender.0.acknowledge(frame.count, on: sender.1)
        }
    }

    private func acknowledge(_ count: Int, on id: ConnectionID) {
        lock.lock()
        guard let link = links[id] else { lock.unlock(); return }
        link.unacknowledged = max(0, link.unacknowledged - count)
        let wake = link.blocked && link.unacknowledged + link.pendingFrames.count < configuration.maxQueuedBytes / 2
        if wake { link.blocked = false }
        lock.unlock()
        if wake { queue.async { self.handler(.writable(id)) } }
    }

    private func process(_ bytes: [UInt8], on id: ConnectionID) {
        lock.lock()
        guard let link = links[id], !link.closed else { lock.unlock(); return }
        link.decoder.append(bytes)
        lock.unlock()
        while true {
            lock.lock()
            let next: Message?
            do { next = try link.decoder.next() } catch {
                lock.unlock()
                drop(id, reason: "bad frame from peer: \(error)", forGood: false, tellPeer: true)
                return
            }
            guard let message = next else { lock.unlock(); return }
            if link.established {
                lock.unlock()
                handler(.received(id, message))
                continue
            }
            let action = link.handshake.receive(message)
            lock.unlock()
            switch action {
            case .none: break
            case .send(let reply):
                if let peer = link.peer { peer.transport.arrive(reply.frame(), on: peer.id, from: (self, id)) }
            case .established(let peer):
                lock.lock()
                link.established = true
                link.backoff.reset()
                let pending = link.pendingFrames
                link.pendingFrames = []
                link.unacknowledged += pending.count
                // Handed over before the lock goes: a `send` that sees the link
                // established from now on queues its frame behind these (`arrive` only
                // enqueues on the peer's executor, it takes no lock).
                if !pending.isEmpty, let target = link.peer { target.transport.arrive(pending, on: target.id, from: (self, id)) }
                lock.unlock()
                handler(.connected(id, peer: peer))
                if link.closeWhenEstablished {
                    drop(id, reason: "closed", forGood: true, tellPeer: true)
                    return
                }
            case .fail(let code, let reason):
                if let peer = link.peer {
                    peer.transport.arrive(Message.error(code: code, message: reason).frame(), on: peer.id, from: (self, id))
                }
                drop(id, reason: reason, forGood: false, tellPeer: true)
                return
            }
        }
    }

    private func drop(_ id: ConnectionID, reason: String, forGood: Bool, tellPeer: Bool, quiet: Bool = false) {
        lock.lock()
        guard let link = links[id], !link.closed else { lock.unlock(); return }
        let established = link.established
        let peer = link.peer
        link.peer = nil
        link.established = false
        link.pendingFrames = []
        link.unacknowledged = 0
        lock.unlock()
        if tellPeer, let peer {
            peer.transport.queue.async {
                peer.transport.drop(peer.id, reason: "peer closed the connection", forGood: false, tellPeer: false)
            }
        }
        if forGood {
            lock.lock()
            link.closed = true
            links[id] = nil
            lock.unlock()
            if !quiet { handler(.disconnected(id, reason: reason, willReconnect: false)) }
        } else {
            retryOrGiveUp(link, reason: reason, established: established)
        }
    }

    private func retryOrGiveUp(_ link: Link, reason: String, established: Bool) {
        lock.lock()
        let reconnect = link.reconnect && !isShutDown && !link.closed
        if !reconnect {
            link.closed = true
            links[link.id] = nil
        }
        var rng = SystemRandomNumberGenerator()
        let delay = reconnect ? link.backoff.nextDelay(using: &rng) : 0
        lock.unlock()
        if established || !reconnect { handler(.disconnected(link.id, reason: reason, willReconnect: reconnect)) }
        if reconnect {
            queue.asyncAfter(milliseconds: delay) { self.dial(link) }
        }
    }
}
