import Crypto
import Protocol

/// Mutual authentication of a new connection with the cluster secret, as a pure state
/// machine (the transport feeds it messages and carries out what it returns).
///
/// Both ends send `hello` with a fresh 32-byte nonce as soon as the connection is up.
/// On the peer's hello each end answers with
///
///     authenticate(mac: HMAC-SHA256(secret, "disco-auth-v1" ‖ role ‖ nodeID ‖ own nonce ‖ peer nonce))
///
/// and on the peer's `authenticate` checks it against the same formula with the roles
/// swapped. The secret never crosses the wire; a replayed or reflected proof fails
/// because it binds the sender's identity and both fresh nonces in order.
public struct HandshakeStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case awaitingHello
        case awaitingProof(peer: Hello)
        case established(peer: Hello)
        case failed(reason: String)
    }

    public enum Action: Sendable, Equatable {
        /// Nothing to do yet.
        case none
        case send(Message)
        /// The peer proved the secret; application messages may flow.
        case established(peer: Hello)
        /// Send `error(code, reason)` if possible, log the reason and close the connection.
        case fail(ErrorCode, String)
    }

    public private(set) var state: State = .awaitingHello
    public let local: Hello
    private let secret: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: secret) }

    /// `local.nonce` must be fresh for every connection (see `makeNonce`).
    public init(local: Hello, secret: [UInt8]) {
        precondition(local.nonce.count == Hello.nonceSize, "nonce must be \(Hello.nonceSize) bytes")
        self.local = local
        self.secret = secret
    }

    public static func makeNonce() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<Hello.nonceSize).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// The first message to send.
    public var hello: Message { .hello(local) }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    public mutating func receive(_ message: Message) -> Action {
        switch (state, message) {
        case (.awaitingHello, .hello(let peer)):
            guard peer.nonce.count == Hello.nonceSize, peer.nonce != local.nonce else {
                return fail(.authenticationFailed, "peer sent a reused or malformed nonce")
            }
            state = .awaitingProof(peer: peer)
            return .send(.authenticate(mac: Self.proof(key: key, from: local, to: peer)))
        case (.awaitingProof(let peer), .authenticate(let mac)):
            let expected = Self.proof(key: key, from: peer, to: local)
            guard mac.count == expected.count, constantTimeEqual(mac, expected) else {
                return fail(.authenticationFailed, "peer \(describe(peer)) failed authentication (wrong cluster secret?)")
            }
            state = .established(peer: peer)
            return .established(peer: peer)
        case (.failed, _):
            return .none
        case (.established, _):
            return .none
        case (_, .error(let code, let text)):
            return fail(code, "peer reported \(code): \(text)")
        default:
            return fail(.unexpectedMessage, "unexpected \(message.type) during the handshake")
        }
    }

    private mutating func fail(_ code: ErrorCode, _ reason: String) -> Action {
        state = .failed(reason: reason)
        return .fail(code, reason)
    }

    private func describe(_ h: Hello) -> String {
        h.name.isEmpty ? "\(h.role) \(h.nodeID)" : "\(h.role) \(h.nodeID) (\(h.name))"
    }

    static func proof(key: SymmetricKey, from sender: Hello, to receiver: Hello) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: Array("disco-auth-v1".utf8))
        hmac.update(data: [sender.role.rawValue])
        withUnsafeBytes(of: sender.nodeID.littleEndian) { hmac.update(data: Array($0)) }
        hmac.update(data: sender.nonce)
        hmac.update(data: receiver.nonce)
        return Array(hmac.finalize())
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
