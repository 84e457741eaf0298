import Cluster
import Coherence
import Foundation
import Logging
import Platform
import Protocol
import RISCV
import Transport

public struct NodeConfiguration: Sendable {
    public var coordinator: Endpoint
    /// Where peers reach this node.
    public var listen: Endpoint
    public var name: String
    public var cpus: Int
    public var memoryBytes: UInt64
    public var secret: [UInt8]
    public var lineSize: Int
    public var cacheBytes: Int
    public var heartbeatMillis: UInt64

    public init(coordinator: Endpoint, listen: Endpoint, name: String, cpus: Int, memoryBytes: UInt64,
                secret: [UInt8], lineSize: Int = 128, cacheBytes: Int = 1 << 20, heartbeatMillis: UInt64 = 500) {
        self.coordinator = coordinator
        self.listen = listen
        self.name = name
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.secret = secret
        self.lineSize = lineSize
        self.cacheBytes = cacheBytes
        self.heartbeatMillis = heartbeatMillis
    }
}

/// One `disco node` process: joins the coordinator, owns its slice of machine memory
/// (CoherenceAgent), talks to its peers, and runs the VCPUs placed on it.
///
/// Threads: the transport's loop thread delivers events into a mailbox; everything
/// else (memory, directory, harts, devices) belongs to the execution thread that
/// calls `run()`. Between hart slices it handles messages; a hart waiting for a
/// remote line or device parks while the others run; with nothing to run it sleeps
/// on the mailbox until a message, a timer deadline or the next heartbeat.
public final class NodeRuntime: @unchecked Sendable {
    public let configuration: NodeConfiguration
    private let logger: Logger
    private let mailbox = Mailbox<TransportEvent>()
    private var transport: NetworkTransport!
    private var coordinator: ConnectionID!

