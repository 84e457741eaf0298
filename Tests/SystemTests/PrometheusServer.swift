import Foundation
import TestSupport

/// Debian's `prometheus` (scripts/setup.sh installs it) on loopback with a generated
/// configuration, its own data directory, and a query client for its HTTP API.
final class PrometheusServer {
    static let binary = "/usr/bin/prometheus"
    let url: String
    private let process: Background

    /// Scrapes each job's targets (HOST:PORT, path /metrics) every second.
    init(jobs: [String: [String]], directory: String) throws {
        let port = try freeLoopbackPort()
        url = "http://127.0.0.1:\(port)"
        var config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
        for (job, targets) in jobs.sorted(by: { $0.key < $1.key }) {
            config += "  - job_name: \(job)\n    static_configs:\n      - targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]\n"
        }
        let configPath = directory + "/prometheus.yml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        process = try Background("prometheus", Self.binary, [
            "--config.file=\(configPath)", "--storage.tsdb.path=\(directory)/prometheus-data",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ], logDirectory: directory)
    }

    var log: String { process.output }
    var isRunning: Bool { process.isRunning }

    /// An instant query: each result's labels and value (NaN for a value that is not a number).
    func query(_ promQL: String) throws -> [(labels: [String: String], value: Double)] {
        var c = URLComponents(string: url + "/api/v1/query")!
        c.queryItems = [URLQueryItem(name: "query", value: promQL)]
        let (status, body) = try httpGet(c.url!.absoluteString)
        guard status == 200,
              let json = try JSONSerialization.jsonObject(with: body) as? [String: Any], json["status"] as? String == "success",
              let data = json["data"] as? [String: Any], let results = data["result"] as? [[String: Any]] else {
            throw QueryError(description: "query '\(promQL)' answered \(status): \(String(decoding: body, as: UTF8.self))")
        }
        return results.map { r in
            let labels = r["metric"] as? [String: String] ?? [:]
            let value = ((r["value"] as? [Any])?.last as? String).flatMap(Double.init) ?? .nan
            return (labels, value)
        }
    }

    /// The query's one value, or nil if it has no result.
    func value(_ promQL: String) throws -> Double? {
        let r = try query(promQL)
        return r.count == 1 ? r[0].value : nil
    }

    /// Polls `promQL` until `accept` takes its results or `timeout` passes; returns the last results.
    @discardableResult
    func waitFor(_ promQL: String, timeout: TimeInterval,
                 _ accept: ([(labels: [String: String], value: Double)]) -> Bool) throws -> [(labels: [String: String], value: Double)] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [(labels: [String: String], value: Double)] = []
        while Date() < deadline {
            if process.isRunning, let r = try? query(promQL) {
                last = r
                if accept(r) { return r }
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return last
    }

    func stop() { process.stop() }

    struct QueryError: Error, CustomStringConvertible { var description: String }
}
