import Foundation
import Logging
import Protocol
import Transport

/// A CLI's connection to the coordinator: requests (`vmRequest` → `vmResponse`) and
/// the stream of console output and VM status for the VMs it created. Used from one
/// thread.
public final class ClusterClient {
    public struct ClientError: Error, CustomStringConvertible {
        public var description: String
    }

    private let transport: any MessageTransport
    private let connection: ConnectionID
    private let mailbox = Mailbox<TransportEvent>()
    private var stash: [Message] = []
    private var connected = false
    private var lost: String?
    private var nextRequest: UInt64 = 1

    public init(coordinator: Endpoint, secret: [UInt8], logger: Logger, transport: TransportFactory? = nil) throws {
        let mailbox = self.mailbox
        let identity = Hello(role: .client, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32),
                             name: "disco-cli-\(getpid())")
        let make = transport ?? Transports.network(logger: logger)
        self.transport = try make(TransportConfiguration(secret: secret, identity: identity)) { mailbox.post($0) }
        connection = self.transport.connect(to: coordinator, reconnect: false)
    }

    deinit { transport.shutdown() }

    private func absorb(_ events: [TransportEvent]) {
        for e in events {
            switch e {
            case .connected: connected = true
            case .received(_, let m): stash.append(m)
            case .disconnected(_, let reason, _): lost = reason
            case .writable: break
            }
        }
    }

    /// Waits until the handshake with the coordinator is done.
    public func waitConnected(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !connected {
            if let lost { throw ClientError(description: "cannot reach the coordinator: \(lost)") }
            guard Date() < deadline else { throw ClientError(description: "the coordinator did not answer within \(Int(timeout)) s") }
            absorb(mailbox.wait(until: deadline))
        }
    }

    public func request(_ r: VMRequest, timeout: TimeInterval = 30) throws -> (ok: Bool, body: String) {
        let (ok, _, body) = try requestWithVM(r, timeout: timeout)
        return (ok, body)
    }

    /// A request and its whole answer: whether it succeeded, the VM it created (for
    /// `create`), and the coordinator's text.
    public func requestWithVM(_ r: VMRequest, timeout: TimeInterval = 30) throws -> (ok: Bool, vm: UInt32?, body: String) {
        let id = nextRequest
        nextRequest += 1
        guard transport.send(.vmRequest(id: id, request: r), on: connection) == .queued else {
            throw ClientError(description: "the connection to the coordinator is closed")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let i = stash.firstIndex(where: { if case .vmResponse(id, _, _, _) = $0 { return true } else { return false } }),
               case .vmResponse(_, let ok, let vm, let body) = stash.remove(at: i) {
                return (ok, vm, body)
            }
            if let lost { throw ClientError(description: "lost the coordinator: \(lost)") }
            guard Date() < deadline else { throw ClientError(description: "no answer from the coordinator within \(Int(timeout)) s") }
            absorb(mailbox.wait(until: deadline))
        }
    }

    /// Messages that arrived (console output, VM status), waiting until `deadline` if
    /// there are none. Throws once the coordinator is gone.
    public func events(until deadline: Date) throws -> [Message] {
        if stash.isEmpty {
            if let lost { throw ClientError(description: "lost the coordinator: \(lost)") }
            absorb(mailbox.wait(until: deadline))
        } else {
            absorb(mailbox.takeAll())
        }
        defer { stash.removeAll() }
        return stash
    }

    /// Wakes a thread blocked in `events(until:)`.
    public func wake() { mailbox.wake() }

    public func send(_ m: Message) {
        _ = transport.send(m, on: connection)
    }

    public func close() {
        transport.close(connection)
        transport.shutdown()
    }
}
