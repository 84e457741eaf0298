import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Prometheus text exposition read back into series → value (`name{a="1",b="2"}` as
/// written) and metric name → TYPE, for the tests to look figures up.
struct Exposition {
    var values: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ bytes: [UInt8]) { self.init(String(decoding: bytes, as: UTF8.self)) }

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
                  let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(_ series: String) -> Double? { values[series] }

    /// Series of one metric (every label set).
    func series(of name: String) -> [String: Double] {
        values.filter { $0.key == name || $0.key.hasPrefix(name + "{") }
    }
}

/// One plain HTTP/1.1 GET over a socket (`Connection: close`, read to the end): status,
/// body and Content-Type. Throws when nothing listens.
func httpGet(_ url: String, timeout: TimeInterval = 5) throws -> (status: Int, body: String, contentType: String) {
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
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { throw URLError(.cannotConnectToHost) }
    let request = Array("GET \(u.path.isEmpty ? "/" : u.path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
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
    let type = head.first { $0.lowercased().hasPrefix("content-type:") }.map { $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces) } ?? ""
    return (status, String(text[split.upperBound...]), type)
}
