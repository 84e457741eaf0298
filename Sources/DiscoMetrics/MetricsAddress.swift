import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a metrics endpoint cannot be set up.
public struct MetricsError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where a metrics endpoint listens: `HOST:PORT`, where HOST is an IPv4 address, an IPv6
/// address in brackets or a name (resolved once, the first address wins), and PORT 0
/// picks a free port. A leading `tcp:` is accepted, as in the cluster's addresses.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(parsing text: String) throws(MetricsError) {
        let rest = text.hasPrefix("tcp:") ? String(text.dropFirst(4)) : text
        guard let colon = rest.lastIndex(of: ":") else {
            throw MetricsError("invalid metrics address '\(text)': expected HOST:PORT, e.g. 127.0.0.1:9470")
        }
        var host = String(rest[..<colon])
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]")
        if bracketed { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw MetricsError("invalid metrics address '\(text)': no host (use 0.0.0.0 for every interface)") }
        guard bracketed || !host.contains(":") else {
            throw MetricsError("invalid metrics address '\(text)': write an IPv6 address in brackets, e.g. [::1]:9470")
        }
        guard let port = UInt16(rest[rest.index(after: colon)...]) else {
            throw MetricsError("invalid metrics address '\(text)': expected HOST:PORT with a port from 0 to 65535")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The socket address to bind: a numeric host as it is, a name through getaddrinfo.
    func resolve() throws(MetricsError) -> Resolved {
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            return .v4(v4)
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            return .v6(v6)
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw MetricsError("metrics address '\(description)': cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let e = entry {
            if e.pointee.ai_family == AF_INET {
                return .v4(UnsafeRawPointer(e.pointee.ai_addr).load(as: sockaddr_in.self))
            }
            if e.pointee.ai_family == AF_INET6 {
                return .v6(UnsafeRawPointer(e.pointee.ai_addr).load(as: sockaddr_in6.self))
            }
            entry = e.pointee.ai_next
        }
        throw MetricsError("metrics address '\(description)': '\(host)' has no IPv4 or IPv6 address")
    }

    enum Resolved {
        case v4(sockaddr_in)
        case v6(sockaddr_in6)
    }
}
