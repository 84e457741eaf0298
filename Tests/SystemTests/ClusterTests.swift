import Foundation
import Testing

/// Multi-process tests: a VM's VCPUs spread over node processes of an embedded local
/// cluster (`disco run --nodes N`), checked against QEMU with the same hart count;
/// memory-model litmus tests; OpenSBI and U-Boot across two nodes; and a node killed
/// under `disco up` failing only the VMs that depended on it.
@Suite(.serialized) struct ClusterTests {
    func onCluster(_ elf: String, harts: Int, nodes: Int, policy: String = "on", timeout: TimeInterval = 240) throws -> ProcessResult {
        try runOnDisco(elf, harts: harts, extra: ["--nodes", "\(nodes)", "--numa-policy", policy], timeout: timeout)
    }

    func expectSameAsQEMU(_ guest: String, harts: Int, nodes: Int, policy: String = "on") throws {
        let elf = Paths.guest(guest)
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: harts)
        let disco = try onCluster(elf, harts: harts, nodes: nodes, policy: policy)
        #expect(!disco.stoppedEarly, "\(guest) on \(nodes) nodes did not finish: \(disco.output.suffix(1500)) \(disco.errorOutput.suffix(1500))")
        #expect(qemu.status == 0)
        #expect(disco.status == qemu.status, "exit status \(disco.status): \(disco.errorOutput.suffix(1500))")
        #expect(comparable(disco.output) == comparable(qemu.output),
                "\(guest) with \(harts) harts on \(nodes) nodes differs from QEMU:\n\(disco.output.suffix(1500))")
    }

    @Test(arguments: [1, 2, 4])
    func smpGuestOverNodes(nodes: Int) throws {
        try expectSameAsQEMU("smp.elf", harts: 4, nodes: nodes)
    }

    /// The same guests with the page policy off (pages stay where placed) match too.
    @Test(arguments: [2, 4])
    func smpGuestOverNodesWithThePolicyOff(nodes: Int) throws {
        try expectSameAsQEMU("smp.elf", harts: 4, nodes: nodes, policy: "off")
    }

    /// The NUMA-unaware guest (first touch by hart 0, private partitions) prints QEMU's
    /// checksum whether or not its pages move.
    @Test(arguments: ["on", "off"])
    func numaGuestMatchesQEMU(policy: String) throws {
        try expectSameAsQEMU("numa.elf", harts: 2, nodes: 2, policy: policy)
    }

    /// The read-shared guest (a table built by hart 0, read by all) matches QEMU on 2
    /// and 4 nodes with its table replicated, and `--stats` says so: replicas were made
    /// and most sampled misses were local.
    @Test(arguments: [2, 4])
    func sharedTableIsReplicatedAndMatchesQEMU(nodes: Int) throws {
        let elf = Paths.guest("shared.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 4)
        let disco = try runOnDisco(elf, harts: 4, extra: ["--nodes", "\(nodes)", "--stats"], timeout: 240)
        #expect(disco.status == 0 && qemu.status == 0, "\(disco.errorOutput.suffix(1500))")
        #expect(comparable(disco.output) == comparable(qemu.output))
        let stats = disco.errorOutput.split(separator: "\n").last.map(String.init) ?? ""
        func figure(_ key: String) -> Double? {
            stats.components(separatedBy: "\(key): ").dropFirst().first.flatMap { Double($0.prefix { $0.isNumber || $0 == "." }) }
        }
        #expect((figure("replications") ?? 0) >= 64, "\(stats)")
        #expect((figure("local_share") ?? 0) > 0.5, "\(stats)")
    }

    /// Linux's ticket locks (a 32-bit AMO takes a ticket, a 16-bit store releases),
    /// counters in the locks' pages, a read-mostly table written now and then, and a
    /// timer tick on every hart: no acquisition lost, no lock left held, over 2 nodes
    /// while the policy moves the pages.
    @Test func ticketLocksWithTimerTicksOverTwoNodes() throws {
        try expectSameAsQEMU("locks.elf", harts: 4, nodes: 2)
    }

    @Test func smpGuestOneHartPerNode() throws {
        try expectSameAsQEMU("smp.elf", harts: 2, nodes: 2)
    }

    @Test(arguments: [2, 4])
    func litmusTestsShowNoForbiddenOutcome(nodes: Int) throws {
        try expectSameAsQEMU("litmus.elf", harts: nodes, nodes: nodes)
    }

    /// Every hart reads the virtio slots (hart 1 from the node without the devices);
    /// QEMU's slots are modern (version 2) with force-legacy off, and its
    /// virtio-blk-device lands in the last slot as disco's first disk does.
    @Test func mmioFromEveryHartOnTwoNodes() throws {
        let elf = Paths.guest("mmio.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("disco-mmio-\(UUID().uuidString).img").path
        try #require(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let qemu = try runOnQEMU(elf, harts: 2, extra: ["-global", "virtio-mmio.force-legacy=false",
                                                        "-drive", "file=\(disk),format=raw,if=none,id=d0",
                                                        "-device", "virtio-blk-device,drive=d0"])
        let disco = try runOnDisco(elf, harts: 2, extra: ["--nodes", "2", "--disk", disk])
        #expect(qemu.status == 0 && disco.status == 0, "\(disco.errorOutput.suffix(1000))")
        #expect(qemu.output.contains("device ids 2"), "\(qemu.output.suffix(500))")
        #expect(comparable(disco.output) == comparable(qemu.output), "\(disco.output.suffix(1000))")
    }

    /// All memory on node 1 while VCPU 0 runs on node 0: every one of its accesses is remote.
    @Test func memoryOnTheOtherNode() throws {
        let elf = Paths.guest("smp.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 2)
        let disco = try runOnDisco(elf, harts: 2, extra: ["--nodes", "2", "--placement", "node:1"])
        #expect(disco.status == 0, "\(disco.errorOutput.suffix(1000))")
        #expect(comparable(disco.output) == comparable(qemu.output))
        let bad = try runOnDisco(elf, harts: 2, extra: ["--nodes", "2", "--placement", "node:5"])
        #expect(bad.status != 0 && bad.errorOutput.contains("node 5 is not a live node"), "\(bad.errorOutput)")
    }

    /// The FP guest (guests/fp) with all its memory on node 1 and its VCPU on node 0:
    /// FP loads and stores of remote lines park and complete like integer ones.
    @Test func floatingPointWithMemoryOnTheOtherNode() throws {
        let elf = Paths.guest("fp.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 1)
        let disco = try runOnDisco(elf, harts: 1, extra: ["--nodes", "2", "--placement", "node:1"])
        #expect(disco.status == 0, "\(disco.errorOutput.suffix(1000))")
        #expect(comparable(qemu.output).contains("fp: done"))
        #expect(comparable(disco.output) == comparable(qemu.output))
    }

    @Test func isaSuiteOnTwoNodes() throws {
        try expectSameAsQEMU("isa.elf", harts: 2, nodes: 2)
    }

    @Test func openSBIAndUBootOnTwoNodes() throws {
        let result = try runProcess(Paths.disco, ["run", "--nodes", "2", "--smp", "2", "--memory", "256M",
                                                  "--bios", Paths.openSBI, "--kernel", Paths.uBoot],
                                    respond: [("Hit any key to stop autoboot", "x"),
                                              ("=> ", "setexpr v 6 * 7; echo cluster-says-${v}\n")],
                                    timeout: 240, until: { $0.contains("cluster-says-2a") })
        let out = result.output
        let sbi = try #require(out.range(of: "OpenSBI v"), "no OpenSBI banner:\n\(out.suffix(2000))\n\(result.errorOutput.suffix(1000))")
        #expect(out.contains("Platform HART Count       : 2"))
        let uboot = try #require(out.range(of: "U-Boot 20"), "no U-Boot banner:\n\(out.suffix(2000))")
        #expect(sbi.lowerBound < uboot.lowerBound)
        #expect(out.contains("cluster-says-2a"), "U-Boot did not run the typed command:\n\(out.suffix(1500))")
    }

    @Test func killingANodeFailsOnlyItsVMs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-up-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = Process()
        up.executableURL = URL(fileURLWithPath: Paths.disco)
        up.arguments = ["up", "--nodes", "3", "--memory", "512M", "--dir", dir, "--keep-going"]
        let out = Pipe()
        up.standardOutput = out
        up.standardError = out
        try up.run()
        defer {
            if up.isRunning { up.terminate() }
            up.waitUntilExit()
        }
        // Wait for "export DISCO_SECRET=...".
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while !text.contains("Ctrl-C stops everything"), Date() < deadline, up.isRunning {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        let secret = try #require(text.split(separator: "\n").first { $0.hasPrefix("export DISCO_SECRET=") }?
            .split(separator: "=").last.map(String.init), "disco up printed no secret:\n\(text)")
        let coordinator = "unix:\(dir)/coordinator.sock"
        func cli(_ args: [String]) throws -> ProcessResult {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["DISCO_SECRET=\(secret)", Paths.disco] + args + ["--coordinator", coordinator]
            let o = Pipe()
            p.standardOutput = o
            p.standardError = o
            try p.run()
            let data = o.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return ProcessResult(status: p.terminationStatus, output: String(decoding: data, as: UTF8.self),
                                 errorOutput: "", stoppedEarly: false)
        }
        // Three one-VCPU VMs sitting at the U-Boot prompt: round-robin puts one per node.
        let spec = dir + "/vm.yaml"
        try "name: idle\nvcpus: 1\nmemory: 64M\nbios: \(Paths.openSBI)\nkernel: \(Paths.uBoot)\n"
            .write(toFile: spec, atomically: true, encoding: .utf8)
        for _ in 0..<3 {
            let r = try cli(["vm", "create", "--spec", spec])
            #expect(r.status == 0, "vm create: \(r.output)")
        }
        let nodes = try cli(["nodes"]).output
        #expect(nodes.components(separatedBy: "status: alive").count - 1 == 3, "\(nodes)")
        // Every node reports its counters to the coordinator (every 4 heartbeats: 2 s
        // under `disco up`); wait for all three rather than for a fixed time.
        var stats = ""
        let reported = Date().addingTimeInterval(20)
        while Date() < reported {
            stats = try cli(["stats"]).output
            if stats.contains("vms_running: 3"), stats.components(separatedBy: "instructions: ").count - 1 == 3 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(stats.contains("vms_running: 3"), "\(stats)")
        #expect(stats.components(separatedBy: "instructions: ").count - 1 == 3, "\(stats)")
        // node-1's process (node names are node-0..2; ids follow join order) dies hard.
        let kill = Process()
        kill.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
        kill.arguments = ["-9", "-f", "\(dir)/node-1.sock"]
        try kill.run()
        kill.waitUntilExit()
        var list = ""
        let until = Date().addingTimeInterval(20)
        while Date() < until {
            list = try cli(["vm", "list"]).output
            if list.contains("failed") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let rows = list.split(separator: "\n")
        #expect(rows.filter { $0.contains("state: failed") }.count == 1, "\(list)")
        #expect(rows.filter { $0.contains("state: running") }.count == 2, "\(list)")
        #expect(up.isRunning, "disco up --keep-going stopped when a node died")
        // The rest of the cluster carries on answering.
        let after = try cli(["nodes"]).output
        #expect(after.contains("status: dead"), "\(after)")
        #expect(after.components(separatedBy: "status: alive").count - 1 == 2, "\(after)")
    }
}
