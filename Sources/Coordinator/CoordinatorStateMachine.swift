import Cluster
import Logging
import Protocol
import Transport

/// The coordinator's logic as a pure state machine (the shape of
/// swift-cluster-membership's SWIMInstance): transport events and clock ticks in,
/// directives (messages to send, connections to close, lines to log) out. It holds
/// membership and failure detection (`MembershipStateMachine`), the nodes' frame
/// allocators, VM records and their lifecycle, placement (`PlacementPolicy`), and the
/// routing of consoles and VM status between nodes and clients. `CoordinatorRuntime`
/// carries the directives out over a transport; tests drive this type directly.
///
/// VM lifecycle: `create` → starting (every participant loads its frames and says
/// `vmStatus(starting)`) → running (the coordinator releases the VCPUs with
/// `vmStatus(running)` to every participant) → stopped or failed (the device node
/// reports the guest's exit, a client stops it, or a node it used dies). A finished
/// VM stays listed; late messages about it are ignored.
///
/// Frames: each node homing some of a VM's memory gives it one run from its
/// `FrameAllocator`. When the VM has finished and every live node of it has answered
/// `vmStop` with `vmDropped`, the homes get `scrubFrames` for their runs; each run goes
/// back to its allocator when the home reports `framesScrubbed`. A dead node's slice
/// is never used again, so its runs are not either.
public struct CoordinatorStateMachine: Sendable {
    public enum Event: Sendable {
        /// A connection finished its handshake (`peer` is what it said about itself).
        case connected(ConnectionID, peer: Hello)
        case received(ConnectionID, Message)
        case disconnected(ConnectionID, reason: String)
        /// Time passed: check heartbeats.
        case tick
        /// The coordinator is stopping: every VM still alive is stopped.
        case stopping(reason: String)
    }

    public enum Directive: Sendable, Equatable {
        case send(Message, to: ConnectionID)
        case close(ConnectionID)
        case log(Logger.Level, String)
        /// Output of VM `vm` (named `name`) to keep on disk: in its spec's `console-log`
        /// file `log` if it has one, and in the coordinator's console directory if it has one.
        case consoleOutput(vm: UInt32, name: String, log: String?, bytes: [UInt8])
    }

    public struct Configuration: Sendable {
        public var heartbeatMillis: UInt32
        public var suspectAfterIntervals: Int
        public var deadAfterIntervals: Int
        public var lineSize: Int
        public var strategy: PlacementPolicy.Strategy
        /// How much of each VM's most recent console output is kept for consoles that attach.
        public var consoleBacklogBytes: Int
        /// Checks that a spec's `console-log` can be written on this host: nil if it can,
        /// else why not (the create fails). Nil: not checked (tests).
        public var checkConsoleLog: (@Sendable (String) -> String?)?
        /// VCPU load balancing between nodes (`VCPUBalancer`).
        public var balancing: VCPUBalancer.Parameters
        /// Each node's global buffer cache: this much of the top of its slice (whole
        /// pages, at most half the slice), kept from VMs; 0: no buffer cache.
        public var bufferCacheBytes: UInt64

        public init(heartbeatMillis: UInt32 = 500, suspectAfterIntervals: Int = 3, deadAfterIntervals: Int = 6,
                    lineSize: Int = 128, strategy: PlacementPolicy.Strategy = .compact,
                    consoleBacklogBytes: Int = 64 * 1024, checkConsoleLog: (@Sendable (String) -> String?)? = nil,
                    balancing: VCPUBalancer.Parameters = VCPUBalancer.Parameters(),
                    bufferCacheBytes: UInt64 = 0) {
            self.balancing = balancing
            self.bufferCacheBytes = bufferCacheBytes
            self.consoleBacklogBytes = consoleBacklogBytes
            self.checkConsoleLog = checkConsoleLog
            self.heartbeatMillis = heartbeatMillis
            self.suspectAfterIntervals = suspectAfterIntervals
            self.deadAfterIntervals = deadAfterIntervals
            self.lineSize = lineSize
            self.strategy = strategy
        }
    }

    struct NodeRecord: Sendable {
        var connection: ConnectionID
        var listenAddress: String
        var cpus: Int
        var frames: FrameAllocator
        var alive = true
    }

    public struct FrameRun: Sendable, Equatable {
        public var base: UInt64
        public var bytes: UInt64
    }

    /// Where a guest page lives: its home node and machine page there.
    public struct PageHome: Sendable, Equatable {
        public var node: NodeID
        public var frame: UInt64
    }

    /// A migration or replication sent to a page's home and not yet reported done.
    struct PendingMove: Sendable {
        var kind: PageCommand.Kind
        var vm: UInt32
        var page: UInt64
        var from: PageHome
        /// The new home (migrate) or the replicas (replicate), each with its new frame.
        var targets: [PageHome]
        var startedNanos: UInt64
        /// The client that asked for it, answered when it ends.
        var client: (ConnectionID, UInt64)?
    }

    public struct VMRecord: Sendable {
        public var placement: VMPlacement
        public var name: String
        /// Bytes of guest memory homed on each node.
        public var memoryOnNodes: [NodeID: UInt64]
        public var owner: ConnectionID?
        public var state: VMState
        public var exit: VMExit?
        public var ready: Set<NodeID> = []
        public var detail = ""
        /// The runs of frames the VM has on each home, until the home scrubbed them: the
        /// run it was created with, less pages that moved away, plus pages moved in.
        public var frameRuns: [NodeID: [FrameRun]] = [:]
        /// Bytes of guest RAM.
        public var memoryBytes: UInt64 = 0
        /// The authoritative pmap's changes: guest pages no longer at their chunk's frame
        /// (with first-touch placement: every page given a frame so far).
        public var movedPages: [UInt64: PageHome] = [:]
        /// First-touch placement: pages get frames when first touched, from `freeFrames`.
        public var firstTouch = false
        /// First touch: the part of the VM's run on each node that no page has yet.
        public var untouched: [NodeID: Range<UInt64>] = [:]
        /// First touch: pages given a frame whose home has not yet said it filled it,
        /// with the other nodes that touched them meanwhile. No other node learns of
        /// the frame before the home's `pageAssigned` comes back: a line of it served
        /// earlier would be the frame's old contents, not the boot image.
        public var assigning: [UInt64: Set<NodeID>] = [:]
        /// First touch: pages given a frame on their toucher's node, and elsewhere (it had none left).
        public var touchedLocal = 0
        /// Pages placed with a neighbour's first touch (`placeAhead`).
        public var placedAhead = 0
        public var touchedElsewhere = 0
        /// Read-only replicas: guest page → node → the replica's frame there (the home's
        /// copy is the page's entry in the pmap).
        public var replicas: [UInt64: [NodeID: UInt64]] = [:]
        /// Pages moved, and how long each move took (nanoseconds, command to done).
        public var migrations: Int = 0
        public var moveNanos: [UInt64] = []
        /// Replicas made, and the collapses that dropped them again.
        public var replications: Int = 0
        public var collapses: Int = 0
        public var replicateNanos: [UInt64] = []
        /// Nodes that answered `vmStop` with `vmDropped`.
        public var dropped: Set<NodeID> = []
        /// `scrubFrames` went out to the homes.
        public var scrubbing = false
        /// The virtual-switch subnets its NICs are on.
        public var subnets: Set<String> = []
        /// The spec's `console-log` file (written by the coordinator's runtime).
        public var consoleLog: String?
        /// The most recent console output (at most `consoleBacklogBytes`).
        public var backlog: [UInt8] = []
        /// Clients attached with `consoleAttach` (besides the owner): they get the output,
        /// and their input goes to the VM.
        public var consoles: Set<ConnectionID> = []
        /// The nodes the VM was started on (its VCPUs', memory's and devices' nodes when
        /// it was placed): they all hold a part of it for as long as it lives, wherever
        /// its VCPUs move among them.
        public var participants: Set<NodeID> { Set(placement.nodes.map { Int($0.nodeID) }) }
        /// VCPUs moved between nodes (by command or by the balancer).
        public var vcpuMigrations = 0
        public var vcpuMoveNanos: [UInt64] = []
        public var isActive: Bool { state == .starting || state == .running }
    }

