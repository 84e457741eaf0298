import Cluster

/// The coordinator's VCPU load balancing, as a pure value: the VCPUs' placement in,
/// at most one move out per evaluation. Pure logic, unit-tested without sockets.
///
/// A node is **overloaded** when more busy VCPUs are placed on it than it has CPUs (its
/// VCPUs then share them by time slices). A VCPU is busy unless the coordinator saw it
/// idle (it ran less than half its fair share of a CPU between the node's last two
/// reports: WFI, a parked spin); a VCPU not yet seen counts as busy. When a node has
/// been overloaded for `settle` and one of the nodes of a VM with a busy VCPU there
/// has a CPU free even after taking one more busy VCPU, that VCPU moves there (the
/// highest-numbered VCPU of the VM with the highest id first: VCPU 0, next to the VM's
/// devices, moves last; an idle VCPU frees no CPU and never moves). Never thrash:
///
/// - a move never makes its target overloaded, so it never creates a reason to move
///   back (the source had more busy VCPUs than CPUs; the target has at most as many
///   as CPUs) — unless idle VCPUs of the target wake up, which the cooldown and the
///   settle time below space out;
/// - one move at a time in the cluster, at most one per `interval`, none while
///   another VCPU move is under way;
/// - a VCPU that moved stays put for `cooldown`;
/// - a node's overload must last `settle` again after each move from it.
///
/// A VCPU moves only among its VM's nodes (those that hold its VCPUs, memory or
/// devices), as `disco vm migrate-vcpu` does.
public struct VCPUBalancer: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var enabled: Bool
        /// Nanoseconds between two moves, anywhere in the cluster.
        public var interval: UInt64
        /// How long a node must stay overloaded before a VCPU leaves it.
        public var settle: UInt64
        /// How long a VCPU that moved stays where it went.
        public var cooldown: UInt64
        public init(enabled: Bool = true, interval: UInt64 = 1_000_000_000, settle: UInt64 = 2_000_000_000,
                    cooldown: UInt64 = 30_000_000_000) {
            self.enabled = enabled
            self.interval = interval
            self.settle = settle
            self.cooldown = cooldown
        }
    }

    public struct VCPURef: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var vm: UInt32
        public var vcpu: Int
        public init(vm: UInt32, vcpu: Int) {
            self.vm = vm
            self.vcpu = vcpu
        }
        public static func < (a: VCPURef, b: VCPURef) -> Bool { (a.vm, a.vcpu) < (b.vm, b.vcpu) }
        public var description: String { "VM \(vm) VCPU \(vcpu)" }
    }

    /// A running VCPU: where it is, and where it may go (its VM's nodes).
    public struct Placed: Sendable, Equatable {
        public var vcpu: VCPURef
        public var node: NodeID
        public var allowed: Set<NodeID>
        /// False once the coordinator saw it idle (see the type's comment).
        public var busy: Bool
        public init(vcpu: VCPURef, node: NodeID, allowed: Set<NodeID>, busy: Bool = true) {
            self.vcpu = vcpu
            self.node = node
            self.allowed = allowed
            self.busy = busy
        }
    }

    /// A VCPU that ran `share` of the wall time (0...1) on a node with `cpus` CPUs and
    /// `placed` VCPUs is busy when it had at least half its fair share of a CPU.
    public static func isBusy(share: Double, cpus: Int, placed: Int) -> Bool {
        share >= 0.5 * min(1, Double(cpus) / Double(max(1, placed)))
    }

    public struct Move: Sendable, Equatable {
        public var vcpu: VCPURef
        public var from: NodeID
        public var to: NodeID
        public init(vcpu: VCPURef, from: NodeID, to: NodeID) {
            self.vcpu = vcpu
            self.from = from
            self.to = to
        }
    }

    public var parameters: Parameters
    private var overloadedSince: [NodeID: UInt64] = [:]
    private var lastMove: UInt64?
    private var movedAt: [VCPURef: UInt64] = [:]

    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
    }

    /// Busy VCPUs placed per node.
    public static func load(_ vcpus: [Placed]) -> [NodeID: Int] {
        var load: [NodeID: Int] = [:]
        for p in vcpus where p.busy { load[p.node, default: 0] += 1 }
        return load
    }

    /// Looks at the placement at `now` (nanoseconds): `cpus` of each live node, the
    /// running VCPUs, whether a VCPU move is under way. Returns the move to make, if any
    /// (the caller carries it out; it counts as made).
    public mutating func evaluate(now: UInt64, cpus: [NodeID: Int], vcpus: [Placed], moving: Bool) -> Move? {
        let load = Self.load(vcpus)
        for n in cpus.keys {
            if load[n, default: 0] > cpus[n]! {
                if overloadedSince[n] == nil { overloadedSince[n] = now }
            } else {
                overloadedSince[n] = nil
            }
        }
        for n in overloadedSince.keys where cpus[n] == nil { overloadedSince[n] = nil }
        guard parameters.enabled, !moving else { return nil }
        if let last = lastMove, now &- last < parameters.interval { return nil }
        // The most overloaded node first (the lowest id on a tie).
        let sources = overloadedSince.filter { now &- $0.value >= parameters.settle }.keys
            .sorted { (load[$0, default: 0] - cpus[$0]!, $1) > (load[$1, default: 0] - cpus[$1]!, $0) }
        for from in sources {
            for p in vcpus.filter({ $0.node == from && $0.busy }).sorted(by: { $0.vcpu.vm != $1.vcpu.vm ? $0.vcpu.vm > $1.vcpu.vm : $0.vcpu.vcpu > $1.vcpu.vcpu }) {
                if let t = movedAt[p.vcpu], now &- t < parameters.cooldown { continue }
                // A node with a CPU free after taking it: the most free first, the lowest id on a tie.
                let targets = p.allowed.filter { $0 != from && cpus[$0] != nil && load[$0, default: 0] + 1 <= cpus[$0]! }
                guard let to = targets.max(by: { (cpus[$0]! - load[$0, default: 0], $1) < (cpus[$1]! - load[$1, default: 0], $0) }) else {
                    continue
                }
                lastMove = now
                movedAt[p.vcpu] = now
                overloadedSince[from] = now
                return Move(vcpu: p.vcpu, from: from, to: to)
            }
        }
        return nil
    }

    /// A VCPU moved by command: it counts as a move (interval and cooldown).
    public mutating func moved(_ v: VCPURef, now: UInt64) {
        lastMove = now
        movedAt[v] = now
    }

    /// Forgets a VM that ended.
    public mutating func remove(vm: UInt32) {
        movedAt = movedAt.filter { $0.key.vm != vm }
    }
}
