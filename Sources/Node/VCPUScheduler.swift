/// Which of a node's VCPUs runs next: one run queue over every released VM's local
/// VCPUs, in round-robin order. A VCPU is runnable, waiting for an interrupt (WFI),
/// parked on a remote line or device, or spinning; a parked VCPU whose access
/// completed is runnable again and "woken": it gets a short slice right after the
/// message that woke it, before anything can take the line away again.
///
/// A spinning VCPU (its hart polls memory that has not changed, `HartExit.spinning`)
/// gives its host CPU away until memory may have changed: another VCPU of the node
/// ran a slice that did work, or a message reached the node (`wakeSpinners`: a remote
/// write's invalidation, a recall, a request for a home line another node will write)
/// — then it looks again within `spinNotice` (so a stream of messages costs one probe
/// per `spinNotice`, not one per message) — or an interrupt is pending, or `spinPark`
/// passed. It then runs a short probe slice (`isProbing`), which tells at once whether
/// it still spins.
///
/// Pure bookkeeping: the runtime asks `next`, runs that VCPU's slice, and reports how
/// it ended. Removing a VM removes its VCPUs at once, so none of them can be picked
/// afterwards, whatever the runtime was iterating over.
public struct VCPUScheduler: Sendable {
    public struct VCPU: Hashable, Sendable, CustomStringConvertible {
        public var vm: UInt32
        /// Index among the VM's harts on this node.
        public var index: Int
        public init(vm: UInt32, index: Int) {
            self.vm = vm
            self.index = index
        }
        public var description: String { "\(vm).\(index)" }
    }

    public enum State: Sendable, Equatable { case runnable, waitingForInterrupt, parked, spinning }

    /// How a slice ended (the hart's own answer).
    public enum SliceEnd: Sendable, Equatable { case budgetExhausted, waitingForInterrupt, parked, spinning }

    private var order: [VCPU] = []
    public private(set) var states: [VCPU: State] = [:]
    private var cursor = 0
    private var woken: [VCPU] = []
    /// Spinning VCPUs: when each may run again without a reason (nanoseconds).
    private var spinDeadlines: [VCPU: UInt64] = [:]
    /// VCPUs that spun and run again: their next slice is a probe.
    private var probing: Set<VCPU> = []
    /// How long a spinning VCPU waits at most for a reason to look again.
    public let spinPark: UInt64
    /// How soon it looks again once there is a reason.
    public let spinNotice: UInt64

    public init(spinPark: UInt64 = 2_000_000, spinNotice: UInt64 = 50_000) {
        self.spinPark = spinPark
        self.spinNotice = spinNotice
    }

    public var isEmpty: Bool { order.isEmpty }

    /// Adds a released VM's `count` local VCPUs, all runnable.
    public mutating func add(vm: UInt32, count: Int) {
        for i in 0..<count {
            let v = VCPU(vm: vm, index: i)
            guard states[v] == nil else { continue }
            order.append(v)
            states[v] = .runnable
        }
    }

    public mutating func remove(vm: UInt32) {
        let before = order.count
        if let first = order.firstIndex(where: { $0.vm == vm }), first < cursor {
            cursor -= order[..<cursor].filter { $0.vm == vm }.count
        }
        order.removeAll { $0.vm == vm }
        woken.removeAll { $0.vm == vm }
        for v in states.keys where v.vm == vm { states[v] = nil }
        spinDeadlines = spinDeadlines.filter { $0.key.vm != vm }
        probing = probing.filter { $0.vm != vm }
        if order.count != before, cursor >= order.count { cursor = 0 }
    }

    /// The next VCPU to run, round robin; a VCPU waiting for an interrupt counts as
    /// runnable once `hasWakeUp` says its interrupt is pending, a spinning one also
    /// once its park ended at `now`. Nil if none can run.
    public mutating func next(now: UInt64 = .max, hasWakeUp: (VCPU) -> Bool) -> VCPU? {
        guard !order.isEmpty else { return nil }
        for step in 0..<order.count {
            let i = (cursor + step) % order.count
            let v = order[i]
            switch states[v] {
            case .runnable?:
                break
            case .waitingForInterrupt?:
                guard hasWakeUp(v) else { continue }
                states[v] = .runnable
            case .spinning?:
                guard (spinDeadlines[v] ?? 0) <= now || hasWakeUp(v) else { continue }
                unpark(v)
            default:
                continue
            }
            cursor = (i + 1) % order.count
            return v
        }
        return nil
    }

    /// The VCPU's slice ended so. A slice that did work (anything but spinning) may
    /// have written what the node's spinning VCPUs poll: they look again soon.
    public mutating func ran(_ v: VCPU, _ end: SliceEnd, now: UInt64 = 0) {
        guard states[v] != nil else { return }  // its VM went away during the slice
        switch end {
        case .budgetExhausted: states[v] = .runnable
        case .waitingForInterrupt: states[v] = .waitingForInterrupt
        case .parked: states[v] = .parked
        case .spinning:
            states[v] = .spinning
            spinDeadlines[v] = now &+ spinPark
            probing.remove(v)
            return
        }
        probing.remove(v)
        wakeSpinners(now: now)
    }

    /// Memory may have changed (a message arrived at `now`): every spinning VCPU looks
    /// again within `spinNotice`.
    public mutating func wakeSpinners(now: UInt64) {
        guard !spinDeadlines.isEmpty else { return }
        let soon = now &+ spinNotice
        for (v, d) in spinDeadlines where d > soon { spinDeadlines[v] = soon }
    }

    private mutating func unpark(_ v: VCPU) {
        spinDeadlines[v] = nil
        states[v] = .runnable
        probing.insert(v)
    }

    /// Whether `v`'s next slice is a probe (it spun last time).
    public func isProbing(_ v: VCPU) -> Bool { probing.contains(v) }

    /// When the first spinning VCPU's park ends, if any spins.
    public var nextSpinDeadline: UInt64? { spinDeadlines.values.min() }

    /// Whether any VCPU is parked spinning.
    public var hasSpinning: Bool { !spinDeadlines.isEmpty }

    /// The VCPU's parked access (or device read) completed: it runs again, soon.
    public mutating func wake(_ v: VCPU) {
        guard let s = states[v] else { return }
        if s == .parked {
            states[v] = .runnable
            woken.append(v)
        }
    }

    /// The VCPUs woken since the last call, oldest first.
    public mutating func takeWoken() -> [VCPU] {
        defer { woken.removeAll(keepingCapacity: true) }
        return woken
    }
}