    private var nodeID: Int?
    private var identity = Hello(role: .node, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32))
    private var agent: CoherenceAgent?
    private var peers: [Int: ConnectionID] = [:]
    private var peerOf: [ConnectionID: Int] = [:]
    private var dialing: Set<Int> = []
    private var waitingForPeer: [Int: [Message]] = [:]
    private var peerAddresses: [Int: String] = [:]
    private var vms: [UInt32: NodeVM] = [:]
    private var finishedVMs: Set<UInt32> = []
    private var heartbeatSequence: UInt64 = 0
    private var nextHeartbeat = Date.distantPast
    private let sliceBudget = 2_000
    private var offsetEstimator = ClockOffsetEstimator()
    private let clock: ClusterClock
    private let startedAt: UInt64

    public init(configuration: NodeConfiguration, logger: Logger, clock: ClusterClock = ClusterClock()) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.startedAt = clock.nanoseconds()
    }

    /// Asks `run()` to return (any thread).
    public func stop(reason: String = "stopped") { mailbox.requestStop(reason) }

    private var stopRequested: String? { mailbox.stopRequested }

    /// Joins the cluster and runs until `stop()` or a fatal condition; returns why it
    /// stopped. Throws if the node cannot start (bad address, no memory).
    public func run() throws -> String {
        let identity = Hello(role: .node, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32),
                             cpus: UInt16(clamping: configuration.cpus), memoryBytes: configuration.memoryBytes,
                             name: configuration.name, listenAddress: "")
        let mailbox = self.mailbox
        transport = try NetworkTransport(configuration: TransportConfiguration(secret: configuration.secret, identity: identity),
                                         logger: logger) { mailbox.post($0) }
        defer { transport.shutdown() }
        let bound = try transport.listen(on: configuration.listen)
        self.identity = identity
        self.identity.listenAddress = bound.description
        transport.updateIdentity(self.identity)
        coordinator = transport.connect(to: configuration.coordinator, reconnect: true)
        logger.info("node \(configuration.name) listening on \(bound), joining \(configuration.coordinator)")

        while true {
            if let reason = stopRequested {
                _ = transport.send(.leave(reason: reason), on: coordinator)
                return reason
            }
            process(mailbox.takeAll())
            if let reason = stopRequested { return reason }
            heartbeatIfDue()
            flush()
            if !runHarts() { idle() }
        }
    }

    // MARK: - Events

    private func handle(_ event: TransportEvent) {
        switch event {
        case .connected(let id, let peer):
            if id == coordinator {
                logger.info("connected to the coordinator")
            } else if peer.role == .node {
                let n = Int(peer.nodeID)
                peers[n] = id
                peerOf[id] = n
                dialing.remove(n)
                logger.info("connected to peer node \(n)")
                for m in waitingForPeer.removeValue(forKey: n) ?? [] { _ = transport.send(m, on: id) }
            }
        case .received(let id, let message):
            if id == coordinator {
                handleCoordinator(message)
            } else if let n = peerOf[id] {
                handlePeer(message, from: n)
            }
        case .disconnected(let id, let reason, _):
            if id == coordinator {
                logger.error("lost the coordinator: \(reason)")
                stop(reason: "lost the coordinator: \(reason)")
            } else if let n = peerOf.removeValue(forKey: id) {
                peers[n] = nil
                logger.warning("lost peer node \(n): \(reason)")
            }
        case .writable:
            break
        }
    }

    private func handleCoordinator(_ message: Message) {
        switch message {
        case .joinAccepted(let j):
            nodeID = Int(j.nodeID)
            // Peers learn who we are from our hello.
            identity.nodeID = j.nodeID
            transport.updateIdentity(identity)
            do {
                agent = try CoherenceAgent(node: Int(j.nodeID),
                                           slices: [.init(node: Int(j.nodeID), base: j.memoryBase, size: j.memoryBytes)],
                                           geometry: LineGeometry(lineSize: configuration.lineSize),
                                           cacheBytes: configuration.cacheBytes)
            } catch {
                stop(reason: "\(error)")
                return
            }
            logger.info("joined as node \(j.nodeID), memory 0x\(String(j.memoryBase, radix: 16)) + \(j.memoryBytes >> 20) MiB")
        case .timeSync(let ticks, let sentAt):
            // The coordinator's time (100 ns ticks) in answer to our heartbeat.
            if offsetEstimator.add(sentLocal: sentAt, remote: ticks &* 100, receivedLocal: clock.localNanoseconds()),
               let offset = offsetEstimator.offsetNanos {
                clock.setOffset(offset)
            }
        case .joinRejected(let reason):
            stop(reason: "the coordinator refused to admit this node: \(reason)")
        case .vmStart(let placement):
            startVM(placement)
        case .vmStop(let vm, let reason):
            if vms.removeValue(forKey: vm) != nil { logger.info("VM \(vm) stopped: \(reason)") }
            finishedVMs.insert(vm)
        case .console(let vm, _):
            vms[vm]?.receive(message, from: -1)
        case .vmStatus(let vm, .running, _):
            vms[vm]?.released = true
        case .error(let code, let text):
            logger.error("coordinator reports \(code): \(text)")
        default:
            break
        }
    }

    private func handlePeer(_ message: Message, from n: Int) {
        switch message {
        case .coherenceRequest, .lineData, .upgradeGrant, .invalidate, .invalidateAck, .recall, .recallReply,
             .writeback, .evictShared, .putAck:
            if agent?.receive(message, from: n) != true {
                logger.warning("rejected \(message.type) from node \(n)")
            }
        case .mmioRequest(let r):
            if vms[r.vm]?.receive(message, from: n) != true, !finishedVMs.contains(r.vm) {
                logger.warning("rejected MMIO request for VM \(r.vm) at 0x\(String(r.address, radix: 16)) from node \(n)")
            }
        case .mmioResponse:
            for vm in vms.values where vm.receive(message, from: n) { break }
        case .interrupt(let vm, _, _, _), .ipi(let vm, _):
            vms[vm]?.receive(message, from: n)
        default:
            logger.warning("unexpected \(message.type) from node \(n)")
        }
    }

    // MARK: - VMs

    private func startVM(_ placement: VMPlacement) {
        guard let agent, let me = nodeID else { return }
        do {
            let spec = try VMSpec.parse(yaml: placement.spec)
            agent.learn(placement.nodes.map { .init(node: Int($0.nodeID), base: $0.memoryBase, size: $0.memoryBytes) })
            for n in placement.nodes { peerAddresses[Int(n.nodeID)] = n.listenAddress }
            let vm = try NodeVM(placement: placement, config: spec.machineConfig, node: me, agent: agent, clock: clock)
            vm.waitForCoherence = { [unowned self] in self.pumpCoherence() }
            try vm.boot()
            vms[placement.vm] = vm
            // One connection per pair of nodes: the lower id dials.
            for n in placement.nodes.map({ Int($0.nodeID) }) where n > me && peers[n] == nil && !dialing.contains(n) {
                guard let address = try? Endpoint(parsing: peerAddresses[n] ?? "") else { continue }
                dialing.insert(n)
                let id = transport.connect(to: address, reconnect: true)
                peerOf[id] = n
            }
            logger.info("VM \(placement.vm) '\(spec.name)': \(vm.harts.count) of \(spec.vcpus) VCPUs here\(vm.isDeviceNode ? ", devices here" : "")")
            // Loaded: the coordinator releases the VCPUs once every node has loaded its frames.
            sendCoordinator(.vmStatus(vm: placement.vm, state: .starting, detail: "loaded"))
        } catch {
            logger.error("VM \(placement.vm) cannot start: \(error)")
            sendCoordinator(.vmStatus(vm: placement.vm, state: .failed, detail: "node \(me): \(error)"))
        }
    }

    private func sendCoordinator(_ m: Message) {
        _ = transport.send(m, on: coordinator)
    }

    private func send(_ m: Message, toNode n: Int) {
        if let id = peers[n] {
            _ = transport.send(m, on: id)
        } else {
            waitingForPeer[n, default: []].append(m)
        }
    }

    /// Sends what the agent and the VMs produced and applies wakes and revocations.
    private func flush() {
        guard let agent else { return }
        flushCoherence()
        // A parked hart runs again only when its own access has been performed (the
        // agent completes every parked access), so it never abandons one half done.
        if !agent.completed.isEmpty {
            for r in agent.completed { vms[UInt32(r >> 32)]?.accessCompleted(requester: r) }
            agent.completed.removeAll(keepingCapacity: true)
        }
        for vm in vms.values {
            for (to, m) in vm.outgoing { send(m, toNode: to) }
            vm.outgoing.removeAll(keepingCapacity: true)
            if !vm.consoleOutput.isEmpty {
                sendCoordinator(.console(vm: vm.vm, bytes: vm.consoleOutput))
                vm.consoleOutput.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Runs every runnable hart for one slice; false if none could run.
    private func runHarts() -> Bool {
        var ran = false
        for vm in vms.values where vm.released {
            vm.pollDevices()
            for (i, hart) in vm.harts.enumerated() {
                if vm.runStates[i] == .waitingForInterrupt, hart.hasWakeUpInterrupt { vm.runStates[i] = .runnable }
                guard vm.runStates[i] == .runnable else { continue }
                ran = true
                switch hart.run(budget: sliceBudget) {
                case .budgetExhausted: break
                case .waitingForInterrupt: vm.runStates[i] = .waitingForInterrupt
                case .parked: vm.runStates[i] = .parked
                }
                flush()
                if vm.isDeviceNode {
                    vm.checkFinisher()
                    if let exit = vm.exit { report(exit, of: vm) }
                }
                // Messages waiting (a line another node needs, data a parked hart
                // waits for) go before the next hart's slice.
                if mailbox.count > 0 {
                    process(mailbox.takeAll())
                    flush()
                }
                if vms[vm.vm] == nil { break }
            }
        }
        return ran
    }

    private func report(_ exit: MachineExit, of vm: NodeVM) {
        let detail: String
        switch exit {
        case .pass: detail = "pass"
        case .fail(let code): detail = "fail \(code)"
        case .reset: detail = "reset"
        case .stopped: detail = "stopped"
        }
        logger.info("VM \(vm.vm) finished: \(detail)")
        flush()
        sendCoordinator(.vmStatus(vm: vm.vm, state: .stopped, detail: detail))
        vms[vm.vm] = nil
        finishedVMs.insert(vm.vm)
    }

    private func heartbeatIfDue() {
        let now = Date()
        guard nodeID != nil, now >= nextHeartbeat else { return }
        if logger.logLevel <= .debug, let agent {
            for vm in vms.values {
                let harts = vm.harts.enumerated().map { "\($1.id):\(vm.runStates[$0]) pc=0x\(String($1.pc, radix: 16)) retired=\($1.instructionsRetired)" }
                logger.debug("VM \(vm.vm) released=\(vm.released) harts [\(harts.joined(separator: ", "))]; misses \(agent.remoteMisses), lines in \(agent.linesReceived) out \(agent.linesSent)")
            }
        }
        heartbeatSequence += 1
        sendCoordinator(.heartbeat(sequence: heartbeatSequence, sentAtNanos: clock.localNanoseconds()))
        if heartbeatSequence % 4 == 0, let me = nodeID { sendCoordinator(.stats(statsReport(me))) }
        nextHeartbeat = now.addingTimeInterval(Double(configuration.heartbeatMillis) / 1000)
    }

    /// The node's counters, for `disco stats`.
    private func statsReport(_ me: Int) -> StatsReport {
        var counters: [Counter] = [Counter(name: "vms", value: Int64(vms.count))]
        let harts = vms.values.flatMap(\.harts)
        counters.append(Counter(name: "vcpus", value: Int64(harts.count)))
        counters.append(Counter(name: "instructions", value: Int64(truncatingIfNeeded: harts.reduce(UInt64(0)) { $0 &+ $1.instructionsRetired })))
        if let agent {
            counters.append(Counter(name: "remote_misses", value: Int64(truncatingIfNeeded: agent.remoteMisses)))
            counters.append(Counter(name: "lines_received", value: Int64(truncatingIfNeeded: agent.linesReceived)))
            counters.append(Counter(name: "lines_sent", value: Int64(truncatingIfNeeded: agent.linesSent)))
            counters.append(Counter(name: "rejected_messages", value: Int64(truncatingIfNeeded: agent.rejectedMessages)))
            // FLASH-style counters: misses the home served, per page and requesting node.
            let perPage = agent.missCounts
            counters.append(Counter(name: "home_misses_served", value: Int64(perPage.values.reduce(0) { $0 + $1.values.reduce(0, +) })))
            counters.append(Counter(name: "pages_with_remote_misses", value: Int64(perPage.count)))
            if let hottest = perPage.max(by: { $0.value.values.reduce(0, +) < $1.value.values.reduce(0, +) }) {
                counters.append(Counter(name: "hottest_page", value: Int64(bitPattern: hottest.key)))
                counters.append(Counter(name: "hottest_page_misses", value: Int64(hottest.value.values.reduce(0, +))))
            }
        }
        return StatsReport(nodeID: Int32(me), uptimeNanos: clock.nanoseconds() &- startedAt, counters: counters)
    }

    /// Nothing can run: sleep until a message, the next timer deadline or heartbeat.
    private func idle() {
        var deadline = min(nextHeartbeat, Date().addingTimeInterval(0.05))
        for vm in vms.values {
            guard let d = vm.nextDeadline else { continue }
            let now = vm.currentTime()
            let seconds = d > now ? Double(d - now) / 10_000_000 : 0
            deadline = min(deadline, Date().addingTimeInterval(seconds))
        }
        process(mailbox.wait(until: deadline))
    }

    /// Events put aside while a device's DMA waited for a line (handled next turn).
    private var deferred: [TransportEvent] = []

    /// A device's DMA waits for a line: send what is queued, then handle coherence
    /// messages and connection changes only; anything that could reach a device or run
    /// a hart waits in `deferred`. False when the node is stopping.
    private func pumpCoherence() -> Bool {
        guard stopRequested == nil else { return false }
        flushCoherence()
        for event in mailbox.wait(until: Date().addingTimeInterval(0.1)) {
            switch event {
            case .received(let id, let m) where m.isCoherence && peerOf[id] != nil:
                handle(event)
            case .connected, .disconnected, .writable:
                handle(event)
            default:
                deferred.append(event)
            }
        }
        flushCoherence()
        return true
    }

    /// Sends what the agent produced and drops revoked fast paths (a hart may be in the
    /// middle of the MMIO store that started the DMA), without running anything.
    private func flushCoherence() {
        guard let agent else { return }
        for (to, m) in agent.outgoing { send(m, toNode: to) }
        agent.outgoing.removeAll(keepingCapacity: true)
        for (page, _) in agent.revoked { for vm in vms.values { vm.revoke(machinePage: page) } }
        agent.revoked.removeAll(keepingCapacity: true)
    }

    /// Handles events one at a time. When one brings what a parked hart waited for
    /// (a line, a device's answer), that hart runs a short slice before the next event
    /// is looked at: otherwise a recall queued right behind the data would take the
    /// line away before the hart ever used it, and contended lines would bounce
    /// between nodes forever without progress.
    private func process(_ fresh: [TransportEvent]) {
        var events = fresh
        if !deferred.isEmpty {
            events = deferred + fresh
            deferred.removeAll()
        }
        for event in events {
            handle(event)
            guard let agent else { continue }
            if !agent.completed.isEmpty || vms.values.contains(where: { $0.justWoken.contains(true) }) {
                flush()
                runWoken()
            }
        }
    }

    /// Runs the harts a message just made runnable, briefly, so they use what arrived.
    private func runWoken() {
        for vm in vms.values where vm.released {
            for i in vm.harts.indices where vm.justWoken[i] {
                vm.justWoken[i] = false
                guard vm.runStates[i] == .runnable else { continue }
                switch vm.harts[i].run(budget: 256) {
                case .budgetExhausted: break
                case .waitingForInterrupt: vm.runStates[i] = .waitingForInterrupt
                case .parked: vm.runStates[i] = .parked
                }
                flush()
            }
        }
    }
}
