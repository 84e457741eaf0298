import Foundation
import Testing
import TestSupport

/// The virtual Ethernet with real processes: guests/net.elf in VMs side by side on a
/// local cluster (`disco run --nodes N --spec ... --spec ...`), pinging each other
/// through virtio-net and the switch, checked against the same guests on two QEMUs
/// joined by a loopback socket; and U-Boot's `dhcp` over `--nic user` (libslirp),
/// checked against QEMU's `-netdev user`.
@Suite(.serialized) struct NetworkTests {
    let dir: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-net-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// A spec file for net.elf with one NIC on `subnet`.
    func spec(_ name: String, mac: String, args: String, subnet: String = "lan", mtu: Int? = nil) throws -> String {
        let path = dir + "/\(name).yaml"
        try """
            name: \(name)
            memory: 64M
            bios: none
            kernel: \(Paths.guest("net.elf"))
            bootargs: \(args)
            nics: [{switch: \(subnet), mac: "\(mac)"\(mtu.map { ", mtu: \($0)" } ?? "")}]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs the specs side by side on `nodes` node processes.
    func sideBySide(_ specs: [String], nodes: Int) throws -> ProcessResult {
        try runProcess(Paths.disco, ["run", "--nodes", "\(nodes)"] + specs.flatMap { ["--spec", $0] }, timeout: 240)
    }

    /// `[name] text` lines of one VM, without the prefix.
    func lines(_ output: String, of vm: String) -> [String] {
        output.split(separator: "\n").compactMap { $0.hasPrefix("[\(vm)] ") ? String($0.dropFirst(vm.count + 3)) : nil }
    }

    /// The nodes the coordinator put each VM's VCPU on (disco prints its `vm list` rows).
    func vcpuNodes(_ errorOutput: String) -> [String: String] {
        var out: [String: String] = [:]
        for row in errorOutput.split(separator: "\n") where row.contains("vcpu_nodes: ") {
            guard let name = row.components(separatedBy: "name: ").dropFirst().first?.split(separator: ",").first,
                  let nodes = row.components(separatedBy: "vcpu_nodes: ").dropFirst().first?.split(separator: "]").first else { continue }
            out[String(name)] = String(nodes) + "]"
        }
        return out
    }

    /// The same two guests on QEMU, joined by a socket netdev on loopback: the oracle.
    func onQEMU(pings: Int) throws -> (ping: ProcessResult, pong: ProcessResult) {
        let port = try freeLoopbackPort()
        func qemu(_ netdev: String, _ mac: String, _ args: String) -> [String] {
            ["-machine", "virt", "-nographic", "-bios", "none", "-m", "64M", "-kernel", Paths.guest("net.elf"),
             "-global", "virtio-mmio.force-legacy=false", "-netdev", "socket,id=n0,\(netdev)=127.0.0.1:\(port)",
             "-device", "virtio-net-device,netdev=n0,mac=\(mac)", "-append", args]
        }
        let pongLog = dir + "/qemu-pong"
        try FileManager.default.createDirectory(atPath: pongLog, withIntermediateDirectories: true)
        let pong = try Background("qemu-pong", "/usr/bin/qemu-system-riscv64", qemu("listen", "52:54:00:00:00:02", "pong"),
                                  logDirectory: pongLog)
        defer { pong.stop() }
        Thread.sleep(forTimeInterval: 0.5)
        let ping = try runProcess("/usr/bin/qemu-system-riscv64", qemu("connect", "52:54:00:00:00:01", "ping 1 \(pings)"), timeout: 120)
        _ = pong.wait(for: "net: answered", timeout: 10)
        return (ping, ProcessResult(status: 0, output: pong.output, errorOutput: "", stoppedEarly: false))
    }

    /// Jumbo frames of whole pages (MTU 16384): on one node their data pages move by
    /// remapping (the node's counters, InProcessClusterTests.PageRemapTests), across two
    /// they travel as bytes; either way the sink sees every page as the sender sent it,
    /// though the sender rewrites it while the sink still holds it, and the sender's own
    /// pages never see the sink's writes: the same lines as two QEMUs with host_mtu.
    @Test func pageFramesArriveAsOnQEMUWhetherRemappedOrSent() throws {
        let elf = Paths.guest("net.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try freeLoopbackPort()
        func qemu(_ netdev: String, _ mac: String, _ args: String) -> [String] {
            ["-machine", "virt", "-nographic", "-bios", "none", "-m", "64M", "-kernel", elf,
             "-global", "virtio-mmio.force-legacy=false", "-netdev", "socket,id=n0,\(netdev)=127.0.0.1:\(port)",
             "-device", "virtio-net-device,netdev=n0,mac=\(mac),host_mtu=16384", "-append", args]
        }
        let sinkLog = dir + "/qemu-sink"
        try FileManager.default.createDirectory(atPath: sinkLog, withIntermediateDirectories: true)
        let qsink = try Background("qemu-sink", "/usr/bin/qemu-system-riscv64", qemu("listen", "52:54:00:00:00:02", "sink 4"),
                                   logDirectory: sinkLog)
        defer { qsink.stop() }
        Thread.sleep(forTimeInterval: 0.5)
        let qsender = try runProcess("/usr/bin/qemu-system-riscv64", qemu("connect", "52:54:00:00:00:01", "pages 1 48 4"), timeout: 120)
        _ = qsink.wait(for: "net: sink checked", timeout: 10)
        let oracleSender = qsender.output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("net: pages sent") }
        let oracleSink = qsink.output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("net: sink checked") }
        #expect(oracleSender.count == 1 && oracleSink.count == 1, "QEMU: \(qsender.output.suffix(600)) / \(qsink.output.suffix(600))")
        let a = try spec("sender", mac: "52:54:00:00:00:01", args: "pages 1 48 4", mtu: 16384)
        let b = try spec("sink", mac: "52:54:00:00:00:02", args: "sink 4", mtu: 16384)
        for nodes in [1, 2] {
            let disco = try sideBySide([a, b], nodes: nodes)
            #expect(disco.status == 0 && !disco.stoppedEarly, "\(nodes) nodes: \(disco.output.suffix(1500))\n\(disco.errorOutput.suffix(1500))")
            #expect(Set(vcpuNodes(disco.errorOutput).values).count == nodes, "\(disco.errorOutput.suffix(800))")
            #expect(lines(disco.output, of: "sender").filter { $0.hasPrefix("net: pages sent") } == oracleSender, "\(disco.output.suffix(800))")
            #expect(lines(disco.output, of: "sink").filter { $0.hasPrefix("net: sink checked") } == oracleSink, "\(disco.output.suffix(800))")
        }
        // A sender whose NIC keeps Ethernet's MTU is told why it cannot send page frames.
        let small = try spec("small", mac: "52:54:00:00:00:05", args: "pages 1 4 4")
        let refused = try sideBySide([small], nodes: 1)
        #expect(refused.status != 0 && refused.output.contains("net: the NIC's MTU is too small for page frames"), "\(refused.output.suffix(600))")
    }

    func checksum(_ lines: [String]) -> String? {
        lines.first { $0.contains("checksum") }?.components(separatedBy: "checksum ").last?.split(separator: " ").first.map(String.init)
    }

    @Test func twoVMsOnDifferentNodesExchangeCheckedFramesAsOnQEMU() throws {
        let elf = Paths.guest("net.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try spec("pinger", mac: "52:54:00:00:00:01", args: "ping 1 200")
        let b = try spec("ponger", mac: "52:54:00:00:00:02", args: "pong")
        let disco = try sideBySide([a, b], nodes: 2)
        #expect(disco.status == 0 && !disco.stoppedEarly, "\(disco.output.suffix(1500))\n\(disco.errorOutput.suffix(1500))")
        // One VCPU per node process: the two VMs run on different nodes.
        let placed = vcpuNodes(disco.errorOutput)
        #expect(placed.count == 2 && Set(placed.values).count == 2, "placement: \(placed)\n\(disco.errorOutput.suffix(800))")
        let ping = lines(disco.output, of: "pinger"), pong = lines(disco.output, of: "ponger")
        #expect(ping.contains("net: broadcast answered by 1 peers: 52:54:00:00:00:02"), "\(ping)")
        #expect(pong.contains("net: broadcast HELLO from 52:54:00:00:00:01"), "\(pong)")
        #expect(ping.contains { $0.hasPrefix("net: 200 pings answered, ") }, "\(ping)")
        #expect(pong.contains { $0.hasPrefix("net: answered 200 pings, ") }, "\(pong)")
        // Both ends summed the same bytes, and so did the same guests on QEMU.
        let (qping, qpong) = try onQEMU(pings: 200)
        #expect(qping.status == 0, "\(qping.output.suffix(800))")
        let oracle = checksum(qping.output.split(separator: "\n").map(String.init))
        #expect(oracle != nil && checksum(ping) == oracle && checksum(pong) == oracle,
                "disco \(checksum(ping) ?? "-")/\(checksum(pong) ?? "-"), QEMU \(oracle ?? "-") / \(qpong.output.suffix(300))")
    }

    @Test func aBroadcastReachesEveryVMOfTheSubnetOnOneNodeAndAcrossThree() throws {
        let elf = Paths.guest("net.elf")
        try #require(FileManager.default.fileExists(atPath: elf), "guest \(elf) is not built: run make -C guests")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let specs = [try spec("pinger", mac: "52:54:00:00:00:01", args: "ping 2 30"),
                     try spec("ponger", mac: "52:54:00:00:00:02", args: "pong"),
                     try spec("third", mac: "52:54:00:00:00:03", args: "pong")]
        for nodes in [1, 3] {
            let disco = try sideBySide(specs, nodes: nodes)
            #expect(disco.status == 0 && !disco.stoppedEarly, "\(nodes) nodes: \(disco.output.suffix(1500))\n\(disco.errorOutput.suffix(1500))")
            let placed = vcpuNodes(disco.errorOutput)
            #expect(Set(placed.values).count == nodes, "placement on \(nodes) nodes: \(placed)")
            let ping = lines(disco.output, of: "pinger")
            #expect(ping.contains("net: broadcast answered by 2 peers: 52:54:00:00:00:02 52:54:00:00:00:03"), "\(ping)")
            #expect(ping.contains { $0.hasPrefix("net: 60 pings answered, ") }, "\(ping)")
            for peer in ["ponger", "third"] {
                let out = lines(disco.output, of: peer)
                #expect(out.contains("net: broadcast HELLO from 52:54:00:00:00:01"), "\(peer): \(out)")
                #expect(out.contains { $0.hasPrefix("net: answered 30 pings, ") }, "\(peer): \(out)")
            }
        }
    }

    /// U-Boot's `dhcp` on a virtio-net NIC with `--nic user`: libslirp's DHCP server
    /// hands out 10.0.2.15, as QEMU's `-netdev user` does to the same U-Boot.
    @Test func ubootGetsItsAddressByDHCPOverTheUserNetworkAsOnQEMU() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let typed: [(after: String, send: String)] = [("Hit any key to stop autoboot", "x"), ("=> ", "setenv autoload no\n"),
                                                      ("=> ", "dhcp\n"), ("=> ", "printenv ipaddr serverip\n")]
        let done: (String) -> Bool = { $0.contains("\nserverip=") && $0.hasSuffix("=> ") }
        let disco = try runProcess(Paths.disco, ["run", "--bios", Paths.openSBI, "--kernel", Paths.uBoot, "--memory", "256M",
                                                 "--nic", "user"], respond: typed, timeout: 240, until: done)
        let qemu = try runProcess("/usr/bin/qemu-system-riscv64",
                                  ["-machine", "virt", "-nographic", "-m", "256M", "-bios", Paths.openSBI, "-kernel", Paths.uBoot,
                                   "-global", "virtio-mmio.force-legacy=false",
                                   "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0"],
                                  respond: typed, timeout: 120, until: done)
        for (who, out) in [("disco", disco.output), ("QEMU", qemu.output)] {
            #expect(out.contains("DHCP client bound to address 10.0.2.15"), "\(who):\n\(out.suffix(2000))")
            #expect(out.contains("ipaddr=10.0.2.15") && out.contains("serverip=10.0.2.2"), "\(who):\n\(out.suffix(1500))")
        }
        #expect(disco.output.contains("eth0: virtio-net#"), "U-Boot found no NIC:\n\(disco.output.suffix(2500))")
    }

    /// A NIC the platform cannot have is refused before anything boots, saying why.
    @Test func badNICsAreRefusedWithTheReason() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (nic, message) in [("tap", "say 'switch[=NAME]' or 'user' first"),
                               ("switch=lan,mac=ff:ff:ff:ff:ff:ff", "is a group (multicast) address"),
                               ("user,slot=8", "slot 8 does not exist")] {
            let r = try runProcess(Paths.disco, ["run", "--bios", "none", "--kernel", Paths.guest("net.elf"), "--nic", nic], timeout: 30)
            #expect(r.status == 2 && r.errorOutput.contains(message), "--nic \(nic): \(r.status) \(r.errorOutput)")
        }
        let r = try runProcess(Paths.disco, ["run", "--bios", "none", "--kernel", Paths.guest("net.elf"),
                                             "--nic", "user,slot=3", "--nic", "switch,slot=3"], timeout: 30)
        #expect(r.status == 2 && r.errorOutput.contains("NIC 0 (user NIC) and NIC 1 (NIC on switch 'default') both want virtio slot 3"), "\(r.errorOutput)")
    }
}
