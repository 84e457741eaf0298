import Foundation
import TestSupport
import Testing

/// The `--metrics` HTTP endpoint of a real process (no Prometheus): what it answers on
/// which path, on IPv6 loopback, and that it goes away with the process.
@Suite struct MetricsEndpointTests {
    @Test func getMetricsAnswersTheTextFormatOtherPathsAre404AndItEndsWithTheProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-endpoint-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let coordinator = try Background("coordinator", Paths.disco, ["coordinator", "--listen", "unix:\(dir)/c.sock", "--metrics", "[::1]:0"],
                                         environment: ["DISCO_SECRET": "endpoint-test"], logDirectory: dir)
        defer { coordinator.stop() }
        try #require(coordinator.wait(for: "coordinator listening on", timeout: 20), "\(coordinator.output)")
        let url = try #require(coordinator.line(after: "serving metrics on "), "\(coordinator.output)")
        #expect(url.hasPrefix("http://[::1]:") && url.hasSuffix("/metrics"), "\(url)")

        // The coordinator hands over its figures at its first tick (within a second).
        var metrics = try rawGet(url)
        let deadline = Date().addingTimeInterval(10)
        while !metrics.body.contains("disco_nodes{status=\"alive\"} 0") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            metrics = try rawGet(url)
        }
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true, "\(metrics.headers)")
        #expect(metrics.body.contains("# TYPE disco_nodes gauge"), "\(metrics.body)")
        #expect(metrics.body.contains("disco_nodes{status=\"alive\"} 0"), "\(metrics.body)")
        #expect(metrics.body.contains("# TYPE process_cpu_seconds_total counter"), "\(metrics.body)")
        let base = String(url.dropLast("/metrics".count))
        #expect(try rawGet(base + "/nothing").status == 404)
        #expect(try rawGet(base + "/").body.contains("GET /metrics"))

        // SIGTERM: the process ends and nothing listens there any more.
        coordinator.stop()
        #expect(coordinator.status == 0, "\(coordinator.output)")
        #expect(throws: (any Error).self) { try rawGet(url, timeout: 2) }
    }
}
