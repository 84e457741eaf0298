import ArgumentParser
import Foundation

struct BenchNUMA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numa",
        abstract: "Measure the page policy: NUMA-unaware guests on 1, 2 and 4 nodes with the policy off and on.",
        discussion: """
            Runs two guests of 4 VCPUs as one VM on 1, 2 and 4 node processes, with
            --numa-policy off and on (memory placed by first touch unless --placement says
            otherwise), and reports for each run: the wall time (cluster start-up
            included), the share of the VM's sampled data misses that were local, the
            migrations, replications and collapses, moves per second of the run, and the
            time a migration took (median, p99; command to done at the coordinator).
            Every run of a guest must print the checksum it prints on one node.
              numa.elf    hart 0 first touches 1 MiB, then each hart works on its own
                          partition of it, reading a small shared table (like the Disco
                          paper's engineering workload)
              shared.elf  hart 0 builds a 512 KiB table, then every hart reads all of it
                          over, running the same code (like its raytrace)
              numa-long   numa.elf with ten times the rounds (about a second of work
                          on one node): the policy's warm-up is no longer most of the run
            Then lone moves: a VM of 4 idle VCPUs (idle.elf) over 2 nodes, its pages
            moved one at a time by request, each timed from command to done at the
            coordinator, next to the transport's round trip measured in the same run
            (a move is at least three: the command and its answer, the freeze and the
            drained answers, the data and the switch).
              swift build -c release && .build/release/disco bench numa
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: ArgumentHelp("Memory placement of the VM (first-touch, interleave or node:N).", valueName: "placement"))
    var placement: String = "first-touch"

    @Option(help: "Node counts to run on.")
    var nodes: [Int] = [1, 2, 4]

    @Option(help: "Guests to run (numa, shared, numa-long).")
    var workload: [String] = ["numa", "shared", "numa-long"]

    @Option(help: "Lone moves to time (0: none).")
    var loneMoves: Int = 60

    struct Run {
        var seconds: Double
        var stats: [String: String]
        func figure(_ key: String) -> Double? { stats[key].flatMap(Double.init) }
    }

    mutating func run() throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        for w in workload where !["numa", "shared", "numa-long"].contains(w) { fail("unknown workload '\(w)' (known: numa, shared, numa-long)") }
        guard loneMoves >= 0 else { fail("--lone-moves must be 0 or more") }
        print("workload   nodes  policy  wall s  local  migrations  replications  collapses  moves/s  move p50 us  move p99 us")
        for w in workload {
            let guest = "\(guests)/\(w).elf"
            guard FileManager.default.isReadableFile(atPath: guest) else {
                fail("guest '\(guest)' not found (build the guests with: make -C guests)")
            }
            var checksum: String?
            for n in nodes {
                var runs: [String: Run] = [:]
                for policy in ["off", "on"] {
                    let (run, line) = try runOnce(me, guest: guest, nodes: n, policy: policy)
                    if checksum == nil { checksum = line }
                    guard checksum == line else { fail("\(w).elf on \(n) node(s), policy \(policy) printed '\(line)', not '\(checksum!)'") }
                    runs[policy] = run
                    let moves = (run.figure("migrations") ?? 0) + (run.figure("replications") ?? 0)
                    print(String(format: "%-9@  %5d  %-6@  %6.2f  %5@  %10@  %12@  %9@  %7.0f  %11@  %11@", w, n, policy, run.seconds,
                                 run.stats["local_share"] ?? "n/a", run.stats["migrations"] ?? "0", run.stats["replications"] ?? "0",
                                 run.stats["collapses"] ?? "0", moves / run.seconds, run.stats["move_us_p50"] ?? "-",
                                 run.stats["move_us_p99"] ?? "-"))
                }
                if let off = runs["off"], let on = runs["on"] {
                    print(String(format: "%-9@  %5d  policy on is %.2fx as fast as off", w, n, off.seconds / on.seconds))
                }
                if n > 1, let on = runs["on"], let one = onOne[w] {
                    print(String(format: "%-9@  %5d  policy on: %.2fx the 1-node time", w, n, on.seconds / one))
                }
                if n == 1 { onOne[w] = runs["on"]?.seconds }
            }
        }
        if loneMoves > 0 { try timeLoneMoves() }
    }

    /// Seconds of each workload's policy-on run on one node (the cluster runs' yardstick).
    private var onOne: [String: Double] = [:]

    /// Pages of a VM of idle VCPUs over 2 nodes moved one at a time, each to the node it
    /// is not on: command to done at the coordinator, next to the transport's round trip.
    private func timeLoneMoves() throws {
        let idle = "\(guests)/idle.elf"
        guard FileManager.default.isReadableFile(atPath: idle) else { fail("guest '\(idle)' not found (build the guests with: make -C guests)") }
        let cluster = try LocalCluster.start(nodes: 2, cpus: 2, memoryBytes: 64 << 20, directory: nil)
        defer { cluster.stop() }
        let client = try cluster.connectedClient(label: "disco.bench")
        defer { client.close() }
        let spec = "name: moves\nvcpus: 4\nmemory: 16M\nbios: none\nkernel: \(idle)\nplacement: interleave\nnumaPolicy: off\n"
        let (ok, vm, body) = try client.requestWithVM(.create(spec: spec))
        guard ok, let vm else { throw BenchError("the cluster refused the VM: \(body)") }
        let console = cluster.directory + "/consoles/vm-\(vm)-moves.log"
        let deadline = Date().addingTimeInterval(60)
        while !((try? String(contentsOfFile: console, encoding: .utf8)) ?? "").contains("idle: up") {
            if let died = cluster.firstExited() { throw BenchError(died) }
            guard Date() < deadline else { throw BenchError("the VM did not start within 60 s (logs in \(cluster.directory))") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        var micros: [Double] = []
        for k in 0..<loneMoves {
            // Pages past the guest's image (an idle VM touches few); interleaved, so each has a frame.
            let page = 0x8010_0000 + UInt64(k) * 4096
            var answer = try client.request(.migrate(vm: vm, guestPage: page, node: 1))
            if !answer.ok, answer.body.contains("on node 1 already") { answer = try client.request(.migrate(vm: vm, guestPage: page, node: 0)) }
            guard answer.ok, let us = answer.body.split(separator: " ").dropLast().last.flatMap({ Double($0) }) else {
                throw BenchError("move of page 0x\(String(page, radix: 16)) failed: \(answer.body)")
            }
            micros.append(us)
        }
        micros.sort()
        var transport = BenchTransport()
        transport.rounds = 5000
        let rtt = try transport.roundTrip(kind: "unix")
        let p50 = micros[micros.count / 2], p99 = micros[min(micros.count - 1, micros.count * 99 / 100)]
        print("== lone moves (2 nodes, a VM of 4 idle VCPUs, one move at a time) ==")
        print(String(format: "move (command to done)       median %7.0f µs  p99 %7.0f µs  (%d moves)", p50, p99, micros.count))
        print(String(format: "transport round trip (unix)  median %7.1f µs: a move is %.1f round trips", rtt.median / 1e3, p50 * 1e3 / rtt.median))
    }

    /// One `disco run --nodes n --stats` of `guest`: its time, its statistics line and
    /// the checksum line it printed.
    private func runOnce(_ me: String, guest: String, nodes n: Int, policy: String) throws -> (Run, String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("disco-bench-numa-\(getpid()).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: me)
        p.arguments = ["run", "--nodes", "\(n)", "--smp", "4", "--memory", "16M", "--bios", "none", "--kernel", guest,
                       "--placement", placement, "--numa-policy", policy, "--console-log", log, "--stats"]
        p.environment = ParentWatch.childEnvironment
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard p.terminationStatus == 0, let line = out.split(separator: "\n").first(where: { $0.contains(": checksum") }) else {
            fail("\(guest) on \(n) node(s), policy \(policy): exit \(p.terminationStatus)\n\(out)\(errText)")
        }
        return (Run(seconds: seconds, stats: Self.fields(errText)), String(line))
    }

    /// `key: value` pairs of a statistics line (flow YAML; nested maps flattened).
    static func fields(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        let cleaned = text.replacingOccurrences(of: "{", with: ",").replacingOccurrences(of: "}", with: ",")
        for part in cleaned.split(separator: ",") {
            let kv = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            guard kv.count == 2, !kv[1].isEmpty, out[kv[0]] == nil else { continue }
            out[kv[0]] = kv[1]
        }
        return out
    }
}
