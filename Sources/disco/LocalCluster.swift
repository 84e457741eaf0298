import Coordinator
import DiscoMetrics
import Foundation
import Logging
import Transport

/// A coordinator and N nodes started as child processes of this one, on Unix sockets
/// in one directory that also holds their logs. Children get the secret in their
/// environment (never on the command line) and die with this process.
final class LocalCluster {
    struct LaunchError: Error, CustomStringConvertible { var description: String }

    let directory: String
    let secretText: String
    let coordinatorEndpoint: Endpoint
    private var processes: [(name: String, process: Process)] = []
    private var stopped = false

    private init(directory: String, secretText: String) {
        self.directory = directory
        self.secretText = secretText
        self.coordinatorEndpoint = .unix(path: directory + "/coordinator.sock")
    }

    var secret: [UInt8] { Array(secretText.utf8) }

    /// The heartbeat of `disco run --nodes` and experiments: a node silent for 6 s is dead. Every process is on
    /// this host and a node that exits is seen at once (its socket closes, `firstExited`),
    /// so only a hung node waits for it; with 500 ms (3 s) a node the loaded host did not
    /// run for 3 s failed a VM in the full test suite (numa.elf on 2 nodes, 2026-12-04).
    static let embeddedHeartbeatMillis = 1000

    /// With `metrics`, the coordinator serves Prometheus metrics there (`metricsURL`).
    /// `heartbeatMillis`: a node silent for 6 of them is dead (longer for sweeps on a busy host).
    /// `nodeArguments` go to every `disco node` (e.g. `--no-park-spinning`).
    static func start(nodes: Int, cpus: Int, memoryBytes: UInt64, directory: String?, metrics: MetricsAddress? = nil,
                      heartbeatMillis: Int = 500, nodeArguments: [String] = [], coordinatorArguments: [String] = [],
                      progress: (String) -> Void = { _ in }) throws -> LocalCluster {
        let dir: String
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            dir = (directory as NSString).standardizingPath
        } else {
            var template = Array((NSTemporaryDirectory() + "disco-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw LaunchError(description: "cannot create a cluster directory in /tmp") }
            dir = String(cString: made)
        }
        let cluster = LocalCluster(directory: dir, secretText: randomSecret())
        do {
            try cluster.launch("coordinator", ["coordinator", "--listen", cluster.coordinatorEndpoint.description,
                                               "--heartbeat-ms", String(heartbeatMillis), "--console-dir", dir + "/consoles"]
                                               + (metrics.map { ["--metrics", $0.description] } ?? []) + coordinatorArguments)
            try cluster.waitForSocket(dir + "/coordinator.sock")
            for i in 0..<nodes {
                try cluster.launch("node-\(i)", ["node", "--coordinator", cluster.coordinatorEndpoint.description,
                                                 "--listen", "unix:\(dir)/node-\(i).sock", "--name", "node-\(i)",
                                                 "--cpus", String(cpus), "--memory", "\(memoryBytes >> 20)M"] + nodeArguments)
            }
            try cluster.waitForNodes(nodes, progress: progress)
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    /// Where the coordinator serves metrics (its log says so once it listens; it does
    /// before it opens its socket).
    var metricsURL: String? {
        guard let log = try? String(contentsOfFile: directory + "/coordinator.log", encoding: .utf8),
              let line = log.split(separator: "\n").first(where: { $0.contains(MetricsOption.servingPrefix) }),
              let range = line.range(of: MetricsOption.servingPrefix) else { return nil }
        return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
    }

    private func launch(_ name: String, _ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().absoluteURL
        if !FileManager.default.isExecutableFile(atPath: p.executableURL!.path) {
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["DISCO_SECRET"] = secretText
        env["DISCO_PARENT_PID"] = String(getpid())
        p.environment = env
        let logPath = directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        processes.append((name, p))
    }

    private func waitForSocket(_ path: String) throws {
        let deadline = Date().addingTimeInterval(15)
        while !FileManager.default.fileExists(atPath: path) {
            if let died = firstExited() { throw LaunchError(description: died) }
            guard Date() < deadline else { throw LaunchError(description: "the coordinator did not start listening on \(path) within 15 s") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    private func waitForNodes(_ count: Int, progress: (String) -> Void) throws {
        var logger = Logger(label: "disco.up")
        logger.logLevel = .error
        let client = try ClusterClient(coordinator: coordinatorEndpoint, secret: secret, logger: logger)
        defer { client.close() }
        try client.waitConnected(timeout: 15)
        let deadline = Date().addingTimeInterval(30)
        var reported = -1
        while true {
            let (_, body) = try client.request(.nodes)
            let alive = body.components(separatedBy: "status: alive").count - 1
            if alive != reported {
                progress("nodes joined: \(alive)/\(count)")
                reported = alive
            }
            if alive >= count { return }
            if let died = firstExited() { throw LaunchError(description: died) }
            guard Date() < deadline else { throw LaunchError(description: "only \(alive) of \(count) nodes joined within 30 s (logs in \(directory))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// The first child that has exited, described with the end of its log.
    func firstExited() -> String? {
        for (name, p) in processes where !p.isRunning {
            let log = (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? ""
            let tail = log.split(separator: "\n").suffix(3).joined(separator: " | ")
            return "\(name) exited with status \(p.terminationStatus)\(tail.isEmpty ? "" : ": \(tail)")"
        }
        return nil
    }

    func coordinatorExited() -> String? {
        guard let p = processes.first(where: { $0.name == "coordinator" })?.process, !p.isRunning else { return nil }
        return "the coordinator exited with status \(p.terminationStatus)"
    }

    private var reported: Set<String> = []

    /// A child that exited since the last call (each reported once).
    func newlyExited() -> String? {
        for (name, p) in processes where !p.isRunning && !reported.contains(name) {
            reported.insert(name)
            return "\(name) exited with status \(p.terminationStatus)"
        }
        return nil
    }

    /// A client of this cluster's coordinator, connected (within `timeout`), logging
    /// only errors as `label`: what the benchmarks and experiments drive it with.
    func connectedClient(label: String, timeout: TimeInterval = 15) throws -> ClusterClient {
        var logger = Logger(label: label)
        logger.logLevel = .error
        let client = try ClusterClient(coordinator: coordinatorEndpoint, secret: secret, logger: logger)
        do {
            try client.waitConnected(timeout: timeout)
        } catch {
            client.close()
            throw error
        }
        return client
    }

    /// Stops every child: SIGTERM, then SIGKILL for any still running after 3 s.
    func stop() {
        guard !stopped else { return }
        stopped = true
        for (_, p) in processes.reversed() where p.isRunning { Foundation.kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(3)
        while processes.contains(where: { $0.process.isRunning }) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        for (_, p) in processes where p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL) }
        for (_, p) in processes { p.waitUntilExit() }
    }

    deinit { stop() }
}
