import Foundation
import Protocol
import Testing
@testable import Transport

/// Collects a transport's events for a test to wait on.
final class EventLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [TransportEvent] = []

    func record(_ e: TransportEvent) {
        condition.lock()
        events.append(e)
        condition.broadcast()
        condition.unlock()
    }

    var all: [TransportEvent] {
        condition.lock()
        defer { condition.unlock() }
        return events
    }

    /// Waits until `predicate` holds for the events so far (or the timeout passes).
    @discardableResult
    func wait(timeout: TimeInterval = 10, _ what: String = "", until predicate: ([TransportEvent]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(events) {
            if !condition.wait(until: deadline) {
                Issue.record("timed out waiting for \(what); events: \(events.map(describe).suffix(10))")
                return false
            }
        }
        return true
    }

    func connected(_ e: [TransportEvent]) -> [ConnectionID] {
        e.compactMap { if case .connected(let id, _) = $0 { return id } else { return nil } }
    }
    func received(_ e: [TransportEvent]) -> [Message] {
        e.compactMap { if case .received(_, let m) = $0 { return m } else { return nil } }
    }
    func disconnects(_ e: [TransportEvent]) -> [(ConnectionID, String, Bool)] {
        e.compactMap { if case .disconnected(let id, let r, let w) = $0 { return (id, r, w) } else { return nil } }
    }
}

func describe(_ e: TransportEvent) -> String {
    switch e {
    case .connected(let id, let peer): return "connected(\(id), \(peer.role) \(peer.nodeID))"
    case .received(let id, let m): return "received(\(id), \(m.type))"
    case .writable(let id): return "writable(\(id))"
    case .disconnected(let id, let r, let w): return "disconnected(\(id), \(r), reconnect: \(w))"
    }
}

let testSecret = Array("test cluster secret".utf8)

func identity(_ role: PeerRole, _ node: Int32, name: String = "") -> Hello {
    Hello(role: role, nodeID: node, nonce: [UInt8](repeating: 0, count: 32), cpus: 2, memoryBytes: 1 << 30, name: name)
}

func makeTransport(_ role: PeerRole = .node, node: Int32 = 0, secret: [UInt8] = testSecret, maxQueued: Int = 8 << 20,
                   handshakeMillis: UInt64 = 5000) throws -> (NetworkTransport, EventLog) {
    let log = EventLog()
    let config = TransportConfiguration(secret: secret, identity: identity(role, node), maxQueuedBytes: maxQueued,
                                        handshakeTimeoutMillis: handshakeMillis,
                                        backoff: Backoff(initialMillis: 20, maximumMillis: 200))
    let t = try NetworkTransport(configuration: config) { log.record($0) }
    return (t, log)
}

/// A unique Unix socket path in the temporary directory.
func socketPath(_ name: String) -> String {
    NSTemporaryDirectory() + "disco-test-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max)).sock"
}
