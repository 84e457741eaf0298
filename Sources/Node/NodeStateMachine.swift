import Cluster
import Logging
import Protocol
import Transport

/// A node's membership and VM bookkeeping as a pure state machine: joining the
/// coordinator, heartbeats at the interval the coordinator chose, the cluster clock's
/// offset, connections to peer nodes (the lower id dials; messages for a peer not yet
/// connected wait), and each VM's lifecycle on this node. Events in, directives out;
/// `NodeRuntime` owns the machine (memory, harts, devices) and carries the directives
/// out. Hot-path queries (`connection(toNode:)`, `node(of:)`) are plain lookups.
///
/// VM lifecycle here: `vmStart` → loading (the runtime builds and boots its part) →
/// loaded (`vmStatus(starting)` sent) → released (the coordinator's
/// `vmStatus(running)`: the VCPUs may run) → gone (the guest exited, the
/// coordinator stopped it, or it failed to load). A gone VM's late messages are
/// recognised (`isFinished`) and dropped quietly.
public struct NodeStateMachine: Sendable {
    public enum Event: Sendable {
        case coordinatorConnected
        case coordinatorLost(reason: String)
        /// A handshake with a peer node finished (either side dialled).
        case peerConnected(ConnectionID, node: NodeID)
        case peerLost(ConnectionID, reason: String)
        /// The runtime dialled `node` (after a `.dial` directive) on `connection`.
        case dialed(NodeID, ConnectionID)
        /// These nodes share something with this one (a subnet of the virtual switch):
        /// connect to them as to the nodes of a VM.
        case meet([NodeAddress])
        case fromCoordinator(Message)
        /// The runtime built and booted its part of the VM (or could not).
        case vmLoaded(UInt32)
        case vmLoadFailed(UInt32, reason: String)
        /// The guest ended (device node: the finisher).
        case vmExited(UInt32, VMExit)
        /// The frames `scrubFrames` named are home and zeroed.
        case framesScrubbed(UInt32, base: UInt64, bytes: UInt64)
        /// Time passed (heartbeats).
        case tick
        case stopping(reason: String)
    }

    public enum Directive: Sendable, Equatable {
        /// Admitted: build the coherence agent for this slice and say the id in handshakes.
        case joined(JoinAccepted)
        case sendCoordinator(Message)
        case send(Message, on: ConnectionID)
        case dial(NodeID, Endpoint)
        /// Build this node's part of the VM and boot it; answer with `vmLoaded`/`vmLoadFailed`.
        case startVM(VMPlacement, VMSpec)
        /// Every node has loaded: the VM's local VCPUs may run.
        case releaseVM(UInt32)
        /// Forget the VM: its VCPUs never run again.
        case dropVM(UInt32, reason: String)
        case consoleInput(UInt32, [UInt8])
        /// Take back and zero these home frames of a dropped VM; answer `framesScrubbed`.
        case scrubFrames(UInt32, base: UInt64, bytes: UInt64)
        case setClockOffset(Int64)
        /// Send the node's counters to the coordinator (`stats`).
        case reportStats
        /// The node cannot go on (refused, coordinator lost, bad slice).
        case stop(reason: String)
        case log(Logger.Level, String)
    }

    public enum Phase: Sendable, Equatable {
        case joining
        case joined(NodeID)
        case stopped(String)
    }

    public enum VMPhase: Sendable, Equatable { case loading, loaded, released }

    public private(set) var phase: Phase = .joining
    public var nodeID: NodeID? { if case .joined(let n) = phase { return n } else { return nil } }
    /// Heartbeat interval agreed at join (the coordinator's `JoinAccepted`).
    public private(set) var heartbeatNanos: UInt64
    public private(set) var nextHeartbeatNanos: UInt64 = 0
    private var heartbeatSequence: UInt64 = 0
    /// Every this many heartbeats the node also reports its counters.
    public let statsEveryHeartbeats: UInt64 = 4
    private var offsetEstimator = ClockOffsetEstimator()

    private var peers: [NodeID: ConnectionID] = [:]
    private var peerOf: [ConnectionID: NodeID] = [:]
    private var dialing: Set<NodeID> = []
    private var waitingForPeer: [NodeID: [Message]] = [:]
    private var peerAddresses: [NodeID: String] = [:]
    public private(set) var vms: [UInt32: VMPhase] = [:]
    private var finished: Set<UInt32> = []
    private var out: [Directive] = []

