import Cluster
import Node
import Protocol
import Testing

/// The node's part in a page move, driven without I/O: three nodes' state machines
/// exchange their `send` directives; the tests play the runtime (drain, recall).
@Suite struct PageMoveStateMachineTests {
    typealias SM = PageMoveStateMachine
    let command = PageCommand(id: 7, kind: .migrate, vm: 1, guestPage: 0x8000_3000, targets: [PageTarget(node: 1, frame: 0x20_0000)])

    /// Messages among the directives, by destination.
    func sends(_ ds: [SM.Directive]) -> [(NodeID, Message)] {
        ds.compactMap { if case .send(let m, let to) = $0 { return (to, m) } else { return nil } }
    }

    @Test func aMoveRunsFreezeDrainRecallCopySwitchInOrder() {
        var home = SM(node: 0), target = SM(node: 1), other = SM(node: 2)
        // The home freezes the page and asks the others to.
        let start = home.handle(.command(command, oldFrame: 0x1000, others: [1, 2]))
        #expect(start.first == .freeze(vm: 1, page: 0x8000_3000))
        #expect(sends(start).map(\.0) == [1, 2])
        #expect(sends(start).allSatisfy { $0.1 == .pageFreeze(id: 7, vm: 1, guestPage: 0x8000_3000) })
        #expect(target.handle(.freeze(id: 7, vm: 1, page: 0x8000_3000, from: 0)) == [.freeze(vm: 1, page: 0x8000_3000)])
        #expect(other.handle(.freeze(id: 7, vm: 1, page: 0x8000_3000, from: 0)) == [.freeze(vm: 1, page: 0x8000_3000)])
        #expect(home.awaitingDrain.map(\.id) == [7] && target.awaitingDrain.map(\.id) == [7])
        // Nothing is recalled before every node froze and the home itself drained.
        #expect(home.handle(.drained(id: 7)).isEmpty)
        #expect(target.handle(.drained(id: 7)) == [.send(.pageFrozen(id: 7), to: 0)])
        #expect(home.handle(.frozen(id: 7, from: 1)).isEmpty)
        #expect(other.handle(.drained(id: 7)) == [.send(.pageFrozen(id: 7), to: 0)])
        #expect(home.handle(.frozen(id: 7, from: 2)) == [.recall(id: 7, frame: 0x1000, keepShared: false)])
        #expect(home.awaitingLines.map(\.id) == [7])
        // Lines home: the page goes to the target's new frame.
        #expect(home.handle(.linesHome(id: 7)) == [.sendPage(id: 7, vm: 1, page: 0x8000_3000, frame: 0x1000, to: 1, toFrame: 0x20_0000)])
        // The target switches first, then tells everyone else.
        let landed = target.handle(.data(id: 7, vm: 1, page: 0x8000_3000, frame: 0x20_0000, from: 0, others: [0, 2]))
        #expect(landed.first == .switchPage(vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000))
        #expect(sends(landed).map(\.0) == [0, 2])
        let moved = Message.pageMoved(id: 7, vm: 1, guestPage: 0x8000_3000, node: 1, frame: 0x20_0000)
        #expect(sends(landed).allSatisfy { $0.1 == moved })
        #expect(other.handle(.moved(id: 7, vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000, from: 1))
                == [.switchPage(vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000)])
        // The old home switches and reports to the coordinator.
        #expect(home.handle(.moved(id: 7, vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000, from: 1))
                == [.switchPage(vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000), .done(id: 7, ok: true, detail: "")])
        #expect(home.moves.isEmpty && target.moves.isEmpty && other.moves.isEmpty)
    }

    @Test func commandsItCannotCarryOutAreRefused() {
        var home = SM(node: 0)
        // Target is the home itself, or not a node of the VM.
        #expect(home.handle(.command(PageCommand(id: 1, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targets: [PageTarget(node: 0, frame: 0)]),
                                     oldFrame: 0, others: [1])).map { if case .done(_, let ok, _) = $0 { ok } else { true } } == [false])
        #expect(home.handle(.command(PageCommand(id: 2, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targets: [PageTarget(node: 5, frame: 0)]),
                                     oldFrame: 0, others: [1])).count == 1)
        // A collapse is not commanded (a write starts it); a migration has one target.
        #expect(home.handle(.command(PageCommand(id: 3, kind: .collapse, vm: 1, guestPage: 0x8000_0000, targets: [PageTarget(node: 1, frame: 0)]),
                                     oldFrame: 0, others: [1])).count == 1)
        #expect(home.handle(.command(PageCommand(id: 3, kind: .migrate, vm: 1, guestPage: 0x8000_0000,
                                                 targets: [PageTarget(node: 1, frame: 0), PageTarget(node: 2, frame: 0)]),
                                     oldFrame: 0, others: [1, 2])).count == 1)
        #expect(home.moves.isEmpty)
        // A second move of a page under way.
        _ = home.handle(.command(PageCommand(id: 4, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targets: [PageTarget(node: 1, frame: 0x5000)]),
                                 oldFrame: 0x1000, others: [1]))
        let again = home.handle(.command(PageCommand(id: 5, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targets: [PageTarget(node: 1, frame: 0x6000)]),
                                         oldFrame: 0x1000, others: [1]))
        #expect(again == [.done(id: 5, ok: false, detail: "a move of that page is under way")])
        #expect(home.moves.keys.sorted() == [4])
    }

    @Test func liesFromOtherNodesChangeNothing() {
        var home = SM(node: 0), target = SM(node: 1)
        _ = home.handle(.command(command, oldFrame: 0x1000, others: [1]))
        _ = home.handle(.drained(id: 7))
        // pageFrozen from a node that was not asked, and for an unknown move.
        #expect(home.handle(.frozen(id: 7, from: 3)).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(home.handle(.frozen(id: 99, from: 1)).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(home.awaitingLines.isEmpty)
        // Data before the node froze, or from a node that is not the page's home.
        _ = target.handle(.freeze(id: 7, vm: 1, page: 0x8000_3000, from: 0))
        #expect(target.handle(.data(id: 7, vm: 1, page: 0x8000_3000, frame: 0x20_0000, from: 0, others: [0]))
                    .allSatisfy { if case .log = $0 { true } else { false } })
        _ = target.handle(.drained(id: 7))
        #expect(target.handle(.data(id: 7, vm: 1, page: 0x8000_3000, frame: 0x20_0000, from: 2, others: [0]))
                    .allSatisfy { if case .log = $0 { true } else { false } })
        // pageMoved that does not come from the new home.
        #expect(home.handle(.moved(id: 7, vm: 1, page: 0x8000_3000, node: 1, frame: 0x20_0000, from: 2))
                    .allSatisfy { if case .log = $0 { true } else { false } })
        #expect(home.moves.count == 1 && target.moves.count == 1)
    }

    @Test func aDroppedVMEndsItsMoves() {
        var home = SM(node: 0)
        _ = home.handle(.command(command, oldFrame: 0x1000, others: [1]))
        _ = home.handle(.freeze(id: 8, vm: 2, page: 0x8000_0000, from: 1))
        _ = home.handle(.dropVM(1))
        #expect(home.moves.keys.sorted() == [8])
    }

    // MARK: - Replication and collapse

    let replicate = PageCommand(id: 9, kind: .replicate, vm: 1, guestPage: 0x8000_5000,
                                targets: [PageTarget(node: 1, frame: 0x21_0000), PageTarget(node: 2, frame: 0x31_0000)])

    /// Runs a replication of `replicate` from node 0 to nodes 1 and 2, node 3 looking on.
    func replicated() -> [SM] {
        var nodes = (0..<4).map { SM(node: $0) }
        _ = nodes[0].handle(.command(replicate, oldFrame: 0x1000, others: [1, 2, 3]))
        for n in 1...3 {
            _ = nodes[n].handle(.freeze(id: 9, vm: 1, page: 0x8000_5000, from: 0))
            _ = nodes[n].handle(.drained(id: 9))
            _ = nodes[0].handle(.frozen(id: 9, from: n))
        }
        _ = nodes[0].handle(.drained(id: 9))
        _ = nodes[0].handle(.linesHome(id: 9))
        _ = nodes[1].handle(.replica(id: 9, vm: 1, page: 0x8000_5000, frame: 0x21_0000, from: 0))
        _ = nodes[2].handle(.replica(id: 9, vm: 1, page: 0x8000_5000, frame: 0x31_0000, from: 0))
        _ = nodes[3].handle(.thaw(id: 9, vm: 1, page: 0x8000_5000, from: 0))
        return nodes
    }

    @Test func aReplicationFreezesRecallsGatesAndSendsEachTargetItsCopy() {
        var home = SM(node: 0), target = SM(node: 1), other = SM(node: 3)
        let start = home.handle(.command(replicate, oldFrame: 0x1000, others: [1, 2, 3]))
        #expect(start.first == .freeze(vm: 1, page: 0x8000_5000))
        #expect(sends(start).map(\.0) == [1, 2, 3])
        for n in 1...3 { _ = home.handle(.frozen(id: 9, from: n)) }
        #expect(home.handle(.drained(id: 9)) == [.recall(id: 9, frame: 0x1000, keepShared: true)])
        // Every line home: gate the page, a copy to each target, thaw the rest.
        let done = home.handle(.linesHome(id: 9))
        #expect(done == [.gate(frame: 0x1000),
                         .sendReplica(id: 9, vm: 1, page: 0x8000_5000, frame: 0x1000, to: 1, toFrame: 0x21_0000),
                         .sendReplica(id: 9, vm: 1, page: 0x8000_5000, frame: 0x1000, to: 2, toFrame: 0x31_0000),
                         .send(.pageThaw(id: 9, vm: 1, guestPage: 0x8000_5000), to: 3),
                         .thaw(vm: 1, page: 0x8000_5000),
                         .done(id: 9, ok: true, detail: "")])
        #expect(home.moves.isEmpty)
        #expect(home.replicated[.init(vm: 1, page: 0x8000_5000)]?.holders == [1: 0x21_0000, 2: 0x31_0000])
        // A target installs its copy; a node without one just thaws.
        _ = target.handle(.freeze(id: 9, vm: 1, page: 0x8000_5000, from: 0))
        _ = target.handle(.drained(id: 9))
        #expect(target.handle(.replica(id: 9, vm: 1, page: 0x8000_5000, frame: 0x21_0000, from: 0))
                == [.installReplica(vm: 1, page: 0x8000_5000, frame: 0x21_0000)])
        _ = other.handle(.freeze(id: 9, vm: 1, page: 0x8000_5000, from: 0))
        _ = other.handle(.drained(id: 9))
        #expect(other.handle(.thaw(id: 9, vm: 1, page: 0x8000_5000, from: 1)).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(other.handle(.thaw(id: 9, vm: 1, page: 0x8000_5000, from: 0)) == [.thaw(vm: 1, page: 0x8000_5000)])
        #expect(target.moves.isEmpty && other.moves.isEmpty)
    }

    @Test func aWriteCollapsesEveryReplicaBeforeTheGateLifts() {
        var nodes = replicated()
        let start = nodes[0].handle(.writeWanted(vm: 1, page: 0x8000_5000))
        #expect(sends(start).map(\.0) == [1, 2])
        guard case .pageCollapse(let id, 1, 0x8000_5000)? = sends(start).first?.1 else { Issue.record("\(start)"); return }
        // More writes while it collapses start nothing new.
        #expect(nodes[0].handle(.writeWanted(vm: 1, page: 0x8000_5000)).isEmpty)
        // Each holder drops its copy and answers, even when its own write dropped it first.
        #expect(nodes[1].handle(.collapse(id: id, vm: 1, page: 0x8000_5000, from: 0))
                == [.dropReplica(vm: 1, page: 0x8000_5000), .send(.pageCollapsed(id: id), to: 0)])
        // An answer from a node without a replica changes nothing; the gate stays until the last.
        #expect(nodes[0].handle(.collapsed(id: id, from: 3)).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(nodes[0].handle(.collapsed(id: id, from: 1)).isEmpty)
        #expect(nodes[0].handle(.collapsed(id: id, from: 1)).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(nodes[0].handle(.collapsed(id: id, from: 2))
                == [.ungate(frame: 0x1000), .report(.pageReplicasDropped(vm: 1, guestPage: 0x8000_5000, nodes: [1, 2]))])
        #expect(nodes[0].replicated.isEmpty)
        // A write wanted on a page that is not replicated (any more) does nothing.
        #expect(nodes[0].handle(.writeWanted(vm: 1, page: 0x8000_5000)).isEmpty)
    }

    @Test func replicasAddedToAReplicatedPageNeedNoFreezeAndOthersAreRefused() {
        var nodes = replicated()
        let more = PageCommand(id: 10, kind: .replicate, vm: 1, guestPage: 0x8000_5000, targets: [PageTarget(node: 3, frame: 0x41_0000)])
        #expect(nodes[0].handle(.command(more, oldFrame: 0x1000, others: [1, 2, 3]))
                == [.sendReplica(id: 10, vm: 1, page: 0x8000_5000, frame: 0x1000, to: 3, toFrame: 0x41_0000), .done(id: 10, ok: true, detail: "")])
        #expect(nodes[3].handle(.replica(id: 10, vm: 1, page: 0x8000_5000, frame: 0x41_0000, from: 0))
                == [.installReplica(vm: 1, page: 0x8000_5000, frame: 0x41_0000)])
        func refused(_ ds: [SM.Directive]) -> Bool { ds.count == 1 && { if case .done(_, false, _) = ds[0] { true } else { false } }() }
        // A holder again, a migration of the replicated page, a replica while collapsing.
        #expect(refused(nodes[0].handle(.command(more, oldFrame: 0x1000, others: [1, 2, 3]))))
        #expect(refused(nodes[0].handle(.command(PageCommand(id: 11, kind: .migrate, vm: 1, guestPage: 0x8000_5000,
                                                             targets: [PageTarget(node: 1, frame: 0x5000)]), oldFrame: 0x1000, others: [1, 2, 3]))))
        _ = nodes[0].handle(.writeWanted(vm: 1, page: 0x8000_5000))
        let late = PageCommand(id: 12, kind: .replicate, vm: 1, guestPage: 0x8000_5000, targets: [PageTarget(node: 4, frame: 0x51_0000)])
        #expect(refused(nodes[0].handle(.command(late, oldFrame: 0x1000, others: [1, 2, 3, 4]))))
        // The VM going away lifts the gate.
        #expect(nodes[0].handle(.dropVM(1)) == [.ungate(frame: 0x1000)])
        #expect(nodes[0].replicated.isEmpty)
    }
}
