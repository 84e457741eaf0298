import Foundation
import Logging
import Protocol

/// Where a listener accepts or a connection goes: TCP (host and port) or a Unix-domain
/// socket (a path). Written `tcp:HOST:PORT`, `HOST:PORT` or `unix:PATH`.
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public init(parsing text: String) throws(TransportError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .invalidEndpoint(text, "empty socket path") }
            self = .unix(path: path)
            return
        }
        let rest = text.hasPrefix("tcp:") ? String(text.dropFirst(4)) : text
        guard let colon = rest.lastIndex(of: ":") else { throw .invalidEndpoint(text, "expected HOST:PORT") }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
            throw .invalidEndpoint(text, "expected HOST:PORT with a port from 0 to 65535")
        }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// A logical connection. For an outgoing connection with reconnect it names the peer
/// across reconnects; `connected`/`disconnected` events mark each incarnation.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
}

/// What the transport tells the layer above. Delivered on the transport's own thread
/// (the event loop), in order per connection; the handler must not block.
public enum TransportEvent: Sendable {
    /// The handshake succeeded: the peer proved the cluster secret.
    case connected(ConnectionID, peer: Hello)
    case received(ConnectionID, Message)
    /// A connection whose send queue was full has drained below half its bound.
    case writable(ConnectionID)
    /// The connection ended (with the reason); messages queued on it were dropped.
    /// With `willReconnect`, the transport is dialling again with backoff.
    case disconnected(ConnectionID, reason: String, willReconnect: Bool)
}

public enum SendResult: Sendable, Equatable {
    case queued
    /// The send queue holds its bound: wait for `writable` (backpressure).
    case full
    /// The connection is closed for good.
    case closed
}

public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidEndpoint(String, String)
    case system(operation: String, code: Int32, message: String)
    case shutDown

    public var description: String {
        switch self {
        case .invalidEndpoint(let text, let why): return "invalid address '\(text)': \(why)"
        case .system(let op, _, let message): return "\(op): \(message)"
        case .shutDown: return "the transport is shut down"
        }
    }
}

/// Exponential backoff with jitter for reconnects: `initial`, doubling up to `maximum`.
public struct Backoff: Sendable, Equatable {
    public var initialMillis: UInt64
    public var maximumMillis: UInt64
    public private(set) var attempt = 0

    public init(initialMillis: UInt64 = 50, maximumMillis: UInt64 = 2000) {
        self.initialMillis = initialMillis
        self.maximumMillis = maximumMillis
    }

    /// The delay before the next attempt: base·2^attempt capped at maximum, minus up to
    /// a quarter of jitter so that nodes restarted together do not dial in lock step.
    public mutating func nextDelay<R: RandomNumberGenerator>(using rng: inout R) -> UInt64 {
        let shift = UInt64(min(attempt, 20))
        let base = min(maximumMillis, initialMillis << shift)
        attempt += 1
        return base - (base / 4 == 0 ? 0 : UInt64.random(in: 0...(base / 4), using: &rng))
    }

    public mutating func reset() { attempt = 0 }
}

public struct TransportConfiguration: Sendable {
    /// The cluster secret both ends must share.
    public var secret: [UInt8]
    /// What this process says about itself in every handshake (the nonce is replaced
    /// by a fresh one per connection).
    public var identity: Hello
    /// Bytes a connection may hold queued before `send` answers `.full`.
    public var maxQueuedBytes: Int
    public var payloadLimit: Int
    public var handshakeTimeoutMillis: UInt64
    public var backoff: Backoff

    public init(secret: [UInt8], identity: Hello, maxQueuedBytes: Int = 8 << 20,
                payloadLimit: Int = FrameHeader.defaultPayloadLimit, handshakeTimeoutMillis: UInt64 = 5000,
                backoff: Backoff = Backoff()) {
        precondition(!secret.isEmpty, "the cluster secret must not be empty")
        self.secret = secret
        self.identity = identity
        self.maxQueuedBytes = maxQueuedBytes
        self.payloadLimit = payloadLimit
        self.handshakeTimeoutMillis = handshakeTimeoutMillis
        self.backoff = backoff
    }
}

/// The interface the node and the coordinator program against; `Transport` (libuv)
/// and `InMemoryTransport` (tests) implement it. All methods may be called from any thread.
public protocol MessageTransport: AnyObject, Sendable {
    /// Starts accepting connections; returns the bound endpoint (with the port chosen
    /// when 0 was asked for).
    func listen(on endpoint: Endpoint) throws(TransportError) -> Endpoint
    /// Dials `endpoint`; with `reconnect`, dials again with backoff whenever the
    /// connection fails or drops, until `close`.
    func connect(to endpoint: Endpoint, reconnect: Bool) -> ConnectionID
    func send(_ message: Message, on connection: ConnectionID) -> SendResult
    /// Closes one connection (queued messages are still written first).
    func close(_ connection: ConnectionID)
    /// Closes everything and stops; no event is delivered after it returns.
    func shutdown()
    /// What later handshakes say about this process (say, the listen address once a
    /// listener is bound); connections already established keep what they said.
    func updateIdentity(_ identity: Hello)

    /// Whether the thread that made the transport drives it: events are then delivered
    /// only inside `poll` and `wait(until:)` on that thread. Otherwise the transport
    /// runs on threads of its own and these three do nothing.
    var isDriven: Bool { get }
    /// Driven: handles what is ready now (sends what was queued, delivers what arrived).
    func poll()
    /// Driven: like `poll`, but first blocks until something arrives, `wakeUp` is
    /// called or `deadline` passes.
    func wait(until deadline: Date)
    /// Driven: writes what was queued on this thread now, without looking for input
    /// (cheap when nothing is queued): a node calls it before it runs a slice, so an
    /// answer does not wait for the slice to end.
    func sendQueued()
    /// Driven: interrupts a `wait` (any thread).
    func wakeUp()
    /// Bytes accepted by `send` and not yet written to the kernel, over every
    /// connection (staged and in flight): how far this process's sending lags.
    var queuedBytes: Int { get }
}

extension MessageTransport {
    public var queuedBytes: Int { 0 }
    public var isDriven: Bool { false }
    public func poll() {}
    public func wait(until deadline: Date) {}
    public func sendQueued() {}
    public func wakeUp() {}
}

/// Makes the transport a runtime (node, coordinator) talks through: libuv sockets in
/// production, `InMemoryTransport` when a test runs a whole cluster in one process.
/// The handler receives the transport's events on the transport's own thread.
public typealias TransportFactory = @Sendable (TransportConfiguration, @escaping @Sendable (TransportEvent) -> Void) throws -> any MessageTransport

public enum Transports {
    /// libuv TCP and Unix-domain sockets; `driven`: run by the calling thread (`poll`,
    /// `wait(until:)`) instead of a thread of its own.
    public static func network(logger: Logger, driven: Bool = false) -> TransportFactory {
        { configuration, handler in try NetworkTransport(configuration: configuration, logger: logger, driven: driven, handler: handler) }
    }

    /// Endpoints of `network`, in this process.
    public static func inMemory(_ network: InMemoryNetwork) -> TransportFactory {
        { configuration, handler in InMemoryTransport(network: network, configuration: configuration, handler: handler) }
    }
}
