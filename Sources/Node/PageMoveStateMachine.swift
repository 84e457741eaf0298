import Cluster
import Protocol

/// One node's part in moving, replicating and collapsing guest pages of its VMs, as a
/// pure state machine: protocol messages and the runtime's observations in, directives
/// out (docs/memory.md has the message sequences and why they are correct).
///
/// The page's current home drives every change. A migration:
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
///
/// A replication (`pageCommand(replicate)`) runs steps 1–3 the same way; then, with
/// every line home, the home gates the page (no write is granted on it any more, the
/// home's own CPUs included), sends each target the page (`pageReplica`), which
/// installs it as its read-only copy, thaws the other nodes (`pageThaw`) and itself,
/// and reports done. Adding replicas to a page replicated already needs no freeze: the
/// gated page cannot change. A write anywhere reaches the gate (a replica's node drops
/// its own copy first and asks the home like any node): the home then collapses the
/// page — `pageCollapse` to each replica's node, which drops its copy and answers
/// `pageCollapsed` — and only with every answer in lifts the gate, so the write is
/// performed once no replica can be read any more; it reports `pageReplicasDropped`.
public struct PageMoveStateMachine: Sendable {
    public enum Event: Sendable, Equatable {
        /// The coordinator asks this node, the page's home, to migrate or replicate it.
        /// `oldFrame` is its machine page here; `others` the VM's other nodes.
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
        /// A replica's bytes arrived (the runtime wrote them into `frame`).
        case replica(id: UInt64, vm: UInt32, page: UInt64, frame: UInt64, from: NodeID)
        case thaw(id: UInt64, vm: UInt32, page: UInt64, from: NodeID)
        /// Home: a write waits at the gate of replicated page `page`.
        case writeWanted(vm: UInt32, page: UInt64)
        /// Replica's node: the home collapses the page.
        case collapse(id: UInt64, vm: UInt32, page: UInt64, from: NodeID)
        /// Home: a replica's node dropped its copy.
        case collapsed(id: UInt64, from: NodeID)
        /// The VM is gone from this node: its moves end with it.
        case dropVM(UInt32)
    }

    public enum Directive: Sendable, Equatable {
        /// Drop the harts' fast paths to the guest page and hold new accesses to it.
        case freeze(vm: UInt32, page: UInt64)
        case send(Message, to: NodeID)
        /// Take every line of the home frame `frame` back from the other nodes; with
        /// `keepShared` (a replication) only the written ones, leaving read-only copies.
        case recall(id: UInt64, frame: UInt64, keepShared: Bool)
        /// Copy home frame `frame` to `to`'s frame `toFrame` as `pageData`, then zero it.
        case sendPage(id: UInt64, vm: UInt32, page: UInt64, frame: UInt64, to: NodeID, toFrame: UInt64)
        /// Map the guest page to `frame` on `node` and let the held accesses go.
        case switchPage(vm: UInt32, page: UInt64, node: NodeID, frame: UInt64)
        /// Home: grant no write on home frame `frame` (all its lines are home).
        case gate(frame: UInt64)
        /// Home: grant writes on home frame `frame` again.
        case ungate(frame: UInt64)
        /// Home: copy home frame `frame` to `to`'s frame `toFrame` as `pageReplica`.
        case sendReplica(id: UInt64, vm: UInt32, page: UInt64, frame: UInt64, to: NodeID, toFrame: UInt64)
        /// Map the guest page's reads to this node's read-only copy at `frame` and let
        /// the held accesses go.
        case installReplica(vm: UInt32, page: UInt64, frame: UInt64)
        /// Let the held accesses to the guest page go; its mapping does not change.
        case thaw(vm: UInt32, page: UInt64)
        /// Drop this node's replica of the guest page (fast paths, the copy itself).
        case dropReplica(vm: UInt32, page: UInt64)
        case done(id: UInt64, ok: Bool, detail: String)
        /// Tell the coordinator (`pageReplicasDropped`).
        case report(Message)
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
        /// Other node: answered `pageFrozen`; waiting for the data (target), `pageMoved`
        /// or `pageThaw`.
        case frozen
    }

    public enum Kind: Sendable, Equatable {
        case migrate
        case replicate
    }

