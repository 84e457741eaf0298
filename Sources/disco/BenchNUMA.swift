import ArgumentParser
import Foundation

struct BenchNUMA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numa",
        abstract: "Measure the page policy: a NUMA-unaware guest on 1, 2 and 4 nodes with the policy off and on.",
        discussion: """
            Runs guests/build/numa.elf (hart 0 first touches 1 MiB, then each of 4 VCPUs
            works on its own partition while reading a shared table) as one VM on 1, 2
            and 4 node processes, with --numa-policy off and on, and reports each wall
            time (cluster start-up included) and the off/on ratio. Every run must print
            the same checksum, the one the guest prints on one node.
              swift build -c release && .build/release/disco bench numa
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: ArgumentHelp("Memory placement of the VM (first-touch, interleave or node:N).", valueName: "placement"))
    var placement: String = "first-touch"

    @Option(help: "Node counts to run on.")
    var nodes: [Int] = [1, 2, 4]

    mutating func run() throws {
        let guest = guests + "/numa.elf"
        guard FileManager.default.isReadableFile(atPath: guest) else {
            fail("guest '\(guest)' not found (build the guests with: make -C guests)")
        }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        var checksum: String?
        print("nodes  policy off (s)  policy on (s)  off/on")
        for n in nodes {
            var seconds: [String: Double] = [:]
            for policy in ["off", "on"] {
                let log = FileManager.default.temporaryDirectory.appendingPathComponent("disco-bench-numa-\(getpid()).log").path
                defer { try? FileManager.default.removeItem(atPath: log) }
                let start = Date()
                let status = try runProcess(me, ["run", "--nodes", "\(n)", "--smp", "4", "--memory", "16M", "--bios", "none",
                                                 "--kernel", guest, "--placement", placement, "--numa-policy", policy,
                                                 "--console-log", log])
                seconds[policy] = Date().timeIntervalSince(start)
                let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                guard status == 0, let line = out.split(separator: "\n").first(where: { $0.hasPrefix("numa: checksum") }) else {
                    fail("numa.elf on \(n) node(s), policy \(policy): exit \(status)\n\(out)")
                }
                if checksum == nil { checksum = String(line) }
                guard checksum == String(line) else { fail("numa.elf on \(n) node(s), policy \(policy) printed '\(line)', not '\(checksum!)'") }
            }
            print(String(format: "%5d  %14.2f  %13.2f  %5.2fx", n, seconds["off"]!, seconds["on"]!, seconds["off"]! / seconds["on"]!))
        }
    }

    private func runProcess(_ path: String, _ args: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
