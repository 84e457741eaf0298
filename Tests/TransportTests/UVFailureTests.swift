import Foundation
import Protocol
import Testing
@testable import Transport

/// A libuv set-up call that fails costs only the listener or connection it was for: the
/// caller hears why (uv_strerror's text), no handle is left open, and the transport
/// goes on working once the call succeeds again. Failures are injected (on Linux these
/// calls do not fail on their own).
@Suite struct UVFailureTests {
    static let status: Int32 = -12  // UV_ENOMEM
    static var text: String { uvErrorName(Int(status)) }

    @Test(arguments: [("tcp", "uv_tcp_init"), ("tcp", "uv_tcp_getsockname"), ("unix", "uv_pipe_init")])
    func listenFailsWithTheSystemError(kind: String, call: String) throws {
        let (server, _) = try makeTransport(.coordinator, node: -1)
        let endpoint: Endpoint = kind == "tcp" ? .tcp(host: "127.0.0.1", port: 0) : .unix(path: socketPath("listenfail"))
        server.injectFailure(call, status: Self.status)
        #expect {
            try server.listen(on: endpoint)
        } throws: { error in
            guard case .system(let operation, let code, let message) = error as? TransportError else { return false }
            return operation.contains(call) && code == Self.status && message == Self.text
        }
        if case .unix(let path) = endpoint { #expect(!FileManager.default.fileExists(atPath: path)) }
        server.injectFailure(call, status: nil)
        _ = try server.listen(on: endpoint)
        server.shutdown()
        #expect(server.shutDownCleanly, "a handle was left open")
    }

    @Test(arguments: [("tcp", "uv_tcp_init"), ("unix", "uv_pipe_init"), ("tcp", "uv_timer_init"),
                      ("tcp", "uv_timer_start"), ("unix", "uv_read_start")])
    func dialFailsOnlyThatConnection(kind: String, call: String) throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        let (client, clientLog) = try makeTransport(.node, node: 1)
        let address = try server.listen(on: kind == "tcp" ? .tcp(host: "127.0.0.1", port: 0) : .unix(path: socketPath("dialfail")))
        client.injectFailure(call, status: Self.status)
        let failed = client.connect(to: address, reconnect: false)
        clientLog.wait(until: { !clientLog.disconnects($0).isEmpty })
        #expect(clientLog.connected(clientLog.all).isEmpty)
        if let (id, reason, again) = clientLog.disconnects(clientLog.all).first {
            #expect(id == failed && !again)
            #expect(reason.contains(call) && reason.contains(Self.text), "\(reason)")
        }
        client.injectFailure(call, status: nil)
        _ = client.connect(to: address, reconnect: false)
        clientLog.wait(until: { !clientLog.connected($0).isEmpty })
        serverLog.wait(until: { !serverLog.connected($0).isEmpty })
        client.shutdown()
        server.shutdown()
        #expect(client.shutDownCleanly && server.shutDownCleanly, "a handle was left open")
    }

    /// The reconnect delay needs a timer; without one the connection gives up, and says so.
    @Test func reconnectWithoutATimerGivesUp() throws {
        let (client, clientLog) = try makeTransport(.node, node: 1)
        client.injectFailure("uv_timer_init", status: Self.status)
        // Nobody listens there: the dial fails and a reconnect would be due.
        let id = client.connect(to: .unix(path: socketPath("nobody")), reconnect: true)
        clientLog.wait(until: { !clientLog.disconnects($0).isEmpty })
        if let (got, reason, again) = clientLog.disconnects(clientLog.all).first {
            #expect(got == id && !again)
            #expect(reason.contains("uv_timer_init") && reason.contains(Self.text), "\(reason)")
        }
        #expect(client.send(.heartbeat(sequence: 1, sentAtNanos: 0), on: id) == .closed)
        Thread.sleep(forTimeInterval: 0.1)  // the loop forgets the connection just after telling
        #expect(clientLog.disconnects(clientLog.all).count == 1)
        #expect(client.connectionCount == 0)
        client.shutdown()
        #expect(client.shutDownCleanly, "a handle was left open")
    }

    /// An accepted stream that cannot get a handle would wedge the listener (libuv
    /// accepts nothing more until it is taken): the listener closes instead, and the
    /// dialer hears the connection end.
    @Test func acceptWithoutAHandleClosesTheListener() throws {
        let (server, _) = try makeTransport(.coordinator, node: -1)
        let (client, clientLog) = try makeTransport(.node, node: 1)
        let address = try server.listen(on: .tcp(host: "127.0.0.1", port: 0))
        server.injectFailure("uv_tcp_init", status: Self.status)
        _ = client.connect(to: address, reconnect: false)
        clientLog.wait(until: { !clientLog.disconnects($0).isEmpty })
        // The listener is gone: the next dial is refused.
        _ = client.connect(to: address, reconnect: false)
        clientLog.wait(until: { clientLog.disconnects($0).count == 2 })
        #expect(clientLog.connected(clientLog.all).isEmpty)
        if let reason = clientLog.disconnects(clientLog.all).last?.1 {
            #expect(reason.contains(uvErrorName(-111)), "\(reason)")  // ECONNREFUSED
        }
        client.shutdown()
        server.shutdown()
        #expect(client.shutDownCleanly && server.shutDownCleanly, "a handle was left open")
    }
}
