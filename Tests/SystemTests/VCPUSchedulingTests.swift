import Foundation
import Testing

/// VCPU scheduling and migration with real processes: a VM with more VCPUs than its
/// node's CPUs computes what QEMU computes, and a VCPU moved between nodes mid-run
/// (`disco vm migrate-vcpu`, there and back) changes nothing in the guest's output.
@Suite(.serialized) struct VCPUSchedulingTests {
    /// 4 VCPUs on one node of 1 CPU (time slices), and 4 on 2 nodes of 1 CPU each.
    @Test(arguments: [1, 2])
    func moreVCPUsThanCPUsFinishWithQEMUsOutput(nodes: Int) throws {
        let elf = Paths.guest("smp.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 4)
        let disco = try runOnDisco(elf, harts: 4, extra: ["--nodes", "\(nodes)", "--cpus", "1"], timeout: 180)
        #expect(!disco.stoppedEarly, "did not finish: \(disco.output.suffix(1500)) \(disco.errorOutput.suffix(1500))")
        #expect(qemu.status == 0 && disco.status == 0, "\(disco.errorOutput.suffix(1500))")
        #expect(comparable(disco.output) == comparable(qemu.output), "\(disco.output.suffix(1500))")
        // --cpus belongs to --nodes.
        let bad = try runProcess(Paths.disco, ["run", "--bios", "none", "--kernel", elf, "--cpus", "1"])
        #expect(bad.status != 0 && bad.errorOutput.contains("--cpus needs --nodes"), "\(bad.errorOutput)")
    }

    /// A running cluster (`disco up`), for the CLI commands.
    final class Cluster {
        let dir: String
        let up: Process
        let secret: String
        var coordinator: String { "unix:\(dir)/coordinator.sock" }

        init(nodes: Int, cpus: Int, balance: Bool = false) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-vcpu-\(UUID().uuidString)").path
            up = Process()
            up.executableURL = URL(fileURLWithPath: Paths.disco)
            up.arguments = ["up", "--nodes", "\(nodes)", "--cpus", "\(cpus)", "--memory", "256M", "--dir", dir,
                            "--balance-vcpus", balance ? "on" : "off"]
            let out = Pipe()
            up.standardOutput = out
            up.standardError = out
            try up.run()
            var text = ""
            let deadline = Date().addingTimeInterval(60)
            while !text.contains("Ctrl-C stops everything"), Date() < deadline, up.isRunning {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            guard let s = text.split(separator: "\n").first(where: { $0.hasPrefix("export DISCO_SECRET=") })?
                .split(separator: "=").last.map(String.init) else {
                up.terminate()
                up.waitUntilExit()
                throw CLIError(text: "disco up printed no secret:\n\(text)")
            }
            secret = s
        }

        struct CLIError: Error { var text: String }

        func cli(_ args: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
            try runProcess("/usr/bin/env", ["DISCO_SECRET=\(secret)", Paths.disco] + args + ["--coordinator", coordinator],
                           timeout: timeout)
        }

        func stop() {
            if up.isRunning { up.terminate() }
            up.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// sched.elf (rounds of hashing, an LR/SC lock, a barrier and IPIs taken in WFI) on
    /// 2 nodes of 2 CPUs, 4 VCPUs (VCPUs 0, 1 on node 0; 2, 3 on node 1): once it
    /// computes, VCPU 3 moves to node 0 and back again, VCPU 1 to node 1; what it prints
    /// is what QEMU prints. The command's errors are checked on the way.
    @Test func aVCPUMovedBetweenNodesMidRunLeavesTheOutputUnchanged() throws {
        let elf = Paths.guest("sched.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 4, timeout: 180)
        let cluster = try Cluster(nodes: 2, cpus: 2)
        defer { cluster.stop() }
        let owner = try SchedVM(elf, name: "mover", on: cluster)
        let list = try cluster.cli(["vm", "list"]).output
        #expect(list.contains("vcpu_nodes: [0, 0, 1, 1]"), "\(list)")
        // Bad requests get clear errors.
        let noVM = try cluster.cli(["vm", "migrate-vcpu", "9", "0", "--to", "0"])
        #expect(noVM.status != 0 && noVM.output.contains("no VM 9"), "\(noVM.output) \(noVM.errorOutput)")
        let noVCPU = try cluster.cli(["vm", "migrate-vcpu", "1", "4", "--to", "0"])
        #expect(noVCPU.status != 0 && noVCPU.output.contains("has no VCPU 4"), "\(noVCPU.output) \(noVCPU.errorOutput)")
        let noNode = try cluster.cli(["vm", "migrate-vcpu", "1", "3", "--to", "5"])
        #expect(noNode.status != 0 && noNode.output.contains("node 5 is not a live node"), "\(noNode.output) \(noNode.errorOutput)")
        let full = try cluster.cli(["vm", "migrate-vcpu", "1", "3", "--to", "0"])
        #expect(full.status != 0 && full.output.contains("node 0 has no free CPU (2 VCPUs on 2 CPUs)"), "\(full.output) \(full.errorOutput)")
        // There, back, and another one the other way: each answered once it runs there.
        var moves: [String] = []
        for (vcpu, to) in [(3, 0), (3, 1), (1, 1)] {
            let r = try cluster.cli(["vm", "migrate-vcpu", "1", "\(vcpu)", "--to", "\(to)", "--overcommit"])
            #expect(r.status == 0 && r.output.contains("moved VM 1 VCPU \(vcpu) from node \(1 - to) to node \(to)"),
                    "\(r.output) \(r.errorOutput)")
            moves.append(r.output)
        }
        let after = try cluster.cli(["vm", "list"]).output
        let running = after.contains("state: running")
        if running {
            #expect(after.contains("vcpu_nodes: [0, 1, 1, 1]") && after.contains("vcpu_migrations: 3"), "\(after)")
            #expect(after.contains("cpus_shared: {1: \"3 VCPUs time-share 2 CPUs\"}"), "\(after)")
        }
        let result = try #require(owner.wait(), "the VM did not end")
        #expect(result.status == 0, "\(result.output.suffix(1500)) \(result.errorOutput.suffix(1500))")
        #expect(comparable(result.output) == comparable(qemu.output), "\(moves)\n\(result.output.suffix(1500))")
    }

    /// The balancer, on: VCPU 3 is moved onto node 0 by hand (3 VCPUs on its 2 CPUs,
    /// while node 1 has one free); 2 s later the balancer moves a VCPU of node 0 to node
    /// 1 by itself (VCPU 1: VCPU 3 cools down after its move), once, and the output is
    /// still QEMU's. sched-long.elf (2.5 times sched.elf's rounds): sched.elf once ended
    /// within 2 s, before the balancer could act.
    @Test func theBalancerMovesAVCPUOffAnOverloadedNode() throws {
        let elf = Paths.guest("sched-long.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        let qemu = try runOnQEMU(elf, harts: 4, timeout: 180)
        let cluster = try Cluster(nodes: 2, cpus: 2, balance: true)
        defer { cluster.stop() }
        let owner = try SchedVM(elf, name: "balanced", on: cluster)
        let r = try cluster.cli(["vm", "migrate-vcpu", "1", "3", "--to", "0", "--overcommit"])
        #expect(r.status == 0 && r.output.contains("moved VM 1 VCPU 3 from node 1 to node 0"), "\(r.output) \(r.errorOutput)")
        var list = ""
        let until = Date().addingTimeInterval(20)
        while Date() < until {
            list = try cluster.cli(["vm", "list"]).output
            if list.contains("vcpu_nodes: [0, 1, 1, 0]") || !list.contains("state: running") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(list.contains("vcpu_nodes: [0, 1, 1, 0]") && list.contains("vcpu_migrations: 2"), "\(list)")
        let coordinatorLog = (try? String(contentsOfFile: cluster.dir + "/coordinator.log", encoding: .utf8)) ?? ""
        #expect(coordinatorLog.contains("VM 1 VCPU 1: moving from node 0 to node 1 (balancer)"), "\(coordinatorLog.suffix(2000))")
        let result = try #require(owner.wait(), "the VM did not end")
        #expect(result.status == 0, "\(result.output.suffix(1500)) \(result.errorOutput.suffix(1500))")
        #expect(comparable(result.output) == comparable(qemu.output), "\(result.output.suffix(1500))")
        // One move by the balancer, none back.
        let final = (try? String(contentsOfFile: cluster.dir + "/coordinator.log", encoding: .utf8)) ?? ""
        #expect(final.components(separatedBy: "(balancer)").count - 1 == 1, "\(final.suffix(2000))")
    }
}

/// sched.elf created as VM `name` (VM 1) on `cluster` by a client that waits for it in
/// the background, as its owner (its output is the VM's console); returns once the
/// guest computes (its console log says so).
final class SchedVM: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: ProcessResult?

    init(_ elf: String, name: String, on cluster: VCPUSchedulingTests.Cluster) throws {
        let spec = cluster.dir + "/vm.yaml"
        try "name: \(name)\nvcpus: 4\nmemory: 64M\nbios: none\nkernel: \(elf)\nplacement: interleave\n"
            .write(toFile: spec, atomically: true, encoding: .utf8)
        DispatchQueue.global().async {
            self.result = try? cluster.cli(["vm", "create", "--spec", spec, "--wait"], timeout: 300)
            self.done.signal()
        }
        let log = cluster.dir + "/consoles/vm-1-\(name).log"
        let started = Date().addingTimeInterval(60)
        while Date() < started, !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("sched: start") {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// The owner's result once the VM ended (nil if it did not within 300 s).
    func wait() -> ProcessResult? { done.wait(timeout: .now() + 300) == .success ? result : nil }
}
