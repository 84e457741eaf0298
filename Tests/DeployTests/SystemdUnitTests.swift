import Foundation
import TestSupport
import Testing

/// deploy/systemd: the units pass `systemd-analyze verify` and its offline security
/// review, and their command lines, expanded as systemd expands them, start a working
/// coordinator and node. (No systemd runs as PID 1 here: that systemd itself starts
/// them, loads the credential and applies the sandbox is not tested; docs/operations.md.)
@Suite(.serialized) struct SystemdUnitTests {
    static let units = ["disco-coordinator.service", "disco-node@.service"]

    /// Copies of the units that name the `disco` under test (verify checks the binary).
    func installedCopies() throws -> String {
        let dir = try scratch("units")
        for unit in Self.units {
            let text = try String(contentsOfFile: Paths.deploy + "/systemd/" + unit, encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/local/bin/disco", with: Paths.disco)
                .write(toFile: dir + "/" + unit, atomically: true, encoding: .utf8)
        }
        return dir
    }

    func analyze() throws -> String {
        try #require(Paths.tool("systemd-analyze"), "systemd-analyze is missing: scripts/setup.sh installs systemd")
    }

    @Test func unitsVerifyWithoutAWord() throws {
        let analyze = try analyze()
        let dir = try installedCopies()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The template is checked through an instance of it.
        let r = try run(analyze, ["verify", "--man=no", dir + "/disco-coordinator.service", dir + "/disco-node@0.service"])
        #expect(r.status == 0, "\(r.output)")
        // verify passes over unknown keys and bad values with a warning: none may be printed.
        #expect(r.output.isEmpty, "\(r.output)")
    }

    @Test func theSandboxIsTight() throws {
        let analyze = try analyze()
        let dir = try installedCopies()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for unit in Self.units {
            // Exposure on systemd's 0-100 scale (printed as 0.0-10.0): at most 2.0, "OK".
            let r = try run(analyze, ["security", "--offline=yes", "--threshold=20", dir + "/" + unit])
            #expect(r.status == 0, "\(unit): \(r.output.suffix(400))")
            let overall = r.output.split(separator: "\n").first { $0.contains("Overall exposure level") } ?? ""
            #expect(overall.contains("OK"), "\(unit): \(overall)")
        }
    }

    /// ExecStart= as systemd expands it: `%i`, `%H`, `%%`; `${VAR}` as one word, `$VAR`
    /// split at whitespace; the environment from Environment= and then the env files.
    func commandLine(_ unit: String, instance: String = "", environmentFile: [String: String],
                     credentials: String) throws -> (command: [String], environment: [String: String]) {
        let text = try String(contentsOfFile: Paths.deploy + "/systemd/" + unit, encoding: .utf8)
        var env: [String: String] = [:]
        var exec: String?
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("Environment=") {
                var assignment = String(line.dropFirst("Environment=".count))
                if assignment.hasPrefix("\"") && assignment.hasSuffix("\"") { assignment = String(assignment.dropFirst().dropLast()) }
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                env[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            } else if line.hasPrefix("ExecStart=") {
                exec = String(line.dropFirst("ExecStart=".count))
            }
        }
        env.merge(environmentFile) { $1 }
        env["CREDENTIALS_DIRECTORY"] = credentials
        let specified = try #require(exec, "\(unit) has no ExecStart=")
            .replacingOccurrences(of: "%%", with: "\u{1}")
            .replacingOccurrences(of: "%i", with: instance)
            .replacingOccurrences(of: "%H", with: ProcessInfo.processInfo.hostName)
            .replacingOccurrences(of: "\u{1}", with: "%")
        var words: [String] = []
        for word in specified.split(separator: " ") {
            if word.hasPrefix("$") && !word.hasPrefix("${") {
                words += (env[String(word.dropFirst())] ?? "").split(separator: " ").map(String.init)
                continue
            }
            var w = String(word)
            while let open = w.range(of: "${"), let close = w.range(of: "}", range: open.upperBound..<w.endIndex) {
                w.replaceSubrange(open.lowerBound..<close.upperBound, with: env[String(w[open.upperBound..<close.lowerBound])] ?? "")
            }
            words.append(w)
        }
        words[0] = words[0] == "/usr/local/bin/disco" ? Paths.disco : words[0]
        return (words, env)
    }

    @Test func theUnitsCommandLinesStartACoordinatorAndANodeThatJoins() throws {
        let dir = try scratch("units-run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // What LoadCredential= makes: the secret file in the credentials directory.
        try FileManager.default.createDirectory(atPath: dir + "/credentials", withIntermediateDirectories: true)
        try "unit-test-secret\n".write(toFile: dir + "/credentials/disco-secret", atomically: true, encoding: .utf8)
        let clusterPort = try freeLoopbackPort(), metricsPort = try freeLoopbackPort()
        // As an administrator's /etc/disco/coordinator.env and node-0.env would say.
        let c = try commandLine("disco-coordinator.service",
                                environmentFile: ["DISCO_LISTEN": "tcp:127.0.0.1:\(clusterPort)", "DISCO_METRICS": "127.0.0.1:\(metricsPort)",
                                                  "DISCO_COORDINATOR_ARGS": "--heartbeat-ms 200"],
                                credentials: dir + "/credentials")
        #expect(c.command.contains("--secret-file") && c.command.contains(dir + "/credentials/disco-secret"), "\(c.command)")
        let coordinator = try Background(command: c.command, environment: c.environment, log: dir + "/coordinator.log")
        defer { coordinator.stop() }
        try #require(coordinator.wait(for: "serving metrics on", timeout: 20), "\(coordinator.output)")
        let n = try commandLine("disco-node@.service", instance: "0",
                                environmentFile: ["DISCO_COORDINATOR": "tcp:127.0.0.1:\(clusterPort)",
                                                  "DISCO_NODE_ARGS": "--cpus 1 --memory 64M --metrics 127.0.0.1:0"],
                                credentials: dir + "/credentials")
        #expect(n.command.contains("\(ProcessInfo.processInfo.hostName)-0"), "%H-%i names the node: \(n.command)")
        #expect(n.command.contains("tcp:127.0.0.1:0"), "the default listen address: \(n.command)")
        let node = try Background(command: n.command, environment: n.environment, log: dir + "/node.log")
        defer { node.stop() }
        #expect(node.wait(for: "joined as node 0", timeout: 30), "\(node.output)")
        // The coordinator counts the node alive on its metrics endpoint; the node serves its own.
        var alive = false
        let deadline = Date().addingTimeInterval(20)
        while !alive && Date() < deadline {
            alive = metricValue(httpGet("http://127.0.0.1:\(metricsPort)/metrics"), #"disco_nodes{status="alive"}"#) == 1
            if !alive { usleep(200_000) }
        }
        #expect(alive, "coordinator: \(coordinator.output)")
        let nodeMetrics = try #require(node.line(after: "serving metrics on "), "\(node.output)")
        #expect(httpGet(nodeMetrics)?.contains("process_cpu_seconds_total") == true)
    }
}