    public struct Move: Sendable, Equatable {
        public var id: UInt64
        public var kind: Kind
        public var vm: UInt32
        public var page: UInt64
        public var home: NodeID
        /// Where the page (migrate) or its replicas (replicate) go; known to the home.
        public var targets: [PageTarget]
        public var oldFrame: UInt64
        public var phase: Phase
        /// Home: the VM's other nodes.
        public var others: [NodeID] = []
        /// Migrate: the target and its new frame.
        public var target: NodeID? { kind == .migrate ? targets.first.map { Int($0.node) } : nil }
        public var frame: UInt64 { targets.first?.frame ?? 0 }
    }

    /// A home page with read-only replicas elsewhere (its writes are gated).
    public struct Replicated: Sendable, Equatable {
        /// The page's frame here.
        public var frame: UInt64
        /// Nodes with a replica, and its frame there.
        public var holders: [NodeID: UInt64]
        /// The collapse under way: its id and the nodes yet to answer.
        public var collapse: (id: UInt64, waiting: Set<NodeID>)?
        public static func == (a: Replicated, b: Replicated) -> Bool {
            a.frame == b.frame && a.holders == b.holders && a.collapse?.id == b.collapse?.id && a.collapse?.waiting == b.collapse?.waiting
        }
    }

    public struct PageKey: Hashable, Sendable {
        public var vm: UInt32
        public var page: UInt64
        public init(vm: UInt32, page: UInt64) {
            self.vm = vm
            self.page = page
        }
    }

