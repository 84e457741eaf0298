import CLibUV
import Foundation
import Logging

/// A listening TCP or Unix socket; each accepted stream becomes an incoming
/// StreamConnection. Loop thread only.
final class Listener {
    unowned let core: TransportCore
    let requested: Endpoint
    private(set) var bound: Endpoint
    private var handle: UnsafeMutablePointer<uv_stream_t>?
    private var ownsSocketFile = false
    private var isUnix: Bool { if case .unix = requested { return true } else { return false } }

    init(core: TransportCore, endpoint: Endpoint) {
        self.core = core
        self.requested = endpoint
        self.bound = endpoint
    }

    func start() throws(TransportError) {
        let loop = core.loop.loop
        switch requested {
        case .tcp(let host, let port):
            let tcp = uvAllocate(uv_tcp_t.self)
            let initStatus = core.uv("uv_tcp_init") { uv_tcp_init(loop, tcp) }
            if initStatus < 0 {
                tcp.deallocate()  // never initialized: libuv knows nothing of it
                throw uvError(initStatus, "listen on \(requested): uv_tcp_init")
            }
            handle = asStream(tcp)
            tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
            guard case .success(var address) = SocketAddress.resolve(host: host, port: port) else {
                close()
                throw .invalidEndpoint(requested.description, "cannot resolve \(host)")
            }
            let status = address.withSockaddr { uv_tcp_bind(tcp, $0, 0) }
            if status < 0 {
                close()
                throw uvError(status, "bind \(requested)")
            }
            var name = sockaddr_storage()
            var length = Int32(MemoryLayout<sockaddr_storage>.size)
            let nameStatus = withUnsafeMutablePointer(to: &name) {
                let n = UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self)
                return core.uv("uv_tcp_getsockname") { uv_tcp_getsockname(tcp, n, &length) }
            }
            if nameStatus < 0 {
                close()
                throw uvError(nameStatus, "listen on \(requested): uv_tcp_getsockname")
            }
            let (h, p) = SocketAddress.describe(name)
            bound = .tcp(host: h, port: p)
        case .unix(let path):
            let pipe = uvAllocate(uv_pipe_t.self)
            let initStatus = core.uv("uv_pipe_init") { uv_pipe_init(loop, pipe, 0) }
            if initStatus < 0 {
                pipe.deallocate()
                throw uvError(initStatus, "listen on \(requested): uv_pipe_init")
            }
            handle = asStream(pipe)
            pipe.pointee.data = Unmanaged.passRetained(self).toOpaque()
            var status = uv_pipe_bind(pipe, path)
            if status == UV_EADDRINUSE.rawValue, Listener.isStaleSocket(path) {
                unlink(path)
                status = uv_pipe_bind(pipe, path)
            }
            if status < 0 {
                close()
                throw uvError(status, "bind \(requested)")
            }
            ownsSocketFile = true
        }
        let status = uv_listen(handle, 128) { server, status in
            let l = Unmanaged<Listener>.fromOpaque(server!.pointee.data).takeUnretainedValue()
            l.accept(status)
        }
        if status < 0 {
            close()
            throw uvError(status, "listen on \(requested)")
        }
    }

    /// A socket file nobody accepts on (left by a process that died) may be replaced;
    /// a live socket or any other file is kept and bind reports the error.
    private static func isStaleSocket(_ path: String) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        let result = withUnsafePointer(to: &address) {
            connect(fd, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_un>.size))
        }
        return result != 0 && errno == ECONNREFUSED
    }

    private func accept(_ status: Int32) {
        guard status >= 0, let handle else {
            core.logger.warning("accept on \(bound) failed: \(uvErrorName(Int(status)))")
            return
        }
        let client: UnsafeMutablePointer<uv_stream_t>
        let initStatus: Int32
        if isUnix {
            let pipe = uvAllocate(uv_pipe_t.self)
            initStatus = core.uv("uv_pipe_init") { uv_pipe_init(core.loop.loop, pipe, 0) }
            client = asStream(pipe)
        } else {
            let tcp = uvAllocate(uv_tcp_t.self)
            initStatus = core.uv("uv_tcp_init") { uv_tcp_init(core.loop.loop, tcp) }
            if initStatus >= 0 { setNoDelay(tcp) }
            client = asStream(tcp)
        }
        if initStatus < 0 {
            // libuv takes no further connection until this one is accepted: rather than
            // wedge, the listener fails (its pending connection is closed with it).
            client.deallocate()
            let error = uvError(initStatus, isUnix ? "uv_pipe_init" : "uv_tcp_init")
            core.logger.error("cannot accept on \(bound) (\(error)): closing the listener")
            close()
            return
        }
        guard uv_accept(handle, client) == 0 else {
            uv_close(asHandle(client)) { $0!.deallocate() }
            return
        }
        core.adopt(client)
    }

    func close() {
        guard let h = handle else { return }
        handle = nil
        if case .unix(let path) = requested, ownsSocketFile { unlink(path) }
        uv_close(asHandle(h)) { handle in
            Unmanaged<Listener>.fromOpaque(handle!.pointee.data).release()
            handle!.deallocate()
        }
    }
}

/// Sets TCP_NODELAY on a handle whose socket does not exist yet (before uv_accept or
/// uv_tcp_connect). libuv then only records the option and sets it when it opens the
/// socket, where a failure fails that call: here it cannot fail.
func setNoDelay(_ tcp: UnsafeMutablePointer<uv_tcp_t>) {
    let status = uv_tcp_nodelay(tcp, 1)
    assert(status == 0, "uv_tcp_nodelay before the socket exists: \(uvErrorName(Int(status)))")
}
