import Cluster
import Coordinator
import Foundation
import Logging
import Node
import Protocol
import TestSupport
import Testing
import Transport

/// A whole cluster driven from one thread in virtual time: the coordinator, the nodes
/// and a client on one `ManualExecutor`, every clock a `ManualTime` that moves 20 µs
/// per round, each runtime taking one non-blocking turn per round. Nothing depends on
/// the host's timing, so a run can be replayed exactly.
@Suite struct DeterministicClusterTests {
    static let secret = Array("deterministic-cluster".utf8)

    struct Run: Equatable {
        var console = ""
        var state: VMState?
        var exit: VMExit?
        var rounds = 0
        /// Page moves and replications the client asked for that were carried out.
        var migrations = 0
        var replications = 0
        var collapses = 0
        /// VCPU moves the client asked for that were carried out.
        var vcpuMigrations = 0
    }

    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [TransportEvent] = []
        func post(_ e: TransportEvent) { lock.lock(); items.append(e); lock.unlock() }
        func take() -> [TransportEvent] { lock.lock(); defer { items.removeAll(); lock.unlock() }; return items }
    }

    /// Boots `elf` on `vcpus` VCPUs over `nodes` nodes; returns what the client saw and
    /// how many rounds it took. With `moves`, the client keeps one page command in
    /// flight all the time: a migration or a replication of a random page among the
    /// guest's first 64 (code, data, stacks) to a random node, drawn from that seed.
    /// With `vcpuMoves`, it moves VCPUs instead, `vcpuMoveEvery` rounds after the last
    /// move ended: a random VCPU to a random node (`--overcommit`), drawn from that seed.
    static func run(_ elf: String, vcpus: Int, nodes count: Int, maxRounds: Int = 400_000, moves: UInt64? = nil,
                    vcpuMoves: UInt64? = nil, vcpuMoveEvery: Int = 200) throws -> Run {
        let time = ManualTime()
        let executor = ManualExecutor(now: { time.nanoseconds() })
        let network = InMemoryNetwork(executor: executor)
        var logger = Logger(label: "test.deterministic")
        logger.logLevel = .critical
        let coordinatorEndpoint = Endpoint.unix(path: "/coordinator")
        let coordinator = CoordinatorRuntime(
            configuration: CoordinatorConfiguration(listen: [coordinatorEndpoint], secret: secret, machine: .init(heartbeatMillis: 100)),
            logger: logger, clock: ClusterClock(source: time), transport: Transports.inMemory(network))
        try coordinator.start()
        defer { coordinator.finish() }
        var nodes: [NodeRuntime] = []
        for i in 0..<count {
            let node = NodeRuntime(
                configuration: NodeConfiguration(coordinator: coordinatorEndpoint, listen: .unix(path: "/node\(i)"), name: "node\(i)",
                                                 cpus: (vcpus + count - 1) / count, memoryBytes: 256 << 20, secret: secret),
                logger: logger, clock: ClusterClock(source: time), transport: Transports.inMemory(network))
            try node.start()
            nodes.append(node)
        }
        defer { for n in nodes { n.finish() } }
        let events = Events()
        let client = InMemoryTransport(network: network, configuration: TransportConfiguration(
            secret: secret, identity: Hello(role: .client, nodeID: -1, nonce: [], name: "client"))) { events.post($0) }
        defer { client.shutdown() }
        let connection = client.connect(to: coordinatorEndpoint, reconnect: false)
        var spec = VMSpec(name: "det", vcpus: vcpus, memoryBytes: 64 << 20, firmware: VMSpec.Firmware.none, kernel: elf)
        if moves != nil || vcpuMoves != nil { spec.placement = .interleave }  // every page exists from the start
        var rng = SeededGenerator(seed: moves ?? vcpuMoves ?? 0)
        var moveInFlight = false
        var nextMoveID: UInt64 = 100
        var nextVCPUMove = 0

        var out = Run()
        var created: UInt32?
        var asked = false
        var joined = 0
        for round in 0..<maxRounds {
            executor.runPending()
            _ = coordinator.turn(wait: false)
            for n in nodes { _ = n.turn(wait: false) }
            executor.runPending()
            for e in events.take() {
                switch e {
                case .received(_, .vmResponse(2, true, let vm, _)): created = vm
                case .received(_, .vmResponse(1, _, _, let body)): joined = body.components(separatedBy: "status: alive").count - 1
                case .received(_, .vmResponse(let id, let ok, _, let body)) where id >= 100:
                    moveInFlight = false
                    nextVCPUMove = round + vcpuMoveEvery
                    if ok, body.hasPrefix("moved VM \(created ?? 0) VCPU") { out.vcpuMigrations += 1 }
                    else if ok { if body.hasPrefix("moved") { out.migrations += 1 } else { out.replications += 1 } }
                case .received(_, .vmResponse(3, true, _, let body)):
                    if let c = body.components(separatedBy: "collapses: ").dropFirst().first?.prefix(while: \.isNumber), let n = Int(c) {
                        out.collapses = max(out.collapses, n)
                    }
                case .received(_, .console(_, let bytes)): out.console += String(decoding: bytes, as: UTF8.self)
                case .received(_, .vmStatus(_, let state, let exit, _)) where state == .stopped || state == .failed:
                    out.state = state
                    out.exit = exit
                    out.rounds = round
                    return out
                default: break
                }
            }
            if let vm = created, moves != nil, !moveInFlight {
                let page = 0x8000_0000 + (rng.next() % 64) * 4096
                let node = Int32(rng.next() % UInt64(count))
                let request: VMRequest = rng.next() % 2 == 0 ? .migrate(vm: vm, guestPage: page, node: node)
                                                            : .replicate(vm: vm, guestPage: page, nodes: [node])
                _ = client.send(.vmRequest(id: nextMoveID, request: request), on: connection)
                nextMoveID += 1
                moveInFlight = true
                if round % 500 == 0 { _ = client.send(.vmRequest(id: 3, request: .stats), on: connection) }
            }
            if let vm = created, vcpuMoves != nil, !moveInFlight, round >= nextVCPUMove {
                let request = VMRequest.migrateVCPU(vm: vm, vcpu: UInt32(rng.next() % UInt64(vcpus)),
                                                    node: Int32(rng.next() % UInt64(count)), overcommit: true)
                _ = client.send(.vmRequest(id: nextMoveID, request: request), on: connection)
                nextMoveID += 1
                moveInFlight = true
            }
            // Ask for the members until every node has joined, then create the VM.
            if created == nil, round % 50 == 0 {
                if joined < count {
                    _ = client.send(.vmRequest(id: 1, request: .nodes), on: connection)
                } else if !asked {
                    asked = true
                    _ = client.send(.vmRequest(id: 2, request: .create(spec: spec.yamlText())), on: connection)
                }
            }
            time.advance(byNanos: 20_000)
        }
        return out
    }

    @Test(arguments: [("litmus.elf", 2, 2), ("smp.elf", 4, 2)])
    func aRunReplaysExactly(guest: String, vcpus: Int, nodes: Int) throws {
        let elf = InProcessClusterTests.guest(guest)
        try #require(FileManager.default.fileExists(atPath: elf), "run make -C guests")
        let first = try Self.run(elf, vcpus: vcpus, nodes: nodes)
        #expect(first.state == .stopped && first.exit == .pass, "\(first.console.suffix(600))")
        let (expected, _) = try InProcessClusterTests.reference(elf, harts: vcpus)
        #expect(InProcessClusterTests.comparable(first.console) == InProcessClusterTests.comparable(expected))
        let second = try Self.run(elf, vcpus: vcpus, nodes: nodes)
        #expect(second == first, "rounds \(first.rounds) vs \(second.rounds)")
    }

    /// Pages move and get replicas all the time while the VCPUs race on them (one page
    /// command always in flight, random pages and nodes from a seed), and their writes
    /// collapse the replicas: the guest prints what it prints on one machine (litmus: no
    /// forbidden outcome), and the same seed replays the same run exactly.
    @Test(arguments: [("litmus.elf", 2, 2, UInt64(1)), ("smp.elf", 4, 2, 3)])
    func pagesMoveAtRandomAndTheRunStillReplays(guest: String, vcpus: Int, nodes: Int, seed: UInt64) throws {
        let elf = InProcessClusterTests.guest(guest)
        try #require(FileManager.default.fileExists(atPath: elf), "run make -C guests")
        let first = try Self.run(elf, vcpus: vcpus, nodes: nodes, maxRounds: 1_000_000, moves: seed)
        #expect(first.state == .stopped && first.exit == .pass, "\(first.console.suffix(600))")
        let (expected, _) = try InProcessClusterTests.reference(elf, harts: vcpus)
        #expect(InProcessClusterTests.comparable(first.console) == InProcessClusterTests.comparable(expected))
        #expect(first.migrations >= 20 && first.replications >= 10, "\(first.migrations) migrations, \(first.replications) replications")
        print("\(guest) seed \(seed): \(first.migrations) migrations, \(first.replications) replications, \(first.collapses)+ collapses in \(first.rounds) rounds")
        let second = try Self.run(elf, vcpus: vcpus, nodes: nodes, maxRounds: 1_000_000, moves: seed)
        #expect(second == first, "rounds \(first.rounds) vs \(second.rounds)")
    }

    /// VCPUs move between the nodes all the time (a random VCPU to a random node, from a
    /// seed, a few rounds after the last move ended: 1 for smp.elf, which is short, 200
    /// for litmus.elf, whose tests need both harts running for a while to finish) while they race on locks, barriers, IPIs and
    /// litmus tests: the guest prints what it prints on one machine, and the same seed
    /// replays the same run exactly.
    @Test(arguments: [("litmus.elf", 2, 2, UInt64(5), 200), ("smp.elf", 4, 2, 7, 1), ("smp.elf", 4, 3, 11, 1)])
    func vcpusMoveAtRandomAndTheRunStillReplays(guest: String, vcpus: Int, nodes: Int, seed: UInt64, every: Int) throws {
        let elf = InProcessClusterTests.guest(guest)
        try #require(FileManager.default.fileExists(atPath: elf), "run make -C guests")
        let first = try Self.run(elf, vcpus: vcpus, nodes: nodes, maxRounds: 1_000_000, vcpuMoves: seed, vcpuMoveEvery: every)
        #expect(first.state == .stopped && first.exit == .pass, "\(first.console.suffix(600))")
        let (expected, _) = try InProcessClusterTests.reference(elf, harts: vcpus)
        #expect(InProcessClusterTests.comparable(first.console) == InProcessClusterTests.comparable(expected))
        #expect(first.vcpuMigrations >= 5, "\(first.vcpuMigrations) VCPU moves")
        print("\(guest) on \(nodes) nodes, seed \(seed): \(first.vcpuMigrations) VCPU moves in \(first.rounds) rounds")
        let second = try Self.run(elf, vcpus: vcpus, nodes: nodes, maxRounds: 1_000_000, vcpuMoves: seed, vcpuMoveEvery: every)
        #expect(second == first, "rounds \(first.rounds) vs \(second.rounds)")
    }
}
