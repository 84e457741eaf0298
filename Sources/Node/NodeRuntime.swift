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
    /// Whether a VCPU that spins (polls memory that does not change) gives its host
    /// CPU away until memory may have changed (VCPUScheduler); off: it runs on.
    public var parkSpinning: Bool
    /// Beyond Disco: scan the VMs' pages for identical contents and merge them into one
    /// frame of the buffer cache, copy-on-write (needs a buffer cache; off by default).
    public var shareIdenticalPages = false

    /// `heartbeatMillis` is used until the coordinator names its interval at join.
    public init(coordinator: Endpoint, listen: Endpoint, name: String, cpus: Int, memoryBytes: UInt64,
                secret: [UInt8], lineSize: Int = 128, cacheBytes: Int = 1 << 20, heartbeatMillis: UInt64 = 500,
                parkSpinning: Bool = true) {
        self.coordinator = coordinator
        self.listen = listen
        self.name = name
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.secret = secret
        self.lineSize = lineSize
        self.cacheBytes = cacheBytes
        self.heartbeatMillis = heartbeatMillis
        self.parkSpinning = parkSpinning
    }
}

/// One `disco node` process: a thin shell that joins `NodeStateMachine` (membership,
/// peers, VM lifecycle) and `VCPUScheduler` (which VCPU runs next) to the machine it
/// owns: its slice of machine memory (CoherenceAgent), the VMs' local parts (NodeVM),
/// and a transport (any `MessageTransport`: libuv in production, in-memory in tests).
///
/// Threads: the transport's thread delivers events into a mailbox; everything else
/// (memory, directory, harts, devices) belongs to the execution thread that calls
/// `run()`. The loop takes what the mailbox holds, handles it, runs one VCPU slice,
/// and starts over; a VCPU waiting for a remote line or device parks while the others
/// run; with nothing to run the thread sleeps on the mailbox until a message, a timer
/// deadline or the next heartbeat. Handling a message never runs a full slice, and a
/// slice never handles messages other than coherence traffic (a device's DMA waiting
/// for a line), so no VM can go away under a running VCPU.
public final class NodeRuntime: @unchecked Sendable {
    public let configuration: NodeConfiguration
    let logger: Logger
    private let mailbox = Mailbox<TransportEvent>()
    private let makeTransport: TransportFactory
    var transport: (any MessageTransport)!
    private var coordinator: ConnectionID!
    private var identity = Hello(role: .node, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32))

    var state: NodeStateMachine
    var scheduler = VCPUScheduler()
    var agent: CoherenceAgent?
    /// The global buffer cache: the top of this node's slice, as the coordinator said
    /// in `joinAccepted` (nil: none).
    var bufferCache: BufferCache?
    /// Pages of frames between this node's VMs that moved by remapping (PageLoans.swift).
    let pageLoans = PageLoans()
    /// The identical-page scanner's state (NodeRuntime+ContentSharing.swift).
    var contentScan = ContentScan()
    var vms: [UInt32: NodeVM] = [:]
    /// Pages of this node's VMs being moved (the node's part in each move).
    private var moves = PageMoveStateMachine(node: -1)
    /// Lines of old frames being recalled for a move, by move id.
    private var moveRecalls: [UInt64: [LineAddress]] = [:]
    /// A VCPU's slice while peers talk to this node: messages are handled between
    /// slices, so this bounds how long a remote miss served here waits (about 3 µs).
    private let sliceBudget = 2_000
    /// A VCPU's slice when no peer has sent anything for `quietNanos` and no other
    /// local VCPU is runnable: the turn's bookkeeping (a poll of the sockets, timers,
    /// flushes, a pass over every local VCPU and VM) is then paid 50 times less often.
    /// VCPUs that idle in WFI beside it do not shorten it (they wake at the slice's end,
    /// about 0.15 ms late at most): with 2,000-instruction slices a busy VM beside 3 idle
    /// ones ran 2.2x slower than alone, with 20,000 beside 7 idle ones 25% slower
    /// (`disco bench overhead`). Several runnable local VCPUs keep the shorter slice,
    /// to interleave finely.
    private let quietSliceBudget = 100_000
    private let quietNanos: UInt64 = 5_000_000
    /// When a peer last sent this node something.
    private var lastPeerMessage: UInt64 = 0
    /// A miss-sampling slice (NodeVM.MissSample, `sliceBudget` long) follows every
    /// this many instructions run here: spaced by instructions, not by slices, so that
    /// phases of short slices (slow instructions end a slice early, Hart.slowPathCharge;
    /// spin probes; woken VCPUs) are not sampled more often than long quiet ones. Spaced
    /// by slices, the local share read 0.78 where it was 0.9.
    private let sampleInstructions: UInt64 = 512_000
    /// Instructions run here since the last sampling slice began.
    private var sinceSample: UInt64 = 0
    /// The miss samples of VMs that ended here, still reported for a while.
    private var endedMisses: [(vm: UInt32, misses: NodeVM.MissSample)] = []
    /// The slice a VCPU gets right after the message that woke it.
    private let wokenBudget = 256
    /// The slice of a VCPU that spun last time: enough for a spin loop to come round
    /// to its head again (and be parked again), short if it still spins.
    private let spinProbeBudget = 256
    /// Slices that ended with the VCPU spinning (`vcpu_spin_parks`).
    private var spinsParked: UInt64 = 0
    let clock: ClusterClock
    private let startedAt: UInt64
    /// Gets every counters report this node sends the coordinator, on the execution thread:
    /// it must only keep it (the `--metrics` endpoint's snapshot). Set before `run()`.
    public var onStatsReport: (@Sendable (StatsReport) -> Void)?
    /// For the report: instructions of VMs that ended here, the last heartbeat's round
    /// trip to the coordinator, pages moved in and out, replicas installed and dropped.
    private var endedInstructions: UInt64 = 0
    private var heartbeatRoundTrip: UInt64 = 0
    private var moveCounts = (in: Int64(0), out: Int64(0), replicas: Int64(0), dropped: Int64(0))
    /// This node's part of the virtual switch, the frames other nodes sent it that wait
    /// for the next turn, and the frames for peers that could not be sent.
    var network = NodeSwitch()
    var framesFromNodes: [(node: NodeID, subnet: String, frame: [UInt8])] = []
    var framesUnsent: UInt64 = 0
    var nextSwitchAging: UInt64 = 0
    /// When each parked VCPU parked, and how long parked VCPUs waited (`park_us_*`).
    var parkedSince: [VCPUScheduler.VCPU: UInt64] = [:]
    var parkWaits = WaitHistogram()
    /// `DISCO_GUEST_PROFILE`: where the VCPUs are, sampled every millisecond.
    var guestProfile: GuestProfile?

    public init(configuration: NodeConfiguration, logger: Logger, clock: ClusterClock = ClusterClock(),
                transport: TransportFactory? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.startedAt = clock.nanoseconds()
        // The execution thread drives its own sockets: no hand-off on the miss path.
        self.makeTransport = transport ?? Transports.network(logger: logger, driven: true)
        self.state = NodeStateMachine(heartbeatMillis: configuration.heartbeatMillis)
        self.guestProfile = GuestProfile(name: configuration.name)
        pageLoans.vm = { [unowned self] in self.vms[$0] }
    }

    /// Asks `run()` to return (any thread).
    public func stop(reason: String = "stopped") { mailbox.requestStop(reason) }

    /// Wakes `run()` to look at the clock now (tests that move virtual time).
    public func wake() { mailbox.wake() }

    private var stopRequested: String? { mailbox.stopRequested }

    /// Joins the cluster and runs until `stop()` or a fatal condition; returns why it
    /// stopped. Throws if the node cannot start (bad address, no memory).
    public func run() throws -> String {
        defer { finish() }
        try start()
        while true {
            if let reason = turn() { return reason }
        }
    }

    /// Makes the transport, listens and dials the coordinator (the first part of `run`,
    /// for a test that drives turns itself).
    public func start() throws {
        let identity = Hello(role: .node, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32),
                             cpus: UInt16(clamping: configuration.cpus), memoryBytes: configuration.memoryBytes,
                             name: configuration.name, listenAddress: "")
        let mailbox = self.mailbox
        let made = try makeTransport(TransportConfiguration(secret: configuration.secret, identity: identity)) { mailbox.post($0) }
        transport = made
        if made.isDriven { mailbox.onWake { [weak made] in made?.wakeUp() } }
        let bound = try transport.listen(on: configuration.listen)
        self.identity = identity
        self.identity.listenAddress = bound.description
        transport.updateIdentity(self.identity)
        coordinator = transport.connect(to: configuration.coordinator, reconnect: true)
        logger.info("node \(configuration.name) listening on \(bound), joining \(configuration.coordinator)")
    }

    /// One turn of the loop: handle what arrived, heartbeat, run one VCPU slice; with
    /// `wait`, sleep when nothing can run. Returns why the node stopped once it has.
    /// Without `wait` nothing blocks, except a device's DMA waiting for a remote line
    /// (`pumpCoherence`), which a single-threaded driver must not start.
    public func turn(wait: Bool = true) -> String? {
        if let reason = stopRequested {
            apply(state.handle(.stopping(reason: reason), now: clock.localNanoseconds()))
            return reason
        }
        let start = clock.localNanoseconds()
        transport.poll()
        process(mailbox.takeAll())
        if case .stopped(let reason) = state.phase { return reason }
        let now = clock.localNanoseconds()
        // Nothing in a turn should take this long: heartbeats go out between turns.
        if now &- start > Self.slowTurnNanos {
            logger.warning("handling messages took \((now &- start) / 1_000_000) ms")
        }
        apply(state.handle(.tick, now: now))
        flush()
        switchFrames()
        finishScrubs()
        advanceMoves()
        leaveVCPUs()
        reportAccesses()
        if configuration.shareIdenticalPages { scanForIdenticalPages() }
        // What this turn answered goes out now, not after the slice.
        transport.sendQueued()
        let ran = runOneSlice(from: now)
        if guestProfile != nil { sampleGuests(clock.localNanoseconds()) }
        if !ran, wait { idle() }
        return nil
    }

    /// A turn longer than this is logged (a heartbeat is due every 200 ms or more).
    static let slowTurnNanos: UInt64 = 250_000_000

    /// Closes the transport (the last part of `run`).
    public func finish() {
        writeGuestProfile()
        transport?.shutdown()
    }

    // MARK: - Events

    private func handle(_ event: TransportEvent) {
        let now = clock.localNanoseconds()
        switch event {
        case .connected(let id, let peer):
            if id == coordinator {
                apply(state.handle(.coordinatorConnected, now: now))
            } else if peer.role == .node {
                apply(state.handle(.peerConnected(id, node: Int(peer.nodeID)), now: now))
            }
        case .received(let id, let message):
            if id == coordinator, case .timeSync(_, let sentAt) = message { heartbeatRoundTrip = now &- sentAt }
            if id == coordinator, case .pageCommand(let c) = message {
                pageCommand(c)
            } else if id == coordinator, case .pageAssigned(let vm, let page, let node, let frame) = message {
                vms[vm]?.assign(page, node: Int(node), frame: frame)
            } else if id == coordinator, case .subnetMembers(let subnet, let nodes) = message {
                subnetMembers(subnet, nodes)
            } else if id == coordinator, case .vcpuMigrate(let vm, let vcpu, let node) = message {
                migrateVCPU(vm, Int(vcpu), to: Int(node))
            } else if id == coordinator {
                apply(state.handle(.fromCoordinator(message), now: now))
            } else if let n = state.node(of: id) {
                lastPeerMessage = now
                fromPeer(message, n)
            }
        case .disconnected(let id, let reason, _):
            if id == coordinator {
                apply(state.handle(.coordinatorLost(reason: reason), now: now))
            } else {
                apply(state.handle(.peerLost(id, reason: reason), now: now))
            }
        case .writable:
            break
        }
    }

    private func fromPeer(_ message: Message, _ n: NodeID) {
        switch message {
        case .coherenceRequest, .lineData, .upgradeGrant, .invalidate, .invalidateAck, .recall, .recallReply,
             .writeback, .evictShared, .putAck:
            if agent?.receive(message, from: n) != true {
                logger.warning("rejected \(message.type) from node \(n)")
            }
        case .mmioRequest(let r):
            if vms[r.vm]?.receive(message, from: n) != true, !state.isFinished(r.vm) {
                logger.warning("rejected MMIO request for VM \(r.vm) at 0x\(String(r.address, radix: 16)) from node \(n)")
            }
        case .mmioResponse(let r):
            if vms[r.vm]?.receive(message, from: n) != true, !state.isFinished(r.vm) {
                logger.warning("rejected MMIO response \(r.id) for VM \(r.vm) VCPU \(r.vcpu) from node \(n)")
            }
        case .interrupt(let vm, _, _, _), .ipi(let vm, _):
            vms[vm]?.receive(message, from: n)
        case .vcpuMoving(let vm, let vcpu, let node):
            // Everything this node sent about the VCPU to `n` precedes the answer.
            vms[vm]?.route(Int(vcpu), to: Int(node))
            send(.vcpuRouted(vm: vm, vcpu: vcpu), toNode: n)
        case .vcpuRouted(let vm, let vcpu):
            vcpuRouted(vm, Int(vcpu), from: n)
        case .vcpuState(let st):
            vcpuArrived(st, from: n)
        case .ethernetFrame(let subnet, let frame):
            framesFromNodes.append((n, subnet, frame))
        case .pageFreeze(let id, let vm, let page):
            applyMoves(moves.handle(.freeze(id: id, vm: vm, page: page, from: n)))
        case .pageFrozen(let id):
            applyMoves(moves.handle(.frozen(id: id, from: n)))
        case .pageData(let id, let vm, let page, let frame, let data):
            // Written only for the move this node froze for, from that move's home: a
            // node that lies writes no frame.
            guard let v = vms[vm], let m = moves.moves[id], m.phase == .frozen, m.home == n, m.vm == vm, m.page == page,
                  agent?.home(of: frame) == state.nodeID,
                  data.withUnsafeBytes({ agent?.initialize($0, at: frame) }) == true else {
                logger.warning("rejected pageData \(id) for VM \(vm) frame 0x\(String(frame, radix: 16)) from node \(n)")
                return
            }
            applyMoves(moves.handle(.data(id: id, vm: vm, page: page, frame: frame, from: n, others: others(of: v))))
        case .pageMoved(let id, let vm, let page, let node, let frame):
            applyMoves(moves.handle(.moved(id: id, vm: vm, page: page, node: Int(node), frame: frame, from: n)))
        case .pageReplica(let id, let vm, let page, let frame, let data):
            // Written only from the page's home, into a frame of this node that is no
            // page's mapping here, and (for a first replica) for the freeze of that home.
            // (A page not yet assigned here, its assignment still on the way from the
            // coordinator: only for a freeze of that home.)
            guard let v = vms[vm], let master = v.frame(ofGuestPage: page),
                  master == NodeVM.noFrame ? moves.moves[id] != nil : agent?.home(of: master) == n,
                  agent?.home(of: frame) == state.nodeID, v.guestPage(ofMachinePage: frame) == nil,
                  moves.moves[id].map({ $0.phase == .frozen && $0.home == n && $0.vm == vm && $0.page == page }) ?? true,
                  data.withUnsafeBytes({ agent?.initialize($0, at: frame) }) == true else {
                logger.warning("rejected pageReplica \(id) for VM \(vm) frame 0x\(String(frame, radix: 16)) from node \(n)")
                return
            }
            applyMoves(moves.handle(.replica(id: id, vm: vm, page: page, frame: frame, from: n)))
        case .pageThaw(let id, let vm, let page):
            applyMoves(moves.handle(.thaw(id: id, vm: vm, page: page, from: n)))
        case .pageCollapse(let id, let vm, let page):
            applyMoves(moves.handle(.collapse(id: id, vm: vm, page: page, from: n)))
        case .pageCollapsed(let id):
            applyMoves(moves.handle(.collapsed(id: id, from: n)))
        default:
            logger.warning("unexpected \(message.type) from node \(n)")
        }
    }

    /// Carries out the state machine's directives.
    func apply(_ directives: [NodeStateMachine.Directive]) {
        for d in directives {
            switch d {
            case .joined(let j):
                moves = PageMoveStateMachine(node: Int(j.nodeID))
                // Peers learn who we are from our hello.
                identity.nodeID = j.nodeID
                transport.updateIdentity(identity)
                do {
                    agent = try CoherenceAgent(node: Int(j.nodeID),
                                               slices: [.init(node: Int(j.nodeID), base: j.memoryBase, size: j.memoryBytes)],
                                               geometry: LineGeometry(lineSize: configuration.lineSize),
                                               cacheBytes: configuration.cacheBytes)
                    agent?.aliasWritten = { [unowned self] m in for v in self.vms.values where v.aliasWritten(m) { break } }
                    let cacheBytes = j.bufferCacheBytes
                    guard cacheBytes % 4096 == 0, cacheBytes <= j.memoryBytes else {
                        stop(reason: "the coordinator gave a buffer cache of \(cacheBytes) bytes in a slice of \(j.memoryBytes)")
                        continue
                    }
                    bufferCache = cacheBytes > 0 ? BufferCache(base: j.memoryBase + j.memoryBytes - cacheBytes, bytes: cacheBytes) : nil
                } catch {
                    stop(reason: "\(error)")
                }
            case .sendCoordinator(let m):
                _ = transport.send(m, on: coordinator)
            case .send(let m, let c):
                _ = transport.send(m, on: c)
            case .dial(let n, let address):
                let c = transport.connect(to: address, reconnect: true)
                apply(state.handle(.dialed(n, c), now: clock.localNanoseconds()))
            case .startVM(let placement, let spec):
                startVM(placement, spec)
            case .releaseVM(let vm):
                guard let v = vms[vm] else { continue }
                scheduler.add(vm: vm, harts: v.harts.map(\.id))
            case .dropVM(let vm, let reason):
                if let v = vms.removeValue(forKey: vm) {
                    logger.info("VM \(vm) dropped: \(reason)")
                    v.releaseSharedPages()
                    endedMisses.append((vm, v.misses))
                    if endedMisses.count > 16 { endedMisses.removeFirst() }
                    endedInstructions &+= v.harts.reduce(0) { $0 &+ $1.instructionsRetired }
                    // Its last counters reach the coordinator before this node says it dropped it.
                    if let me = state.nodeID { sendStats(me) }
                }
                scheduler.remove(vm: vm)
                parkedSince = parkedSince.filter { $0.key.vm != vm }
                leaving = leaving.filter { $0.key.vm != vm }
                forgetNICs(of: vm)
                agent?.forgetParked(vm: vm)
                for m in moves.moves.values where m.vm == vm { moveRecalls[m.id] = nil }
                applyMoves(moves.handle(.dropVM(vm)))
            case .scrubFrames(let vm, let base, let bytes):
                guard let lines = agent?.beginScrub(base, bytes) else {
                    logger.warning("scrubFrames for VM \(vm) names frames 0x\(String(base, radix: 16)) + \(bytes) that are not home here")
                    continue
                }
                scrubs.append(Scrub(vm: vm, base: base, bytes: bytes, lines: lines))
            case .consoleInput(let vm, let bytes):
                vms[vm]?.receive(.console(vm: vm, bytes: bytes), from: -1)
            case .setClockOffset(let offset):
                clock.setOffset(offset)
            case .reportStats:
                if let me = state.nodeID { sendStats(me) }
                logState()
            case .stop(let reason):
                mailbox.requestStop(reason)
            case .log(let level, let text):
                logger.log(level: level, "\(text)")
            }
        }
    }

    // MARK: - VMs

    private func startVM(_ placement: VMPlacement, _ spec: VMSpec) {
        let now = clock.localNanoseconds()
        guard let agent, let me = state.nodeID else { return }
        do {
            agent.learn(placement.nodes.map { .init(node: Int($0.nodeID), base: $0.memoryBase, size: $0.memoryBytes) })
            let vm = try NodeVM(placement: placement, config: spec.machineConfig, node: me, agent: agent, clock: clock,
                                bufferCache: bufferCache, loans: pageLoans)
            for h in vm.harts { h.detectsSpinning = configuration.parkSpinning }
            vm.waitForCoherence = { [unowned self] in self.pumpCoherence() }
            try vm.boot()
            vms[placement.vm] = vm
            logger.info("VM \(placement.vm) '\(spec.name)': \(vm.harts.count) of \(spec.vcpus) VCPUs here\(vm.isDeviceNode ? ", devices here" : "")")
            apply(state.handle(.vmLoaded(placement.vm), now: now))
        } catch {
            apply(state.handle(.vmLoadFailed(placement.vm, reason: "\(error)"), now: now))
        }
    }

    private func send(_ m: Message, toNode n: Int) {
        if let c = state.connection(toNode: n) {
            _ = transport.send(m, on: c)
        } else {
            state.hold(m, forNode: n)
        }
    }

    /// Sends what the agent and the VMs produced, wakes the VCPUs whose access
    /// completed, and reports finished guests.
    func flush() {
        guard let agent else { return }
        flushCoherence()
        // A parked VCPU runs again only when its own access has been performed (the
        // agent completes every parked access), so it never abandons one half done.
        if !agent.completed.isEmpty {
            for r in agent.completed { vms[UInt32(r >> 32)]?.accessCompleted(requester: r) }
            agent.completed.removeAll(keepingCapacity: true)
        }
        var exited: [(UInt32, MachineExit)] = []
        for (id, vm) in vms {
            if !vm.woken.isEmpty {
                let now = parkedSince.isEmpty ? 0 : clock.localNanoseconds()
                for i in vm.woken {
                    let v = VCPUScheduler.VCPU(vm: id, index: i)
                    if let since = parkedSince.removeValue(forKey: v) { parkWaits.record(nanos: now &- since) }
                    scheduler.wake(v)
                }
            }
            vm.woken.removeAll(keepingCapacity: true)
            for u in vm.unusedPerformed {
                logger.debug("VCPU \(u.hart) of VM \(id) went past the instruction at pc 0x\(String(u.pc, radix: 16)) without using what was performed for it: \(u.unused.map(\.description).joined(separator: ", "))")
            }
            vm.unusedPerformed.removeAll(keepingCapacity: true)
            for (to, m) in vm.outgoing { send(m, toNode: to) }
            vm.outgoing.removeAll(keepingCapacity: true)
            if !vm.consoleOutput.isEmpty {
                _ = transport.send(.console(vm: id, bytes: vm.consoleOutput), on: coordinator)
                vm.consoleOutput.removeAll(keepingCapacity: true)
            }
            if let exit = vm.exit { exited.append((id, exit)) }
        }
        for (id, exit) in exited {
            apply(state.handle(.vmExited(id, VMExit(exit)), now: clock.localNanoseconds()))
        }
    }

    // MARK: - Page moves

    /// The VM's nodes other than this one.
    private func others(of vm: NodeVM) -> [NodeID] {
        let me = state.nodeID ?? -1
        var out: [NodeID] = []
        for n in vm.placement.nodes where Int(n.nodeID) != me { out.append(Int(n.nodeID)) }
        return out
    }

    /// The coordinator asks this node, as the page's home, to move it.
    private func pageCommand(_ c: PageCommand) {
        guard let agent, let me = state.nodeID, let vm = vms[c.vm], let old = vm.frame(ofGuestPage: c.guestPage),
              agent.home(of: old) == me else {
            _ = transport.send(.pageCommandDone(id: c.id, ok: false,
                                                detail: "VM \(c.vm) page 0x\(String(c.guestPage, radix: 16)) is not homed on this node"),
                               on: coordinator)
            return
        }
        applyMoves(moves.handle(.command(c, oldFrame: old, others: others(of: vm))))
    }

    private func applyMoves(_ directives: [PageMoveStateMachine.Directive]) {
        for d in directives {
            switch d {
            case .freeze(let vm, let page):
                vms[vm]?.freeze(page)
            case .send(let m, let n):
                send(m, toNode: n)
            case .recall(let id, let frame, let keepShared):
                moveRecalls[id] = (keepShared ? agent?.beginDowngrade(frame) : agent?.beginScrub(frame, 4096)) ?? []
            case .sendPage(let id, let vm, let page, let frame, let to, let toFrame):
                guard let agent, let data = agent.readPage(frame) else { continue }
                moveCounts.out += 1
                agent.zero(frame, 4096)
                agent.forgetCounts(page: frame)
                send(.pageData(id: id, vm: vm, guestPage: page, frame: toFrame, data: data), toNode: to)
            case .switchPage(let vm, let page, let node, let frame):
                vms[vm]?.switchPage(page, to: frame)
                if node == moves.node { moveCounts.in += 1 }
            case .gate(let frame):
                agent?.gate(frame)
            case .ungate(let frame):
                agent?.ungate(frame)
            case .sendReplica(let id, let vm, let page, let frame, let to, let toFrame):
                guard let data = agent?.readPage(frame) else { continue }
                send(.pageReplica(id: id, vm: vm, guestPage: page, frame: toFrame, data: data), toNode: to)
            case .installReplica(let vm, let page, let frame):
                vms[vm]?.installReplica(page, frame: frame)
                moveCounts.replicas += 1
            case .thaw(let vm, let page):
                vms[vm]?.thaw(page)
            case .dropReplica(let vm, let page):
                vms[vm]?.dropReplica(page)
                moveCounts.dropped += 1
            case .report(let m):
                _ = transport.send(m, on: coordinator)
            case .done(let id, let ok, let detail):
                _ = transport.send(.pageCommandDone(id: id, ok: ok, detail: detail), on: coordinator)
            case .log(let text):
                logger.warning("\(text)")
            }
        }
        flushCoherence()
    }

    /// How often the node tells the coordinator its remote accesses per page.
    private let accessReportNanos: UInt64 = 20_000_000
    private var nextAccessReport: UInt64 = 0

    /// Sends the remote accesses counted since the last report, per VM and guest page,
    /// and which of its own pages that other nodes hold lines of this node used (one
    /// access, one write if it wrote). Those pages' fast paths go, so the next use is
    /// seen again.
    private func reportAccesses() {
        let now = clock.localNanoseconds()
        guard let agent, now >= nextAccessReport else { return }
        nextAccessReport = now + accessReportNanos
        let counts = agent.takeRemoteAccessCounts()
        let touches = agent.takeHomeTouches()
        guard !counts.isEmpty || !touches.isEmpty else { return }
        var perVM: [UInt32: [PageAccessCount]] = [:]
        func add(_ page: UInt64, _ accesses: UInt32, _ writes: UInt32) {
            for (id, vm) in vms {
                guard let g = vm.guestPage(ofMachinePage: page) else { continue }
                perVM[id, default: []].append(PageAccessCount(guestPage: g, accesses: accesses, writes: writes))
                return
            }
        }
        for (page, c) in counts { add(page, c.accesses, c.writes) }
        for (page, wrote) in touches {
            add(page, 1, wrote ? 1 : 0)
            for vm in vms.values { vm.revoke(machinePage: page) }
        }
        for (id, entries) in perVM.sorted(by: { $0.key < $1.key }) {
            _ = transport.send(.pageAccesses(vm: id, entries: entries.sorted { $0.guestPage < $1.guestPage }), on: coordinator)
        }
    }

    /// Feeds the move state machine what it waits for: drained accesses, recalled lines,
    /// writes waiting at a replicated page's gate.
    private func advanceMoves() {
        guard let agent else { return }
        for frame in agent.takeWritesWanted() {
            guard let (id, vm) = vms.first(where: { $0.value.guestPage(ofMachinePage: frame) != nil }),
                  let page = vm.guestPage(ofMachinePage: frame) else { continue }
            applyMoves(moves.handle(.writeWanted(vm: id, page: page)))
        }
        guard !moves.moves.isEmpty else { return }
        for m in moves.awaitingDrain {
            let frame = vms[m.vm]?.frame(ofGuestPage: m.page)
            if frame.map({ !agent.hasWaitingAccess(vm: m.vm, page: $0) }) ?? true {
                applyMoves(moves.handle(.drained(id: m.id)))
            }
        }
        for m in moves.awaitingLines {
            let left = (moveRecalls[m.id] ?? []).filter { m.kind == .replicate ? !agent.isHomeReadable($0) : !agent.isHome($0) }
            moveRecalls[m.id] = left
            if left.isEmpty {
                moveRecalls[m.id] = nil
                applyMoves(moves.handle(.linesHome(id: m.id)))
            }
        }
    }

    /// A stopped VM's home frames being taken back before they are zeroed and freed.
    private struct Scrub {
        var vm: UInt32
        var base: UInt64
        var bytes: UInt64
        /// Lines another node held when the scrub began.
        var lines: [LineAddress]
    }
    private var scrubs: [Scrub] = []

    /// Finishes the scrubs whose lines are all home: zero the frames, tell the coordinator.
    private func finishScrubs() {
        guard let agent, !scrubs.isEmpty else { return }
        var left: [Scrub] = []
        for var s in scrubs {
            s.lines.removeAll { agent.isHome($0) }
            guard s.lines.isEmpty else { left.append(s); continue }
            agent.zero(s.base, s.bytes)
            apply(state.handle(.framesScrubbed(s.vm, base: s.base, bytes: s.bytes), now: clock.localNanoseconds()))
        }
        scrubs = left
    }

    /// Runs the next runnable VCPU for one slice; false if none could run. `start` is
    /// the clock when the turn's bookkeeping began (a slow turn is logged from it).
    private func runOneSlice(from start: UInt64) -> Bool {
        for (id, phase) in state.vms where phase == .released { vms[id]?.pollDevices() }
        let vms = self.vms
        guard let v = scheduler.next(now: start, hasWakeUp: { vms[$0.vm]?.hart($0.index)?.hasWakeUpInterrupt ?? false },
                                     hasTakeable: { vms[$0.vm]?.hart($0.index)?.hasTakeableInterrupt ?? false }),
              let vm = vms[v.vm], let hart = vm.hart(v.index) else { return false }
        let sampled = sinceSample >= sampleInstructions
        if sampled { sinceSample = 0; vm.beginSample(v.index) }
        let budget = scheduler.isProbing(v) ? spinProbeBudget
            : sampled ? sliceBudget
            : start &- lastPeerMessage > quietNanos && !scheduler.othersRunnable(than: v) ? quietSliceBudget
            : sliceBudget
        let retired = hart.instructionsRetired
        let end = VCPUScheduler.SliceEnd(vm.run(hart, budget: budget))
        if end == .spinning { spinsParked &+= 1 }
        let now = clock.localNanoseconds()
        // Charged from the turn's start (its bookkeeping is a few microseconds): one
        // clock read per slice, not two.
        scheduler.charge(v, nanos: now &- start, instructions: hart.instructionsRetired &- retired)
        sinceSample &+= hart.instructionsRetired &- retired
        if now &- start > Self.slowTurnNanos {
            logger.warning("a turn's bookkeeping and the slice of VCPU \(v) took \((now &- start) / 1_000_000) ms for \(hart.instructionsRetired &- retired) instructions (budget \(budget)), ended \(end) at pc 0x\(String(hart.pc, radix: 16))")
        }
        scheduler.ran(v, end, now: now)
        if end == .parked { parkedSince[v] = now }
        if sampled { vm.endSample(v.index) }
        if vm.isDeviceNode { vm.checkFinisher() }
        flush()
        return true
    }

    // MARK: - VCPU migration (docs/monitor.md, "VCPU migration")

    /// A VCPU of this node on its way out: where to, since when, and the nodes whose
    /// `vcpuRouted` it still waits for (nil: it has not stopped yet).
    private struct Leaving {
        var to: NodeID
        var since: UInt64
        var waiting: Set<NodeID>?
    }
    private var leaving: [VCPUScheduler.VCPU: Leaving] = [:]
    private var vcpusMoved = (in: UInt64(0), out: UInt64(0))
    /// What the VCPUs that moved here had retired before.
    private var arrivedInstructions: UInt64 = 0
    /// How long a VCPU may stay busy (accesses in flight) before its move is refused.
    private let leaveTimeoutNanos: UInt64 = 5_000_000_000

    /// The coordinator asks this node to move one of its VCPUs to `to`. It leaves at
    /// the first slice boundary where no access of it is in flight (`leaveVCPUs`).
    private func migrateVCPU(_ vm: UInt32, _ id: Int, to: NodeID) {
        let v = VCPUScheduler.VCPU(vm: vm, index: id)
        func refuse(_ why: String) {
            _ = transport.send(.vcpuMigrated(vm: vm, vcpu: UInt32(id), node: Int32(to), ok: false, detail: why), on: coordinator)
        }
        guard let me = state.nodeID, let machine = vms[vm], machine.hart(id) != nil else {
            return refuse("VCPU \(id) of VM \(vm) is not on node \(state.nodeID ?? -1)")
        }
        guard to != me else { return refuse("VCPU \(id) of VM \(vm) is on node \(to) already") }
        guard machine.placement.nodes.contains(where: { Int($0.nodeID) == to }) else {
            return refuse("node \(to) takes no part in VM \(vm)")
        }
        guard scheduler.states[v] != nil else { return refuse("VM \(vm) is not running on node \(me) yet") }
        guard leaving[v] == nil else { return refuse("VCPU \(id) of VM \(vm) is moving already") }
        leaving[v] = Leaving(to: to, since: clock.localNanoseconds(), waiting: nil)
        leaveVCPUs()
    }

    /// Stops the VCPUs asked to leave that are between accesses, and tells the VM's
    /// other nodes to route them to their new node; refuses a move whose VCPU stayed
    /// busy too long. Runs every turn while a move is under way.
    private func leaveVCPUs() {
        guard !leaving.isEmpty, let me = state.nodeID else { return }
        let now = clock.localNanoseconds()
        for (v, l) in leaving where l.waiting == nil {
            guard let machine = vms[v.vm] else { leaving[v] = nil; continue }
            let st = scheduler.states[v]
            if st == .parked || machine.busyReason(v.index) != nil {
                if now &- l.since > leaveTimeoutNanos {
                    leaving[v] = nil
                    _ = transport.send(.vcpuMigrated(vm: v.vm, vcpu: UInt32(v.index), node: Int32(l.to), ok: false,
                                                     detail: "VCPU \(v.index) stayed busy for 5 s (\(machine.busyReason(v.index) ?? "parked"))"),
                                       on: coordinator)
                }
                continue
            }
            scheduler.hold(v)
            let others = Set(machine.placement.nodes.map { Int($0.nodeID) }).subtracting([me])
            leaving[v]!.waiting = others
            for n in others.sorted() { send(.vcpuMoving(vm: v.vm, vcpu: UInt32(v.index), node: Int32(l.to)), toNode: n) }
        }
    }

    /// Node `n` routes the VCPU to its new node now: once every other node does, its
    /// state goes there.
    private func vcpuRouted(_ vm: UInt32, _ id: Int, from n: NodeID) {
        let v = VCPUScheduler.VCPU(vm: vm, index: id)
        guard var l = leaving[v], l.waiting != nil else {
            return logger.warning("vcpuRouted for VCPU \(id) of VM \(vm) from node \(n), which is not leaving")
        }
        l.waiting!.remove(n)
        leaving[v] = l
        guard l.waiting!.isEmpty else { return }
        leaving[v] = nil
        guard let machine = vms[vm], let st = machine.detach(id, to: l.to) else {
            logger.error("VCPU \(id) of VM \(vm) could not leave after its nodes rerouted it")
            apply(state.handle(.vmLoadFailed(vm, reason: "VCPU \(id) was lost in its move to node \(l.to)"), now: clock.localNanoseconds()))
            return
        }
        scheduler.remove(v)
        parkedSince[v] = nil
        vcpusMoved.out &+= 1
        // This node's instruction counter never goes back: what the VCPU retired stays counted here.
        endedInstructions &+= st.csrs.first { $0.number == 0xb02 }?.value ?? 0
        send(.vcpuState(st), toNode: l.to)
        logger.info("VCPU \(id) of VM \(vm) left for node \(l.to)")
    }

    /// A VCPU's state came from node `n`: it runs here from now on.
    private func vcpuArrived(_ st: VCPUState, from n: NodeID) {
        guard let me = state.nodeID else { return }
        guard let machine = vms[st.vm] else {
            return logger.warning("vcpuState for VM \(st.vm), which is not on this node, from node \(n)")
        }
        do {
            let hart = try machine.attach(st)
            hart.detectsSpinning = configuration.parkSpinning
            // Only what it retires from now on counts here.
            arrivedInstructions &+= hart.instructionsRetired
            if state.vms[st.vm] == .released { scheduler.add(vm: st.vm, harts: [Int(st.vcpu)]) }
            vcpusMoved.in &+= 1
            logger.info("VCPU \(st.vcpu) of VM \(st.vm) arrived from node \(n)")
            _ = transport.send(.vcpuMigrated(vm: st.vm, vcpu: st.vcpu, node: Int32(me), ok: true, detail: "from node \(n)"),
                               on: coordinator)
        } catch {
            _ = transport.send(.vcpuMigrated(vm: st.vm, vcpu: st.vcpu, node: Int32(me), ok: false, detail: "\(error)"), on: coordinator)
            apply(state.handle(.vmLoadFailed(st.vm, reason: "VCPU \(st.vcpu) could not be installed: \(error)"), now: clock.localNanoseconds()))
        }
    }

    /// Runs the VCPUs a message just woke, briefly, so they use what arrived before the
    /// next message can take it away.
    private func runWoken() {
        for v in scheduler.takeWoken() {
            guard let vm = vms[v.vm], let hart = vm.hart(v.index), scheduler.states[v] == .runnable else { continue }
            let began = clock.localNanoseconds(), retired = hart.instructionsRetired
            let end = VCPUScheduler.SliceEnd(vm.run(hart, budget: wokenBudget))
            let now = clock.localNanoseconds()
            scheduler.charge(v, nanos: now &- began, instructions: hart.instructionsRetired &- retired)
            scheduler.ran(v, end, now: now)
            if end == .parked { parkedSince[v] = now }
            if vm.isDeviceNode { vm.checkFinisher() }
            flush()
        }
    }

    private func logState() {
        guard logger.logLevel <= .debug, let agent else { return }
        for (id, vm) in vms {
            let harts = vm.harts.map { h in
                "\(h.id):\(scheduler.states[.init(vm: id, index: h.id)].map { "\($0)" } ?? "not released") pc=0x\(String(h.pc, radix: 16)) retired=\(h.instructionsRetired)"
            }
            logger.debug("VM \(id) phase=\(state.vms[id].map { "\($0)" } ?? "gone") harts [\(harts.joined(separator: ", "))]; misses \(agent.remoteMisses), lines in \(agent.linesReceived) out \(agent.linesSent)")
        }
    }

    private func sendStats(_ me: Int) {
        let report = statsReport(me)
        _ = transport.send(.stats(report), on: coordinator)
        onStatsReport?(report)
    }

    /// The footprint of the VMs here (docs/memory.md, "The global buffer cache"): guest
    /// pages they used, and the machine frames holding those pages: their own frames of
    /// pages that map no cached frame, and the cache's frames in use.
    var memoryCounters: [Counter] {
        let pages = vms.values.reduce(0) { $0 + $1.guestPagesTouched }
        let own = vms.values.reduce(0) { $0 + $1.privateFramesTouched }
        var c = [Counter(name: "guest_pages_mapped", value: Int64(pages)),
                 Counter(name: "machine_frames_used", value: Int64(own + (bufferCache?.index.framesInUse ?? 0)))]
        if let cache = bufferCache {
            let i = cache.index
            c += [Counter(name: "buffer_cache_frames", value: Int64(i.bytes / 4096)),
                  Counter(name: "buffer_cache_frames_used", value: Int64(i.framesInUse)),
                  Counter(name: "buffer_cache_mappings", value: Int64(i.mappings)),
                  Counter(name: "buffer_cache_hits", value: Int64(truncatingIfNeeded: i.hits)),
                  Counter(name: "buffer_cache_fills", value: Int64(truncatingIfNeeded: i.fills)),
                  Counter(name: "buffer_cache_full", value: Int64(truncatingIfNeeded: i.refusedFull)),
                  Counter(name: "buffer_cache_copies_on_write", value: Int64(truncatingIfNeeded: cache.copiesOnWrite)),
                  Counter(name: "buffer_cache_lines_to_nodes", value: Int64(truncatingIfNeeded: agent?.aliasedLinesSent ?? 0)),
                  Counter(name: "buffer_cache_written_by_nodes", value: Int64(truncatingIfNeeded: agent?.aliasesWritten ?? 0))]
            if configuration.shareIdenticalPages {
                c += [Counter(name: "identical_pages_scanned", value: Int64(truncatingIfNeeded: contentScan.scanned)),
                      Counter(name: "identical_pages_merged", value: Int64(truncatingIfNeeded: contentScan.merged)),
                      Counter(name: "identical_scan_ns", value: Int64(truncatingIfNeeded: contentScan.nanoseconds))]
            }
        }
        return c
    }

    /// The node's counters, for `disco stats` and the metrics endpoints.
    func statsReport(_ me: Int) -> StatsReport {
        var counters: [Counter] = [Counter(name: "vms", value: Int64(vms.count))]
        let harts = vms.values.flatMap(\.harts)
        counters.append(Counter(name: "vcpus", value: Int64(harts.count)))
        let instructions = harts.reduce(UInt64(0)) { $0 &+ $1.instructionsRetired }
        counters.append(Counter(name: "instructions", value: Int64(truncatingIfNeeded: instructions)))
        // Since the node started, VMs that ended included (a counter that never goes back).
        counters.append(Counter(name: "instructions_total", value: Int64(truncatingIfNeeded: instructions &+ endedInstructions &- arrivedInstructions)))
        counters.append(Counter(name: "heartbeat_rtt_ns", value: Int64(truncatingIfNeeded: heartbeatRoundTrip)))
        counters.append(Counter(name: "send_queue_bytes", value: Int64(transport?.queuedBytes ?? 0)))
        // Queue depths: VCPUs by scheduler state, events put aside while a DMA waited.
        let queued = scheduler.states.values
        counters.append(Counter(name: "vcpus_runnable", value: Int64(queued.filter { $0 == .runnable }.count)))
        counters.append(Counter(name: "vcpus_parked", value: Int64(queued.filter { $0 == .parked }.count)))
        counters.append(Counter(name: "vcpus_waiting", value: Int64(queued.filter { $0 == .waitingForInterrupt }.count)))
        counters.append(Counter(name: "vcpus_spinning", value: Int64(queued.filter { $0 == .spinning }.count)))
        counters.append(Counter(name: "vcpu_spin_parks", value: Int64(truncatingIfNeeded: spinsParked)))
        counters.append(Counter(name: "deferred_events", value: Int64(deferred.count)))
        counters.append(Counter(name: "pages_migrated_in", value: moveCounts.in))
        counters.append(Counter(name: "pages_migrated_out", value: moveCounts.out))
        counters.append(Counter(name: "replicas_installed", value: moveCounts.replicas))
        counters.append(Counter(name: "replicas_dropped", value: moveCounts.dropped))
        counters += networkCounters
        // Per VCPU here: what it cost (for fairness: `disco stats`, the metrics).
        for (v, a) in scheduler.accounts.sorted(by: { ($0.key.vm, $0.key.index) < ($1.key.vm, $1.key.index) }) {
            counters.append(Counter(name: "vm.\(v.vm).vcpu.\(v.index).run_ns", value: Int64(truncatingIfNeeded: a.runNanos)))
            counters.append(Counter(name: "vm.\(v.vm).vcpu.\(v.index).instructions", value: Int64(truncatingIfNeeded: a.instructions)))
        }
        counters.append(Counter(name: "vcpus_held", value: Int64(queued.filter { $0 == .held }.count)))
        counters.append(Counter(name: "vcpus_moved_in", value: Int64(truncatingIfNeeded: vcpusMoved.in)))
        counters.append(Counter(name: "vcpus_moved_out", value: Int64(truncatingIfNeeded: vcpusMoved.out)))
        counters += memoryCounters
        // Per VM: sampled data misses (local, remote, sampling slices).
        for (id, m) in endedMisses.map({ ($0.vm, $0.misses) }) + vms.map({ ($0.key, $0.value.misses) }) {
            counters.append(Counter(name: "vm.\(id).sampled_local_misses", value: Int64(truncatingIfNeeded: m.local)))
            counters.append(Counter(name: "vm.\(id).sampled_remote_misses", value: Int64(truncatingIfNeeded: m.remote)))
            counters.append(Counter(name: "vm.\(id).sample_slices", value: Int64(truncatingIfNeeded: m.slices)))
        }
        if let agent {
            counters.append(Counter(name: "remote_misses", value: Int64(truncatingIfNeeded: agent.remoteMisses)))
            counters.append(Counter(name: "prefetches", value: Int64(truncatingIfNeeded: agent.prefetches)))
            counters.append(Counter(name: "parked_performed_dropped", value: Int64(agent.droppedPerformed)))
            counters.append(Counter(name: "performed_unused_loads", value: Int64(truncatingIfNeeded: agent.unusedLoads)))
            counters.append(Counter(name: "performed_unused_writes", value: Int64(truncatingIfNeeded: agent.unusedWrites)))
            counters.append(Counter(name: "parks", value: Int64(truncatingIfNeeded: parkWaits.count)))
            counters.append(Counter(name: "park_us_p50", value: Int64(truncatingIfNeeded: parkWaits.quantile(0.5))))
            counters.append(Counter(name: "park_us_p99", value: Int64(truncatingIfNeeded: parkWaits.quantile(0.99))))
            counters.append(Counter(name: "park_ms_total", value: Int64(truncatingIfNeeded: parkWaits.totalNanos / 1_000_000)))
            counters.append(Counter(name: "lines_received", value: Int64(truncatingIfNeeded: agent.linesReceived)))
            counters.append(Counter(name: "lines_sent", value: Int64(truncatingIfNeeded: agent.linesSent)))
            counters.append(Counter(name: "rejected_messages", value: Int64(truncatingIfNeeded: agent.rejectedMessages)))
            // What serving each request took at this home (docs/coherence.md).
            let served = agent.served
            counters.append(Counter(name: "home_served_direct", value: Int64(truncatingIfNeeded: served.remoteDirect)))
            counters.append(Counter(name: "home_served_after_invalidations", value: Int64(truncatingIfNeeded: served.remoteAfterInvalidations)))
            counters.append(Counter(name: "home_served_after_recall", value: Int64(truncatingIfNeeded: served.remoteAfterRecall)))
            counters.append(Counter(name: "home_cpu_waits_for_remote", value: Int64(truncatingIfNeeded: served.localAfterRemote)))
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

    /// Nothing can run: sleep until a message, the next timer deadline or heartbeat
    /// (at most 50 ms, so virtual time in tests is looked at often enough).
    private func idle() {
        let now = clock.localNanoseconds()
        var seconds = 0.05
        if state.nodeID != nil {
            seconds = min(seconds, state.nextHeartbeatNanos > now ? Double(state.nextHeartbeatNanos - now) / 1e9 : 0)
        }
        if let d = scheduler.nextSpinDeadline {
            seconds = min(seconds, d > now ? Double(d - now) / 1e9 : 0)
        }
        // Only timers that could let a VCPU run count: a VCPU parked on a line cannot take
        // its timer interrupt until the line arrives (a message, which wakes this wait),
        // and waking for it would spin this loop and take the host CPU from the node
        // processes that hold the line.
        for (id, phase) in state.vms where phase == .released {
            guard let vm = vms[id],
                  let d = vm.nextDeadline(counting: { scheduler.wakesOnTimer(.init(vm: id, index: $0)) }) else { continue }
            let t = vm.currentTime()
            seconds = min(seconds, d > t ? Double(d - t) / 10_000_000 : 0)
        }
        if guestProfile != nil { sampleGuests(now, force: true) }
        let events = waitForEvents(until: Date().addingTimeInterval(seconds))
        if guestProfile != nil { sampleGuests(clock.localNanoseconds(), force: true) }
        process(events)
    }

    /// Blocks until an event arrives, a wake-up or `deadline`; returns what arrived. A
    /// driven transport is run here, on this thread.
    private func waitForEvents(until deadline: Date) -> [TransportEvent] {
        guard transport.isDriven else { return mailbox.wait(until: deadline) }
        if mailbox.count == 0 && stopRequested == nil { transport.wait(until: deadline) }
        transport.poll()
        return mailbox.takeAll()
    }

    /// Events put aside while a device's DMA waited for a line (handled next turn).
    private var deferred: [TransportEvent] = []
    /// The events `process` is working through (from `inboxHead` on): a device's DMA
    /// started by one of them takes the coherence messages among the rest first.
    private var inbox: [TransportEvent] = []
    private var inboxHead = 0

    /// What a device's DMA may handle while it waits: coherence and page-move messages
    /// from peers, page assignments, connection changes — nothing that reaches a device
    /// or runs a VCPU.
    private func canHandleDuringTransfer(_ event: TransportEvent) -> Bool {
        switch event {
        case .received(let id, let m) where (m.isCoherence || m.isPageMove) && state.node(of: id) != nil: return true
        case .received(let id, .pageAssigned) where id == coordinator: return true
        case .connected, .disconnected, .writable: return true
        default: return false
        }
    }

    /// A device's DMA waits for a line: send what is queued, then handle coherence
    /// messages and connection changes only; anything that could reach a device or run
    /// a VCPU waits in `deferred`. False when the node is stopping.
    private func pumpCoherence() -> Bool {
        guard stopRequested == nil else { return false }
        flushCoherence()
        // Messages the loop in `process` took but has not handled yet come first: the
        // transfer may wait for one of them (a recall of a line this node holds, a move's
        // data), and they must keep their order before anything newer from the same peer.
        let (now, later) = inbox[inboxHead...].reduce(into: ([TransportEvent](), [TransportEvent]())) { parts, event in
            if canHandleDuringTransfer(event) { parts.0.append(event) } else { parts.1.append(event) }
        }
        if !now.isEmpty {
            inbox = later
            inboxHead = 0
            for event in now { handle(event) }
            flushCoherence()
            advanceMoves()
        }
        for event in waitForEvents(until: now.isEmpty ? Date().addingTimeInterval(0.1) : Date()) {
            switch event {
            case _ where canHandleDuringTransfer(event):
                handle(event)
            default:
                deferred.append(event)
            }
        }
        flushCoherence()
        advanceMoves()
        // A long transfer (remote lines, pages frozen for moves) must not look like a
        // dead node: heartbeats go on (the tick only sends them and the statistics).
        apply(state.handle(.tick, now: clock.localNanoseconds()))
        return true
    }

    /// Sends what the agent produced and drops revoked fast paths (a hart may be in the
    /// middle of the MMIO store that started the DMA), without running anything.
    private func flushCoherence() {
        guard let agent else { return }
        for vm in vms.values where !vm.toCoordinator.isEmpty {
            for m in vm.toCoordinator { _ = transport.send(m, on: coordinator) }
            vm.toCoordinator.removeAll(keepingCapacity: true)
        }
        for (to, m) in agent.outgoing { send(m, toNode: to) }
        agent.outgoing.removeAll(keepingCapacity: true)
        // Lines of one page often go together (a stream's evictions): one drop per run.
        var last = UInt64.max
        for (page, _) in agent.revoked where page != last {
            last = page
            for vm in vms.values { vm.revoke(machinePage: page) }
        }
        agent.revoked.removeAll(keepingCapacity: true)
    }

    /// Handles events one at a time. When one brings what a parked VCPU waited for (a
    /// line, a device's answer), that VCPU runs a short slice before the next event is
    /// looked at: otherwise a recall queued right behind the data would take the line
    /// away before the VCPU ever used it, and contended lines would bounce between
    /// nodes forever without progress. Only when the next event just brings another
    /// line (a stream's prefetched lines arrive together) does the slice wait for it:
    /// the access was performed when its line came, and the next line takes nothing
    /// away, so the VCPU then runs once through all of them instead of once per line.
    private func process(_ fresh: [TransportEvent]) {
        // A message may carry a change to what a spinning VCPU polls.
        if !fresh.isEmpty, scheduler.hasSpinning { scheduler.wakeSpinners(now: clock.localNanoseconds()) }
        inbox = deferred + inbox[inboxHead...] + fresh
        inboxHead = 0
        deferred.removeAll()
        while inboxHead < inbox.count {
            let event = inbox[inboxHead]
            inboxHead += 1
            handle(event)
            guard let agent else { continue }
            if !agent.completed.isEmpty || vms.values.contains(where: { !$0.woken.isEmpty }) {
                if inboxHead < inbox.count, Self.onlyBringsALine(inbox[inboxHead]) { continue }
                flush()
                runWoken()
            }
        }
    }

    /// A line's data or an upgrade's grant from a peer: gives this node rights, takes none.
    private static func onlyBringsALine(_ event: TransportEvent) -> Bool {
        switch event {
        case .received(_, .lineData), .received(_, .upgradeGrant): return true
        default: return false
        }
    }
}

extension VCPUScheduler.SliceEnd {
    init(_ end: HartExit) {
        switch end {
        case .budgetExhausted: self = .budgetExhausted
        case .waitingForInterrupt: self = .waitingForInterrupt
        case .parked: self = .parked
        case .spinning: self = .spinning
        }
    }
}

extension VMExit {
    init(_ exit: MachineExit) {
        switch exit {
        case .pass: self = .pass
        case .fail(let code): self = .fail(code: code)
        case .reset: self = .reset
        case .stopped: self = .stopped
        }
    }
}
