import ArgumentParser
import Foundation
import Protocol
import Transport

struct BenchCluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Measure the distributed machine: remote miss latency, lines per second, SMP run time over 1, 2, 4 nodes, spin-waiting guests over 2, 3, 4 nodes.",
        discussion: """
            Runs guests/build/missbench.elf on one VM spread over 2 node processes (its
            pages interleaved over both, so half its reads miss to the other node) and
            reports the guest-observed miss latency next to the transport's own round
            trip on the same kind of socket, what a read of a line held in the node's
            remote cache costs next to a local one, and the lines per second of one hart
            streaming remote memory; then the SMP guest's wall time on 1, 2 and 4
            nodes (cluster start-up included, measured separately); then
            guests/build/spin.elf (hart 0 writes 8 MiB while the others poll a flag
            without a pause hint) with one VCPU per node on 2, 3 and 4 nodes, its memory
            interleaved and the page policy off (so the pollers' nodes serve hart 0's
            misses, as for a teaching kernel on an interleaving machine), with spinning
            VCPUs parked (the default) and not (--no-park-spinning): more node processes
            than host cores should cost in proportion, never collapse.
              swift build -c release && .build/release/disco bench cluster
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: "Runs of each measurement; the median is reported.")
    var repeats: Int = 3

    mutating func run() throws {
        let missbench = guests + "/missbench.elf", smp = guests + "/smp.elf", spin = guests + "/spin.elf"
        for g in [missbench, smp, spin] where !FileManager.default.isReadableFile(atPath: g) {
            fail("guest '\(g)' not found (build the guests with: make -C guests)")
        }
        guard repeats >= 1 else { fail("--repeats must be at least 1") }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path

        print("== remote misses (2 nodes, Unix sockets) ==")
        var medians: [Double] = [], p99s: [Double] = [], rates: [Double] = []
        var hits: [Double] = [], locals: [Double] = [], streams: [Double] = []
        for _ in 0..<repeats {
            let (out, _) = try runDisco(me, ["run", "--nodes", "2", "--smp", "2", "--memory", "64M", "--placement", "interleave",
                                             "--bios", "none", "--kernel", missbench])
            guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("instret: miss median us") }) else {
                fail("missbench printed no result:\n\(out)")
            }
            let f = line.split(separator: " ")
            medians.append(Double(f[4]) ?? .nan)
            p99s.append(Double(f[7]) ?? .nan)
            rates.append(Double(f[9]) ?? .nan)
            let lines = out.split(separator: "\n")
            if let h = lines.first(where: { $0.hasPrefix("instret: read ns remote-cache hit") })?.split(separator: " "), h.count >= 8 {
                hits.append(Double(h[5]) ?? .nan)
                locals.append(Double(h[7]) ?? .nan)
            }
            if let st = lines.first(where: { $0.hasPrefix("instret: stream remote lines") })?.split(separator: " "), st.count >= 7 {
                streams.append(Double(st[6]) ?? .nan)
            }
        }
        let rtt = try transportRoundTrip()
        print(String(format: "guest-observed remote miss   median %7.1f µs  p99 %7.1f µs", median(medians), median(p99s)))
        print(String(format: "transport round trip (unix)  median %7.1f µs  p99 %7.1f µs  (ratio miss/RTT %.2fx)",
                     rtt.median / 1e3, rtt.p99 / 1e3, median(medians) * 1e3 / rtt.median))
        print(String(format: "lines transferred per second  %.0f (one hart, one miss at a time)", median(rates)))
        if !hits.isEmpty {
            print(String(format: "read of a line in the remote cache %.0f ns, of a local line %.0f ns (%.0f ns more)",
                         median(hits), median(locals), median(hits) - median(locals)))
        }
        if !streams.isEmpty {
            print(String(format: "one hart streaming remote memory: %.0f lines/s (sequential prefetch)", median(streams)))
        }

        print("== SMP guest (4 VCPUs) wall time ==")
        let startup = try (0..<repeats).map { _ in try runDisco(me, ["run", "--nodes", "1", "--smp", "1", "--memory", "64M",
                                                                    "--bios", "none", "--kernel", missbench]).seconds }
        print(String(format: "cluster start-up and a trivial guest on 1 node: %.2f s", median(startup)))
        for nodes in [1, 2, 4] {
            let times = try (0..<repeats).map { _ in
                try runDisco(me, ["run", "--nodes", "\(nodes)", "--smp", "4", "--bios", "none", "--kernel", smp]).seconds
            }
            print(String(format: "smp.elf on %d node(s): %.2f s", nodes, median(times)))
        }

        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("== spin-waiting guest, one VCPU per node, memory interleaved, policy off (\(cores) host cores) ==")
        var parked: [Int: Double] = [:]
        for nodes in [2, 3, 4] {
            var line = String(format: "spin.elf on %d nodes:", nodes)
            for park in [true, false] {
                let times = try (0..<repeats).map { _ in
                    try runDisco(me, ["run", "--nodes", "\(nodes)", "--smp", "\(nodes)", "--memory", "64M", "--placement", "interleave",
                                      "--numa-policy", "off", "--bios", "none", "--kernel", spin]
                                     + (park ? [] : ["--no-park-spinning"]), timeout: 300).seconds
                }
                if park { parked[nodes] = median(times) }
                line += (park ? "  parked" : "  not parked") + String(format: " %6.2f s", median(times))
            }
            if let two = parked[2], nodes > 2 { line += String(format: "  (parked: %.2fx the 2-node time)", parked[nodes]! / two) }
            print(line)
        }
    }

    private func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    /// Runs `disco` with `args`; fails the bench if it fails or takes over `timeout` s.
    private func runDisco(_ path: String, _ args: [String], timeout: Double = 600) throws -> (String, seconds: Double) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.environment = ParentWatch.childEnvironment
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        guard p.terminationStatus == 0 else { fail("disco \(args.joined(separator: " ")) exited with \(p.terminationStatus)") }
        return (String(decoding: data, as: UTF8.self), seconds)
    }

    private func transportRoundTrip() throws -> (median: Double, p99: Double) {
        var t = BenchTransport()
        t.rounds = 5000
        let r = try t.roundTrip(kind: "unix")
        return (r.median, r.p99)
    }
}
