import ArgumentParser
import Coordinator
import Foundation

struct BenchOverhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overhead",
        abstract: "Measure the monitor's overhead: one VM alone on a node vs the same VM among VMs that idle.",
        discussion: """
            Starts a local cluster of one node for each measurement. With K idle VMs, the
            node gets K + 1 CPUs and first boots K VMs of guests/build/idle.elf (a 100 Hz
            timer tick and WFI in between, as an idle kernel), waits until each has
            ticked for a second, then boots one VM of guests/build/bench-long.elf (bench.elf
            with 5 times the iterations: CPU-bound, about 1.6 billion instructions) and times it from the moment the coordinator
            lists it running to the moment it lists it stopped (polled every 2 ms). The
            counts in --idle are run in turn, --repeats rounds, and the medians compared
            with the VM alone (K = 0): what the idle VMs' ticks, the scheduler and the
            node's bookkeeping cost the busy VM. Disco's target: at most 3%.
              swift build -c release && .build/release/disco bench overhead
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: "Idle VM counts to measure beside the busy one, comma-separated (0: alone).")
    var idle: [Int] = [0, 3, 7]

    @Option(help: "Rounds; the median of each count is reported.")
    var repeats: Int = 5

    @Option(help: ArgumentHelp("Keep the clusters' logs and the VMs' consoles here (default: a temporary directory, removed).", valueName: "path"))
    var dir: String?

    mutating func run() throws {
        let bench = URL(fileURLWithPath: guests + "/bench-long.elf").standardizedFileURL.path
        let idleELF = URL(fileURLWithPath: guests + "/idle.elf").standardizedFileURL.path
        for elf in [bench, idleELF] where !FileManager.default.isReadableFile(atPath: elf) {
            fail("guest '\(elf)' not found (build the guests with: make -C guests)")
        }
        guard !idle.isEmpty, idle.allSatisfy({ (0...31).contains($0) }) else { fail("--idle: counts from 0 to 31") }
        guard (1...50).contains(repeats) else { fail("--repeats: 1 to 50") }
        let counts = idle.contains(0) ? idle : [0] + idle
        let root = dir ?? NSTemporaryDirectory() + "disco-bench-overhead-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        setvbuf(stdout, nil, _IOLBF, 0)
        print("== monitor overhead: bench-long.elf (1 VCPU) alone on a node vs beside idle VMs (idle.elf, 100 Hz tick), \(repeats) rounds ==")
        var seconds: [Int: [Double]] = [:]
        var output: String?
        for round in 1...repeats {
            for k in counts {
                let (s, out) = try measure(idleVMs: k, root: root + "/r\(round)-k\(k)", bench: bench, idleELF: idleELF)
                if let output, output != out { fail("bench-long.elf printed different things:\n\(output)\n---\n\(out)") }
                output = out
                seconds[k, default: []].append(s)
                print(String(format: "  round %d: %2d idle VMs  %.3f s", round, k, s))
            }
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        let alone = median(seconds[0] ?? [])
        print("== summary (median of \(repeats)) ==")
        for k in counts {
            let m = median(seconds[k] ?? [])
            let v = (seconds[k] ?? []).sorted()
            if k == 0 {
                print(String(format: "alone            %.3f s (%.3f-%.3f)", m, v.first ?? 0, v.last ?? 0))
            } else {
                print(String(format: "%2d idle VMs      %.3f s (%.3f-%.3f)  overhead %+.1f%%", k, m, v.first ?? 0, v.last ?? 0, (m / alone - 1) * 100))
            }
        }
        print("bench-long.elf printed:")
        print(output ?? "", terminator: "")
    }

    /// One cluster: `idleVMs` idle VMs ticking, then the busy VM, timed.
    private func measure(idleVMs: Int, root: String, bench: String, idleELF: String) throws -> (Double, String) {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let cluster = try LocalCluster.start(nodes: 1, cpus: idleVMs + 1, memoryBytes: UInt64(idleVMs + 1) * (16 << 20) + (32 << 20),
                                             directory: root + "/cluster")
        defer { cluster.stop() }
        let client = try cluster.connectedClient(label: "disco.bench")
        defer { client.close() }
        let consoles = root + "/cluster/consoles"
        var idleIDs: [UInt32] = []
        for i in 0..<idleVMs {
            let spec = "name: idle\(i)\nvcpus: 1\nmemory: 16M\nbios: none\nkernel: \(idleELF)\n"
            let (ok, id, body) = try client.requestWithVM(.create(spec: spec))
            guard ok, let id else { throw BenchError("the cluster refused idle VM \(i): \(body)") }
            idleIDs.append(id)
        }
        let deadline = Date().addingTimeInterval(120)
        while !idleIDs.enumerated().allSatisfy({ i, id in
            ((try? String(contentsOfFile: consoles + "/vm-\(id)-idle\(i).log", encoding: .utf8)) ?? "").contains("idle: 100 ticks")
        }) {
            if let died = cluster.firstExited() { throw BenchError(died) }
            guard Date() < deadline else { throw BenchError("the idle VMs did not tick for a second within 120 s (logs in \(root))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let (ok, id, body) = try client.requestWithVM(.create(spec: "name: busy\nvcpus: 1\nmemory: 16M\nbios: none\nkernel: \(bench)\n"))
        guard ok, let id else { throw BenchError("the cluster refused the busy VM: \(body)") }
        func state() throws -> String? {
            let (_, list) = try client.request(.list)
            guard let row = list.split(separator: "\n").first(where: { $0.contains("{vm: \(id),") }),
                  let s = row.components(separatedBy: "state: ").dropFirst().first?.split(separator: ",").first else { return nil }
            return String(s)
        }
        var started: Date?
        while true {
            let s = try state()
            let now = Date()
            if s == "running", started == nil { started = now }
            if s == "stopped" || s == "failed" {
                guard s == "stopped", let started else { throw BenchError("the busy VM ended \(s ?? "?") (logs in \(root))") }
                let out = (try? String(contentsOfFile: consoles + "/vm-\(id)-busy.log", encoding: .utf8)) ?? ""
                guard out.contains("bench: checksum") else { throw BenchError("the busy VM printed: \(out)") }
                // The instruction count is the guest's own (it differs with nothing); keep the checksum.
                let checksum = out.split(separator: "\n").filter { $0.hasPrefix("bench: checksum") }.joined(separator: "\n") + "\n"
                return (now.timeIntervalSince(started), checksum)
            }
            if let died = cluster.firstExited() { throw BenchError(died) }
            guard Date() < deadline.addingTimeInterval(120) else { throw BenchError("the busy VM did not end in time (logs in \(root))") }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }
}
