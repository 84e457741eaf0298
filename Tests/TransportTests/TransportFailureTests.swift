import Foundation
import Protocol
import Testing
@testable import Transport

/// Misbehaving peers: each loses only its own connection while others carry on.
@Suite struct TransportFailureTests {
    @Test func wrongSecretIsRejectedOnBothEndsAndOthersCarryOn() throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        let (intruder, intruderLog) = try makeTransport(.node, node: 1, secret: Array("wrong".utf8))
        let (good, goodLog) = try makeTransport(.node, node: 2)
        defer { intruder.shutdown(); good.shutdown(); server.shutdown() }
        let address = try server.listen(on: .tcp(host: "127.0.0.1", port: 0))
        let bad = intruder.connect(to: address, reconnect: false)
        let ok = good.connect(to: address, reconnect: false)
        intruderLog.wait(until: { !intruderLog.disconnects($0).isEmpty })
        goodLog.wait(until: { !goodLog.connected($0).isEmpty })
        #expect(intruderLog.connected(intruderLog.all).isEmpty)
        let reason = intruderLog.disconnects(intruderLog.all).first!.1
        #expect(reason.contains("authentication"), "\(reason)")
        #expect(intruder.send(.heartbeat(sequence: 1, sentAtNanos: 1), on: bad) == .closed)
        // The server admitted only the good node, which still works.
        #expect(good.send(.ping(sequence: 7, payload: []), on: ok) == .queued)
        serverLog.wait(until: { serverLog.received($0).contains(.ping(sequence: 7, payload: [])) })
        #expect(serverLog.connected(serverLog.all).count == 1)
        // The server's own event for the intruder's connection may come after the ping.
        serverLog.wait(until: { serverLog.disconnects($0).contains { $0.1.contains("authentication") } })
        #expect(serverLog.disconnects(serverLog.all).contains { $0.1.contains("authentication") })
    }

    @Test func rawProofFromAWrongSecretFails() throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        defer { server.shutdown() }
        let address = try server.listen(on: .unix(path: socketPath("badsecret")))
        let raw = try RawPeer.connect(to: address)
        defer { raw.close() }
        #expect(raw.handshake(secret: Array("guess".utf8), as: identity(.node, 4)) == nil)
        #expect(raw.readsEOF())
        serverLog.wait(until: { serverLog.disconnects($0).contains { $0.1.contains("authentication") } })
    }

    @Test(arguments: [
        ("garbage", [UInt8](repeating: 0xAB, count: 64)),
        ("wrong version", { var f = Message.leave(reason: "x").frame(); f[2] = FrameHeader.version &+ 1; return f }()),
        ("unknown type", { var f = Message.leave(reason: "x").frame(); f[3] = 0xEE; return f }()),
        ("oversized", { var f = Message.leave(reason: "x").frame(); f[7] = 0x40; return f }()),
    ])
    func badFramesDropOnlyThatConnection(name: String, bytes: [UInt8]) throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        let (good, goodLog) = try makeTransport(.node, node: 2)
        defer { good.shutdown(); server.shutdown() }
        let address = try server.listen(on: .tcp(host: "127.0.0.1", port: 0))
        let ok = good.connect(to: address, reconnect: false)
        goodLog.wait(until: { !goodLog.connected($0).isEmpty })

        // Before the handshake...
        let early = try RawPeer.connect(to: address)
        early.write(bytes)
        #expect(early.readsEOF(), "\(name) before the handshake was not dropped")
        early.close()
        // ... and after it.
        let late = try RawPeer.connect(to: address)
        #expect(late.handshake(secret: testSecret, as: identity(.node, 5)) != nil)
        late.send(.heartbeat(sequence: 9, sentAtNanos: 0))
        late.write(bytes)
        var sawError = false
        while let m = late.read() { if case .error = m { sawError = true } }
        #expect(sawError, "the server did not say why it dropped \(name)")
        late.close()
        serverLog.wait(until: { serverLog.received($0).contains(.heartbeat(sequence: 9, sentAtNanos: 0)) })
        serverLog.wait(until: { serverLog.disconnects($0).contains { $0.1.contains("bad frame") } })

        #expect(good.send(.ping(sequence: 1, payload: [1]), on: ok) == .queued)
        serverLog.wait(until: { serverLog.received($0).contains(.ping(sequence: 1, payload: [1])) })
        #expect(goodLog.disconnects(goodLog.all).isEmpty)
    }

    @Test func peerCrashMidFrameIsReportedAndContained() throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1)
        defer { server.shutdown() }
        let address = try server.listen(on: .unix(path: socketPath("crash")))
        let raw = try RawPeer.connect(to: address)
        #expect(raw.handshake(secret: testSecret, as: identity(.node, 6)) != nil)
        let frame = Message.lineData(line: 0x80, exclusive: false, data: [UInt8](repeating: 1, count: 128)).frame()
        raw.write(Array(frame[0..<70]))
        raw.close()
        serverLog.wait(until: { serverLog.disconnects($0).contains { $0.1.contains("middle of a frame") } })
        #expect(serverLog.received(serverLog.all).isEmpty)
    }

    @Test func silentPeerTimesOutInTheHandshake() throws {
        let (server, serverLog) = try makeTransport(.coordinator, node: -1, handshakeMillis: 200)
        defer { server.shutdown() }
        let address = try server.listen(on: .tcp(host: "127.0.0.1", port: 0))
        let raw = try RawPeer.connect(to: address)
        defer { raw.close() }
        #expect(raw.readsEOF())
        serverLog.wait(until: { serverLog.disconnects($0).contains { $0.1.contains("timed out") } })
    }

    @Test func reconnectsWithBackoffAfterThePeerRestarts() throws {
        let path = socketPath("reconnect")
        var (server, serverLog) = try makeTransport(.coordinator, node: -1)
        let (client, clientLog) = try makeTransport(.node, node: 1)
        defer { client.shutdown() }
        _ = try server.listen(on: .unix(path: path))
        let id = client.connect(to: .unix(path: path), reconnect: true)
        clientLog.wait(until: { clientLog.connected($0).count == 1 })
        server.shutdown()
        clientLog.wait(until: { clientLog.disconnects($0).contains { $0.0 == id && $0.2 } })
        // Nobody listens for a while: the client keeps dialling with backoff.
        Thread.sleep(forTimeInterval: 0.3)
        (server, serverLog) = try makeTransport(.coordinator, node: -1)
        defer { server.shutdown() }
        _ = try server.listen(on: .unix(path: path))
        clientLog.wait(until: { clientLog.connected($0).count == 2 })
        #expect(clientLog.connected(clientLog.all).allSatisfy { $0 == id })
        #expect(client.send(.heartbeat(sequence: 2, sentAtNanos: 0), on: id) == .queued)
        serverLog.wait(until: { serverLog.received($0).contains(.heartbeat(sequence: 2, sentAtNanos: 0)) })
        // Closing ends the reconnecting for good.
        client.close(id)
        clientLog.wait(until: { clientLog.disconnects($0).contains { $0.0 == id && !$0.2 } })
        #expect(client.send(.heartbeat(sequence: 3, sentAtNanos: 0), on: id) == .closed)
    }

    @Test func connectWithoutReconnectToNobodyReportsOnce() throws {
        let (client, log) = try makeTransport(.node, node: 1)
        defer { client.shutdown() }
        let id = client.connect(to: .unix(path: socketPath("nobody")), reconnect: false)
        log.wait(until: { !log.disconnects($0).isEmpty })
        Thread.sleep(forTimeInterval: 0.1)
        #expect(log.disconnects(log.all).count == 1)
        #expect(log.disconnects(log.all)[0].1.contains("connect to"))
        #expect(client.send(.heartbeat(sequence: 1, sentAtNanos: 0), on: id) == .closed)
        #expect(client.connectionCount == 0)
    }

    @Test func backpressureRefusesThenSignalsWritable() throws {
        let (server, _) = try makeTransport(.coordinator, node: -1)
        let (client, clientLog) = try makeTransport(.node, node: 1, maxQueued: 256 << 10)
        defer { client.shutdown(); server.shutdown() }
        // A raw server that handshakes, then stops reading: the kernel buffers fill,
        // then the client's bounded queue.
        let listener = RawListener("slow")
        defer { listener.close() }
        let id = client.connect(to: listener.endpoint, reconnect: false)
        let slow = listener.accept()
        defer { slow.close() }
        #expect(slow.handshake(secret: testSecret, as: identity(.coordinator, -1)) != nil)
        clientLog.wait(until: { !clientLog.connected($0).isEmpty })

        let payload = [UInt8](repeating: 7, count: 4000)
        var sent = 0, full = false
        let deadline = Date().addingTimeInterval(10)
        while !full && Date() < deadline {
            switch client.send(.ping(sequence: UInt64(sent), payload: payload), on: id) {
            case .queued: sent += 1
            case .full: full = true
            case .closed: Issue.record("closed"); return
            }
            if sent % 64 == 0 { Thread.sleep(forTimeInterval: 0.001) }
        }
        #expect(full, "the send queue never filled")
        #expect(clientLog.all.allSatisfy { if case .writable = $0 { return false } else { return true } })
        // The reader catches up: every message arrives, in order, and the sender hears `writable`.
        var next: UInt64 = 0
        while next < UInt64(sent), let m = slow.read() {
            if case .ping(let s, _) = m {
                #expect(s == next)
                next += 1
            }
        }
        #expect(next == UInt64(sent))
        clientLog.wait(until: { $0.contains { if case .writable(id) = $0 { return true } else { return false } } })
        #expect(client.send(.ping(sequence: 0, payload: []), on: id) == .queued)
    }

    @Test func shutdownClosesEveryHandle() throws {
        let (server, _) = try makeTransport(.coordinator, node: -1)
        let address = try server.listen(on: .tcp(host: "127.0.0.1", port: 0))
        _ = try server.listen(on: .unix(path: socketPath("many")))
        var clients: [(NetworkTransport, EventLog)] = []
        for n in 0..<4 {
            let (c, log) = try makeTransport(.node, node: Int32(n))
            _ = c.connect(to: address, reconnect: true)
            clients.append((c, log))
        }
        for (_, log) in clients { log.wait(until: { !log.connected($0).isEmpty }) }
        // A raw connection in the middle of its handshake, too.
        let raw = try RawPeer.connect(to: address)
        defer { raw.close() }
        server.shutdown()
        #expect(server.shutDownCleanly)
        #expect(server.connectionCount == 0)
        for (c, _) in clients {
            c.shutdown()
            #expect(c.shutDownCleanly)
            #expect(c.connectionCount == 0)
        }
    }
}

@Suite struct SecretOnTheWireTests {
    @Test func theHandshakeNeverSendsTheSecret() throws {
        let secret = Array("a rather long and recognisable cluster secret".utf8)
        let (client, _) = try makeTransport(.node, node: 1, secret: secret)
        defer { client.shutdown() }
        let listener = RawListener("sniff")
        defer { listener.close() }
        _ = client.connect(to: listener.endpoint, reconnect: false)
        let peer = listener.accept()
        defer { peer.close() }
        #expect(peer.handshake(secret: secret, as: identity(.coordinator, -1)) != nil)
        let seen = peer.received
        #expect(seen.count > 2 * FrameHeader.size + 32)
        let found = (0...(seen.count - secret.count)).contains { Array(seen[$0..<$0 + secret.count]) == secret }
        #expect(!found)
    }
}
