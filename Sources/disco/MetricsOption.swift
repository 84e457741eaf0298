import ArgumentParser
import DiscoMetrics
import Logging

/// `--metrics HOST:PORT` of `disco coordinator`, `disco node` and `disco up`.
struct MetricsOption: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9470, [::1]:9470, 0.0.0.0:9470; port 0 picks a free one and the log says which). Figures refresh every few seconds (nodes report every 4 heartbeats); docs/operations.md lists them.",
        valueName: "host:port"))
    var metrics: String?

    /// The address given, or nil; a clear error (exit 2) if it does not parse.
    func address() -> MetricsAddress? {
        guard let metrics else { return nil }
        do { return try MetricsAddress(parsing: metrics) } catch { fail("--metrics: \(error)") }
    }

    /// Starts the endpoint if asked for; a clear error (exit 2) if it cannot listen.
    func serve(logger: Logger, render: @escaping @Sendable () -> [UInt8]) -> MetricsServer? {
        guard let address = address() else { return nil }
        do {
            let server = try MetricsServer.start(on: address, logger: logger, render: render)
            logger.info("\(MetricsOption.servingPrefix)\(server.url)")
            return server
        } catch {
            fail("--metrics: \(error)")
        }
    }

    /// How the log says where metrics are served (`disco up` reads it from the coordinator's log).
    static let servingPrefix = "serving metrics on "
}
