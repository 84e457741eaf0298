/// Which of a node's VCPUs runs next: one run queue over every released VM's local
/// VCPUs, in round-robin order. A VCPU is runnable, waiting for an interrupt (WFI), or
/// parked on a remote line or device; a parked VCPU whose access completed is
/// runnable again and "woken": it gets a short slice right after the message that
/// woke it, before anything can take the line away again.
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

    public enum State: Sendable, Equatable { case runnable, waitingForInterrupt, parked }

    /// How a slice ended (the hart's own answer).
    public enum SliceEnd: Sendable, Equatable { case budgetExhausted, waitingForInterrupt, parked }

    private var order: [VCPU] = []
    public private(set) var states: [VCPU: State] = [:]
    private var cursor = 0
    private var woken: [VCPU] = []

    public init() {}

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
        if order.count != before, cursor >= order.count { cursor = 0 }
    }

    /// The next VCPU to run, round robin; a VCPU waiting for an interrupt counts as
    /// runnable once `hasWakeUp` says its interrupt is pending. Nil if none can run.
    public mutating func next(hasWakeUp: (VCPU) -> Bool) -> VCPU? {
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
            default:
                continue
            }
            cursor = (i + 1) % order.count
            return v
        }
        return nil
    }

    /// The VCPU's slice ended so.
    public mutating func ran(_ v: VCPU, _ end: SliceEnd) {
        guard states[v] != nil else { return }  // its VM went away during the slice
        switch end {
        case .budgetExhausted: states[v] = .runnable
        case .waitingForInterrupt: states[v] = .waitingForInterrupt
        case .parked: states[v] = .parked
        }
    }

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
