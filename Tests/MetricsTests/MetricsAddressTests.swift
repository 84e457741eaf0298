import Testing
@testable import DiscoMetrics

/// `--metrics HOST:PORT`: what parses, and what is refused with which words.
@Suite struct MetricsAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9470", "127.0.0.1", UInt16(9470)),
        ("tcp:0.0.0.0:0", "0.0.0.0", 0),
        ("[::1]:9470", "::1", 9470),
        ("localhost:65535", "localhost", 65535),
    ])
    func parses(text: String, host: String, port: UInt16) throws {
        let a = try MetricsAddress(parsing: text)
        #expect(a.host == host)
        #expect(a.port == port)
        // What it prints parses back to itself (`disco up` passes it on).
        #expect(try MetricsAddress(parsing: a.description) == a)
    }

    @Test(arguments: [
        ("9470", "expected HOST:PORT"),
        ("127.0.0.1:", "a port from 0 to 65535"),
        ("127.0.0.1:70000", "a port from 0 to 65535"),
        ("127.0.0.1:http", "a port from 0 to 65535"),
        (":9470", "no host"),
        ("::1:9470", "IPv6 address in brackets"),
    ])
    func refuses(text: String, words: String) {
        #expect {
            try MetricsAddress(parsing: text)
        } throws: { error in
            "\(error)".contains(words) && "\(error)".contains(text)
        }
    }

    @Test func resolvesNumericHostsAndNamesAndSaysWhenANameDoesNotResolve() throws {
        guard case .v4 = try MetricsAddress(parsing: "127.0.0.1:1").resolve() else { Issue.record("not IPv4"); return }
        guard case .v6 = try MetricsAddress(parsing: "[::1]:1").resolve() else { Issue.record("not IPv6"); return }
        _ = try MetricsAddress(parsing: "localhost:1").resolve()
        #expect {
            try MetricsAddress(parsing: "no-such-host.invalid:9470").resolve()
        } throws: { error in
            "\(error)".contains("cannot resolve 'no-such-host.invalid'")
        }
    }
}
