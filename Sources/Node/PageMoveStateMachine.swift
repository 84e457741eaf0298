import Cluster
import Protocol

/// One node's part in moving guest pages of its VMs from one home to another, as a
/// pure state machine: protocol messages and the runtime's observations in, directives
/// out (docs/memory.md has the message sequence and why it is correct).
///
/// The page's current home drives the move:
///
/// 1. The coordinator sends `pageCommand(migrate)` to the home. The home freezes the
///    page (drops its harts' fast paths, holds new accesses) and sends `pageFreeze`
///    to every other node of the VM, which freezes it too.
/// 2. Each node waits until no access of its own to the page is still parked in its
///    coherence agent (`drained`), then answers `pageFrozen`. It answers on the same
///    connection as its coherence requests, so the home has every request of that
///    node for the page before it has the answer.
/// 3. With every answer in and its own accesses drained, the home takes every line
///    of the old frame back (`recall`), and once they are home (`linesHome`) copies
///    the page to the target (`pageData`) and zeroes the old frame.
/// 4. The target writes the page into its new frame, switches its pmap, lets held
///    accesses go and tells every other node (`pageMoved`), which switch too; the old
///    home then reports `pageCommandDone` to the coordinator.
///
/// Accesses to a frozen page wait; none reaches the old frame after its copy (every
/// node froze before the copy and asks for the new frame only after `pageMoved`, which
/// the target sends after the data is in place).
public struct PageMoveStateMachine: Sendable {
    public enum Event: Sendable, Equatable {
        /// The coordinator asks this node, the page's home, to move it. `oldFrame` is
        /// its machine page here; `others` the VM's other nodes.
        case command(PageCommand, oldFrame: UInt64, others: [NodeID])
        case freeze(id: UInt64, vm: UInt32, page: UInt64, from: NodeID)
        case frozen(id: UInt64, from: NodeID)
        /// No access of this node to the move's page is parked any more.
        case drained(id: UInt64)
        /// Every line of the old frame is home (the home's recall finished).
        case linesHome(id: UInt64)
        /// The page's bytes arrived (the runtime wrote them into `frame`); `others`: the
        /// VM's nodes other than this one.
        case data(id: UInt64, vm: UInt32, page: UInt64, frame: UInt64, from: NodeID, others: [NodeID])
        case moved(id: UInt64, vm: UInt32, page: UInt64, node: NodeID, frame: UInt64, from: NodeID)
        /// The VM is gone from this node: its moves end with it.
        case dropVM(UInt32)
    }

    public enum Directive: Sendable, Equatable {
        /// Drop the harts' fast paths to the guest page and hold new accesses to it.
        case freeze(vm: UInt32, page: UInt64)
        case send(Message, to: NodeID)
        /// Take every line of the home frame `frame` back from the other nodes.
        case recall(id: UInt64, frame: UInt64)
        /// Copy home frame `frame` to `to`'s frame `toFrame` as `pageData`, then zero it.
        case sendPage(id: UInt64, vm: UInt32, page: UInt64, frame: UInt64, to: NodeID, toFrame: UInt64)
        /// Map the guest page to `frame` on `node` and let the held accesses go.
        case switchPage(vm: UInt32, page: UInt64, node: NodeID, frame: UInt64)
        case done(id: UInt64, ok: Bool, detail: String)
        case log(String)
    }

    public enum Phase: Sendable, Equatable {
        /// Home: waiting for the other nodes' `pageFrozen` and its own drain.
        case freezing(waiting: Set<NodeID>, drained: Bool)
        /// Home: the old frame's lines are on their way home.
        case recalling
        /// Home: the page went to the target; waiting for its `pageMoved`.
        case sent
        /// Other node: frozen, waiting for its own accesses to drain.
        case draining
        /// Other node: answered `pageFrozen`; waiting for the data (target) or `pageMoved`.
        case frozen
    }

    public struct Move: Sendable, Equatable {
        public var id: UInt64
        public var vm: UInt32
        public var page: UInt64
        public var home: NodeID
        /// The target and new frame (known to the home; to others once moved).
        public var target: NodeID?
        public var frame: UInt64
        public var oldFrame: UInt64
        public var phase: Phase
    }

    public let node: NodeID
    public private(set) var moves: [UInt64: Move] = [:]

    public init(node: NodeID) { self.node = node }

    /// Moves waiting for this node's own accesses to the page to drain.
    public var awaitingDrain: [Move] {
        moves.values.filter {
            if case .freezing(_, false) = $0.phase { return true }
            return $0.phase == .draining
        }.sorted { $0.id < $1.id }
    }