    /// `heartbeatMillis`: the interval used until the coordinator names one.
    public init(heartbeatMillis: UInt64 = 500) {
        heartbeatNanos = heartbeatMillis * 1_000_000
    }

    // MARK: - Queries (hot path)

    @inline(__always) public func connection(toNode n: NodeID) -> ConnectionID? { peers[n] }
    @inline(__always) public func node(of c: ConnectionID) -> NodeID? { peerOf[c] }
    public func isFinished(_ vm: UInt32) -> Bool { finished.contains(vm) }

    /// Messages held for peer `n` until it connects.
    public func heldCount(forNode n: NodeID) -> Int { waitingForPeer[n]?.count ?? 0 }

    /// Whether a connection to peer `n` is up or being made.
    public func isReachable(_ n: NodeID) -> Bool { peers[n] != nil || dialing.contains(n) || peerAddresses[n] != nil }

    /// A message for peer `n` that has no connection yet: kept until it connects.
    public mutating func hold(_ m: Message, forNode n: NodeID) {
        waitingForPeer[n, default: []].append(m)
    }

    // MARK: - Events

    /// Handles one event at local time `now` (nanoseconds of this host's clock).
    public mutating func handle(_ event: Event, now: UInt64) -> [Directive] {
        out.removeAll(keepingCapacity: true)
        if case .stopped = phase { return [] }
        switch event {
        case .coordinatorConnected:
            log(.info, "connected to the coordinator")
        case .coordinatorLost(let reason):
            log(.error, "lost the coordinator: \(reason)")
            stop("lost the coordinator: \(reason)")
        case .peerConnected(let c, let n):
            peers[n] = c
            peerOf[c] = n
            dialing.remove(n)
            log(.info, "connected to peer node \(n)")
            for m in waitingForPeer.removeValue(forKey: n) ?? [] { out.append(.send(m, on: c)) }
        case .peerLost(let c, let reason):
            if let n = peerOf.removeValue(forKey: c) {
                if peers[n] == c { peers[n] = nil }
                log(.warning, "lost peer node \(n): \(reason)")
            }
        case .dialed(let n, let c):
            peerOf[c] = n
        case .meet(let nodes):
            guard let me = nodeID else { break }
            for n in nodes { peerAddresses[Int(n.nodeID)] = n.listenAddress }
            dial(Set(nodes.map { Int($0.nodeID) }), me: me)
        case .fromCoordinator(let m):
            fromCoordinator(m, now: now)
        case .vmLoaded(let vm):
            guard vms[vm] == .loading else { break }
            vms[vm] = .loaded
            // The coordinator releases the VCPUs once every node has loaded its frames.
            out.append(.sendCoordinator(.vmStatus(vm: vm, state: .starting, exit: nil, detail: "loaded")))
        case .vmLoadFailed(let vm, let reason):
            guard vms[vm] != nil else { break }
            log(.error, "VM \(vm) cannot start: \(reason)")
            forget(vm, reason: reason)
            out.append(.sendCoordinator(.vmStatus(vm: vm, state: .failed, exit: nil, detail: "node \(nodeID ?? -1): \(reason)")))
        case .vmExited(let vm, let exit):
            guard vms[vm] != nil else { break }
            log(.info, "VM \(vm) finished: \(exit)")
            forget(vm, reason: "finished: \(exit)")
            out.append(.sendCoordinator(.vmStatus(vm: vm, state: .stopped, exit: exit, detail: Self.describe(exit))))
        case .framesScrubbed(let vm, let base, let bytes):
            out.append(.sendCoordinator(.framesScrubbed(vm: vm, base: base, bytes: bytes)))
        case .tick:
            guard nodeID != nil, now >= nextHeartbeatNanos else { break }
            heartbeatSequence += 1
            out.append(.sendCoordinator(.heartbeat(sequence: heartbeatSequence, sentAtNanos: now)))
            if heartbeatSequence % statsEveryHeartbeats == 0 { out.append(.reportStats) }
            nextHeartbeatNanos = now + heartbeatNanos
        case .stopping(let reason):
            out.append(.sendCoordinator(.leave(reason: reason)))
            phase = .stopped(reason)
        }
        return out
    }

    /// How a guest exit reads in `disco vm list`.
    public static func describe(_ exit: VMExit) -> String {
        switch exit {
        case .pass: return "pass"
        case .fail(let code): return "fail \(code)"
        case .reset: return "reset"
        case .stopped: return "stopped"
        }
    }

