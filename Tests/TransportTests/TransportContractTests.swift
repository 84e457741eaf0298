import Foundation
import Protocol
import Testing
@testable import Transport

/// The contract every MessageTransport keeps, checked on the libuv transport (TCP and
/// Unix sockets) and on its in-memory twin, so that tests of the layers above that
/// use the twin hold on the real thing.
@Suite struct TransportContractTests {
    static let kinds = ["memory", "tcp", "unix"]

    final class Fixture {
        let kind: String
        let network = InMemoryNetwork()
        var made: [any MessageTransport] = []
        init(_ kind: String) { self.kind = kind }

        func transport(_ role: PeerRole, _ node: Int32, secret: [UInt8] = testSecret, maxQueued: Int = 8 << 20)
            throws -> (any MessageTransport, EventLog)
        {
            let log = EventLog()
            let config = TransportConfiguration(secret: secret, identity: identity(role, node), maxQueuedBytes: maxQueued,
                                                backoff: Backoff(initialMillis: 20, maximumMillis: 100))
            let t: any MessageTransport = kind == "memory"
                ? InMemoryTransport(network: network, configuration: config) { log.record($0) }
                : try NetworkTransport(configuration: config) { log.record($0) }
            made.append(t)
            return (t, log)
        }

        var endpoint: Endpoint {
            kind == "unix" ? .unix(path: socketPath("contract")) : .tcp(host: "127.0.0.1", port: 0)
        }

        deinit { for t in made { t.shutdown() } }
    }

    @Test(arguments: kinds)
    func deliversInOrderBothWays(kind: String) throws {
        let f = Fixture(kind)
        let (server, serverLog) = try f.transport(.coordinator, -1)
        let (client, clientLog) = try f.transport(.node, 7)
        let address = try server.listen(on: f.endpoint)
        let id = client.connect(to: address, reconnect: false)
        for i in 0..<1000 { _ = client.send(.ping(sequence: UInt64(i), payload: [UInt8(i & 0xFF)]), on: id) }
        serverLog.wait(until: { serverLog.received($0).count == 1000 })
        let got = serverLog.received(serverLog.all)
        #expect(got == (0..<1000).map { .ping(sequence: UInt64($0), payload: [UInt8($0 & 0xFF)]) })
        guard case .connected(let back, let peer)? = serverLog.all.first else { Issue.record("no connection"); return }
        #expect(peer.nodeID == 7 && peer.role == .node)
        _ = server.send(.pong(sequence: 1, payload: []), on: back)
        clientLog.wait(until: { clientLog.received($0) == [.pong(sequence: 1, payload: [])] })
    }

    @Test(arguments: kinds)
    func wrongSecretNeverConnects(kind: String) throws {
        let f = Fixture(kind)
        let (server, serverLog) = try f.transport(.coordinator, -1)
        let (client, clientLog) = try f.transport(.node, 1, secret: Array("nope".utf8))
        let address = try server.listen(on: f.endpoint)
        _ = client.connect(to: address, reconnect: false)
        clientLog.wait(until: { !clientLog.disconnects($0).isEmpty })
        #expect(clientLog.connected(clientLog.all).isEmpty)
        #expect(serverLog.connected(serverLog.all).isEmpty)
    }

    @Test(arguments: kinds)
    func peerShutdownIsADisconnectAndReconnectFollowsARestart(kind: String) throws {
        let f = Fixture(kind)
        let fixed: Endpoint = kind == "unix" ? .unix(path: socketPath("restart")) : .tcp(host: "127.0.0.1", port: 0)
        let (server, _) = try f.transport(.coordinator, -1)
        let address = try server.listen(on: fixed)
        let (client, clientLog) = try f.transport(.node, 1)
        let id = client.connect(to: address, reconnect: true)
        clientLog.wait(until: { clientLog.connected($0).count == 1 })
        server.shutdown()
        clientLog.wait(until: { clientLog.disconnects($0).contains { $0.0 == id && $0.2 } })
        let (again, againLog) = try f.transport(.coordinator, -1)
        _ = try again.listen(on: address)
        clientLog.wait(until: { clientLog.connected($0).count == 2 })
        _ = client.send(.heartbeat(sequence: 5, sentAtNanos: 5), on: id)
        againLog.wait(until: { againLog.received($0) == [.heartbeat(sequence: 5, sentAtNanos: 5)] })
        client.close(id)
        clientLog.wait(until: { clientLog.disconnects($0).contains { $0.0 == id && !$0.2 } })
        #expect(client.send(.heartbeat(sequence: 6, sentAtNanos: 6), on: id) == .closed)
    }

    @Test(arguments: kinds)
    func closeIsSeenByThePeer(kind: String) throws {
        let f = Fixture(kind)
        let (server, serverLog) = try f.transport(.coordinator, -1)
        let (client, _) = try f.transport(.node, 1)
        let address = try server.listen(on: f.endpoint)
        let id = client.connect(to: address, reconnect: false)
        _ = client.send(.leave(reason: "bye"), on: id)
        client.close(id)
        // The message queued before close is still delivered, then the disconnect.
        serverLog.wait(until: { !serverLog.disconnects($0).isEmpty })
        #expect(serverLog.received(serverLog.all) == [.leave(reason: "bye")])
    }
}
