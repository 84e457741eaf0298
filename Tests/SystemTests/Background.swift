import Foundation
import TestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on 127.0.0.1 that holds a port taken until `close()`.
final class PortHolder {
    let port: Int
    private var fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, ok else {
            if fd >= 0 { Glibc.close(fd) }
            throw POSIXError(.EADDRINUSE)
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: a.sin_port))
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

/// One HTTP GET on loopback (no proxy): status and body.
func httpGet(_ url: String, timeout: TimeInterval = 10) throws -> (status: Int, body: Data) {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.connectionProxyDictionary = [:]
    configuration.timeoutIntervalForRequest = timeout
    let session = URLSession(configuration: configuration)
    defer { session.invalidateAndCancel() }
    final class Box: @unchecked Sendable { var result: Result<(Int, Data), any Error>? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    session.dataTask(with: URL(string: url)!) { data, response, error in
        box.result = error.map { .failure($0) } ?? .success(((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()))
        done.signal()
    }.resume()
    guard done.wait(timeout: .now() + timeout + 1) == .success, let result = box.result else { throw URLError(.timedOut) }
    return try result.get()
}

/// One HTTP/1.0 GET over a plain socket (IPv4 or a bracketed IPv6 literal; URLSession on
/// Linux refuses the latter): status, headers (lower-cased names) and body. Throws when
/// nothing listens there.
func rawGet(_ url: String, timeout: Int = 10) throws -> (status: Int, headers: [String: String], body: String) {
    guard let u = URLComponents(string: url), var host = u.host, let port = u.port else { throw URLError(.badURL) }
    if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &result) == 0, let ai = result else { throw URLError(.cannotFindHost) }
    defer { freeaddrinfo(result) }
    let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw URLError(.cannotConnectToHost) }
    defer { close(fd) }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { throw URLError(.cannotConnectToHost) }
    let request = Array("GET \(u.path.isEmpty ? "/" : u.path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
    guard send(fd, request, request.count, 0) == request.count else { throw URLError(.networkConnectionLost) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw URLError(.badServerResponse) }
    let head = text[..<split.lowerBound].split(separator: "\r\n")
    let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return (status, headers, String(text[split.upperBound...]))
}