    public let node: NodeID
    public private(set) var moves: [UInt64: Move] = [:]
    /// Home: the replicated pages homed here.
    public private(set) var replicated: [PageKey: Replicated] = [:]
    private var nextCollapse: UInt64 = 1

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
            command(c, oldFrame: oldFrame, others: others, &out)
        case .freeze(let id, let vm, let page, let from):
            guard moves[id] == nil else {
                out.append(.log("node \(from) froze move \(id) twice"))
                break
            }
            moves[id] = Move(id: id, kind: .migrate, vm: vm, page: page, home: from, targets: [], oldFrame: 0, phase: .draining)
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
            guard var m = moves[id], m.phase == .recalling else { break }
            switch m.kind {
            case .migrate:
                guard let target = m.target else { break }
                m.phase = .sent
                moves[id] = m
                out.append(.sendPage(id: id, vm: m.vm, page: m.page, frame: m.oldFrame, to: target, toFrame: m.frame))
            case .replicate:
                // Every copy is home and no write can be granted from here on: the
                // replicas are the page's value for as long as they exist.
                moves[id] = nil
                out.append(.gate(frame: m.oldFrame))
                var holders: [NodeID: UInt64] = [:]
                for t in m.targets {
                    holders[Int(t.node)] = t.frame
                    out.append(.sendReplica(id: id, vm: m.vm, page: m.page, frame: m.oldFrame, to: Int(t.node), toFrame: t.frame))
                }
                replicated[PageKey(vm: m.vm, page: m.page)] = Replicated(frame: m.oldFrame, holders: holders)
                for n in m.others.sorted() where holders[n] == nil {
                    out.append(.send(.pageThaw(id: id, vm: m.vm, guestPage: m.page), to: n))
                }
                out.append(.thaw(vm: m.vm, page: m.page))
                out.append(.done(id: id, ok: true, detail: ""))
            }
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
        case .replica(let id, let vm, let page, let frame, let from):
            if let m = moves[id] {
                // Frozen for the replication (the first replicas of a page).
                guard m.phase == .frozen, m.home == from, m.vm == vm, m.page == page else {
                    out.append(.log("unexpected pageReplica \(id) from node \(from)"))
                    break
                }
                moves[id] = nil
            }
            // Otherwise a replica added to a page replicated already: nothing was frozen.
            out.append(.installReplica(vm: vm, page: page, frame: frame))
        case .thaw(let id, let vm, let page, let from):
            guard let m = moves[id], m.phase == .frozen, m.home == from, m.vm == vm, m.page == page else {
                out.append(.log("unexpected pageThaw \(id) from node \(from)"))
                break
            }
            moves[id] = nil
            out.append(.thaw(vm: vm, page: page))
        case .writeWanted(let vm, let page):
            let key = PageKey(vm: vm, page: page)
            guard var r = replicated[key], r.collapse == nil else { break }
            let id = nextCollapse
            nextCollapse += 1
            r.collapse = (id, Set(r.holders.keys))
            replicated[key] = r
            for n in r.holders.keys.sorted() { out.append(.send(.pageCollapse(id: id, vm: vm, guestPage: page), to: n)) }
            finishCollapse(key, &out)
        case .collapse(let id, let vm, let page, let from):
            // Always answered: the copy may be gone already (its own write dropped it).
            out.append(.dropReplica(vm: vm, page: page))
            out.append(.send(.pageCollapsed(id: id), to: from))
        case .collapsed(let id, let from):
            guard let (key, r) = replicated.first(where: { $0.value.collapse?.id == id }),
                  r.collapse?.waiting.contains(from) == true else {
                out.append(.log("unexpected pageCollapsed \(id) from node \(from)"))
                break
            }
            replicated[key]!.collapse!.waiting.remove(from)
            finishCollapse(key, &out)
        case .dropVM(let vm):
            moves = moves.filter { $0.value.vm != vm }
            for (key, r) in replicated.sorted(by: { ($0.key.vm, $0.key.page) < ($1.key.vm, $1.key.page) }) where key.vm == vm {
                out.append(.ungate(frame: r.frame))
            }
            replicated = replicated.filter { $0.key.vm != vm }
        }
        return out
    }

    private mutating func command(_ c: PageCommand, oldFrame: UInt64, others: [NodeID], _ out: inout [Directive]) {
        let page = c.guestPage & ~0xfff
        let key = PageKey(vm: c.vm, page: page)
        func refuse(_ why: String) { out.append(.done(id: c.id, ok: false, detail: why)) }
        guard moves[c.id] == nil, !isMoving(vm: c.vm, page: page) else { return refuse("a move of that page is under way") }
        guard !c.targets.isEmpty, c.targets.allSatisfy({ Int($0.node) != node && others.contains(Int($0.node)) }),
              Set(c.targets.map(\.node)).count == c.targets.count else {
            return refuse("nodes \(c.targets.map(\.node)) do not all run VM \(c.vm) apart from the page's home")
        }
        switch c.kind {
        case .migrate:
            guard c.targets.count == 1 else { return refuse("a migration has one target") }
            guard replicated[key] == nil else { return refuse("the page is replicated") }
        case .replicate:
            if let r = replicated[key] {
                // Replicated already: the gated page cannot change, so new replicas need no freeze.
                guard r.collapse == nil else { return refuse("the page's replicas are collapsing") }
                guard c.targets.allSatisfy({ r.holders[Int($0.node)] == nil }) else { return refuse("a target holds a replica already") }
                for t in c.targets {
                    replicated[key]!.holders[Int(t.node)] = t.frame
                    out.append(.sendReplica(id: c.id, vm: c.vm, page: page, frame: r.frame, to: Int(t.node), toFrame: t.frame))
                }
                out.append(.done(id: c.id, ok: true, detail: ""))
                return
            }
        case .collapse:
            return refuse("a collapse is started by a write, not by command")
        }
        moves[c.id] = Move(id: c.id, kind: c.kind == .migrate ? .migrate : .replicate, vm: c.vm, page: page, home: node,
                           targets: c.targets, oldFrame: oldFrame, phase: .freezing(waiting: Set(others), drained: false),
                           others: others)
        out.append(.freeze(vm: c.vm, page: page))
        for n in others.sorted() { out.append(.send(.pageFreeze(id: c.id, vm: c.vm, guestPage: page), to: n)) }
    }

    /// The home starts the recall once every node froze and its own accesses drained.
    private mutating func advance(_ id: UInt64, _ out: inout [Directive]) {
        guard var m = moves[id], case .freezing(let waiting, true) = m.phase, waiting.isEmpty else { return }
        m.phase = .recalling
        moves[id] = m
        out.append(.recall(id: id, frame: m.oldFrame, keepShared: m.kind == .replicate))
    }

    /// Every replica is gone: writes may be granted again.
    private mutating func finishCollapse(_ key: PageKey, _ out: inout [Directive]) {
        guard let r = replicated[key], let c = r.collapse, c.waiting.isEmpty else { return }
        replicated[key] = nil
        out.append(.ungate(frame: r.frame))
        out.append(.report(.pageReplicasDropped(vm: key.vm, guestPage: key.page, nodes: r.holders.keys.sorted().map { Int32($0) })))
    }
}
