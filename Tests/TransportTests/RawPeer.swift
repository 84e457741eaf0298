import Foundation
import Protocol
import Testing
@testable import Transport

/// A hand-driven peer on a plain blocking socket, for sending what a well-behaved
/// transport never would: garbage, wrong versions, half frames, or nothing at all.
final class RawPeer {
    let fd: Int32
    var decoder = FrameDecoder()
    /// Every byte read so far, as it came off the socket.
    private(set) var received: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func connect(to endpoint: Endpoint) throws -> RawPeer {
        switch endpoint {
        case .tcp(let host, let port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &a.sin_addr)
            let r = withUnsafePointer(to: &a) {
                Glibc.connect(fd, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_in>.size))
            }
            guard r == 0 else { throw POSIXError(.ECONNREFUSED) }
            return RawPeer(fd: fd)
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard withUnixAddress(path, { Glibc.connect(fd, $0, $1) }) == 0 else { throw POSIXError(.ECONNREFUSED) }
            return RawPeer(fd: fd)
        }
    }

    func write(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    func send(_ m: Message) { write(m.frame()) }

    /// The next message, or nil on EOF, error or timeout.
    func read() -> Message? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let m = try? decoder.next() { return m }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            received += buffer[0..<n]
            decoder.append(Array(buffer[0..<n]))
        }
    }

    /// Reads until EOF; true if the peer closed the connection.
    func readsEOF() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return false }
        }
    }

    /// Runs the real handshake by hand. Returns the peer's hello when it succeeded.
    @discardableResult
    func handshake(secret: [UInt8], as me: Hello) -> Hello? {
        var local = me
        local.nonce = HandshakeStateMachine.makeNonce()
        var sm = HandshakeStateMachine(local: local, secret: secret)
        send(sm.hello)
        while let m = read() {
            switch sm.receive(m) {
            case .send(let reply): send(reply)
            case .established(let peer): return peer
            case .fail: return nil
            case .none: break
            }
        }
        return nil
    }

    func close() { Glibc.close(fd) }
}

/// A plain listening Unix socket, for tests whose peer must be a RawPeer on the
/// accepting side (a server that handshakes by hand, then misbehaves).
final class RawListener {
    let path: String
    let fd: Int32

    init(_ name: String) {
        path = socketPath(name)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = withUnixAddress(path) { bind(fd, $0, $1) }
        listen(fd, 1)
    }

    var endpoint: Endpoint { .unix(path: path) }

    /// The next connection (blocking).
    func accept() -> RawPeer { RawPeer(fd: Glibc.accept(fd, nil, nil)) }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}

/// Calls `body` with a sockaddr_un for `path` and its length.
func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var a = sockaddr_un()
    a.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &a.sun_path) { dst in for (i, b) in path.utf8.enumerated() { dst[i] = b } }
    return withUnsafePointer(to: &a) {
        body(UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_un>.size))
    }
}
