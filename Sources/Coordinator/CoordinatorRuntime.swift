import Foundation
import Logging
import Cluster
import Protocol
import Transport

public struct CoordinatorConfiguration: Sendable {
    public var listen: [Endpoint]
    public var secret: [UInt8]
    public var heartbeatMillis: UInt32
    public var suspectAfter: Duration
    public var deadAfter: Duration
    public var lineSize: Int

    public init(listen: [Endpoint], secret: [UInt8], heartbeatMillis: UInt32 = 500,
                suspectAfter: Duration = .milliseconds(1500), deadAfter: Duration = .seconds(3), lineSize: Int = 128) {
        self.listen = listen
        self.secret = secret
        self.heartbeatMillis = heartbeatMillis
        self.suspectAfter = suspectAfter
        self.deadAfter = deadAfter
        self.lineSize = lineSize
    }
}

/// The `disco coordinator` process: membership and failure detection
/// (MembershipStateMachine), VM placement, VM lifecycle, and routing of consoles and
/// VM status between nodes and CLI clients. Its state belongs to the thread that calls
/// `run()`; the transport hands it events through a mailbox.
public final class CoordinatorRuntime: @unchecked Sendable {
    public let configuration: CoordinatorConfiguration
    private let logger: Logger
    private let mailbox = Mailbox<TransportEvent>()
    private var transport: NetworkTransport!
    private let clock: ClusterClock
    private let started: UInt64

    private var membership: MembershipStateMachine
    private struct NodeRecord {
        var connection: ConnectionID
        var name: String
        var listenAddress: String
        var cpus: Int
        var memoryBase: UInt64
        var memoryBytes: UInt64
        var nextFree: UInt64
        var alive = true
    }
    private var nodes: [Int: NodeRecord] = [:]
    private var nodeOf: [ConnectionID: Int] = [:]
    private var clients: Set<ConnectionID> = []

    private struct VMRecord {
        var placement: VMPlacement
        var name: String
        var owner: ConnectionID?
        var state: VMState
        var ready: Set<Int> = []
        var detail = ""
        var participants: Set<Int> { Set(placement.vcpuNodes.map(Int.init) + placement.memoryNodes.map(Int.init)) }
    }
    private var vms: [UInt32: VMRecord] = [:]
    private var nextVM: UInt32 = 1
    /// The latest counters each node reported.
    private var nodeStats: [Int: StatsReport] = [:]

    /// Bound listen addresses, once `run()` has started (for `disco up`).
    public private(set) var boundEndpoints: [Endpoint] = []

