import CLibUV
import Foundation

/// A resolved IPv4 or IPv6 socket address. Numeric hosts are parsed by libuv; names
/// ("localhost", a host name) go through getaddrinfo on the calling thread.
struct SocketAddress {
    var storage = sockaddr_storage()

    struct ResolveError: Error { var code: Int32 }

    static func resolve(host: String, port: Int) -> Result<SocketAddress, ResolveError> {
        var a = SocketAddress()
        let ok = withUnsafeMutablePointer(to: &a.storage) { p -> Bool in
            if uv_ip4_addr(host, Int32(port), UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr_in.self)) == 0 {
                return true
            }
            return uv_ip6_addr(host, Int32(port), UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr_in6.self)) == 0
        }
        if ok { return .success(a) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            return .failure(ResolveError(code: UV_EAI_NONAME.rawValue))
        }
        defer { freeaddrinfo(result) }
        withUnsafeMutableBytes(of: &a.storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return .success(a)
    }

    mutating func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>) -> T) -> T {
        withUnsafePointer(to: &storage) { body(UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self)) }
    }

    /// The address a bound TCP handle listens on, as host and port.
    static func describe(_ storage: sockaddr_storage) -> (host: String, port: Int) {
        var s = storage
        var name = [CChar](repeating: 0, count: 64)
        return withUnsafePointer(to: &s) { p -> (String, Int) in
            let raw = UnsafeRawPointer(p)
            if Int32(storage.ss_family) == AF_INET6 {
                let a = raw.assumingMemoryBound(to: sockaddr_in6.self)
                uv_ip6_name(a, &name, name.count)
                return (String(cString: name), Int(UInt16(bigEndian: a.pointee.sin6_port)))
            }
            let a = raw.assumingMemoryBound(to: sockaddr_in.self)
            uv_ip4_name(a, &name, name.count)
            return (String(cString: name), Int(UInt16(bigEndian: a.pointee.sin_port)))
        }
    }
}
