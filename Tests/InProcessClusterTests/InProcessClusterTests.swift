import Cluster
import Coordinator
import Foundation
import Logging
import Node
import Platform
import Protocol
import Testing
import Transport

/// A whole cluster in this test process: the real coordinator and node runtimes, each
/// on its own thread, joined by `InMemoryTransport` (the same handshake and codec as
/// the libuv transport, no sockets). Guests are checked against the same ELF on the
/// single-process `Machine`.
@Suite(.serialized) struct InProcessClusterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func guest(_ name: String) -> String { root.appendingPathComponent("guests/build/\(name)").path }
    static let secret = Array("in-process-cluster-secret".utf8)

    /// The coordinator and `count` nodes, started; `stop()` ends every thread.
    final class LocalCluster: @unchecked Sendable {
        let network = InMemoryNetwork()
        let coordinatorEndpoint = Endpoint.unix(path: "/coordinator")
        let coordinator: CoordinatorRuntime
        var nodes: [NodeRuntime] = []
        private var threads: [Thread] = []
        private let lock = NSLock()
        /// Each node's transport, so a test can cut a node off as a crash would.
        private(set) var nodeTransports: [String: any MessageTransport] = [:]
        private let done = DispatchGroup()

        /// `clocks`: the coordinator's and each node's (real time when nil).
        init(nodes count: Int, cpus: Int, memoryBytes: UInt64 = 512 << 20, heartbeatMillis: UInt32 = 100,
             bufferCacheBytes: UInt64 = 0, clocks: (coordinator: ClusterClock, nodes: [ClusterClock])? = nil) throws {
            var logger = Logger(label: "test.cluster")
            logger.logLevel = .error
            let network = self.network
            coordinator = CoordinatorRuntime(
                configuration: CoordinatorConfiguration(listen: [coordinatorEndpoint], secret: InProcessClusterTests.secret,
                                                        machine: .init(heartbeatMillis: heartbeatMillis, bufferCacheBytes: bufferCacheBytes)),
                logger: logger, clock: clocks?.coordinator ?? ClusterClock(), transport: Transports.inMemory(network))
            start("coordinator") { [coordinator] in _ = try? coordinator.run() }
            // Nodes and clients dial once the coordinator listens (nodes would retry; a client does not).
            let listening = Date().addingTimeInterval(10)
            while coordinator.boundEndpoints.isEmpty && Date() < listening { Thread.sleep(forTimeInterval: 0.005) }
            for i in 0..<count {
                let name = "node\(i)"
                let factory: TransportFactory = { [weak self] configuration, handler in
                    let t = InMemoryTransport(network: network, configuration: configuration, handler: handler)
                    self?.record(name, t)
                    return t
                }
                let node = NodeRuntime(
                    configuration: NodeConfiguration(coordinator: coordinatorEndpoint, listen: .unix(path: "/\(name)"), name: name,
                                                     cpus: cpus, memoryBytes: memoryBytes, secret: InProcessClusterTests.secret),
                    logger: logger, clock: clocks?.nodes[i] ?? ClusterClock(), transport: factory)
                nodes.append(node)
                start(name) { _ = try? node.run() }
            }
        }

        private func record(_ name: String, _ t: any MessageTransport) {
            lock.lock()
            nodeTransports[name] = t
            lock.unlock()
        }

        private func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
            done.enter()
            let t = Thread { [done] in
                body()
                done.leave()
            }
            t.name = name
            t.stackSize = 8 << 20
            threads.append(t)
            t.start()
        }

        func client() throws -> ClusterClient {
            var logger = Logger(label: "test.client")
            logger.logLevel = .error
            let c = try ClusterClient(coordinator: coordinatorEndpoint, secret: InProcessClusterTests.secret, logger: logger,
                                      transport: Transports.inMemory(network))
            try c.waitConnected(timeout: 10)
            return c
        }

        /// Waits until `count` nodes are alive members.
        func waitForNodes(_ count: Int, client: ClusterClient) throws {
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let (_, body) = try client.request(.nodes)
                if body.components(separatedBy: "status: alive").count - 1 >= count { return }
                Thread.sleep(forTimeInterval: 0.02)
            }
            Issue.record("only some of \(count) nodes joined within 20 s")
        }

        func transport(named name: String) -> (any MessageTransport)? {
            lock.lock()
            defer { lock.unlock() }
            return nodeTransports[name]
        }

        func stop() {
            for n in nodes { n.stop(reason: "test done") }
            coordinator.stop(reason: "test done")
            #expect(done.wait(timeout: .now() + 20) == .success, "a runtime did not stop")
        }
    }

    struct Outcome {
        var console = ""
        var state: VMState?
        var exit: VMExit?
        var detail = ""
    }

    /// Creates one VM per spec and collects each one's console until all have ended.
    static func run(_ specs: [VMSpec], on cluster: LocalCluster, aliveNodes: Int? = nil,
                    timeout: TimeInterval = 120) throws -> [Outcome] {
        let client = try cluster.client()
        defer { client.close() }
        try cluster.waitForNodes(aliveNodes ?? cluster.nodes.count, client: client)
        var ids: [UInt32] = []
        for spec in specs {
            let (ok, vm, body) = try client.requestWithVM(.create(spec: spec.yamlText()))
            try #require(ok, "refused: \(body)")
            ids.append(try #require(vm))
        }
        var outcomes = Dictionary(uniqueKeysWithValues: ids.map { ($0, Outcome()) })
        let deadline = Date().addingTimeInterval(timeout)
        while outcomes.values.contains(where: { $0.state == nil }) && Date() < deadline {
            for m in try client.events(until: Date().addingTimeInterval(0.2)) {
                switch m {
                case .console(let vm, let bytes): outcomes[vm]?.console += String(decoding: bytes, as: UTF8.self)
                case .vmStatus(let vm, let state, let exit, let detail) where state == .stopped || state == .failed:
                    outcomes[vm]?.state = state
                    outcomes[vm]?.exit = exit
                    outcomes[vm]?.detail = detail
                default: break
                }
            }
        }
        return ids.map { outcomes[$0]! }
    }

    /// The guest's console on the single-process machine (the reference here).
    static func reference(_ elf: String, harts: Int, disks: [String] = [], bootargs: String? = nil) throws -> (String, MachineExit) {
        final class Capture: ConsoleSink {
            var bytes: [UInt8] = []
            func write(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
        }
        let capture = Capture()
        let machine = try Machine(config: MachineConfig(harts: harts, memoryBytes: 64 << 20, bios: .none, kernel: elf,
                                                        disks: disks.map { DiskConfig(path: $0) }, bootargs: bootargs), console: capture)
        let exit = machine.run()
        return (String(decoding: capture.bytes, as: UTF8.self), exit)
    }

    static func comparable(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("instret:") }.joined(separator: "\n")
    }

    func spec(_ guest: String, vcpus: Int, name: String = "t", memory: UInt64 = 64 << 20,
              placement: VMSpec.MemoryPlacement = .firstTouch) -> VMSpec {
        var s = VMSpec(name: name, vcpus: vcpus, memoryBytes: memory, firmware: VMSpec.Firmware.none, kernel: Self.guest(guest))
        s.placement = placement
        return s
    }

    /// Memory placed by first touch (the default) and interleaved.
    @Test(arguments: [("smp.elf", 4, 2), ("smp.elf", 4, 4), ("litmus.elf", 2, 2), ("smp.elf@interleave", 4, 2)])
    func guestRunsAsOnOneMachine(guest name: String, vcpus: Int, nodes: Int) throws {
        let guest = String(name.split(separator: "@")[0])
        let placement: VMSpec.MemoryPlacement = name.hasSuffix("@interleave") ? .interleave : .firstTouch
        try #require(FileManager.default.fileExists(atPath: Self.guest(guest)), "run make -C guests")
        let (expected, exit) = try Self.reference(Self.guest(guest), harts: vcpus)
        #expect(exit == .pass)
        let cluster = try LocalCluster(nodes: nodes, cpus: (vcpus + nodes - 1) / nodes)
        defer { cluster.stop() }
        let out = try Self.run([spec(guest, vcpus: vcpus, placement: placement)], on: cluster)[0]
        #expect(out.state == .stopped && out.exit == .pass, "\(out.detail)\n\(out.console.suffix(800))")
        #expect(Self.comparable(out.console) == Self.comparable(expected))
    }

    /// Two SMP VMs side by side on the same two nodes (each spans both): every VCPU
    /// runs, each VM's console gets its own output.
    @Test func twoVMsSideBySideOnTheSameNodes() throws {
        let guest = Self.guest("smp.elf")
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let (expected, _) = try Self.reference(guest, harts: 2)
        let cluster = try LocalCluster(nodes: 2, cpus: 2)
        defer { cluster.stop() }
        let outs = try Self.run([spec("smp.elf", vcpus: 2, name: "a"), spec("smp.elf", vcpus: 2, name: "b")], on: cluster)
        for out in outs {
            #expect(out.state == .stopped && out.exit == .pass, "\(out.detail)\n\(out.console.suffix(800))")
            #expect(Self.comparable(out.console) == Self.comparable(expected))
        }
    }

    /// Virtual time: the coordinator's clock and three nodes' clocks advance in steps.
    /// Node 1's clock runs at half speed, so its heartbeats (every 100 ms of its time)
    /// reach the coordinator 2 intervals apart: late, but within the 3 intervals before
    /// suspicion and the 6 before death, so it stays alive. Node 2's clock stands
    /// still: it sends no heartbeat after joining and is declared dead.
    @Test func aSlowNodeWithinTheAgreedIntervalStaysAliveAndASilentOneDies() throws {
        let coordinatorTime = ManualTime(), times = [ManualTime(), ManualTime(), ManualTime()]
        let cluster = try LocalCluster(nodes: 3, cpus: 1, heartbeatMillis: 100,
                                       clocks: (ClusterClock(source: coordinatorTime), times.map { ClusterClock(source: $0) }))
        defer { cluster.stop() }
        let client = try cluster.client()
        defer { client.close() }
        try cluster.waitForNodes(3, client: client)
        for _ in 0..<40 {  // 2 s of coordinator time, 20 heartbeat intervals
            coordinatorTime.advance(by: .milliseconds(50))
            times[0].advance(by: .milliseconds(50))
            times[1].advance(by: .milliseconds(25))
            cluster.coordinator.wake()
            for n in cluster.nodes { n.wake() }
            Thread.sleep(forTimeInterval: 0.03)
        }
        let (_, nodes) = try client.request(.nodes)
        #expect(nodes.contains("name: node0, status: alive"), "\(nodes)")
        #expect(nodes.contains("name: node1, status: alive"), "\(nodes)")
        #expect(nodes.contains("name: node2, status: dead"), "\(nodes)")
    }

    /// Two VMs on the same two nodes whose VCPU 1 (on node 1) reads its VM's virtio
    /// slots (on node 0) over and over, so both have remote MMIO reads in flight at
    /// once, numbered from 1 in each VM. The VMs differ in their disks, so an answer
    /// that reached the wrong VM would print the other VM's device ids (or leave a VCPU
    /// waiting for ever). Whether ids collide at the wrong moment depends on timing;
    /// NodeVMTests holds the matching rule itself deterministically.
    @Test func twoVMsWithRemoteMMIOReadsInFlight() throws {
        let guest = Self.guest("mmio.elf")
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("disco-mmio-\(UUID().uuidString).img").path
        try #require(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let (withDisk, _) = try Self.reference(guest, harts: 2, disks: [disk])
        let (without, _) = try Self.reference(guest, harts: 2)
        #expect(withDisk != without)
        let cluster = try LocalCluster(nodes: 2, cpus: 2)
        defer { cluster.stop() }
        var a = spec("mmio.elf", vcpus: 2, name: "a")
        a.disks = [VMSpec.Disk(path: disk)]
        let outs = try Self.run([a, spec("mmio.elf", vcpus: 2, name: "b")], on: cluster)
        for (out, expected) in zip(outs, [withDisk, without]) {
            #expect(out.state == .stopped && out.exit == .pass, "\(out.detail)\n\(out.console.suffix(800))")
            #expect(Self.comparable(out.console) == Self.comparable(expected))
        }
    }

    /// Pages move and get replicas while a virtio disk's DMA goes to and from them: the
    /// guest (blk.elf: random writes, FLUSH, read back and check, a checksum of the
    /// whole disk) has its rings and buffers on both nodes, and the test migrates and
    /// replicates those pages as fast as it can. The guest prints what it prints on one
    /// machine and the disk ends up byte for byte the same.
    @Test func pagesMoveDuringVirtioDMA() throws {
        let guest = Self.guest("blk.elf")
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-dma-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let referenceDisk = dir.appendingPathComponent("reference.raw").path, clusterDisk = dir.appendingPathComponent("cluster.raw").path
        for d in [referenceDisk, clusterDisk] { try #require(FileManager.default.createFile(atPath: d, contents: Data(count: 4 << 20))) }
        let args = "write 7 300"
        let (expected, exit) = try Self.reference(guest, harts: 2, disks: [referenceDisk], bootargs: args)
        #expect(exit == .pass, "\(expected)")

        let cluster = try LocalCluster(nodes: 2, cpus: 1, memoryBytes: 64 << 20)
        defer { cluster.stop() }
        let client = try cluster.client()
        defer { client.close() }
        try cluster.waitForNodes(2, client: client)
        // Interleaved: the rings and buffers are on both nodes from the start, so the
        // device node's DMA crosses nodes, and every page can be moved at once.
        var vmSpec = spec("blk.elf", vcpus: 2, memory: 16 << 20, placement: .interleave)
        vmSpec.disks = [VMSpec.Disk(path: clusterDisk)]
        vmSpec.bootargs = args
        let (ok, vm, body) = try client.requestWithVM(.create(spec: vmSpec.yamlText()))
        try #require(ok, "\(body)")
        let id = try #require(vm)
        var rng = SystemRandomNumberGenerator()
        var console = "", end: (VMState, VMExit?, String)?
        var moved = 0, replicated = 0
        let deadline = Date().addingTimeInterval(120)
        while end == nil && Date() < deadline {
            // The first 16 pages hold blk.elf's code, its descriptor ring, rings and buffers.
            let page = 0x8000_0000 + UInt64.random(in: 0..<16, using: &rng) * 4096
            let node = Int32.random(in: 0...1, using: &rng)
            let replicate = Bool.random(using: &rng)
            let (done, _) = try client.request(replicate ? .replicate(vm: id, guestPage: page, nodes: [node])
                                                          : .migrate(vm: id, guestPage: page, node: node))
            if done { if replicate { replicated += 1 } else { moved += 1 } }
            for m in try client.events(until: Date()) {
                switch m {
                case .console(id, let bytes): console += String(decoding: bytes, as: UTF8.self)
                case .vmStatus(id, let state, let exit, let detail) where state == .stopped || state == .failed:
                    end = (state, exit, detail)
                default: break
                }
            }
        }
        #expect(end?.0 == .stopped && end?.1 == .pass, "\(end.map { "\($0)" } ?? "timed out")\n\(console.suffix(800))")
        #expect(Self.comparable(console) == Self.comparable(expected))
        #expect(moved >= 5 && replicated >= 5, "only \(moved) moves and \(replicated) replications during the DMA")
        print("during blk.elf's DMA: \(moved) moves, \(replicated) replications")
        // The disk is written back when the VM stops; wait for the node to let it go.
        var same = false
        let written = Date().addingTimeInterval(10)
        while !same && Date() < written {
            same = (try? Data(contentsOf: URL(fileURLWithPath: clusterDisk))) == (try? Data(contentsOf: URL(fileURLWithPath: referenceDisk)))
            if !same { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(same, "the disk differs from the one the single machine wrote")
    }

    /// Frames come back: VMs of 48 MiB one after another on two nodes of 64 MiB each.
    /// Without reuse the third would find no room; without zeroing, a VM would find
    /// the last one's counters in its BSS and smp.elf would print WRONG.
    @Test func framesAreReusedAfterAVMStops() throws {
        let guest = Self.guest("smp.elf")
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let (expected, _) = try Self.reference(guest, harts: 2)
        let cluster = try LocalCluster(nodes: 2, cpus: 2, memoryBytes: 64 << 20)
        defer { cluster.stop() }
        let client = try cluster.client()
        defer { client.close() }
        for i in 0..<6 {
            // Wait until the last VM's frames are scrubbed and free again.
            let deadline = Date().addingTimeInterval(20)
            var nodes = ""
            while Date() < deadline {
                nodes = try client.request(.nodes).body
                if nodes.components(separatedBy: "free: 64M").count - 1 == 2 { break }
                Thread.sleep(forTimeInterval: 0.01)
            }
            #expect(nodes.components(separatedBy: "free: 64M").count - 1 == 2, "frames not back before VM \(i): \(nodes)")
            let out = try Self.run([spec("smp.elf", vcpus: 2, name: "seq\(i)", memory: 48 << 20)], on: cluster)[0]
            #expect(out.state == .stopped && out.exit == .pass, "VM \(i): \(out.detail)\n\(out.console.suffix(600))")
            #expect(Self.comparable(out.console) == Self.comparable(expected), "VM \(i)")
        }
    }

    /// A node whose network dies (its transport shut down, no goodbye) fails the VM
    /// that used it; a VM on the other nodes finishes.
    @Test func aKilledNodeFailsOnlyItsVM() throws {
        let guest = Self.guest("smp.elf")
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let cluster = try LocalCluster(nodes: 3, cpus: 1)
        defer { cluster.stop() }
        let client = try cluster.client()
        defer { client.close() }
        try cluster.waitForNodes(3, client: client)
        // A VM that does not finish on its own: U-Boot waits at its prompt. One VCPU: it
        // lands on the least loaded node, 0, with all its memory.
        let uboot = VMSpec(name: "victim", vcpus: 1, memoryBytes: 256 << 20,
                           firmware: .file("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"),
                           kernel: "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")
        try #require(FileManager.default.fileExists(atPath: uboot.kernel!), "u-boot-qemu is not installed")
        let (ok, victim, body) = try client.requestWithVM(.create(spec: uboot.yamlText()))
        try #require(ok, "\(body)")
        // Wait for its first output, so it is running when the node goes.
        var seen = ""
        let start = Date().addingTimeInterval(30)
        while !seen.contains("OpenSBI") && Date() < start {
            for case .console(victim, let bytes) in try client.events(until: Date().addingTimeInterval(0.2)) {
                seen += String(decoding: bytes, as: UTF8.self)
            }
        }
        try #require(seen.contains("OpenSBI"), "the victim did not start: \(seen)")
        // The node (id and name) that runs it.
        let (_, list) = try client.request(.list)
        let host = try #require(list.firstMatch(of: try Regex("name: victim, .*nodes: \\[(\\d+)\\]")).map { Int($0[1].substring!)! },
                                "\(list)")
        let (_, members) = try client.request(.nodes)
        let hostName = try #require(members.firstMatch(of: try Regex("node: \(host), name: (\\w+)")).map { String($0[1].substring!) },
                                    "\(members)")
        try #require(cluster.transport(named: hostName)).shutdown()
        var failed: String?
        let deadline = Date().addingTimeInterval(20)
        while failed == nil && Date() < deadline {
            for case .vmStatus(victim, let state, _, let detail) in try client.events(until: Date().addingTimeInterval(0.2))
            where state == .failed || state == .stopped {
                failed = state == .failed ? detail : "stopped: \(detail)"
            }
        }
        #expect(failed?.contains("node \(host) died") == true, "\(failed ?? "no status")")
        let (_, nodes) = try client.request(.nodes)
        #expect(nodes.contains("{node: \(host), name: \(hostName), status: dead"), "\(nodes)")
        // The other two nodes still run VMs.
        let after = try Self.run([spec("smp.elf", vcpus: 2, name: "after")], on: cluster, aliveNodes: 2)[0]
        #expect(after.exit == .pass, "\(after.detail)")
    }

    /// Pages of a running SMP guest move between its two nodes and get replicas at
    /// random, code, data and stacks alike, while its VCPUs race on them (so their
    /// writes collapse replicas as they come): the guest still prints what it prints on
    /// one machine, and every frame comes back once it has stopped.
    @Test(arguments: [("smp.elf", 4), ("litmus.elf", 2)])
    func pagesMoveAndReplicateWhileTheGuestRuns(guest: String, vcpus: Int) throws {
        try #require(FileManager.default.fileExists(atPath: Self.guest(guest)), "run make -C guests")
        let (expected, _) = try Self.reference(Self.guest(guest), harts: vcpus)
        let cluster = try LocalCluster(nodes: 2, cpus: vcpus / 2, memoryBytes: 64 << 20)
        defer { cluster.stop() }
        let client = try cluster.client()
        defer { client.close() }
        try cluster.waitForNodes(2, client: client)
        // Every page exists from the start (interleaved), so any may be picked.
        let (ok, vm, body) = try client.requestWithVM(.create(spec: spec(guest, vcpus: vcpus, memory: 16 << 20, placement: .interleave).yamlText()))
        try #require(ok, "\(body)")
        let id = try #require(vm)
        var rng = SystemRandomNumberGenerator()
        var console = "", end: (VMState, VMExit?, String)?
        var moved = 0, replicated = 0, collapses = 0, refused: [String] = [], moveMicros: [Int] = []
        // Refusals that say the page is busy or placed so already (the page policy moves
        // and replicates pages too).
        let expectedRefusals = ["already", "no running VM", "ended", "being moved", "is replicated", "is homed on node",
                                "collapsing", "holds a replica"]
        let deadline = Date().addingTimeInterval(120)
        while end == nil && Date() < deadline {
            let page = 0x8000_0000 + UInt64.random(in: 0..<64, using: &rng) * 4096
            let node = Int32.random(in: 0...1, using: &rng)
            let replicate = Bool.random(using: &rng)
            let (done, answer) = try client.request(replicate ? .replicate(vm: id, guestPage: page, nodes: [node])
                                                              : .migrate(vm: id, guestPage: page, node: node))
            if done, !replicate, let us = answer.split(separator: " ").dropLast().last.flatMap({ Int($0) }) { moveMicros.append(us) }
            if done { if replicate { replicated += 1 } else { moved += 1 } }
            else if !expectedRefusals.contains(where: { answer.contains($0) }) { refused.append(answer) }
            if let line = try client.request(.stats).body.split(separator: "\n").first(where: { $0.contains("{vm: \(id),") }),
               let c = line.components(separatedBy: "collapses: ").dropFirst().first?.prefix(while: \.isNumber), let n = Int(c) {
                collapses = n
            }
            for m in try client.events(until: Date()) {
                switch m {
                case .console(id, let bytes): console += String(decoding: bytes, as: UTF8.self)
                case .vmStatus(id, let state, let exit, let detail) where state == .stopped || state == .failed:
                    end = (state, exit, detail)
                default: break
                }
            }
        }
        #expect(replicated >= 5 && collapses >= 1, "only \(replicated) replications and \(collapses) collapses while the guest ran")
        print("replications while \(guest) ran: \(replicated), collapses \(collapses)")
        #expect(end?.0 == .stopped && end?.1 == .pass, "\(end.map { "\($0)" } ?? "timed out")\n\(console.suffix(800))")
        #expect(Self.comparable(console) == Self.comparable(expected))
        #expect(moved >= 10, "only \(moved) moves while the guest ran")
        moveMicros.sort()
        print("moves while \(guest) ran: \(moved), median \(moveMicros.isEmpty ? 0 : moveMicros[moveMicros.count / 2]) us (debug build, in-memory transport)")
        #expect(refused.isEmpty, "\(refused.prefix(5))")
        // Every frame, the moved pages' included, is free again once the VM is gone.
        var nodes = ""
        let freed = Date().addingTimeInterval(20)
        while Date() < freed {
            nodes = try client.request(.nodes).body
            if nodes.components(separatedBy: "free: 64M").count - 1 == 2 { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(nodes.components(separatedBy: "free: 64M").count - 1 == 2, "frames not back: \(nodes)")
    }
}
