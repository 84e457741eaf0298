import Foundation
import TestSupport
import Testing

/// `disco experiment` runs a small sweep end to end (clusters started, VMs run, CSV and
/// PNG written by experiments/plot.py with matplotlib); `disco top --once` shows a live
/// `disco up` cluster's nodes, VMs and rates.
@Suite(.serialized) struct ExperimentAndTopTests {
    static let experiments = Paths.root.appendingPathComponent("experiments").path

    func scratchDirectory(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(.timeLimit(.minutes(3)))
    func aSmallExperimentWritesItsCSVAndAPNG() throws {
        try #require(FileManager.default.fileExists(atPath: Paths.guest("numa.elf")), "guests are not built: run make -C guests")
        let out = try scratchDirectory("experiment")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try runProcess(Paths.disco, ["experiment", "smoke", "--experiments", Self.experiments,
                                             "--guests", Paths.guests.path, "--out", out], timeout: 150)
        #expect(r.status == 0, "\(r.output)\n\(r.errorOutput)")
        #expect(!r.stoppedEarly)
        // Progress, one line per run.
        #expect(r.output.contains("[1/2]") && r.output.contains("[2/2]"), "\(r.output)")
        let csv = try String(contentsOfFile: out + "/smoke.csv", encoding: .utf8)
        let lines = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = try #require(lines.first)
        #expect(header == Self.columns, "\(header)")
        #expect(lines.count == 3, "\(csv)")
        var policies: [String] = []
        for row in lines.dropFirst() {
            #expect(row.count == header.count, "\(row)")
            let cell = Dictionary(uniqueKeysWithValues: zip(header, row))
            #expect(cell["engine"] == "cluster" && cell["guest"] == "numa.elf" && cell["nodes"] == "1" && cell["vcpus"] == "2")
            policies.append(cell["policy"] ?? "")
            let seconds = try #require(Double(cell["run_s"] ?? ""), "\(row)")
            #expect(seconds > 0 && seconds < 100, "\(row)")
            #expect((Double(cell["wall_s"] ?? "") ?? 0) >= seconds, "\(row)")
            // numa.elf retires millions of instructions; on one node every miss is local.
            #expect((Double(cell["instructions"] ?? "") ?? 0) > 1e6, "\(row)")
            #expect(cell["local_share"] == "1.000", "\(row)")
        }
        #expect(policies == ["off", "on"])
        let png = try #require(FileManager.default.contents(atPath: out + "/smoke.png"), "no smoke.png in \(out): \(r.output)")
        #expect(png.count > 2000, "a PNG of \(png.count) bytes")
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
        // The IHDR chunk: the 640 x 420 figure plot.py draws.
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 640 && height == 420, "\(width) x \(height)")
    }

    static let columns = ["run", "engine", "guest", "nodes", "vcpus", "vms", "policy", "placement", "memory_mib", "cache_mib",
                          "wall_s", "run_s", "jobs_per_min", "instructions", "mips", "local_share", "local_misses",
                          "remote_misses", "migrations", "replications", "collapses", "virtual_mib", "machine_mib"]

