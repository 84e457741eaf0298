/// Which of a node's VCPUs runs next: one run queue over every released VM's local
/// VCPUs. A VCPU is runnable, waiting for an interrupt (WFI), parked on a remote line or
/// device, spinning, or held (stopped for a move to another node); a parked VCPU whose
/// access completed is runnable again and "woken": it gets a short slice right after
/// the message that woke it, before anything can take the line away again.
///
/// **Fairness: an equal share per VM.** The node's CPUs are shared by VMs, not by
/// VCPUs: every slice is charged (nanoseconds it ran, instructions it retired) to its
/// VCPU and to its VM, and `next` picks, among the VMs that have a VCPU able to run,
/// the one that has been charged least; within that VM its VCPUs take turns (round
/// robin). So a VM with four busy VCPUs and one with one get half the node each, not
/// four fifths and one fifth, and no VM's VCPUs can starve another VM's. A VM that
/// idled (all its VCPUs in WFI) does not bank the time it did not use: when it can
/// run again it is charged at least `catchUpNanos` less than the most charged VM that
/// runs, so it is first in line without then owning the node for as long as it slept.
/// A VM that arrives starts even with the least charged VM.
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
/// Pure bookkeeping: the runtime asks `next`, runs that VCPU's slice, reports how it
/// ended (`ran`) and what it cost (`charge`). Removing a VM removes its VCPUs at once,
/// so none of them can be picked afterwards, whatever the runtime was iterating over.
public struct VCPUScheduler: Sendable {
    public struct VCPU: Hashable, Sendable, CustomStringConvertible {
        public var vm: UInt32
        /// The VCPU's hart id (its number in the VM, wherever it runs).
        public var index: Int
        public init(vm: UInt32, index: Int) {
            self.vm = vm
            self.index = index
        }
        public var description: String { "\(vm).\(index)" }
    }

    public enum State: Sendable, Equatable { case runnable, waitingForInterrupt, parked, spinning, held }

    /// What a VCPU has cost on this node.
    public struct Account: Sendable, Equatable {
        /// Wall time of its slices (nanoseconds).
        public var runNanos: UInt64 = 0
        public var instructions: UInt64 = 0
        public var slices: UInt64 = 0
    }

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

    /// Per VCPU: what it cost here.
    public private(set) var accounts: [VCPU: Account] = [:]
    /// Per VM: nanoseconds charged (the fair-share clock; only differences matter).
    public private(set) var vmCharged: [UInt32: UInt64] = [:]
    /// Per VM: where its own turn goes on (a position in `order`).
    private var vmCursor: [UInt32: Int] = [:]
    /// How far behind the busiest running VM an idle VM may come back.
    public let catchUpNanos: UInt64

    public init(spinPark: UInt64 = 2_000_000, spinNotice: UInt64 = 50_000, catchUpNanos: UInt64 = 20_000_000) {
        self.spinPark = spinPark
        self.spinNotice = spinNotice
        self.catchUpNanos = catchUpNanos
    }

    public var isEmpty: Bool { order.isEmpty }

    /// Adds a released VM's `count` local VCPUs (hart ids 0..<count), all runnable.
    public mutating func add(vm: UInt32, count: Int) { add(vm: vm, harts: Array(0..<count)) }

    /// Adds VCPUs of a VM by hart id (a released VM's local ones, or one that moved
    /// here), all runnable.
    public mutating func add(vm: UInt32, harts: [Int]) {
        if vmCharged[vm] == nil { vmCharged[vm] = vmCharged.values.min() ?? 0 }
        for i in harts {
            let v = VCPU(vm: vm, index: i)
            guard states[v] == nil else { continue }
            order.append(v)
            states[v] = .runnable
        }
    }

    /// Takes one VCPU out (it moved to another node); its account goes with it.
    public mutating func remove(_ v: VCPU) {
        guard let i = order.firstIndex(of: v) else { return }
        if i < cursor { cursor -= 1 }
        order.remove(at: i)
        vmCursor = [:]
        if cursor >= order.count { cursor = 0 }
        states[v] = nil
        woken.removeAll { $0 == v }
        spinDeadlines[v] = nil
        probing.remove(v)
        accounts[v] = nil
    }

    /// Stops `v` from running: it is leaving for another node (it is `remove`d once its
    /// state is sent; nothing refuses a move after this point).
    public mutating func hold(_ v: VCPU) {
        guard states[v] != nil else { return }
        states[v] = .held
        spinDeadlines[v] = nil
        probing.remove(v)
        woken.removeAll { $0 == v }
    }

    /// Charges a slice of `v` that took `nanos` and retired `instructions`.
    public mutating func charge(_ v: VCPU, nanos: UInt64, instructions: UInt64) {
        guard states[v] != nil else { return }
        accounts[v, default: Account()].runNanos &+= nanos
        accounts[v, default: Account()].instructions &+= instructions
        accounts[v, default: Account()].slices &+= 1
        vmCharged[v.vm, default: 0] &+= nanos
    }