    public let configuration: Configuration
    public private(set) var membership: MembershipStateMachine
    private var nodes: [NodeID: NodeRecord] = [:]
    private var nodeOf: [ConnectionID: NodeID] = [:]
    private var clients: Set<ConnectionID> = []
    public private(set) var vms: [UInt32: VMRecord] = [:]
    private var nextVM: UInt32 = 1
    private var pendingMoves: [UInt64: PendingMove] = [:]
    /// VCPU moves under way: where to, since when, who asked (nil: the balancer).
    struct PendingVCPUMove: Sendable {
        var from: NodeID
        var to: NodeID
        var startedNanos: UInt64
        var client: (ConnectionID, UInt64)?
    }
    private var vcpuMoves: [VCPUBalancer.VCPURef: PendingVCPUMove] = [:]
    /// Decides which VCPUs move between nodes.
    public private(set) var balancer: VCPUBalancer
    /// Decides which pages move, from the nodes' `pageAccesses` reports.
    public private(set) var pagePolicy = PagePolicy()
    private var nextMoveID: UInt64 = 1
    /// The latest counters each node reported.
    private var nodeStats: [NodeID: StatsReport] = [:]
    /// Cluster time (nanoseconds) of the event being handled.
    private var nowNanos: UInt64 = 0
    private var out: [Directive] = []

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        balancer = VCPUBalancer(parameters: configuration.balancing)
        membership = MembershipStateMachine(heartbeatInterval: .milliseconds(Int64(configuration.heartbeatMillis)),
                                            suspectAfterIntervals: configuration.suspectAfterIntervals,
                                            deadAfterIntervals: configuration.deadAfterIntervals)
    }

    /// Handles one event at cluster time `now` (nanoseconds of the coordinator's clock,
    /// which is also the cluster's time base).
    public mutating func handle(_ event: Event, now: UInt64) -> [Directive] {
        nowNanos = now
        out.removeAll(keepingCapacity: true)
        switch event {
        case .connected(let id, let peer):
            connected(id, peer)
        case .received(let id, let message):
            if let n = nodeOf[id] {
                fromNode(n, message)
            } else if clients.contains(id) {
                fromClient(id, message)
            }
        case .disconnected(let id, let reason):
            if let n = nodeOf.removeValue(forKey: id) {
                log(.warning, "node \(n) disconnected: \(reason)")
                apply(membership.handle(.connectionLost(n, now: duration)))
            }
            if clients.remove(id) != nil {
                for (vm, r) in vms where r.owner == id { vms[vm]?.owner = nil }
                for (vm, r) in vms where r.consoles.contains(id) { vms[vm]?.consoles.remove(id) }
            }
        case .tick:
            apply(membership.handle(.tick(now: duration)))
            _ = pagePolicy.handle(.tick, now: nowNanos)
            balance()
        case .stopping(let reason):
            for vm in vms.keys.sorted() where vms[vm]!.isActive {
                finish(vm, state: .stopped, exit: .stopped, detail: "the coordinator is stopping (\(reason))")
            }
        }
        return out
    }

    private var duration: Duration { .nanoseconds(Int64(nowNanos)) }

    private mutating func log(_ level: Logger.Level, _ text: String) { out.append(.log(level, text)) }

    private mutating func send(_ m: Message, to c: ConnectionID) { out.append(.send(m, to: c)) }

    private mutating func sendNode(_ n: NodeID, _ m: Message) {
        guard let r = nodes[n], r.alive else { return }
        send(m, to: r.connection)
    }

    // MARK: - Membership

    private mutating func connected(_ id: ConnectionID, _ peer: Hello) {
        switch peer.role {
        case .node:
            let directives = membership.handle(.join(name: peer.name,
                                                     resources: .init(cpus: Int(peer.cpus), memoryBytes: peer.memoryBytes),
                                                     now: duration))
            for d in directives {
                switch d {
                case .accepted(let m):
                    let cache = min(configuration.bufferCacheBytes, m.resources.memoryBytes / 2) & ~4095
                    nodes[m.id] = NodeRecord(connection: id, listenAddress: peer.listenAddress, cpus: m.resources.cpus,
                                             frames: FrameAllocator(base: m.memoryBase, size: m.resources.memoryBytes, withheld: cache))
                    nodeOf[id] = m.id
                    send(.joinAccepted(JoinAccepted(nodeID: Int32(m.id), memoryBase: m.memoryBase,
                                                    memoryBytes: m.resources.memoryBytes,
                                                    heartbeatMillis: configuration.heartbeatMillis,
                                                    bufferCacheBytes: cache)), to: id)
                    log(.info, "node \(m.id) '\(m.name)' joined: \(m.resources.cpus) CPUs, \(m.resources.memoryBytes >> 20) MiB, peers reach it at \(peer.listenAddress)")
                case .rejected(let name, let reason):
                    log(.warning, "refused node '\(name)': \(reason)")
                    send(.joinRejected(reason: reason), to: id)
                    out.append(.close(id))
                default:
                    apply([d])
                }
            }
        case .client:
            clients.insert(id)
        case .coordinator:
            log(.warning, "another coordinator connected; closing")
            out.append(.close(id))
        }
    }

    private mutating func apply(_ directives: [MembershipStateMachine.Directive]) {
        for d in directives {
            switch d {
            case .suspect(let n):
                log(.warning, "node \(n) is suspect: no heartbeat")
            case .recovered(let n):
                log(.info, "node \(n) is heard from again")
            case .dead(let n, let reason):
                log(.error, "node \(n) is dead: \(reason)")
                guard let c = nodes[n]?.connection else { continue }
                nodes[n]?.alive = false
                nodeOf[c] = nil
                out.append(.close(c))
                for vm in vms.keys.sorted() where vms[vm]!.isActive && vms[vm]!.participants.contains(n) {
                    finish(vm, state: .failed, exit: nil, detail: "node \(n) died (\(reason))")
                }
                // A dead node drops nothing any more: the VMs waiting for it may scrub.
                for vm in vms.keys.sorted() where !vms[vm]!.isActive && vms[vm]!.participants.contains(n) { scrubIfDropped(vm) }
            case .accepted, .rejected:
                break
            }
        }
    }

    // MARK: - Nodes

    private mutating func fromNode(_ n: NodeID, _ message: Message) {
        switch message {
        case .heartbeat(_, let sentAt):
            apply(membership.handle(.heartbeat(n, now: duration)))
            // The cluster time base is this process's clock: each node measures its offset.
            sendNode(n, .timeSync(mtime: nowNanos / 100, sentAtNanos: sentAt))
        case .leave(let reason):
            log(.info, "node \(n) leaves: \(reason)")
            apply(membership.handle(.leave(n, now: duration)))
        case .console(let vm, let bytes):
            guard let r = vms[vm], r.participants.contains(n) else { return }
            vms[vm]!.backlog.append(contentsOf: bytes)
            let excess = vms[vm]!.backlog.count - configuration.consoleBacklogBytes
            if excess > 0 { vms[vm]!.backlog.removeFirst(excess) }
            if let owner = r.owner { send(message, to: owner) }
            for c in r.consoles.sorted(by: { $0.rawValue < $1.rawValue }) where c != r.owner { send(message, to: c) }
            out.append(.consoleOutput(vm: vm, name: r.name, log: r.consoleLog, bytes: bytes))
        case .stats(let report):
            nodeStats[n] = report
            noteVCPURunTimes(report, from: n)
        case .vmStatus(let vm, let state, let exit, let detail):
            guard let r = vms[vm], r.isActive, r.participants.contains(n) else { return }
            switch state {
            case .starting:
                vms[vm]!.ready.insert(n)
                if r.state == .starting, vms[vm]!.ready.isSuperset(of: r.participants) {
                    vms[vm]!.state = .running
                    for p in r.participants.sorted() { sendNode(p, .vmStatus(vm: vm, state: .running, exit: nil, detail: "")) }
                    if let owner = r.owner { send(.vmStatus(vm: vm, state: .running, exit: nil, detail: ""), to: owner) }
                    log(.info, "VM \(vm) '\(r.name)' running")
                }
            case .running:
                break
            case .stopped, .failed:
                finish(vm, state: state, exit: exit, detail: detail)
            }
        case .vmDropped(let vm):
            guard let r = vms[vm], !r.isActive, r.participants.contains(n) else { return }
            vms[vm]!.dropped.insert(n)
            scrubIfDropped(vm)
        case .pageCommandDone(let id, let ok, let detail):
            moveDone(id, ok: ok, detail: detail, from: n)
        case .vcpuMigrated(let vm, let vcpu, let node, let ok, let detail):
            vcpuMoveDone(vm, Int(vcpu), to: Int(node), ok: ok, detail: detail, from: n)
        case .pageAccesses(let vm, let entries):
            pageAccesses(vm, entries, from: n)
        case .pageReplicasDropped(let vm, let page, let holders):
            replicasDropped(vm, page: page, holders: holders.map(Int.init), from: n)
        case .pageTouch(let vm, let page):
            touch(vm, page: page, from: n)
        case .pageAssigned(let vm, let page, _, _):
            assigned(vm, page: page, from: n)
        case .framesScrubbed(let vm, let base, let bytes):
            guard let i = vms[vm]?.frameRuns[n]?.firstIndex(of: FrameRun(base: base, bytes: bytes)), vms[vm]!.scrubbing,
                  nodes[n]?.frames.release(base, bytes) == true else {
                return log(.warning, "node \(n) reported frames 0x\(String(base, radix: 16)) + \(bytes) of VM \(vm) scrubbed, which it was not asked to scrub")
            }
            vms[vm]!.frameRuns[n]!.remove(at: i)
            if vms[vm]!.frameRuns[n]!.isEmpty { vms[vm]!.frameRuns[n] = nil }
            log(.debug, "node \(n): \(MemorySize.format(bytes)) of VM \(vm)'s frames are free again")
        default:
            log(.warning, "unexpected \(message.type) from node \(n)")
        }
    }

    /// Once every live node of a finished VM dropped it, its homes scrub its frames.
    private mutating func scrubIfDropped(_ vm: UInt32) {
        guard let r = vms[vm], !r.isActive, !r.scrubbing else { return }
        let live = r.participants.filter { nodes[$0]?.alive == true }
        guard live.isSubset(of: r.dropped) else { return }
        vms[vm]!.scrubbing = true
        for (n, runs) in r.frameRuns.sorted(by: { $0.key < $1.key }) where nodes[n]?.alive == true {
            for run in runs { sendNode(n, .scrubFrames(vm: vm, base: run.base, bytes: run.bytes)) }
        }
    }

    private mutating func finish(_ vm: UInt32, state: VMState, exit: VMExit?, detail: String) {
        guard let r = vms[vm], r.isActive else { return }
        vms[vm]!.state = state
        vms[vm]!.exit = exit
        vms[vm]!.detail = detail
        pagePolicy.remove(vm: vm)
        balancer.remove(vm: vm)
        vcpuRun = vcpuRun.filter { $0.key.vm != vm }
        for (v, m) in vcpuMoves.sorted(by: { $0.key < $1.key }) where v.vm == vm {
            vcpuMoves[v] = nil
            if let (c, rid) = m.client { send(.vmResponse(id: rid, ok: false, createdVM: nil, body: "VCPU move failed: VM \(vm) ended"), to: c) }
        }
        // Moves under way end with the VM (its nodes drop them); their frames are scrubbed with its runs.
        for (id, m) in pendingMoves.sorted(by: { $0.key < $1.key }) where m.vm == vm {
            pendingMoves[id] = nil
            if let (c, rid) = m.client { send(.vmResponse(id: rid, ok: false, createdVM: nil, body: "move failed: VM \(vm) ended"), to: c) }
        }
        for p in r.participants.sorted() { sendNode(p, .vmStop(vm: vm, reason: detail)) }
        announce(r.subnets, also: [Int(r.placement.deviceNode)])
        if let owner = r.owner { send(.vmStatus(vm: vm, state: state, exit: exit, detail: detail), to: owner) }
        for c in r.consoles.sorted(by: { $0.rawValue < $1.rawValue }) where c != r.owner { send(.vmStatus(vm: vm, state: state, exit: exit, detail: detail), to: c) }
        vms[vm]!.consoles = []
        log(.info, "VM \(vm) '\(r.name)' \(state): \(detail)")
    }

    // MARK: - Virtual Ethernet

    /// The live nodes where active VMs have NICs on `subnet` (their device nodes).
    func subnetNodes(_ subnet: String) -> [NodeID] {
        Set(vms.values.filter { $0.isActive && $0.subnets.contains(subnet) }.map { Int($0.placement.deviceNode) })
            .filter { nodes[$0]?.alive == true }.sorted()
    }

    /// Tells the member nodes of each of `subnets` (and the nodes in `also`, which may
    /// just have left one) who the members are now.
    private mutating func announce(_ subnets: Set<String>, also: Set<NodeID>) {
        for subnet in subnets.sorted() {
            let members = subnetNodes(subnet)
            let addresses = members.compactMap { n in
                nodes[n].map { NodeAddress(nodeID: Int32(n), listenAddress: $0.listenAddress, memoryBase: $0.frames.base,
                                           memoryBytes: $0.frames.size) }
            }
            for n in Set(members).union(also).sorted() where nodes[n]?.alive == true {
                sendNode(n, .subnetMembers(subnet: subnet, nodes: addresses))
            }
        }
    }

    // MARK: - Clients

    private mutating func fromClient(_ id: ConnectionID, _ message: Message) {
        switch message {
        case .vmRequest(let rid, let request):
            answer(rid, request, from: id)
        case .console(let vm, _):
            guard let r = vms[vm], r.isActive else { return }
            guard r.owner == id || r.consoles.contains(id) else {
                return send(.error(code: .invalidRequest, message: "console input for VM \(vm), which this client neither created nor attached to"), to: id)
            }
            sendNode(Int(r.placement.deviceNode), message)
        case .consoleAttach(let which):
            switch findVM(which) {
            case .failure(let why):
                send(.consoleAttached(vm: 0, ok: false, detail: why.description, backlog: []), to: id)
            case .success(let vm):
                vms[vm]!.consoles.insert(id)
                log(.info, "a console attached to VM \(vm) '\(vms[vm]!.name)'")
                send(.consoleAttached(vm: vm, ok: true, detail: "attached to VM \(vm) '\(vms[vm]!.name)'", backlog: vms[vm]!.backlog), to: id)
            }
        case .consoleDetach(let vm):
            if vms[vm]?.consoles.remove(id) != nil { log(.info, "a console detached from VM \(vm)") }
        case .leave:
            out.append(.close(id))
        default:
            send(.error(code: .unexpectedMessage, message: "clients send vmRequest, console, consoleAttach or consoleDetach"), to: id)
        }
    }

    struct LookupError: Error, CustomStringConvertible { var description: String }

    /// A running VM by id or by name (the running VM of that name).
    func findVM(_ which: String) -> Result<UInt32, LookupError> {
        if let id = UInt32(which) {
            guard let r = vms[id] else { return .failure(LookupError(description: "no VM \(id)")) }
            guard r.isActive else { return .failure(LookupError(description: "VM \(id) '\(r.name)' is not running (\(r.state))")) }
            return .success(id)
        }
        let named = vms.filter { $0.value.name == which }
        let active = named.filter { $0.value.isActive }.keys.sorted()
        if active.count == 1 { return .success(active[0]) }
        if active.count > 1 { return .failure(LookupError(description: "several running VMs are named '\(which)' (\(active.map(String.init).joined(separator: ", "))): give its id")) }
        if named.isEmpty { return .failure(LookupError(description: "no VM named '\(which)'")) }
        return .failure(LookupError(description: "no running VM named '\(which)' (it has ended)"))
    }

    private mutating func answer(_ rid: UInt64, _ request: VMRequest, from client: ConnectionID) {
        func reply(_ ok: Bool, _ body: String, vm: UInt32? = nil) {
            send(.vmResponse(id: rid, ok: ok, createdVM: vm, body: body), to: client)
        }
        switch request {
        case .create(let text):
            do {
                let vm = try create(text, owner: client)
                reply(true, "vm: \(vm)", vm: vm)
            } catch {
                reply(false, "\(error)")
            }
        case .stop(let vm):
            guard vms[vm]?.isActive == true else { return reply(false, "no running VM \(vm)") }
            finish(vm, state: .stopped, exit: .stopped, detail: "stopped by request")
            reply(true, "stopped VM \(vm)")
        case .list:
            reply(true, listText)
        case .nodes:
            reply(true, nodesText)
        case .stats:
            reply(true, statsText)
        case .migrate(let vm, let page, let node):
            if let error = migrate(vm, page: page, to: Int(node), client: (client, rid)) { reply(false, error) }
        case .replicate(let vm, let page, let nodes):
            if let error = replicate(vm, page: page, to: nodes.map(Int.init), client: (client, rid)) { reply(false, error) }
        case .migrateVCPU(let vm, let vcpu, let node, let overcommit):
            if let error = migrateVCPU(vm, Int(vcpu), to: Int(node), overcommit: overcommit, client: (client, rid)) { reply(false, error) }
        }
    }

    // MARK: - VCPU moves (docs/monitor.md, "VCPU migration")

    /// VCPUs placed on each node by the active VMs.
    func vcpuLoad() -> [NodeID: Int] {
        var load: [NodeID: Int] = [:]
        for r in vms.values where r.isActive { for n in r.placement.vcpuNodes { load[Int(n), default: 0] += 1 } }
        return load
    }

    /// Starts moving VCPU `vcpu` of a running VM to node `target`, one of the VM's nodes
    /// with a CPU free for it (or any of them, with `overcommit`). Returns why not, or
    /// nil when the command went to the VCPU's node.
    mutating func migrateVCPU(_ vm: UInt32, _ vcpu: Int, to target: NodeID, overcommit: Bool,
                              client: (ConnectionID, UInt64)?) -> String? {
        guard let r = vms[vm] else { return "no VM \(vm)" }
        guard r.state == .running else { return "VM \(vm) '\(r.name)' is not running (\(r.state))" }
        guard vcpu >= 0, vcpu < r.placement.vcpuNodes.count else {
            return "VM \(vm) '\(r.name)' has no VCPU \(vcpu) (it has \(r.placement.vcpuNodes.count): 0...\(r.placement.vcpuNodes.count - 1))"
        }
        guard nodes[target]?.alive == true else { return "node \(target) is not a live node" }
        guard r.participants.contains(target) else {
            return "node \(target) takes no part in VM \(vm) (its nodes are \(r.participants.sorted())); a VCPU moves among its VM's nodes"
        }
        let from = Int(r.placement.vcpuNodes[vcpu])
        guard from != target else { return "VCPU \(vcpu) of VM \(vm) is on node \(target) already" }
        let ref = VCPUBalancer.VCPURef(vm: vm, vcpu: vcpu)
        guard vcpuMoves[ref] == nil else { return "VCPU \(vcpu) of VM \(vm) is moving already" }
        let load = vcpuLoad()[target, default: 0], cpus = nodes[target]!.cpus
        guard overcommit || load < cpus else {
            return "node \(target) has no free CPU (\(load) VCPUs on \(cpus) CPUs); --overcommit moves it there anyway, to share its CPUs"
        }
        vcpuMoves[ref] = PendingVCPUMove(from: from, to: target, startedNanos: nowNanos, client: client)
        balancer.moved(ref, now: nowNanos)
        sendNode(from, .vcpuMigrate(vm: vm, vcpu: UInt32(vcpu), node: Int32(target)))
        log(.info, "VM \(vm) VCPU \(vcpu): moving from node \(from) to node \(target)\(client == nil ? " (balancer)" : "")")
        return nil
    }

    /// A VCPU move ended: reported by its new node (it runs there), or refused by its
    /// old node (it runs on there).
    private mutating func vcpuMoveDone(_ vm: UInt32, _ vcpu: Int, to target: NodeID, ok: Bool, detail: String, from n: NodeID) {
        let ref = VCPUBalancer.VCPURef(vm: vm, vcpu: vcpu)
        guard let m = vcpuMoves[ref], m.to == target, n == m.from || n == m.to else {
            return log(.warning, "node \(n) reported a move of VM \(vm) VCPU \(vcpu) to node \(target), which was not asked for")
        }
        vcpuMoves[ref] = nil
        let nanos = nowNanos &- m.startedNanos
        if ok, vms[vm]?.isActive == true {
            vms[vm]!.placement.vcpuNodes[vcpu] = Int32(target)
            vms[vm]!.vcpuMigrations += 1
            Self.record(nanos, in: &vms[vm]!.vcpuMoveNanos)
            let left = vms[vm]!.placement.vcpuNodes.filter { Int($0) == m.from }.count
            _ = pagePolicy.handle(.vcpuMoved(vm: vm, from: m.from, to: target, leftOnSource: left), now: nowNanos)
            log(.info, "VM \(vm) VCPU \(vcpu) moved from node \(m.from) to node \(target) in \(nanos / 1000) us")
        } else if !ok {
            log(.warning, "VM \(vm) VCPU \(vcpu): move to node \(target) failed: \(detail)")
        }
        if let (c, rid) = m.client {
            let body = ok ? "moved VM \(vm) VCPU \(vcpu) from node \(m.from) to node \(target) in \(nanos / 1000) us"
                          : "VCPU move failed: \(detail)"
            send(.vmResponse(id: rid, ok: ok, createdVM: nil, body: body), to: c)
        }
    }

    /// Each VCPU's run time at its node's last report, and the share of the wall time it
    /// ran between that report and the one before (nil: not seen twice on that node).
    private var vcpuRun: [VCPUBalancer.VCPURef: (node: NodeID, runNanos: Int64, at: UInt64, share: Double?)] = [:]

    /// A node's report of its VCPUs' run times (`vm.V.vcpu.I.run_ns`): how busy each was
    /// since the node's report before, for the balancer.
    private mutating func noteVCPURunTimes(_ report: StatsReport, from n: NodeID) {
        for c in report.counters {
            guard let (vm, name) = Self.vmCounter(c.name), vms[vm]?.isActive == true else { continue }
            let parts = name.split(separator: ".")
            guard parts.count == 3, parts[0] == "vcpu", parts[2] == "run_ns", let v = Int(parts[1]) else { continue }
            let ref = VCPUBalancer.VCPURef(vm: vm, vcpu: v)
            var share: Double?
            if let last = vcpuRun[ref], last.node == n, nowNanos > last.at, c.value >= last.runNanos {
                share = min(1, Double(c.value - last.runNanos) / Double(nowNanos - last.at))
            }
            vcpuRun[ref] = (n, c.value, nowNanos, share)
        }
    }

    /// Lets the balancer look at the VCPUs' placement; carries out the move it picks.
    private mutating func balance() {
        guard configuration.balancing.enabled else { return }
        let cpus = Dictionary(uniqueKeysWithValues: nodes.filter { $0.value.alive }.map { ($0.key, $0.value.cpus) })
        var placedOn: [NodeID: Int] = [:]
        for (_, r) in vms where r.state == .running {
            for n in r.placement.vcpuNodes { placedOn[Int(n), default: 0] += 1 }
        }
        var placed: [VCPUBalancer.Placed] = []
        for (id, r) in vms where r.state == .running {
            let allowed = r.participants.filter { nodes[$0]?.alive == true }
            for (i, n) in r.placement.vcpuNodes.enumerated() {
                let ref = VCPUBalancer.VCPURef(vm: id, vcpu: i)
                // Idle only when seen idle on the node it is placed on now.
                var busy = true
                if let seen = vcpuRun[ref], seen.node == Int(n), let share = seen.share {
                    busy = VCPUBalancer.isBusy(share: share, cpus: cpus[Int(n)] ?? 1, placed: placedOn[Int(n)] ?? 1)
                }
                placed.append(.init(vcpu: ref, node: Int(n), allowed: allowed, busy: busy))
            }
        }
        placed.sort { $0.vcpu < $1.vcpu }
        guard let move = balancer.evaluate(now: nowNanos, cpus: cpus, vcpus: placed, moving: !vcpuMoves.isEmpty) else { return }
        if let why = migrateVCPU(move.vcpu.vm, move.vcpu.vcpu, to: move.to, overcommit: false, client: nil) {
            log(.warning, "balancer: \(move.vcpu) to node \(move.to): \(why)")
        }
    }

    // MARK: - Page moves

    /// Where guest page `page` of the VM lives now (the authoritative pmap).
    func pageHome(_ r: VMRecord, _ page: UInt64) -> PageHome? {
        let offset = page &- Self.ramBase
        guard offset < r.memoryBytes else { return nil }
        if let moved = r.movedPages[page] { return r.assigning[page] == nil ? moved : nil }
        if r.firstTouch { return nil }
        let chunkBytes = UInt64(r.placement.chunkPages) * 4096
        let chunk = r.placement.chunks[Int(offset / chunkBytes)]
        return PageHome(node: Int(chunk.node), frame: chunk.frameBase + offset % chunkBytes)
    }

    static let ramBase: UInt64 = 0x8000_0000

    /// First touch: node `n` touched a page that has no frame. It gets one on `n` (or,
    /// with none left there, on the VM's node with the most left). The home is told
    /// first and fills the frame (from the boot image); when it answers (`assigned`),
    /// every other node of the VM learns where the page is. A page assigned already is
    /// only told again to `n`; one still being filled adds `n` to those waiting.
    private mutating func touch(_ vm: UInt32, page: UInt64, from n: NodeID) {
        guard let r = vms[vm], r.isActive, r.firstTouch, r.participants.contains(n) else { return }
        guard page % 4096 == 0, page &- Self.ramBase < r.memoryBytes else {
            return log(.warning, "node \(n) touched 0x\(String(page, radix: 16)), which is not a page of VM \(vm)'s RAM")
        }
        if let home = r.movedPages[page] {
            if r.assigning[page] != nil {
                if n != home.node { vms[vm]!.assigning[page]!.insert(n) }
                return
            }
            return sendNode(n, .pageAssigned(vm: vm, guestPage: page, node: Int32(home.node), frame: home.frame))
        }
        let home = r.untouched[n]?.isEmpty == false ? n
            : r.untouched.filter { !$0.value.isEmpty }.max { ($0.value.count, $1.key) < ($1.value.count, $0.key) }?.key
        guard let home, let frame = vms[vm]!.untouched[home]?.first else {
            return log(.error, "VM \(vm) has no frame left for page 0x\(String(page, radix: 16))")
        }
        vms[vm]!.untouched[home] = (frame + 4096)..<vms[vm]!.untouched[home]!.upperBound
        vms[vm]!.movedPages[page] = PageHome(node: home, frame: frame)
        vms[vm]!.memoryOnNodes[home, default: 0] += 4096
        vms[vm]!.assigning[page] = home == n ? [] : [n]
        if home == n { vms[vm]!.touchedLocal += 1 } else { vms[vm]!.touchedElsewhere += 1 }
        sendNode(home, .pageAssigned(vm: vm, guestPage: page, node: Int32(home), frame: frame))
        if home == n { placeAhead(vm, around: page, on: n) }
    }

    /// Pages of the block around a first touch that go to the toucher's node with it.
    static let firstTouchBlockPages: UInt64 = 16

    /// First touch places a whole aligned block of `firstTouchBlockPages` pages at once:
    /// the untouched pages around `page` take frames on `n` too (while `n` has frames
    /// left), told to `n` in the same batch, so a CPU that walks through fresh memory
    /// (a kernel clearing its BSS, unpacking its initramfs, zeroing pages it allocates)
    /// waits for the coordinator once per block instead of once per page. The pages are
    /// then what any first-touched page is: filled by `n`, told to the other nodes when
    /// `n` answers, and moved later by the page policy if another node is their user.
    private mutating func placeAhead(_ vm: UInt32, around page: UInt64, on n: NodeID) {
        guard let r = vms[vm] else { return }
        let blockBytes = Self.firstTouchBlockPages * 4096
        let start = (page &- Self.ramBase) / blockBytes * blockBytes &+ Self.ramBase
        for q in stride(from: start, to: start &+ blockBytes, by: 4096) where q != page {
            guard q &- Self.ramBase < r.memoryBytes, vms[vm]!.movedPages[q] == nil else { continue }
            guard let frame = vms[vm]!.untouched[n]?.first else { return }
            vms[vm]!.untouched[n] = (frame + 4096)..<vms[vm]!.untouched[n]!.upperBound
            vms[vm]!.movedPages[q] = PageHome(node: n, frame: frame)
            vms[vm]!.memoryOnNodes[n, default: 0] += 4096
            vms[vm]!.assigning[q] = []
            vms[vm]!.placedAhead += 1
            sendNode(n, .pageAssigned(vm: vm, guestPage: q, node: Int32(n), frame: frame))
        }
    }

    /// The home of a first-touched page filled its frame: the VM's other nodes learn
    /// where the page is (all of them, so most never ask).
    private mutating func assigned(_ vm: UInt32, page: UInt64, from n: NodeID) {
        guard let r = vms[vm], r.isActive, let home = r.movedPages[page], home.node == n, r.assigning[page] != nil else {
            return log(.warning, "node \(n) says it filled page 0x\(String(page, radix: 16)) of VM \(vm), which it was not given")
        }
        vms[vm]!.assigning[page] = nil
        for p in r.participants.sorted() where p != n {
            sendNode(p, .pageAssigned(vm: vm, guestPage: page, node: Int32(home.node), frame: home.frame))
        }
    }

    /// Starts moving a page of a running VM to node `target`: a frame there, and the
    /// command to the page's home. Returns why not, or nil when the command went out.
    mutating func migrate(_ vm: UInt32, page: UInt64, to target: NodeID, client: (ConnectionID, UInt64)?) -> String? {
        guard let r = vms[vm], r.state == .running else { return "no running VM \(vm)" }
        guard page % 4096 == 0, page &- Self.ramBase < r.memoryBytes else {
            return "0x\(String(page, radix: 16)) is not a page of VM \(vm)'s RAM"
        }
        guard let from = pageHome(r, page) else { return "page 0x\(String(page, radix: 16)) has no frame yet (not touched, or being placed)" }
        guard r.participants.contains(target), nodes[target]?.alive == true else {
            return "node \(target) does not take part in VM \(vm) (nodes \(r.participants.sorted()))"
        }
        guard from.node != target else { return "page 0x\(String(page, radix: 16)) is on node \(target) already" }
        guard r.replicas[page] == nil else { return "page 0x\(String(page, radix: 16)) is replicated" }
        return command(.migrate, vm, page, from: from, to: [target], client: client)
    }

    /// Starts replicating a page of a running VM onto `targets` (nodes of the VM other
    /// than the page's home, without a replica yet): a frame on each, and the command
    /// to the page's home. Returns why not, or nil when the command went out.
    mutating func replicate(_ vm: UInt32, page: UInt64, to targets: [NodeID], client: (ConnectionID, UInt64)?) -> String? {
        guard let r = vms[vm], r.state == .running else { return "no running VM \(vm)" }
        guard page % 4096 == 0, page &- Self.ramBase < r.memoryBytes else {
            return "0x\(String(page, radix: 16)) is not a page of VM \(vm)'s RAM"
        }
        guard let from = pageHome(r, page) else { return "page 0x\(String(page, radix: 16)) has no frame yet (not touched, or being placed)" }
        guard !targets.isEmpty, Set(targets).count == targets.count else { return "name each replica's node once" }
        for t in targets {
            guard r.participants.contains(t), nodes[t]?.alive == true else {
                return "node \(t) does not take part in VM \(vm) (nodes \(r.participants.sorted()))"
            }
            guard t != from.node else { return "page 0x\(String(page, radix: 16)) is homed on node \(t)" }
            guard r.replicas[page]?[t] == nil else { return "node \(t) holds a replica of page 0x\(String(page, radix: 16)) already" }
        }
        return command(.replicate, vm, page, from: from, to: targets, client: client)
    }

    /// A frame on each target (the VM's from now on: a VM that stops mid-move scrubs
    /// them) and the command to the page's home.
    private mutating func command(_ kind: PageCommand.Kind, _ vm: UInt32, _ page: UInt64, from: PageHome, to targets: [NodeID],
                                  client: (ConnectionID, UInt64)?) -> String? {
        guard !pendingMoves.values.contains(where: { $0.vm == vm && $0.page == page }) else {
            return "page 0x\(String(page, radix: 16)) is being moved"
        }
        var homes: [PageHome] = []
        for t in targets {
            guard let frame = nodes[t]?.frames.allocate(4096) else {
                for h in homes { _ = nodes[h.node]?.frames.release(h.frame, 4096) }
                return "node \(t) has no free frame"
            }
            homes.append(PageHome(node: t, frame: frame))
        }
        for h in homes { vms[vm]!.frameRuns[h.node, default: []].append(FrameRun(base: h.frame, bytes: 4096)) }
        let id = nextMoveID
        nextMoveID += 1
        pendingMoves[id] = PendingMove(kind: kind, vm: vm, page: page, from: from, targets: homes, startedNanos: nowNanos, client: client)
        sendNode(from.node, .pageCommand(PageCommand(id: id, kind: kind, vm: vm, guestPage: page,
                                                      targets: homes.map { PageTarget(node: Int32($0.node), frame: $0.frame) })))
        return nil
    }

    /// A node's remote accesses per page go to the policy; its decisions go out as moves.
    private mutating func pageAccesses(_ vm: UInt32, _ entries: [PageAccessCount], from n: NodeID) {
        guard let r = vms[vm], r.state == .running, r.participants.contains(n) else { return }
        var reports: [PagePolicy.Report] = []
        for e in entries {
            guard let home = pageHome(r, e.guestPage) else { continue }
            let placement = PagePolicy.Placement(home: home.node, replicas: Set(r.replicas[e.guestPage]?.keys.map { $0 } ?? []))
            // Entries for pages homed on the reporting node say whether its own CPUs used
            // them (they never miss: see PagePolicy.Report.homeUse).
            if home.node == n {
                reports.append(PagePolicy.Report(page: .init(vm: vm, address: e.guestPage), placement: placement, misses: [:],
                                                 writeMisses: 0, homeUse: e.writes > 0 ? .write : e.accesses > 0 ? .read : nil))
            } else {
                reports.append(PagePolicy.Report(page: .init(vm: vm, address: e.guestPage), placement: placement,
                                                 misses: [n: UInt64(e.accesses)], writeMisses: UInt64(e.writes)))
            }
        }
        for d in pagePolicy.handle(.misses(reports), now: nowNanos) {
            switch d {
            case .migrate(let page, _, let to):
                if let why = migrate(vm, page: page.address, to: to, client: nil) {
                    log(.debug, "\(page): no migration to node \(to): \(why)")
                    _ = pagePolicy.handle(.moveFailed(page), now: nowNanos)
                }
            case .replicate(let page, let to):
                if let why = replicate(vm, page: page.address, to: to, client: nil) {
                    log(.debug, "\(page): no replicas on nodes \(to): \(why)")
                    _ = pagePolicy.handle(.moveFailed(page), now: nowNanos)
                }
            }
        }
    }

    /// The home reports a migration or replication finished (or refused).
    private mutating func moveDone(_ id: UInt64, ok: Bool, detail: String, from n: NodeID) {
        guard let m = pendingMoves[id], m.from.node == n else {
            return log(.warning, "node \(n) reported move \(id) done, which it was not asked to do")
        }
        pendingMoves[id] = nil
        let page = "0x\(String(m.page, radix: 16))"
        let nanos = nowNanos &- m.startedNanos
        _ = pagePolicy.handle(ok ? .moveDone(.init(vm: m.vm, address: m.page), migrated: m.kind == .migrate) : .moveFailed(.init(vm: m.vm, address: m.page)),
                              now: nowNanos)
        let targets = m.targets.map(\.node)
        // A VM that stopped meanwhile scrubs every frame with the rest of its runs.
        if vms[m.vm]?.isActive == true {
            if ok && m.kind == .migrate, let to = m.targets.first {
                vms[m.vm]!.movedPages[m.page] = to
                // The old frame is zeroed and all its lines are home: free again.
                if removeFrame(m.from.frame, of: m.vm, on: m.from.node), nodes[m.from.node]?.frames.release(m.from.frame, 4096) != true {
                    log(.warning, "frame 0x\(String(m.from.frame, radix: 16)) of node \(m.from.node) was free already")
                }
                vms[m.vm]!.memoryOnNodes[m.from.node, default: 0] -= 4096
                if vms[m.vm]!.memoryOnNodes[m.from.node] == 0 { vms[m.vm]!.memoryOnNodes[m.from.node] = nil }
                vms[m.vm]!.memoryOnNodes[to.node, default: 0] += 4096
                vms[m.vm]!.migrations += 1
                Self.record(nanos, in: &vms[m.vm]!.moveNanos)
                log(.debug, "VM \(m.vm) page \(page) moved from node \(m.from.node) to \(to.node) in \(nanos / 1000) us")
            } else if ok {
                for t in m.targets { vms[m.vm]!.replicas[m.page, default: [:]][t.node] = t.frame }
                vms[m.vm]!.replications += m.targets.count
                Self.record(nanos, in: &vms[m.vm]!.replicateNanos)
                log(.debug, "VM \(m.vm) page \(page) replicated from node \(m.from.node) to \(targets) in \(nanos / 1000) us")
            } else {
                // Refused before any data went: the new frames were never written.
                for t in m.targets where removeFrame(t.frame, of: m.vm, on: t.node) { _ = nodes[t.node]?.frames.release(t.frame, 4096) }
                log(.warning, "VM \(m.vm) page \(page): \(m.kind) to nodes \(targets) failed: \(detail)")
            }
        }
        if let (c, rid) = m.client {
            let body: String
            if !ok { body = "\(m.kind) failed: \(detail)" }
            else if m.kind == .migrate { body = "moved VM \(m.vm) page \(page) from node \(m.from.node) to node \(targets[0]) in \(nanos / 1000) us" }
            else { body = "replicated VM \(m.vm) page \(page) of node \(m.from.node) on nodes \(targets) in \(nanos / 1000) us" }
            send(.vmResponse(id: rid, ok: ok, createdVM: nil, body: body), to: c)
        }
    }

    /// Keeps the latest durations for the percentiles `disco stats` shows.
    private static func record(_ nanos: UInt64, in list: inout [UInt64]) {
        list.append(nanos)
        if list.count > 4096 { list.removeFirst(2048) }
    }

    /// A page's home reports that a write collapsed its replicas: their frames (zeroed
    /// by their nodes before they answered the home) are free again.
    private mutating func replicasDropped(_ vm: UInt32, page: UInt64, holders: [NodeID], from n: NodeID) {
        guard let r = vms[vm], r.isActive, let home = pageHome(r, page), home.node == n, let replicas = r.replicas[page],
              Set(holders) == Set(replicas.keys) else {
            return log(.warning, "node \(n) reported replicas of VM \(vm) page 0x\(String(page, radix: 16)) on \(holders) dropped, which it does not home")
        }
        vms[vm]!.replicas[page] = nil
        vms[vm]!.collapses += 1
        for (node, frame) in replicas.sorted(by: { $0.key < $1.key }) where removeFrame(frame, of: vm, on: node) {
            _ = nodes[node]?.frames.release(frame, 4096)
        }
        _ = pagePolicy.handle(.collapsed(.init(vm: vm, address: page)), now: nowNanos)
        log(.debug, "VM \(vm) page 0x\(String(page, radix: 16)): a write collapsed its replicas on \(holders.sorted())")
    }

    /// Takes one page out of the VM's frame runs on `node` (splitting a run). False if
    /// the VM had no such frame there.
    private mutating func removeFrame(_ frame: UInt64, of vm: UInt32, on node: NodeID) -> Bool {
        guard var runs = vms[vm]?.frameRuns[node],
              let i = runs.firstIndex(where: { frame >= $0.base && frame - $0.base < $0.bytes }) else { return false }
        let run = runs.remove(at: i)
        if frame > run.base { runs.append(FrameRun(base: run.base, bytes: frame - run.base)) }
        if frame + 4096 < run.base + run.bytes { runs.append(FrameRun(base: frame + 4096, bytes: run.base + run.bytes - frame - 4096)) }
        vms[vm]!.frameRuns[node] = runs.isEmpty ? nil : runs.sorted { $0.base < $1.base }
        return true
    }

    struct CreateError: Error, CustomStringConvertible { var description: String }

    /// Places a VM with `PlacementPolicy` (VCPUs over the live nodes, memory chunks over
    /// the VCPUs' nodes) and takes each node's share of frames from its allocator.
    private mutating func create(_ text: String, owner: ConnectionID) throws -> UInt32 {
        let spec = try VMSpec.parse(yaml: text)
        try spec.validate(fileExists: { _ in true })  // the nodes read the files and report
        // The coordinator sees every VM's output, so it writes the console log (on its host).
        if let path = spec.consoleLog, let check = configuration.checkConsoleLog, let why = check(path) {
            throw CreateError(description: "console-log \(path): \(why)")
        }
        let alive = membership.alive.filter { $0.status == .alive && nodes[$0.id]?.alive == true }.map(\.id)
        guard !alive.isEmpty else { throw CreateError(description: "no live nodes to run the VM on") }
        let load = vcpuLoad()
        let policy = PlacementPolicy(strategy: configuration.strategy,
                                     chunkBytes: PlacementPolicy.chunkBytes(for: spec.memoryBytes))
        let placed = try policy.place(
            vcpus: spec.vcpus, memoryBytes: spec.memoryBytes,
            on: alive.map { PlacementPolicy.NodeCapacity(id: $0, cpus: nodes[$0]!.cpus, freeMemoryBytes: nodes[$0]!.frames.freeBytes) },
            load: load, memoryOn: { if case .node(let n) = spec.placement { return n } else { return nil } }())
        // Each node's chunks lie one after another in one run of its frames.
        var allocators = nodes.mapValues(\.frames)
        var runBase: [NodeID: UInt64] = [:]
        var runs: [NodeID: [FrameRun]] = [:]
        for (n, bytes) in placed.memoryBytes {
            guard let base = allocators[n]?.allocate(bytes) else {
                throw CreateError(description: "node \(n) has no run of \(MemorySize.format(bytes)) free (largest \(MemorySize.format(allocators[n]?.largestRun ?? 0)))")
            }
            runBase[n] = base
            runs[n] = [FrameRun(base: base, bytes: (bytes + 4095) & ~4095)]
        }
        var used: [NodeID: UInt64] = [:]
        var chunks: [MemoryChunk] = []
        for (i, n) in placed.chunks.enumerated() {
            chunks.append(MemoryChunk(node: Int32(n), frameBase: runBase[n]! + used[n, default: 0]))
            used[n, default: 0] += placed.bytes(ofChunk: i)
        }
        // First touch on more than one node: the runs are the VM's reservation, and its
        // pages take frames from them as they are touched. On one node it is that node.
        let firstTouch = spec.placement == .firstTouch && runs.count > 1
        var untouched: [NodeID: Range<UInt64>] = [:]
        if firstTouch {
            chunks = []
            for (n, r) in runs { untouched[n] = r[0].base..<(r[0].base + r[0].bytes) }
        }
        for (n, a) in allocators { nodes[n]?.frames = a }
        let id = nextVM
        nextVM += 1
        let participants = placed.nodes.sorted()
        let placement = VMPlacement(
            vm: id, spec: text, vcpuNodes: placed.vcpuNodes.map(Int32.init), deviceNode: Int32(placed.vcpuNodes[0]),
            chunkPages: UInt32(placed.chunkBytes / 4096), chunks: chunks,
            nodes: participants.map { n in
                NodeAddress(nodeID: Int32(n), listenAddress: nodes[n]!.listenAddress,
                            memoryBase: nodes[n]!.frames.base, memoryBytes: nodes[n]!.frames.size)
            },
            epochNanos: nowNanos, lineSize: UInt32(configuration.lineSize), firstTouch: firstTouch)
        var parameters = pagePolicy.defaults
        parameters.enabled = spec.numaPolicy
        let given = spec.numaParameters
        if let v = given.trigger { parameters.trigger = v }
        if let v = given.sharing { parameters.sharing = v }
        if let v = given.writeLimit { parameters.writeLimit = v }
        if let v = given.migrateLimit { parameters.migrateLimit = v }
        if let v = given.resetMillis { parameters.resetInterval = .milliseconds(Int64(clamping: v)) }
        if let v = given.settleMillis { parameters.settle = .milliseconds(Int64(clamping: v)) }
        pagePolicy.set(parameters, for: id)
        vms[id] = VMRecord(placement: placement, name: spec.name, memoryOnNodes: firstTouch ? [:] : placed.memoryBytes, owner: owner,
                           state: .starting, frameRuns: runs, memoryBytes: spec.memoryBytes)
        vms[id]!.firstTouch = firstTouch
        vms[id]!.untouched = untouched
        vms[id]!.consoleLog = spec.consoleLog
        for n in participants { sendNode(n, .vmStart(placement)) }
        var subnets = Set<String>()
        for nic in spec.nics { if case .switch(let subnet) = nic.attachment { subnets.insert(subnet) } }
        vms[id]!.subnets = subnets
        announce(subnets, also: [])
        let homes = placed.memoryBytes.sorted { $0.key < $1.key }.map { "\($0.key): \(MemorySize.format($0.value))" }
        log(.info, "VM \(id) '\(spec.name)': \(spec.vcpus) VCPUs on nodes \(placed.vcpuNodes), memory \(firstTouch ? "reserved" : "homed") on [\(homes.joined(separator: ", "))]\(firstTouch ? ", placed by first touch" : "")")
        return id
    }

    // MARK: - Reply texts (YAML, one entry a line)

    var listText: String {
        let load = vcpuLoad()
        let rows = vms.keys.sorted().map { id -> String in
            let r = vms[id]!
            let memory = r.memoryOnNodes.sorted { $0.key < $1.key }.map { "\($0.key): \(MemorySize.format($0.value))" }
            // Nodes where this VM's VCPUs share CPUs (more VCPUs placed there, of all VMs, than CPUs).
            var shared: [String] = []
            if r.isActive {
                for n in Set(r.placement.vcpuNodes.map(Int.init)).sorted() {
                    let placed = load[n, default: 0], cpus = nodes[n]?.cpus ?? 0
                    if placed > cpus { shared.append("\(n): \"\(placed) VCPUs time-share \(cpus) CPU\(cpus == 1 ? "" : "s")\"") }
                }
            }
            return "- {vm: \(id), name: \(r.name), state: \(r.state), vcpus: \(r.placement.vcpuNodes.count), nodes: \(r.participants.sorted()), vcpu_nodes: \(r.placement.vcpuNodes), memory_nodes: {\(memory.joined(separator: ", "))}\(shared.isEmpty ? "" : ", cpus_shared: {\(shared.joined(separator: ", "))}")\(r.vcpuMigrations == 0 ? "" : ", vcpu_migrations: \(r.vcpuMigrations)")\(r.detail.isEmpty ? "" : ", detail: \"\(r.detail)\"")}"
        }
        return rows.isEmpty ? "[]" : rows.joined(separator: "\n")
    }

    /// A per-VM counter of a node's report, `vm.<id>.<name>`: the VM and the name.
    static func vmCounter(_ name: String) -> (vm: UInt32, name: String)? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "vm", let vm = UInt32(parts[1]) else { return nil }
        return (vm, String(parts[2]))
    }

    /// Free machine memory on node `n` (bytes).
    public func freeBytes(of n: NodeID) -> UInt64 { nodes[n]?.frames.freeBytes ?? 0 }

    var nodesText: String {
        let rows = membership.members.keys.sorted().map { id -> String in
            let m = membership.members[id]!
            return "- {node: \(id), name: \(m.name), status: \(m.status), cpus: \(m.resources.cpus), memory: \(MemorySize.format(m.resources.memoryBytes)), free: \(MemorySize.format(nodes[id]?.frames.freeBytes ?? 0)), address: \"\(nodes[id]?.listenAddress ?? "")\"}"
        }
        return rows.isEmpty ? "[]" : rows.joined(separator: "\n")
    }

    var statsText: String {
        let running = vms.values.filter { $0.state == .running }.count
        var lines = ["nodes_alive: \(membership.alive.count)", "vms_running: \(running)", "vms_total: \(vms.count)", "nodes:"]
        for (n, report) in nodeStats.sorted(by: { $0.key < $1.key }) where nodes[n]?.alive == true {
            let fields = report.counters.filter { Self.vmCounter($0.name) == nil }.map { c in
                c.name == "hottest_page" ? "\(c.name): 0x\(String(UInt64(bitPattern: c.value), radix: 16))" : "\(c.name): \(c.value)"
            }
            lines.append("  - {node: \(n), uptime_s: \(report.uptimeNanos / 1_000_000_000), \(fields.joined(separator: ", "))}")
        }
        lines.append("vms:")
        // Active VMs, and ended ones the nodes still report counters of.
        let reported = Set(nodeStats.values.flatMap { $0.counters.compactMap { Self.vmCounter($0.name)?.vm } })
        for id in vms.keys.sorted() where vms[id]!.isActive || reported.contains(id) {
            let r = vms[id]!
            func percentile(_ list: [UInt64], _ p: Double) -> UInt64 {
                let sorted = list.sorted()
                return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] / 1000
            }
            let replicated = r.replicas.values.reduce(0) { $0 + $1.count }
            // Sampled data misses per node, from the nodes' latest reports.
            var perNode: [NodeID: (local: Int64, remote: Int64)] = [:]
            // Per VCPU: the node that reports it now, and what it cost there.
            var perVCPU: [Int: (node: NodeID, runNanos: Int64, instructions: Int64)] = [:]
            for (n, report) in nodeStats {
                for c in report.counters {
                    guard let (vm, name) = Self.vmCounter(c.name), vm == id else { continue }
                    if name == "sampled_local_misses" { perNode[n, default: (0, 0)].local = c.value }
                    if name == "sampled_remote_misses" { perNode[n, default: (0, 0)].remote = c.value }
                    let parts = name.split(separator: ".")
                    if parts.count == 3, parts[0] == "vcpu", let v = Int(parts[1]),
                       v < r.placement.vcpuNodes.count, Int(r.placement.vcpuNodes[v]) == n {
                        if parts[2] == "run_ns" { perVCPU[v, default: (n, 0, 0)].runNanos = c.value }
                        if parts[2] == "instructions" { perVCPU[v, default: (n, 0, 0)].instructions = c.value }
                    }
                }
            }
            let vcpuText = perVCPU.sorted { $0.key < $1.key }.map {
                "\($0.key): {node: \($0.value.node), run_ms: \($0.value.runNanos / 1_000_000), retired: \($0.value.instructions)}"
            }
            let local = perNode.values.reduce(0) { $0 + $1.local }, remote = perNode.values.reduce(0) { $0 + $1.remote }
            let share = local + remote == 0 ? "n/a" : String(format: "%.3f", Double(local) / Double(local + remote))
            let nodesText = perNode.sorted { $0.key < $1.key }.map { "\($0.key): {local: \($0.value.local), remote: \($0.value.remote)}" }
            lines.append("  - {vm: \(id), state: \(r.state), migrations: \(r.migrations), move_us_p50: \(percentile(r.moveNanos, 0.5)), move_us_p99: \(percentile(r.moveNanos, 0.99)), replications: \(r.replications), replicate_us_p50: \(percentile(r.replicateNanos, 0.5)), replicate_us_p99: \(percentile(r.replicateNanos, 0.99)), collapses: \(r.collapses), replicas: \(replicated), first_touch_local: \(r.touchedLocal), first_touch_elsewhere: \(r.touchedElsewhere), first_touch_ahead: \(r.placedAhead), sampled_misses: {local: \(local), remote: \(remote), local_share: \(share), nodes: {\(nodesText.joined(separator: ", "))}}, vcpu_migrations: \(r.vcpuMigrations), vcpus: {\(vcpuText.joined(separator: ", "))}}")
        }
        return lines.joined(separator: "\n")
    }
}
