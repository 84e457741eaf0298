import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct BenchLinux: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linux",
        abstract: "Measure Debian's Linux: boot-to-init wall time on one node and across nodes, next to QEMU's.",
        discussion: """
            Boots the Linux guest scripts/fetch-debian.sh builds (Debian's riscv64 kernel,
            the busybox initramfs with guests/linux/init, the ext4 data disk) with Debian's
            OpenSBI, 512 MiB and --smp VCPUs: on QEMU, on `disco run` (one process), and
            on `disco run --nodes N` for each N > 1 in --nodes. Boot-to-init is the wall
            time from the start of the process to the init script's first line
            ("disco-linux: init"); the whole run ends at the power-off after the workload.
            Each run is bounded by --timeout. Build for release first:
              scripts/fetch-debian.sh && swift build -c release && .build/release/disco bench linux
            """
    )

    @Option(help: ArgumentHelp("The folder fetch-debian.sh built (default: $DISCO_DEBIAN_BUILD, else ~/.cache/disco/debian/build).", valueName: "path"))
    var build: String?

    @Option(help: ArgumentHelp("Node counts to run disco on, comma-separated (1: one process, no --nodes).", valueName: "list"))
    var nodes: String = "1,2,4"

    @Option(help: "VCPUs of the VM.")
    var smp: Int = 4

    @Option(help: "Runs of each configuration; the median is reported.")
    var repeats: Int = 1

    @Option(help: ArgumentHelp("Seconds a run may take before it is stopped and reported as timed out.", valueName: "seconds"))
    var timeout: Double = 900

    @Flag(help: "Stop each run at the init script's first line instead of letting the workload run to the power-off.")
    var initOnly = false

    @Flag(help: "Skip the QEMU comparison.")
    var noQemu = false

    @Option(help: ArgumentHelp("OpenSBI firmware.", valueName: "path"))
    var bios: String = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"

    @Option(help: ArgumentHelp("""
        More kernel arguments, after 'console=ttyS0 panic=-1 quiet', for every run (QEMU's \
        too), e.g. 'nohz_full=1-3' (docs/linux.md: the ticks of CPUs that run one task \
        cost a cluster most).
        """, valueName: "args"))
    var append: String = ""

    mutating func run() throws {
        let dir = build ?? Self.defaultBuild()
        let kernel = dir + "/kernel.Image", initrd = dir + "/initrd.gz", data = dir + "/data.img"
        for f in [kernel, initrd, data] where !FileManager.default.isReadableFile(atPath: f) {
            fail("\(f) not found: build the Linux guest with scripts/fetch-debian.sh (or give --build)")
        }
        guard FileManager.default.isReadableFile(atPath: bios) else { fail("firmware '\(bios)' not found (apt-get install opensbi)") }
        let counts = nodes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 64 }) else {
            fail("--nodes takes node counts 1...64 separated by commas, e.g. 1,2,4 (got '\(nodes)')")
        }
        guard (1...64).contains(smp), repeats >= 1, timeout > 0 else { fail("--smp 1...64, --repeats ≥ 1, --timeout > 0") }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let work = NSTemporaryDirectory() + "disco-bench-linux-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let append = "console=ttyS0 panic=-1 quiet" + (self.append.isEmpty ? "" : " " + self.append)

        print("== Debian Linux (\(URL(fileURLWithPath: kernel).lastPathComponent) in \(dir)), \(smp) VCPUs, 512 MiB, '\(append)': wall seconds to the init script's first line\(initOnly ? "" : " and to the power-off") ==")
        var results: [(label: String, run: Timing)] = []
        func measure(_ label: String, _ executable: String, _ args: (String) -> [String]) -> Timing {
            var runs: [Timing] = []
            for i in 1...repeats {
                // Each run gets a fresh copy of the data disk: the workload writes to it.
                let disk = work + "/data-\(i).img"
                try? FileManager.default.removeItem(atPath: disk)
                do { try FileManager.default.copyItem(atPath: data, toPath: disk) } catch { fail("copying \(data): \(error)") }
                let t = Self.timeRun(executable, args(disk), timeout: timeout, stopAtInit: initOnly)
                print("  \(label) run \(i): \(t.describe)")
                fflush(stdout)
                runs.append(t)
            }
            let t = Timing.median(runs)
            results.append((label, t))
            return t
        }
        var qemu: Timing?
        if !noQemu {
            qemu = measure("qemu         ", "/usr/bin/env") { disk in
                ["qemu-system-riscv64", "-machine", "virt", "-nographic", "-smp", "\(smp)", "-m", "512M", "-bios", bios,
                 "-kernel", kernel, "-initrd", initrd, "-append", append,
                 "-drive", "file=\(disk),format=raw,if=virtio", "-no-reboot"]
            }
        }
        var oneNode: Timing?
        for n in counts.compactMap({ $0 }) {
            let label = n == 1 ? "disco 1 node " : String(format: "disco %d nodes", n)
            let t = measure(label, me) { disk in
                ["run", "--smp", "\(smp)", "--memory", "512M", "--bios", bios, "--kernel", kernel,
                 "--initrd", initrd, "--append", append, "--disk", disk] + (n == 1 ? [] : ["--nodes", "\(n)"])
            }
            if n == 1 { oneNode = t }
        }
        print("== summary (median of \(repeats)) ==")
        for (label, t) in results {
            var line = "\(label)  \(t.brief)"
            if let q = qemu?.toInit, let d = t.toInit, !label.hasPrefix("qemu") {
                line += String(format: "  boot-to-init %.2fx QEMU", d / q)
                if let o = oneNode?.toInit, !label.hasPrefix("disco 1 ") { line += String(format: ", %.2fx 1 node", d / o) }
            }
            print(line)
        }
    }

    static func defaultBuild() -> String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["DISCO_DEBIAN_BUILD"], !d.isEmpty { return d }
        if let c = env["DISCO_DEBIAN_CACHE"], !c.isEmpty { return c + "/build" }
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache"
        return cache + "/disco/debian/build"
    }

    struct Timing {
        var toInit: Double?
        var toEnd: Double?
        var status: String
        var describe: String {
            let i = toInit.map { String(format: "init %7.2f s", $0) } ?? "init       —  "
            let e = toEnd.map { String(format: "power-off %7.2f s", $0) } ?? ""
            return "\(i)  \(e)  \(status)"
        }
        /// describe with the status's first line only (no output tails).
        var brief: String { describe.split(separator: "\n").first.map(String.init) ?? describe }
        static func median(_ runs: [Timing]) -> Timing {
            func med(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.sorted()[v.count / 2] }
            let ok = runs.filter { $0.toInit != nil }
            return Timing(toInit: ok.count == runs.count ? med(ok.compactMap(\.toInit)) : nil,
                          toEnd: runs.allSatisfy { $0.toEnd != nil } ? med(runs.compactMap(\.toEnd)) : nil,
                          status: runs.map(\.status).first { $0 != "ok" } ?? "ok")
        }
    }

    /// Runs one VM to its power-off (or to the init line with stopAtInit), timing the
    /// init line as it is printed. The child is stopped at the deadline: SIGTERM, then
    /// SIGKILL 5 s later.
    static func timeRun(_ executable: String, _ args: [String], timeout: Double, stopAtInit: Bool) -> Timing {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = ParentWatch.childEnvironment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        let seen = Seen(), errors = Seen()
        err.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil } else { errors.append(d) }
        }
        out.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil } else { seen.append(d) }
        }
        do { try p.run() } catch { return Timing(toInit: nil, toEnd: nil, status: "could not start \(executable): \(error)") }
        var status = "ok"
        while p.isRunning {
            if stopAtInit && seen.initAt != nil { stop(p); break }
            if seen.now() > timeout { status = String(format: "timed out after %.0f s", timeout); stop(p); break }
            usleep(10_000)
        }
        p.waitUntilExit()
        let end = seen.now()
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        if let rest = try? out.fileHandleForReading.readToEnd() { seen.append(rest) }
        if let rest = try? err.fileHandleForReading.readToEnd() { errors.append(rest) }
        let output = seen.text
        let initAt = seen.initAt ?? (output.contains("disco-linux: init") ? end : nil)
        if status == "ok" {
            // Stopped at the init line, the run is fine; otherwise it must have powered
            // off with 0 after the workload.
            if stopAtInit && initAt != nil {
            } else if initAt == nil {
                status = "exit status \(p.terminationStatus) before the init line"
            } else if p.terminationStatus != 0 {
                status = "exit status \(p.terminationStatus)"
            } else if !output.contains("disco-linux: done") || output.contains("disco-linux: FAIL") {
                status = "the workload did not finish: " + (output.split(whereSeparator: \.isNewline).last { $0.hasPrefix("disco-linux: ") }.map(String.init) ?? "")
            }
        }
        if status != "ok" {
            // Say why: the tails of what the run printed.
            let tail = { (t: String) in t.split(whereSeparator: \.isNewline).suffix(6).map { "      | " + $0 }.joined(separator: "\n") }
            status += "\n    output:\n" + tail(output) + "\n    errors:\n" + tail(errors.text)
        }
        return Timing(toInit: initAt, toEnd: stopAtInit || status != "ok" ? nil : end, status: status)
    }

    /// The child's output so far, and when the init line first appeared in it.
    private final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        private var initSeconds: Double?
        private let start = DispatchTime.now().uptimeNanoseconds
        private static let marker = Data("disco-linux: init".utf8)
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        func append(_ d: Data) {
            lock.lock(); defer { lock.unlock() }
            data.append(d)
            if initSeconds == nil, data.range(of: Self.marker) != nil { initSeconds = now() }
        }
        var initAt: Double? { lock.lock(); defer { lock.unlock() }; return initSeconds }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    private static func stop(_ p: Process) {
        p.terminate()
        let killAt = Date().addingTimeInterval(5)
        while p.isRunning && Date() < killAt { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
}
