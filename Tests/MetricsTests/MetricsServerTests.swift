import Foundation
import Logging
import Testing
@testable import DiscoMetrics

/// The HTTP endpoint on loopback: GET /metrics answers with what `render` gives, other
/// paths are 404, and a port in use is a clear error at start.
@Suite(.serialized) struct MetricsServerTests {
    let logger = Logger(label: "test.metrics")

    @Test func servesTheTextFormatOnGetMetricsAndNothingElse() throws {
        let calls = Latest(0)
        let server = try MetricsServer.start(on: MetricsAddress(parsing: "127.0.0.1:0"), logger: logger) {
            calls.set(calls.get() + 1)
            return Array("# TYPE x counter\nx 1\n".utf8)
        }
        defer { server.stop() }
        #expect(server.bound.port != 0, "port 0 gets a real one")
        #expect(server.url == "http://127.0.0.1:\(server.bound.port)/metrics")
        let ok = try httpGet(server.url)
        #expect(ok.status == 200)
        #expect(ok.body == "# TYPE x counter\nx 1\n")
        #expect(ok.contentType.hasPrefix("text/plain; version=0.0.4"))
        #expect(calls.get() == 1)
        let missing = try httpGet("http://127.0.0.1:\(server.bound.port)/nothing")
        #expect(missing.status == 404)
        #expect(calls.get() == 1)
    }

    @Test func aPortInUseIsRefusedWithAClearError() throws {
        let first = try MetricsServer.start(on: MetricsAddress(parsing: "127.0.0.1:0"), logger: logger) { [] }
        defer { first.stop() }
        #expect {
            try MetricsServer.start(on: MetricsAddress(parsing: "127.0.0.1:\(first.bound.port)"), logger: logger) { [] }
        } throws: { error in
            "\(error)".contains("the port is in use") && "\(error)".contains("127.0.0.1:\(first.bound.port)")
        }
    }

    @Test func stopClosesTheListeningSocket() throws {
        let server = try MetricsServer.start(on: MetricsAddress(parsing: "[::1]:0"), logger: logger) { Array("y 2\n".utf8) }
        let url = "http://[::1]:\(server.bound.port)/metrics"
        #expect(try httpGet(url).body == "y 2\n")
        server.stop()
        #expect(throws: (any Error).self) { try httpGet(url, timeout: 2) }
    }
}
