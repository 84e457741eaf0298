import Cluster
import Platform

/// A node's part of the cluster-wide virtual switch: one `LearningSwitch` per subnet,
/// whose ports are the NICs of this node's VMs on that subnet and one trunk per other
/// node that has NICs on it (as the coordinator's `subnetMembers` says). Pure logic:
/// the runtime hands it frames and carries out what it returns.
///
/// Why node to node, and learned: a frame to a VM on another node goes straight to
/// that node (one transport hop, not through the coordinator), and each node learns
/// which node a MAC sits behind from the frames that node sends it, as any bridge
/// does; the coordinator only says which nodes take part in a subnet, so that floods
/// reach those nodes and no others. The nodes of a subnet form a full mesh, so a frame
/// from a trunk goes to local NICs only (split horizon): no loops, no spanning tree.
public struct NodeSwitch: Sendable {
    public enum Port: Hashable, Sendable, CustomStringConvertible {
        case nic(vm: UInt32, index: Int)
        case node(NodeID)

        public var description: String {
            switch self {
            case .nic(let vm, let index): return "VM \(vm) NIC \(index)"
            case .node(let n): return "node \(n)"
            }
        }
    }

    /// What the runtime does with a frame.
    public enum Delivery: Equatable, Sendable {
        /// Into the receive queue of a local NIC (a copy between the VMs' memories).
        case nic(vm: UInt32, index: Int, frame: [UInt8])
        /// Over the transport to another node, as an `ethernetFrame` message.
        case node(NodeID, subnet: String, frame: [UInt8])
    }

    public struct Counters: Equatable, Sendable {
        /// Frames a local NIC sent into the switch, and frames another node sent here.
        public var fromNICs: UInt64 = 0
        public var fromNodes: UInt64 = 0
        /// Frames handed to local NICs and to other nodes.
        public var toNICs: UInt64 = 0
        public var toNodes: UInt64 = 0
        /// Frames dropped as malformed (too short, too long, a group source address).
        public var malformed: UInt64 = 0
        /// Frames that came for a subnet with no NIC on this node.
        public var noPort: UInt64 = 0
    }
    public private(set) var counters = Counters()

    private var switches: [String: LearningSwitch<Port>] = [:]
    /// Other nodes with NICs on each subnet.
    public private(set) var members: [String: [NodeID]] = [:]
    public let agingNanos: UInt64

    public init(agingNanos: UInt64 = 300_000_000_000) {
        self.agingNanos = agingNanos
    }

    /// The coordinator's word on which nodes have NICs on `subnet` (`me` left out).
    public mutating func setMembers(_ subnet: String, _ nodes: [NodeID], me: NodeID) {
        let others = nodes.filter { $0 != me }.sorted()
        if let old = members[subnet] {
            for n in old where !others.contains(n) { switches[subnet]?.forget(port: .node(n)) }
        }
        members[subnet] = others
    }

    /// The local NIC `index` of `vm` on `subnet` sent `frame`; `locals` are every local
    /// NIC port on that subnet now. Returns where it goes, or the reason it is dropped.
    public mutating func fromNIC(vm: UInt32, index: Int, subnet: String, frame: [UInt8], locals: [Port],
                                 now: UInt64) -> (deliveries: [Delivery], dropped: String?) {
        counters.fromNICs &+= 1
        let trunks = (members[subnet] ?? []).map { Port.node($0) }
        return decide(frame, from: .nic(vm: vm, index: index), subnet: subnet, ports: locals + trunks, now: now)
    }

    /// Node `n` sent `frame` on `subnet`; `locals` are every local NIC port on it now.
    public mutating func fromNode(_ n: NodeID, subnet: String, frame: [UInt8], locals: [Port],
                                  now: UInt64) -> (deliveries: [Delivery], dropped: String?) {
        counters.fromNodes &+= 1
        if let problem = EthernetFrame.problem(frame) {
            counters.malformed &+= 1
            return ([], "dropped a frame from \(Port.node(n)) on subnet '\(subnet)': \(problem)")
        }
        guard !locals.isEmpty else {
            counters.noPort &+= 1
            return ([], nil)
        }
        return decide(frame, from: .node(n), subnet: subnet, ports: locals, now: now)
    }

    /// A NIC went away: forget what was learned on it.
    public mutating func remove(_ port: Port) {
        for key in Array(switches.keys) { switches[key]!.forget(port: port) }
    }

    /// Ages every subnet's table.
    public mutating func expire(now: UInt64) {
        for key in Array(switches.keys) { switches[key]!.expire(now: now) }
    }

    /// The learned table of `subnet` (MAC → port), for tests and `disco stats`.
    public func table(_ subnet: String) -> [MACAddress: Port] {
        (switches[subnet]?.table ?? [:]).mapValues(\.port)
    }

    private mutating func decide(_ frame: [UInt8], from ingress: Port, subnet: String, ports: [Port],
                                 now: UInt64) -> (deliveries: [Delivery], dropped: String?) {
        if switches[subnet] == nil {
            switches[subnet] = LearningSwitch(agingNanos: agingNanos, isTrunk: { if case .node = $0 { return true } else { return false } })
        }
        switch switches[subnet]!.forward(frame, from: ingress, ports: ports, now: now) {
        case .drop(let reason?):
            counters.malformed &+= 1
            return ([], "dropped a frame from \(ingress) on subnet '\(subnet)': \(reason)")
        case .drop(nil):
            return ([], nil)
        case .forward(let out):
            var deliveries: [Delivery] = []
            for port in out {
                switch port {
                case .nic(let vm, let index):
                    counters.toNICs &+= 1
                    deliveries.append(.nic(vm: vm, index: index, frame: frame))
                case .node(let n):
                    counters.toNodes &+= 1
                    deliveries.append(.node(n, subnet: subnet, frame: frame))
                }
            }
            return (deliveries, nil)
        }
    }
}
