import Protocol
import Testing
@testable import Transport

@Suite struct HandshakeStateMachineTests {
    func pair(_ a: [UInt8] = testSecret, _ b: [UInt8] = testSecret)
        -> (HandshakeStateMachine, HandshakeStateMachine)
    {
        var ha = identity(.node, 1, name: "a"), hb = identity(.coordinator, -1, name: "b")
        ha.nonce = HandshakeStateMachine.makeNonce()
        hb.nonce = HandshakeStateMachine.makeNonce()
        return (HandshakeStateMachine(local: ha, secret: a), HandshakeStateMachine(local: hb, secret: b))
    }

    /// Delivers each side's output to the other until both stop talking.
    func run(_ a: inout HandshakeStateMachine, _ b: inout HandshakeStateMachine)
        -> (HandshakeStateMachine.Action, HandshakeStateMachine.Action)
    {
        var toB = [a.hello], toA = [b.hello]
        var lastA = HandshakeStateMachine.Action.none, lastB = HandshakeStateMachine.Action.none
        while !toA.isEmpty || !toB.isEmpty {
            if !toB.isEmpty {
                lastB = b.receive(toB.removeFirst())
                if case .send(let m) = lastB { toA.append(m) }
            }
            if !toA.isEmpty {
                lastA = a.receive(toA.removeFirst())
                if case .send(let m) = lastA { toB.append(m) }
            }
        }
        return (lastA, lastB)
    }

    @Test func sameSecretEstablishesBothEnds() {
        var (a, b) = pair()
        let (ra, rb) = run(&a, &b)
        #expect(ra == .established(peer: b.local))
        #expect(rb == .established(peer: a.local))
        #expect(a.isEstablished && b.isEstablished)
    }

    @Test func differentSecretsFailBothEnds() {
        var (a, b) = pair(testSecret, Array("other".utf8))
        let (ra, rb) = run(&a, &b)
        guard case .fail(.authenticationFailed, _) = ra, case .fail(.authenticationFailed, _) = rb else {
            Issue.record("expected both to fail: \(ra) \(rb)")
            return
        }
    }

    @Test func theProofNeverContainsTheSecret() {
        var (a, b) = pair()
        _ = b.receive(a.hello)
        guard case .send(.authenticate(let mac)) = a.receive(b.hello) else { Issue.record("no proof"); return }
        #expect(mac.count == 32)
        let frame = Message.authenticate(mac: mac).frame() + a.hello.frame()
        let s = testSecret
        let found = (0...(frame.count - s.count)).contains { Array(frame[$0..<$0 + s.count]) == s }
        #expect(!found)
    }

    @Test func aReflectedProofIsRejected() {
        // An attacker without the secret echoes our own hello and proof back at us.
        var (a, _) = pair()
        var mirror = a.local
        mirror.nonce = HandshakeStateMachine.makeNonce()
        guard case .send(.authenticate(let ourProof)) = a.receive(.hello(mirror)) else { Issue.record("no proof"); return }
        guard case .fail(.authenticationFailed, _) = a.receive(.authenticate(mac: ourProof)) else {
            Issue.record("a reflected proof was accepted")
            return
        }
    }

    @Test func aReplayedNonceIsRejected() {
        var (a, _) = pair()
        guard case .fail(.authenticationFailed, _) = a.receive(.hello(a.local)) else {
            Issue.record("own nonce accepted")
            return
        }
    }

    @Test func applicationMessagesBeforeAuthenticationAreRejected() {
        var (a, b) = pair()
        guard case .fail(.unexpectedMessage, _) = a.receive(.heartbeat(sequence: 1, sentAtNanos: 1)) else {
            Issue.record("heartbeat accepted before hello")
            return
        }
        _ = b.receive(a.hello)
        guard case .fail(.unexpectedMessage, _) = b.receive(.lineData(line: 0, exclusive: true, data: [])) else {
            Issue.record("data accepted before the proof")
            return
        }
    }

    @Test func aPeerErrorEndsTheHandshake() {
        var (a, _) = pair()
        guard case .fail(.versionMismatch, let why) = a.receive(.error(code: .versionMismatch, message: "v2")) else {
            Issue.record("error not surfaced")
            return
        }
        #expect(why.contains("v2"))
    }
}

@Suite struct BackoffTests {
    @Test func doublesUpToTheMaximumWithBoundedJitterAndResets() {
        var b = Backoff(initialMillis: 100, maximumMillis: 1000)
        var rng = SystemRandomNumberGenerator()
        let delays = (0..<8).map { _ in b.nextDelay(using: &rng) }
        let bases: [UInt64] = [100, 200, 400, 800, 1000, 1000, 1000, 1000]
        for (d, base) in zip(delays, bases) { #expect(d <= base && d >= base - base / 4) }
        b.reset()
        #expect(b.nextDelay(using: &rng) <= 100)
    }
}

@Suite struct EndpointTests {
    @Test func parsesAndPrintsAddresses() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:7000") == .tcp(host: "127.0.0.1", port: 7000))
        #expect(try Endpoint(parsing: "tcp:localhost:0") == .tcp(host: "localhost", port: 0))
        #expect(try Endpoint(parsing: "tcp:[::1]:80") == .tcp(host: "::1", port: 80))
        #expect(try Endpoint(parsing: "unix:/tmp/x.sock") == .unix(path: "/tmp/x.sock"))
        #expect(Endpoint.tcp(host: "::1", port: 80).description == "tcp:[::1]:80")
        for bad in ["", "nohost", "h:99999", "h:-1", "unix:", ":80", "h:port"] {
            #expect(throws: TransportError.self) { try Endpoint(parsing: bad) }
        }
    }
}