    private mutating func log(_ level: Logger.Level, _ text: String) { out.append(.log(level, text)) }

    private mutating func stop(_ reason: String) {
        phase = .stopped(reason)
        out.append(.stop(reason: reason))
    }

    private mutating func forget(_ vm: UInt32, reason: String) {
        vms[vm] = nil
        finished.insert(vm)
        out.append(.dropVM(vm, reason: reason))
    }

    private mutating func fromCoordinator(_ m: Message, now: UInt64) {
        switch m {
        case .joinAccepted(let j):
            guard phase == .joining else { return log(.warning, "a second joinAccepted ignored") }
            guard j.memoryBytes > 0, j.memoryBase % 4096 == 0 else { return stop("the coordinator gave a bad memory slice") }
            phase = .joined(Int(j.nodeID))
            if j.heartbeatMillis > 0 { heartbeatNanos = UInt64(j.heartbeatMillis) * 1_000_000 }
            nextHeartbeatNanos = now
            out.append(.joined(j))
            log(.info, "joined as node \(j.nodeID), memory 0x\(String(j.memoryBase, radix: 16)) + \(j.memoryBytes >> 20) MiB, heartbeat every \(heartbeatNanos / 1_000_000) ms")
        case .joinRejected(let reason):
            stop("the coordinator refused to admit this node: \(reason)")
        case .timeSync(let ticks, let sentAt):
            // The coordinator's time (100 ns ticks) in answer to our heartbeat.
            if offsetEstimator.add(sentLocal: sentAt, remote: ticks &* 100, receivedLocal: now),
               let offset = offsetEstimator.offsetNanos {
                out.append(.setClockOffset(offset))
            }
        case .vmStart(let placement):
            startVM(placement)
        case .vmStop(let vm, let reason):
            if vms[vm] != nil {
                log(.info, "VM \(vm) stopped: \(reason)")
                forget(vm, reason: reason)
            }
            finished.insert(vm)
            // After the drop above: nothing of the VM is left here to touch its frames.
            out.append(.sendCoordinator(.vmDropped(vm: vm)))
        case .scrubFrames(let vm, let base, let bytes):
            guard finished.contains(vm), vms[vm] == nil else { return log(.warning, "scrubFrames for VM \(vm), which runs here") }
            out.append(.scrubFrames(vm, base: base, bytes: bytes))
        case .console(let vm, let bytes):
            if vms[vm] != nil { out.append(.consoleInput(vm, bytes)) }
        case .vmStatus(let vm, .running, _, _):
            if vms[vm] == .loaded {
                vms[vm] = .released
                out.append(.releaseVM(vm))
            }
        case .error(let code, let text):
            log(.error, "coordinator reports \(code): \(text)")
        default:
            log(.warning, "unexpected \(m.type) from the coordinator")
        }
    }

    private mutating func startVM(_ placement: VMPlacement) {
        guard let me = nodeID else { return log(.warning, "vmStart before joining ignored") }
        let vm = placement.vm
        guard vms[vm] == nil, !finished.contains(vm) else { return log(.warning, "vmStart for known VM \(vm) ignored") }
        let spec: VMSpec
        do { spec = try VMSpec.parse(yaml: placement.spec) } catch {
            out.append(.sendCoordinator(.vmStatus(vm: vm, state: .failed, exit: nil, detail: "node \(me): \(error)")))
            finished.insert(vm)
            return
        }
        vms[vm] = .loading
        for n in placement.nodes { peerAddresses[Int(n.nodeID)] = n.listenAddress }
        out.append(.startVM(placement, spec))
        dial(Set(placement.nodes.map { Int($0.nodeID) }), me: me)
    }

    /// Connects to those of `nodes` this node should dial and has no connection to.
    private mutating func dial(_ nodes: Set<NodeID>, me: NodeID) {
        // One connection per pair of nodes: the lower id dials.
        for n in nodes.sorted() where n > me && peers[n] == nil && !dialing.contains(n) {
            guard let address = try? Endpoint(parsing: peerAddresses[n] ?? "") else {
                log(.error, "node \(n) has no usable address '\(peerAddresses[n] ?? "")'")
                continue
            }
            dialing.insert(n)
            out.append(.dial(n, address))
        }
    }
}
