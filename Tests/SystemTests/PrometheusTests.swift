import Foundation
import TestSupport
import Testing

/// The metrics endpoints under a real Prometheus (Debian's package): a live cluster runs
/// guests, Prometheus scrapes it over loopback, and the figures are read back through
/// Prometheus's HTTP API. Every process is bounded in time and stopped at the end.
@Suite(.serialized) struct PrometheusTests {
    /// A fresh directory for one test's logs, sockets and Prometheus data.
    func scratch(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func requirePrometheus() throws {
        try #require(FileManager.default.isExecutableFile(atPath: PrometheusServer.binary),
                     "\(PrometheusServer.binary) is missing: scripts/setup.sh installs Debian's prometheus")
        try #require(FileManager.default.fileExists(atPath: Paths.guest("numa.elf")), "guests are not built: run make -C guests")
    }

    /// `disco ARGS --coordinator COORDINATOR` with the secret in the environment.
    func cli(_ args: [String], secret: String, coordinator: String) throws -> ProcessResult {
        try runProcess("/usr/bin/env", ["DISCO_SECRET=\(secret)", Paths.disco] + args + ["--coordinator", coordinator], timeout: 30)
    }

    /// Creates a VM from `spec` and, with `untilStopped`, waits for it to finish (the
    /// logs in `logs`, the cluster's, say why not).
    func createVM(_ spec: String, in dir: String, name: String, secret: String, coordinator: String, untilStopped: Bool,
                  logs: String? = nil) throws {
        let path = dir + "/\(name).yaml"
        try spec.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try cli(["vm", "create", "--spec", path], secret: secret, coordinator: coordinator)
        try #require(r.status == 0, "vm create \(name): \(r.output) \(r.errorOutput)")
        guard untilStopped else { return }
        let deadline = Date().addingTimeInterval(120)
        var list = ""
        while Date() < deadline {
            list = try cli(["vm", "list"], secret: secret, coordinator: coordinator).output
            if list.contains("name: \(name), state: stopped") || list.contains("name: \(name), state: failed") { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        let tails = (try? FileManager.default.contentsOfDirectory(atPath: logs ?? dir))?.filter { $0.hasSuffix(".log") || $0.hasSuffix(".out") }.sorted()
            .map { f in "\(f):\n" + (((try? String(contentsOfFile: (logs ?? dir) + "/" + f, encoding: .utf8)) ?? "").split(separator: "\n").suffix(15).joined(separator: "\n")) }
            .joined(separator: "\n") ?? ""
        try #require(list.contains("name: \(name), state: stopped"), "VM \(name) did not finish: \(list)\n\(tails)")
    }

    var numaSpec: String { "name: numa\nvcpus: 2\nmemory: 128M\nbios: none\nkernel: \(Paths.guest("numa.elf"))\n" }
    var idleSpec: String { "name: idle\nvcpus: 1\nmemory: 64M\nbios: \(Paths.openSBI)\nkernel: \(Paths.uBoot)\n" }

    /// `disco up --metrics` serves the coordinator's endpoint, which carries the nodes'
    /// counters: numa.elf runs to its end over two one-CPU nodes (pages migrate), then
    /// U-Boot keeps running; Prometheus reads every figure the issue names.
    @Test func prometheusScrapesDiscoUpAndReadsTheFiguresBack() throws {
        try requirePrometheus()
        let dir = try scratch("metrics-up")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = try Background("up", Paths.disco, ["up", "--nodes", "2", "--cpus", "1", "--memory", "512M",
                                                    "--dir", dir + "/cluster", "--metrics", "127.0.0.1:0"], logDirectory: dir)
        defer { up.stop() }
        try #require(up.wait(for: "Ctrl-C stops everything", timeout: 60), "disco up did not start:\n\(up.output)")
        let secret = try #require(up.line(after: "export DISCO_SECRET="), "no secret:\n\(up.output)")
        let metricsURL = try #require(up.line(after: "metrics at "), "disco up printed no metrics address:\n\(up.output)")
        let target = try #require(URL(string: metricsURL)).host.map { "\($0):\(URL(string: metricsURL)!.port!)" }
        try #require(metricsURL.hasPrefix("http://127.0.0.1:") && metricsURL.hasSuffix("/metrics"), "\(metricsURL)")
        let coordinator = "unix:\(dir)/cluster/coordinator.sock"

        try createVM(numaSpec, in: dir, name: "numa", secret: secret, coordinator: coordinator, untilStopped: true, logs: dir + "/cluster")
        try createVM(idleSpec, in: dir, name: "idle", secret: secret, coordinator: coordinator, untilStopped: false)

        let prometheus = try PrometheusServer(jobs: ["disco": [try #require(target)]], directory: dir)
        defer { prometheus.stop() }
        // Scraped, and the nodes' reports relayed (each node reports every 0.8 s under `disco up`).
        let up1 = try prometheus.waitFor(#"up{job="disco"}"#, timeout: 60) { $0.first?.value == 1 }
        try #require(up1.first?.value == 1, "Prometheus never scraped \(metricsURL): \(up1)\n\(prometheus.log)")
        let instructions = try prometheus.waitFor("disco_instructions_total", timeout: 30) { r in
            r.count == 2 && r.allSatisfy { $0.value > 0 }
        }
        #expect(Set(instructions.compactMap { $0.labels["node"] }) == ["0", "1"], "\(instructions)")
        // numa.elf retires tens of millions of instructions over its two nodes.
        #expect(instructions.reduce(0) { $0 + $1.value } > 1e7, "\(instructions)")

        // Per VM: state and VCPUs.
        let vms = try prometheus.waitFor(#"disco_vm_state == 1"#, timeout: 20) { $0.count == 2 }
        let states = Dictionary(vms.map { ($0.labels["name"] ?? "", $0.labels["state"] ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(states == ["numa": "stopped", "idle": "running"], "\(vms)")
        #expect(try prometheus.value(#"disco_vm_vcpus{vm="1"}"#) == 2)
        #expect(try prometheus.value(#"disco_vm_vcpus{vm="2"}"#) == 1)
        #expect(try prometheus.value(#"disco_vms{state="running"}"#) == 1)
        #expect(try prometheus.value(#"disco_nodes{status="alive"}"#) == 2)

        // Per node: misses, lines, page moves, round trip, queue depths.
        #expect((try prometheus.value("sum(disco_remote_misses_total)") ?? 0) > 0)
        #expect((try prometheus.value("sum(disco_lines_received_total)") ?? 0) > 0)
        #expect((try prometheus.value("sum(disco_lines_sent_total)") ?? 0) > 0)
        let sampled = try prometheus.query(#"disco_sampled_misses_total{vm="1"}"#)
        #expect(Set(sampled.compactMap { $0.labels["locality"] }) == ["local", "remote"], "\(sampled)")
        // The page policy moved numa.elf's pages to the node that uses them: the
        // coordinator counted the migrations, the targets counted the pages moved in.
        let migrations = try prometheus.value(#"disco_vm_migrations_total{vm="1"}"#) ?? 0
        let movedIn = try prometheus.value(#"sum(disco_page_migrations_total{direction="in"})"#) ?? 0
        let movedOut = try prometheus.value(#"sum(disco_page_migrations_total{direction="out"})"#) ?? 0
        #expect(migrations >= 1, "no migration counted")
        #expect(movedIn >= migrations && movedOut >= migrations, "nodes: in \(movedIn), out \(movedOut); coordinator: \(migrations)")
        let rtt = try prometheus.query("disco_heartbeat_round_trip_seconds")
        #expect(rtt.count == 2 && rtt.allSatisfy { $0.value > 0 && $0.value < 1 }, "\(rtt)")
        // U-Boot's one VCPU is on a node's run queue (runnable), waiting for an interrupt,
        // or parked as spinning (its prompt polls the UART).
        let vcpus = try prometheus.query("sum(disco_vcpus)")
        #expect(vcpus.first?.value == 1, "\(vcpus)")
        #expect(try prometheus.query("disco_deferred_events").count == 2)

        // The figures move on: U-Boot keeps retiring instructions on its node.
        let before = try prometheus.value("sum(disco_instructions_total)") ?? 0
        let later = try prometheus.waitFor("sum(disco_instructions_total)", timeout: 20) { ($0.first?.value ?? 0) > before }
        #expect((later.first?.value ?? 0) > before, "no progress after \(before)")
        #expect((try prometheus.value("process_cpu_seconds_total") ?? 0) > 0)
        #expect(up.isRunning, "disco up stopped:\n\(up.output)")
    }

    /// Each `disco node --metrics` serves its own counters; Prometheus scrapes the
    /// coordinator and both nodes, and a node's own figures equal what the coordinator
    /// relays from the same report once the cluster is idle.
    @Test func everyNodeServesItsOwnCountersAndTheyMatchTheCoordinators() throws {
        try requirePrometheus()
        let dir = try scratch("metrics-nodes")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let secret = "metrics-test-secret"
        let env = ["DISCO_SECRET": secret]
        let coordinatorAddress = "unix:\(dir)/coordinator.sock"
        let coordinator = try Background("coordinator", Paths.disco, ["coordinator", "--listen", coordinatorAddress, "--heartbeat-ms", "200",
                                                                      "--metrics", "127.0.0.1:0"], environment: env, logDirectory: dir)
        defer { coordinator.stop() }
        try #require(coordinator.wait(for: "serving metrics on ", timeout: 20), "\(coordinator.output)")
        var nodes: [Background] = []
        defer { nodes.forEach { $0.stop() } }
        for i in 0..<2 {
            nodes.append(try Background("node-\(i)", Paths.disco, ["node", "--coordinator", coordinatorAddress, "--listen", "unix:\(dir)/node-\(i).sock",
                                                                   "--name", "node-\(i)", "--cpus", "1", "--memory", "512M",
                                                                   "--metrics", "127.0.0.1:0"], environment: env, logDirectory: dir))
        }
        for n in nodes { try #require(n.wait(for: "joined as node", timeout: 30), "\(n.output)") }
        func target(_ p: Background) throws -> String {
            let url = try #require(p.line(after: "serving metrics on "), "\(p.output)")
            let u = try #require(URL(string: url))
            return "\(u.host!):\(u.port!)"
        }
        try createVM(numaSpec, in: dir, name: "numa", secret: secret, coordinator: coordinatorAddress, untilStopped: true)

        let prometheus = try PrometheusServer(jobs: ["coordinator": [try target(coordinator)], "nodes": try nodes.map(target)], directory: dir)
        defer { prometheus.stop() }
        let targets = try prometheus.waitFor("up", timeout: 60) { $0.count == 3 && $0.allSatisfy { $0.value == 1 } }
        try #require(targets.count == 3 && targets.allSatisfy { $0.value == 1 }, "targets: \(targets)\n\(prometheus.log)")
        // Both paths carry both nodes once the reports after the VM's end are in.
        func byNode(_ job: String) throws -> [String: Double] {
            Dictionary(try prometheus.query(#"disco_instructions_total{job="\#(job)"}"#).map { ($0.labels["node"] ?? "?", $0.value) },
                       uniquingKeysWith: max)
        }
        var own: [String: Double] = [:], relayed: [String: Double] = [:]
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            own = try byNode("nodes")
            relayed = try byNode("coordinator")
            if own.count == 2, own == relayed { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        #expect(own.keys.sorted() == ["0", "1"], "\(own)")
        #expect(own.values.allSatisfy { $0 > 0 }, "\(own)")
        #expect(own == relayed, "nodes say \(own), the coordinator relays \(relayed)")
        // The nodes' own endpoints carry no coordinator figures, and the other way round.
        #expect(try prometheus.query(#"disco_vm_state{job="nodes"}"#).isEmpty)
        #expect(try prometheus.value(#"disco_vm_state{job="coordinator",name="numa",state="stopped"}"#) == 1)
        #expect((try prometheus.value(#"sum(disco_remote_misses_total{job="nodes"})"#) ?? 0) > 0)
        for n in nodes { #expect(n.isRunning, "\(n.name) stopped:\n\(n.output)") }
    }

    /// Bad `--metrics` input: one clear line and exit 2, before anything starts.
    @Test func badMetricsAddressesAreClearErrors() throws {
        let env = "DISCO_SECRET=s"
        for (args, words) in [
            (["coordinator", "--listen", "unix:/tmp/disco-never-\(UUID().uuidString).sock", "--metrics", "nonsense"], "expected HOST:PORT"),
            (["node", "--metrics", "127.0.0.1:99999"], "a port from 0 to 65535"),
            (["up", "--metrics", "::1:9470"], "IPv6 address in brackets"),
            (["coordinator", "--metrics", "no-such-host.invalid:9470"], "cannot resolve"),
        ] {
            let r = try runProcess("/usr/bin/env", [env, Paths.disco] + args, timeout: 20)
            #expect(r.status == 2, "\(args): status \(r.status) \(r.errorOutput)")
            #expect(r.errorOutput.hasPrefix("disco: error: --metrics: ") && r.errorOutput.contains(words), "\(args): \(r.errorOutput)")
        }
        // A port that is taken: the coordinator says so and stops; so does `disco up`.
        let held = try PortHolder()
        defer { held.close() }
        let dir = try scratch("metrics-taken")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try runProcess("/usr/bin/env", [env, Paths.disco, "coordinator", "--listen", "unix:\(dir)/c.sock",
                                               "--metrics", "127.0.0.1:\(held.port)"], timeout: 20)
        #expect(c.status == 2 && c.errorOutput.contains("the port is in use"), "\(c.status): \(c.errorOutput)")
        #expect(!c.stoppedEarly)
        let u = try runProcess(Paths.disco, ["up", "--nodes", "1", "--dir", dir + "/up", "--metrics", "127.0.0.1:\(held.port)"], timeout: 60)
        #expect(u.status != 0 && !u.stoppedEarly, "\(u.status)")
        #expect(u.errorOutput.contains("the port is in use"), "\(u.output)\n\(u.errorOutput)")
        // The help explains the flag on every command that has it.
        for command in ["coordinator", "node", "up"] {
            let help = try runProcess(Paths.disco, [command, "--help"], timeout: 20)
            #expect(help.output.contains("--metrics <host:port>") && help.output.contains("/metrics"), "\(command): \(help.output)")
        }
    }
}
