import Cluster

/// Cluster membership and failure detection at the coordinator, as a pure state
/// machine (the style of swift-cluster-membership's SWIMInstance): events in,
/// directives out, time passed in explicitly so tests control it.
///
/// A node joins with the resources it offers; the coordinator gives it an id and a
/// slice of the machine address space for its home memory. Nodes heartbeat; a node
/// silent for `suspectAfter` is suspect and for `deadAfter` is dead. A dead node's
/// id and slice are never reused while the cluster runs, so a late message from it
/// can never be mistaken for a new member's.
public struct MembershipStateMachine: Sendable {
    public struct Resources: Sendable, Equatable {
        public var cpus: Int
        public var memoryBytes: UInt64
        public init(cpus: Int, memoryBytes: UInt64) {
            self.cpus = cpus
            self.memoryBytes = memoryBytes
        }
    }

    public enum Status: Sendable, Equatable {
        case alive
        case suspect
        case dead
    }

    public struct Member: Sendable, Equatable {
        public var id: NodeID
        public var name: String
        public var resources: Resources
        /// The node's home memory: machine addresses [base, base + resources.memoryBytes).
        public var memoryBase: UInt64
        public var status: Status
        public var lastHeard: Duration
    }

    public enum Event: Sendable, Equatable {
        case join(name: String, resources: Resources, now: Duration)
        case heartbeat(NodeID, now: Duration)
        /// The node said goodbye (clean shutdown).
        case leave(NodeID, now: Duration)
        /// The connection to the node closed without a goodbye.
        case connectionLost(NodeID, now: Duration)
        case tick(now: Duration)
    }

    public enum Directive: Sendable, Equatable {
        case accepted(Member)
        case rejected(name: String, reason: String)
        case suspect(NodeID)
        case recovered(NodeID)
        /// The node is gone: fail what depended on it.
        case dead(NodeID, reason: String)
    }

    public let suspectAfter: Duration
    public let deadAfter: Duration
    public let maxNodes: Int
    /// Machine memory slices start here and are aligned to `sliceAlignment`.
    public let machineBase: UInt64
    public let sliceAlignment: UInt64

    public private(set) var members: [NodeID: Member] = [:]
    private var nextID: NodeID = 0
    private var nextBase: UInt64

    /// A detector for nodes that heartbeat every `heartbeatInterval`: suspect after
    /// `suspectAfterIntervals` silent intervals, dead after `deadAfterIntervals`. The
    /// coordinator tells each node the same interval in `JoinAccepted`, so the two
    /// sides cannot disagree about what "late" means.
    public init(heartbeatInterval: Duration, suspectAfterIntervals: Int = 3, deadAfterIntervals: Int = 6,
                maxNodes: Int = 64) {
        precondition(suspectAfterIntervals >= 2 && deadAfterIntervals >= suspectAfterIntervals,
                     "a node must be allowed to miss at least one heartbeat")
        self.init(suspectAfter: heartbeatInterval * suspectAfterIntervals, deadAfter: heartbeatInterval * deadAfterIntervals,
                  maxNodes: maxNodes)
    }

    public init(suspectAfter: Duration = .milliseconds(1500), deadAfter: Duration = .seconds(3),
                maxNodes: Int = 64, machineBase: UInt64 = 0x1_0000_0000, sliceAlignment: UInt64 = 1 << 30) {
        precondition(suspectAfter <= deadAfter)
        self.suspectAfter = suspectAfter
        self.deadAfter = deadAfter
        self.maxNodes = maxNodes
        self.machineBase = machineBase
        self.sliceAlignment = sliceAlignment
        self.nextBase = machineBase
    }

    public var alive: [Member] {
        members.values.filter { $0.status != .dead }.sorted { $0.id < $1.id }
    }

    /// The member whose home memory holds `machineAddress`.
    public func home(of machineAddress: UInt64) -> Member? {
        members.values.first { machineAddress >= $0.memoryBase && machineAddress - $0.memoryBase < $0.resources.memoryBytes }
    }

    public mutating func handle(_ event: Event) -> [Directive] {
        switch event {
        case .join(let name, let resources, let now):
            if let reason = joinProblem(name, resources) { return [.rejected(name: name, reason: reason)] }
            let member = Member(id: nextID, name: name, resources: resources, memoryBase: nextBase,
                                status: .alive, lastHeard: now)
            members[member.id] = member
            nextID += 1
            let slice = (resources.memoryBytes + sliceAlignment - 1) / sliceAlignment * sliceAlignment
            nextBase += slice
            return [.accepted(member)]
        case .heartbeat(let id, let now):
            guard var m = members[id], m.status != .dead else { return [] }
            m.lastHeard = now
            let wasSuspect = m.status == .suspect
            m.status = .alive
            members[id] = m
            return wasSuspect ? [.recovered(id)] : []
        case .leave(let id, _):
            return kill(id, reason: "left the cluster")
        case .connectionLost(let id, _):
            return kill(id, reason: "connection lost")
        case .tick(let now):
            var out: [Directive] = []
            for id in members.keys.sorted() {
                guard var m = members[id], m.status != .dead else { continue }
                let silent = now - m.lastHeard
                if silent >= deadAfter {
                    out += kill(id, reason: "no heartbeat for \(silent)")
                } else if silent >= suspectAfter, m.status == .alive {
                    m.status = .suspect
                    members[id] = m
                    out.append(.suspect(id))
                }
            }
            return out
        }
    }

    private func joinProblem(_ name: String, _ resources: Resources) -> String? {
        if name.isEmpty { return "a node needs a name" }
        if members.values.contains(where: { $0.name == name && $0.status != .dead }) {
            return "a node named '\(name)' is already a member"
        }
        if nextID >= maxNodes { return "the cluster is full (\(maxNodes) nodes)" }
        if resources.cpus < 1 || resources.cpus > 1024 { return "bad CPU count \(resources.cpus)" }
        if resources.memoryBytes < 1 << 20 || resources.memoryBytes % 4096 != 0 {
            return "memory must be at least 1 MiB and a multiple of 4 KiB"
        }
        return nil
    }

    private mutating func kill(_ id: NodeID, reason: String) -> [Directive] {
        guard var m = members[id], m.status != .dead else { return [] }
        m.status = .dead
        members[id] = m
        return [.dead(id, reason: reason)]
    }
}