    public init(configuration: CoordinatorConfiguration, logger: Logger, clock: ClusterClock = ClusterClock()) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.started = clock.nanoseconds()
        self.membership = MembershipStateMachine(suspectAfter: configuration.suspectAfter, deadAfter: configuration.deadAfter)
    }

    /// Asks `run()` to return (any thread).
    public func stop(reason: String = "stopped") { mailbox.requestStop(reason) }

    private var stopRequested: String? { mailbox.stopRequested }

    private var now: Duration { .nanoseconds(Int64(clock.nanoseconds() &- started)) }

    public func run() throws -> String {
        let identity = Hello(role: .coordinator, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32), name: "coordinator")
        let mailbox = self.mailbox
        transport = try NetworkTransport(configuration: TransportConfiguration(secret: configuration.secret, identity: identity),
                                         logger: logger) { mailbox.post($0) }
        defer { transport.shutdown() }
        for endpoint in configuration.listen {
            let bound = try transport.listen(on: endpoint)
            boundEndpoints.append(bound)
        }
        logger.info("coordinator listening on \(boundEndpoints.map(\.description).joined(separator: ", "))")
        var nextTick = Date()
        while true {
            if let reason = stopRequested {
                for (vm, record) in vms where record.state == .running || record.state == .starting {
                    for n in record.participants { sendNode(n, .vmStop(vm: vm, reason: "the coordinator is stopping")) }
                }
                return reason
            }
            let deadline = nextTick
            for event in mailbox.wait(until: deadline) { handle(event) }
            if Date() >= nextTick {
                for d in membership.handle(.tick(now: now)) { apply(d) }
                nextTick = Date().addingTimeInterval(Double(configuration.heartbeatMillis) / 2000)
            }
        }
    }

    // MARK: - Events

    private func handle(_ event: TransportEvent) {
        switch event {
        case .connected(let id, let peer):
            switch peer.role {
            case .node:
                let directives = membership.handle(.join(name: peer.name,
                                                         resources: .init(cpus: Int(peer.cpus), memoryBytes: peer.memoryBytes),
                                                         now: now))
                for d in directives {
                    switch d {
                    case .accepted(let m):
                        nodes[m.id] = NodeRecord(connection: id, name: m.name, listenAddress: peer.listenAddress,
                                                 cpus: m.resources.cpus, memoryBase: m.memoryBase,
                                                 memoryBytes: m.resources.memoryBytes, nextFree: m.memoryBase)
                        nodeOf[id] = m.id
                        _ = transport.send(.joinAccepted(JoinAccepted(nodeID: Int32(m.id), memoryBase: m.memoryBase,
                                                                      memoryBytes: m.resources.memoryBytes,
                                                                      heartbeatMillis: configuration.heartbeatMillis)), on: id)
                        logger.info("node \(m.id) '\(m.name)' joined: \(m.resources.cpus) CPUs, \(m.resources.memoryBytes >> 20) MiB, peers reach it at \(peer.listenAddress)")
                    case .rejected(let name, let reason):
                        logger.warning("refused node '\(name)': \(reason)")
                        _ = transport.send(.joinRejected(reason: reason), on: id)
                        transport.close(id)
                    default:
                        apply(d)
                    }
                }
            case .client:
                clients.insert(id)
            case .coordinator:
                logger.warning("another coordinator connected; closing")
                transport.close(id)
            }
        case .received(let id, let message):
            if let n = nodeOf[id] {
                fromNode(n, message)
            } else if clients.contains(id) {
                fromClient(id, message)
            }
        case .disconnected(let id, let reason, _):
            if let n = nodeOf.removeValue(forKey: id) {
                logger.warning("node \(n) disconnected: \(reason)")
                for d in membership.handle(.connectionLost(n, now: now)) { apply(d) }
            }
            if clients.remove(id) != nil {
                for (vm, var r) in vms where r.owner == id {
                    r.owner = nil
                    vms[vm] = r
                }
            }
        case .writable:
            break
        }
    }

    private func apply(_ d: MembershipStateMachine.Directive) {
        switch d {
        case .suspect(let n):
            logger.warning("node \(n) is suspect: no heartbeat")
        case .recovered(let n):
            logger.info("node \(n) is heard from again")
        case .dead(let n, let reason):
            logger.error("node \(n) is dead: \(reason)")
            nodes[n]?.alive = false
            if let c = nodes[n]?.connection { transport.close(c) }
            for (vm, r) in vms where (r.state == .running || r.state == .starting) && r.participants.contains(n) {
                finish(vm, state: .failed, detail: "node \(n) died (\(reason))")
            }
        case .accepted, .rejected:
            break
        }
    }

    private func fromNode(_ n: Int, _ message: Message) {
        switch message {
        case .heartbeat(_, let sentAt):
            for d in membership.handle(.heartbeat(n, now: now)) { apply(d) }
            // The cluster time base is this process's clock: each node measures its offset.
            sendNode(n, .timeSync(mtime: clock.nanoseconds() / 100, sentAtNanos: sentAt))
        case .leave(let reason):
            logger.info("node \(n) leaves: \(reason)")
            for d in membership.handle(.leave(n, now: now)) { apply(d) }
        case .console(let vm, _):
            if let owner = vms[vm]?.owner { _ = transport.send(message, on: owner) }
        case .stats(let report):
            nodeStats[n] = report
        case .vmStatus(let vm, let state, let detail):
            guard var r = vms[vm], r.state == .starting || r.state == .running else { return }
            switch state {
            case .starting:
                r.ready.insert(n)
                vms[vm] = r
                if r.ready.isSuperset(of: r.participants) {
                    r.state = .running
                    vms[vm] = r
                    for p in r.participants { sendNode(p, .vmStatus(vm: vm, state: .running, detail: "")) }
                    if let owner = r.owner { _ = transport.send(.vmStatus(vm: vm, state: .running, detail: ""), on: owner) }
                    logger.info("VM \(vm) '\(r.name)' running")
                }
            case .running:
                break
            case .stopped, .failed:
                finish(vm, state: state, detail: detail)
            }
        default:
            logger.warning("unexpected \(message.type) from node \(n)")
        }
    }

    private func finish(_ vm: UInt32, state: VMState, detail: String) {
        guard var r = vms[vm] else { return }
        r.state = state
        r.detail = detail
        vms[vm] = r
        for p in r.participants where nodes[p]?.alive == true { sendNode(p, .vmStop(vm: vm, reason: detail)) }
        if let owner = r.owner { _ = transport.send(.vmStatus(vm: vm, state: state, detail: detail), on: owner) }
        logger.info("VM \(vm) '\(r.name)' \(state): \(detail)")
    }

    private func sendNode(_ n: Int, _ m: Message) {
        guard let c = nodes[n]?.connection else { return }
        _ = transport.send(m, on: c)
    }

    private func fromClient(_ id: ConnectionID, _ message: Message) {
        switch message {
        case .vmRequest(let rid, let request):
            let (ok, body) = answer(request, from: id)
            _ = transport.send(.vmResponse(id: rid, ok: ok, body: body), on: id)
        case .console(let vm, _):
            guard let r = vms[vm] else { return }
            sendNode(Int(r.placement.deviceNode), message)
        case .leave:
            transport.close(id)
        default:
            _ = transport.send(.error(code: .unexpectedMessage, message: "clients send vmRequest or console"), on: id)
        }
    }

    // MARK: - Requests

    private func answer(_ request: VMRequest, from client: ConnectionID) -> (Bool, String) {
        switch request {
        case .create(let text):
            do {
                let vm = try create(text, owner: client)
                return (true, "vm: \(vm)")
            } catch {
                return (false, "\(error)")
            }
        case .stop(let vm):
            guard let r = vms[vm], r.state == .running || r.state == .starting else { return (false, "no running VM \(vm)") }
            finish(vm, state: .stopped, detail: "stopped by request")
            return (true, "stopped VM \(vm)")
        case .list:
            let rows = vms.keys.sorted().map { id -> String in
                let r = vms[id]!
                return "- {vm: \(id), name: \(r.name), state: \(r.state), vcpus: \(r.placement.vcpuNodes.count), nodes: \(r.participants.sorted())\(r.detail.isEmpty ? "" : ", detail: \"\(r.detail)\"")}"
            }
            return (true, rows.isEmpty ? "[]" : rows.joined(separator: "\n"))
        case .nodes:
            let rows = membership.members.keys.sorted().map { id -> String in
                let m = membership.members[id]!
                return "- {node: \(id), name: \(m.name), status: \(m.status), cpus: \(m.resources.cpus), memory: \(MemorySize.format(m.resources.memoryBytes)), address: \"\(nodes[id]?.listenAddress ?? "")\"}"
            }
            return (true, rows.isEmpty ? "[]" : rows.joined(separator: "\n"))
        case .stats:
            let alive = membership.alive.count
            let running = vms.values.filter { $0.state == .running }.count
            var lines = ["nodes_alive: \(alive)", "vms_running: \(running)", "vms_total: \(vms.count)", "nodes:"]
            for (n, report) in nodeStats.sorted(by: { $0.key < $1.key }) where nodes[n]?.alive == true {
                let fields = report.counters.map { c in
                    c.name == "hottest_page" ? "\(c.name): 0x\(String(UInt64(bitPattern: c.value), radix: 16))" : "\(c.name): \(c.value)"
                }
                lines.append("  - {node: \(n), uptime_s: \(report.uptimeNanos / 1_000_000_000), \(fields.joined(separator: ", "))}")
            }
            return (true, lines.joined(separator: "\n"))
        }
    }

    private struct CreateError: Error, CustomStringConvertible { var description: String }

    /// Places a VM: VCPUs round-robin over the live nodes, guest memory interleaved by
    /// page over the nodes that run its VCPUs, frames taken from each node's slice.
    private func create(_ text: String, owner: ConnectionID) throws -> UInt32 {
        let spec = try VMSpec.parse(yaml: text)
        try spec.validate(fileExists: { _ in true })  // the nodes read the files and report
        let alive = membership.alive.filter { $0.status == .alive && nodes[$0.id]?.alive == true }.map(\.id)
        guard !alive.isEmpty else { throw CreateError(description: "no live nodes to run the VM on") }
        let load = Dictionary(grouping: vms.values.filter { $0.state == .running || $0.state == .starting }
            .flatMap { $0.placement.vcpuNodes.map(Int.init) }, by: { $0 }).mapValues(\.count)
        let placed = try PlacementPolicy(strategy: .roundRobin).place(
            vcpus: spec.vcpus, memoryBytes: spec.memoryBytes,
            on: alive.map { PlacementPolicy.NodeCapacity(id: $0, cpus: nodes[$0]!.cpus,
                                                         freeMemoryBytes: nodes[$0]!.memoryBase + nodes[$0]!.memoryBytes - nodes[$0]!.nextFree) },
            load: load)
        let hosts = Array(Set(placed.vcpuNodes)).sorted()
        let pages = (spec.memoryBytes + 4095) / 4096
        let perHost = (pages + UInt64(hosts.count) - 1) / UInt64(hosts.count)
        for h in hosts {
            let n = nodes[h]!
            guard n.nextFree + perHost * 4096 <= n.memoryBase + n.memoryBytes else {
                throw CreateError(description: "node \(h) has no room for \(perHost * 4096 >> 20) MiB more")
            }
        }
        let frameBases = hosts.map { nodes[$0]!.nextFree }
        for h in hosts { nodes[h]!.nextFree += perHost * 4096 }
        let id = nextVM
        nextVM += 1
        let participants = Set(placed.vcpuNodes + hosts).sorted()
        let placement = VMPlacement(
            vm: id, spec: text, vcpuNodes: placed.vcpuNodes.map(Int32.init), deviceNode: Int32(placed.vcpuNodes[0]),
            memoryNodes: hosts.map(Int32.init), frameBases: frameBases,
            nodes: participants.map { NodeAddress(nodeID: Int32($0), listenAddress: nodes[$0]!.listenAddress,
                                                  memoryBase: nodes[$0]!.memoryBase, memoryBytes: nodes[$0]!.memoryBytes) },
            epochNanos: clock.nanoseconds(), lineSize: UInt32(configuration.lineSize))
        vms[id] = VMRecord(placement: placement, name: spec.name, owner: owner, state: .starting)
        for n in participants { sendNode(n, .vmStart(placement)) }
        logger.info("VM \(id) '\(spec.name)': \(spec.vcpus) VCPUs on nodes \(placed.vcpuNodes), memory on \(hosts)")
        return id
    }
}
