import Foundation
import Protocol
import Testing
@testable import Transport

@Suite struct NetworkTransportTests {
    static let endpoints: [String] = ["tcp", "unix"]

    func listenEndpoint(_ kind: String) -> Endpoint {
        kind == "tcp" ? .tcp(host: "127.0.0.1", port: 0) : .unix(path: socketPath("l"))
    }

    @Test(arguments: endpoints)
    func handshakeThenMessagesBothWaysInOrder(kind: String) throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        let (client, clientLog) = try makeTransport(.node, node: 3)
        let address = try server.listen(on: listenEndpoint(kind))
        let id = client.connect(to: address, reconnect: false)
        // Messages sent before the handshake are held until it completes.
        for i in 0..<5000 { #expect(client.send(.heartbeat(sequence: UInt64(i), sentAtNanos: 0), on: id) == .queued) }
        serverLog.wait(until: { serverLog.received($0).count == 5000 })
        clientLog.wait(until: { !clientLog.connected($0).isEmpty })
        guard case .connected(_, let peerAsSeenByClient)? = clientLog.all.first else { Issue.record("no connected event"); return }
        #expect(peerAsSeenByClient.role == .coordinator)
        guard case .connected(let serverSide, let peer)? = serverLog.all.first else { Issue.record("no connected event"); return }
        #expect(peer.role == .node && peer.nodeID == 3)
        let sequences = serverLog.received(serverLog.all).map { m -> UInt64 in
            if case .heartbeat(let s, _) = m { return s } else { return .max }
        }
        #expect(sequences == (0..<5000).map(UInt64.init))
        // And back, with a page-sized payload.
        let page = (0..<4096).map { UInt8($0 & 0xFF) }
        #expect(server.send(.lineData(line: 0x8000_1000, exclusive: true, data: page), on: serverSide) == .queued)
        clientLog.wait(until: { clientLog.received($0).contains(.lineData(line: 0x8000_1000, exclusive: true, data: page)) })
        client.shutdown()
        serverLog.wait(until: { !serverLog.disconnects($0).isEmpty })
        server.shutdown()
        #expect(client.shutDownCleanly && server.shutDownCleanly)
    }
}