    /// Moves whose old frame's lines are being recalled here.
    public var awaitingLines: [Move] { moves.values.filter { $0.phase == .recalling }.sorted { $0.id < $1.id } }

    /// Whether a move of that guest page is under way here.
    public func isMoving(vm: UInt32, page: UInt64) -> Bool { moves.values.contains { $0.vm == vm && $0.page == page } }

    public mutating func handle(_ event: Event) -> [Directive] {
        var out: [Directive] = []
        switch event {
        case .command(let c, let oldFrame, let others):
            let page = c.guestPage & ~0xfff
            guard c.kind == .migrate else {
                out.append(.done(id: c.id, ok: false, detail: "\(c.kind) is not carried out by this node"))
                break
            }
            guard moves[c.id] == nil, !isMoving(vm: c.vm, page: page) else {
                out.append(.done(id: c.id, ok: false, detail: "a move of that page is under way"))
                break
            }
            let target = Int(c.targetNode)
            guard target != node, others.contains(target) else {
                out.append(.done(id: c.id, ok: false, detail: "node \(target) does not run VM \(c.vm) or is the page's home"))
                break
            }
            moves[c.id] = Move(id: c.id, vm: c.vm, page: page, home: node, target: target, frame: c.frame,
                               oldFrame: oldFrame, phase: .freezing(waiting: Set(others), drained: false))
            out.append(.freeze(vm: c.vm, page: page))
            for n in others.sorted() { out.append(.send(.pageFreeze(id: c.id, vm: c.vm, guestPage: page), to: n)) }
        case .freeze(let id, let vm, let page, let from):
            guard moves[id] == nil else {
                out.append(.log("node \(from) froze move \(id) twice"))
                break
            }
            moves[id] = Move(id: id, vm: vm, page: page, home: from, target: nil, frame: 0, oldFrame: 0, phase: .draining)
            out.append(.freeze(vm: vm, page: page))
        case .frozen(let id, let from):
            guard var m = moves[id], m.home == node, case .freezing(var waiting, let drained) = m.phase,
                  waiting.remove(from) != nil else {
                out.append(.log("unexpected pageFrozen \(id) from node \(from)"))
                break
            }
            m.phase = .freezing(waiting: waiting, drained: drained)
            moves[id] = m
            advance(id, &out)
        case .drained(let id):
            guard var m = moves[id] else { break }
            switch m.phase {
            case .freezing(let waiting, false):
                m.phase = .freezing(waiting: waiting, drained: true)
                moves[id] = m
                advance(id, &out)
            case .draining:
                m.phase = .frozen
                moves[id] = m
                out.append(.send(.pageFrozen(id: id), to: m.home))
            default:
                break
            }
        case .linesHome(let id):
            guard var m = moves[id], m.phase == .recalling, let target = m.target else { break }
            m.phase = .sent
            moves[id] = m
            out.append(.sendPage(id: id, vm: m.vm, page: m.page, frame: m.oldFrame, to: target, toFrame: m.frame))
        case .data(let id, let vm, let page, let frame, let from, let others):
            guard let m = moves[id], m.phase == .frozen, m.home == from, m.vm == vm, m.page == page else {
                out.append(.log("unexpected pageData \(id) from node \(from)"))
                break
            }
            moves[id] = nil
            out.append(.switchPage(vm: vm, page: page, node: node, frame: frame))
            for n in others.sorted() {
                out.append(.send(.pageMoved(id: id, vm: vm, guestPage: page, node: Int32(node), frame: frame), to: n))
            }
        case .moved(let id, let vm, let page, let target, let frame, let from):
            guard let m = moves[id], m.vm == vm, m.page == page, target == from,
                  m.phase == .frozen || (m.phase == .sent && m.target == target && m.frame == frame) else {
                out.append(.log("unexpected pageMoved \(id) from node \(from)"))
                break
            }
            moves[id] = nil
            out.append(.switchPage(vm: vm, page: page, node: target, frame: frame))
            if m.home == node { out.append(.done(id: id, ok: true, detail: "")) }
        case .dropVM(let vm):
            moves = moves.filter { $0.value.vm != vm }
        }
        return out
    }

    /// The home starts the recall once every node froze and its own accesses drained.
    private mutating func advance(_ id: UInt64, _ out: inout [Directive]) {
        guard var m = moves[id], case .freezing(let waiting, true) = m.phase, waiting.isEmpty else { return }
        m.phase = .recalling
        moves[id] = m
        out.append(.recall(id: id, frame: m.oldFrame))
    }
}