    /// Disco's Fig. 6 as an experiment: 2 VMs of bcache.elf from one base image on one
    /// node, with the node's buffer cache and without. With it, the machine memory that
    /// holds the VMs' pages is less than the guest memory they used (the disk pages both
    /// read are one frame); without it, every page is a private copy (machine = guest).
    @Test(.timeLimit(.minutes(3)))
    func theSharingExperimentShowsMachineMemoryBelowGuestMemory() throws {
        try #require(FileManager.default.fileExists(atPath: Paths.guest("bcache.elf")), "guests are not built: run make -C guests")
        let out = try scratchDirectory("experiment-sharing")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try """
            title: two VMs sharing a disk
            guest: bcache.elf
            engine: sharing
            vms: 2
            cache: [16M, 0]
            timeout: 120
            plots:
              - {file: footprint.png, x: vms, y: [virtual_mib, machine_mib], kind: bar, where: {cache_mib: 16}}
            """.write(toFile: out + "/fig6.yaml", atomically: true, encoding: .utf8)
        let r = try runProcess(Paths.disco, ["experiment", out + "/fig6.yaml", "--guests", Paths.guests.path, "--out", out,
                                             "--experiments", Self.experiments], timeout: 150)
        #expect(r.status == 0 && !r.stoppedEarly, "\(r.output)\n\(r.errorOutput)")
        let csv = try String(contentsOfFile: out + "/fig6.csv", encoding: .utf8)
        let lines = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.first == Self.columns, "\(csv)")
        let rows = lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(Self.columns, $0)) }
        try #require(rows.count == 2, "\(csv)")
        let cached = rows[0], private_ = rows[1]
        #expect(cached["engine"] == "sharing" && cached["vms"] == "2" && cached["cache_mib"] == "16" && private_["cache_mib"] == "0", "\(csv)")
        let v = try #require(Double(cached["virtual_mib"] ?? "")), m = try #require(Double(cached["machine_mib"] ?? ""))
        let v0 = try #require(Double(private_["virtual_mib"] ?? "")), m0 = try #require(Double(private_["machine_mib"] ?? ""))
        // Each VM reads 2 MiB of the disk: the two used more than 4 MiB of guest memory.
        #expect(v > 4 && v == v0, "\(csv)")
        #expect(m < v * 0.7, "with the cache: \(m) MiB of machine memory for \(v) MiB of guest memory")
        #expect(m0 == v0, "without it: \(m0) MiB of machine memory for \(v0) MiB of guest memory")
        #expect(cached["jobs_per_min"] == "" && cached["instructions"] == "", "\(csv)")
        let png = try #require(FileManager.default.contents(atPath: out + "/footprint.png"), "no footprint.png: \(r.output)")
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
        // An engine sharing with VMs of 2 VCPUs is refused before anything runs.
        try "title: t\nguest: bcache.elf\nengine: sharing\nvcpus: 2\n".write(toFile: out + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try runProcess(Paths.disco, ["experiment", out + "/bad.yaml", "--guests", Paths.guests.path, "--out", out])
        #expect(bad.status == 2 && bad.errorOutput.contains("vcpus must be 1"), "\(bad.errorOutput)")
    }

    @Test func experimentErrorsAreClear() throws {
        let missing = try runProcess(Paths.disco, ["experiment", "no-such-thing", "--experiments", Self.experiments])
        #expect(missing.status == 2)
        #expect(missing.errorOutput.contains("no-such-thing.yaml"), "\(missing.errorOutput)")
        let dir = try scratchDirectory("bad-experiment")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "title: t\nguest: numa.elf\nnodez: [1, 2]\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try runProcess(Paths.disco, ["experiment", "bad", "--experiments", dir])
        #expect(bad.status == 2)
        #expect(bad.errorOutput.contains("unknown key 'nodez'"), "\(bad.errorOutput)")
        let list = try runProcess(Paths.disco, ["experiment", "--list", "--experiments", Self.experiments])
        #expect(list.status == 0)
        for name in ["numa", "scaling", "overhead", "throughput", "sharing", "smoke"] { #expect(list.output.contains(name), "\(list.output)") }
        let help = try runProcess(Paths.disco, ["experiment", "--help"])
        #expect(help.output.contains("--scale") && help.output.contains("matplotlib"), "\(help.output)")
    }

    @Test(.timeLimit(.minutes(2)))
    func topOnceShowsTheNodesTheVMsAndRates() throws {
        let dir = try scratchDirectory("top")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = try Background("up", Paths.disco, ["up", "--nodes", "2", "--cpus", "1", "--memory", "256M", "--dir", dir + "/cluster"],
                                logDirectory: dir)
        defer { up.stop() }
        #expect(up.wait(for: "Ctrl-C stops everything", timeout: 60), "\(up.output)")
        let secret = try #require(up.line(after: "export DISCO_SECRET="))
        let coordinator = "unix:\(dir)/cluster/coordinator.sock"
        func disco(_ args: [String], timeout: TimeInterval = 30) throws -> ProcessResult {
            try runProcess("/usr/bin/env", ["DISCO_SECRET=\(secret)", Paths.disco] + args + ["--coordinator", coordinator], timeout: timeout)
        }
        // A VM that stays (U-Boot at its prompt) so that one node retires instructions.
        let spec = dir + "/idle.yaml"
        try "name: idle\nvcpus: 1\nmemory: 64M\nbios: \(Paths.openSBI)\nkernel: /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin\n"
            .write(toFile: spec, atomically: true, encoding: .utf8)
        let created = try disco(["vm", "create", "--spec", spec])
        #expect(created.status == 0, "\(created.output)\(created.errorOutput)")
        let top = try disco(["top", "--once", "--interval", "6"], timeout: 30)
        #expect(top.status == 0, "\(top.errorOutput)")
        let text = top.output
        #expect(!text.contains("\u{1B}["), "--once must not clear the screen")
        #expect(text.contains("nodes: 2 alive of 2"), "\(text)")
        #expect(text.contains("VMs: 1 running of 1"), "\(text)")
        let rows = text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        let nodeRows = rows.filter { $0.count >= 13 && ($0[1] == "node-0" || $0[1] == "node-1") }
        #expect(nodeRows.count == 2, "\(text)")
        #expect(nodeRows.allSatisfy { $0[2] == "alive" }, "\(text)")
        // The node running the VM shows a guest MIPS rate (a number, not "-").
        let busy = nodeRows.first { $0[6] == "1" }
        #expect(busy.flatMap { Double($0[8]) }.map { $0 > 0 } == true, "\(text)")
        let vmRow = rows.first { $0.count >= 8 && $0[1] == "idle" }
        #expect(vmRow?[2] == "running" && vmRow?[3] == "1", "\(text)")
        // Without a secret it is a one-line error.
        let noSecret = try runProcess(Paths.disco, ["top", "--once", "--coordinator", coordinator])
        #expect(noSecret.status == 2 && noSecret.errorOutput.contains("secret"), "\(noSecret.errorOutput)")
    }
}