    public mutating func remove(vm: UInt32) {
        let before = order.count
        if let first = order.firstIndex(where: { $0.vm == vm }), first < cursor {
            cursor -= order[..<cursor].filter { $0.vm == vm }.count
        }
        order.removeAll { $0.vm == vm }
        woken.removeAll { $0.vm == vm }
        for v in states.keys where v.vm == vm { states[v] = nil }
        accounts = accounts.filter { $0.key.vm != vm }
        vmCharged[vm] = nil
        vmCursor = [:]
        spinDeadlines = spinDeadlines.filter { $0.key.vm != vm }
        probing = probing.filter { $0.vm != vm }
        if order.count != before, cursor >= order.count { cursor = 0 }
    }

    /// The next VCPU to run: of the VMs with a VCPU that can run, the least charged
    /// (ties: the first in turn), and that VM's next VCPU in turn. A VCPU waiting for an
    /// interrupt can run once `hasWakeUp` says its interrupt is pending; a spinning one
    /// once its park ended at `now` or `hasTakeable` (default: `hasWakeUp`) says an
    /// interrupt would be taken: one that is pending but masked cannot change what it
    /// polls, and probing it again and again would take the host CPU from the VCPU
    /// that holds its lock. Nil if none can run.
    public mutating func next(now: UInt64 = .max, hasWakeUp: (VCPU) -> Bool,
                              hasTakeable: ((VCPU) -> Bool)? = nil) -> VCPU? {
        guard !order.isEmpty else { return nil }
        func interrupts(_ v: VCPU) -> Bool { hasTakeable.map { $0(v) } ?? hasWakeUp(v) }
        func canRun(_ v: VCPU) -> Bool {
            switch states[v] {
            case .runnable?: return true
            case .waitingForInterrupt?: return hasWakeUp(v)
            case .spinning?: return (spinDeadlines[v] ?? 0) <= now || interrupts(v)
            default: return false
            }
        }
        let n = order.count
        var pick: Int?
        if vmCharged.count <= 1 {
            // One VM: plain round robin.
            for step in 0..<n where canRun(order[(cursor + step) % n]) {
                pick = (cursor + step) % n
                break
            }
        } else {
            // Per VM, its next VCPU in its own turn that can run.
            var candidate: [UInt32: Int] = [:]
            for step in 0..<n {
                let i = (cursor + step) % n
                let v = order[i]
                let from = vmCursor[v.vm] ?? 0
                if let c = candidate[v.vm], (c - from + n) % n <= (i - from + n) % n { continue }
                if canRun(v) { candidate[v.vm] = i }
            }
            guard !candidate.isEmpty else { return nil }
            // No banking of idle time: nobody is further behind than catchUpNanos.
            let most = candidate.keys.map { vmCharged[$0] ?? 0 }.max()!
            let floor = most > catchUpNanos ? most - catchUpNanos : 0
            for vm in candidate.keys where (vmCharged[vm] ?? 0) < floor { vmCharged[vm] = floor }
            // The least charged VM; on a tie the one whose VCPU comes first in the node's turn.
            pick = candidate.min { a, b in
                ((vmCharged[a.key] ?? 0), (a.value - cursor + n) % n) < ((vmCharged[b.key] ?? 0), (b.value - cursor + n) % n)
            }!.value
        }
        guard let i = pick else { return nil }
        let v = order[i]
        switch states[v] {
        case .waitingForInterrupt?: states[v] = .runnable
        case .spinning?: unpark(v)
        default: break
        }
        cursor = (i + 1) % n
        vmCursor[v.vm] = (i + 1) % n
        return v
    }

    /// The VCPU's slice ended so. A slice that did work (anything but spinning) may
    /// have written what the node's spinning VCPUs poll: they look again soon.
    public mutating func ran(_ v: VCPU, _ end: SliceEnd, now: UInt64 = 0) {
        // Its VM went away during the slice, or a move holds it.
        guard let s = states[v], s != .held else { return }
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

    /// Whether a VCPU other than `v` could run now (runnable; a VCPU waiting for an
    /// interrupt, parked, spinning or held does not count).
    public func othersRunnable(than v: VCPU) -> Bool {
        states.contains { $0.key != v && $0.value == .runnable }
    }

    /// Whether a timer interrupt could let `v` run: it waits for an interrupt, spins, or
    /// is runnable. A parked or held VCPU cannot take one until its line arrives or it
    /// is released (a message that wakes the node anyway), so an idle node need not
    /// wake for its timer.
    public func wakesOnTimer(_ v: VCPU) -> Bool {
        switch states[v] {
        case .runnable?, .waitingForInterrupt?, .spinning?: return true
        case .parked?, .held?, nil: return false
        }
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
