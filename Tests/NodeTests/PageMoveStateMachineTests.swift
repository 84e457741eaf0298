import Cluster
import Node
import Protocol
import Testing

/// The node's part in a page move, driven without I/O: three nodes' state machines
/// exchange their `send` directives; the tests play the runtime (drain, recall).
@Suite struct PageMoveStateMachineTests {
    typealias SM = PageMoveStateMachine
    let command = PageCommand(id: 7, kind: .migrate, vm: 1, guestPage: 0x8000_3000, targetNode: 1, frame: 0x20_0000)

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
        #expect(home.handle(.frozen(id: 7, from: 2)) == [.recall(id: 7, frame: 0x1000)])
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
        #expect(home.handle(.command(PageCommand(id: 1, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targetNode: 0, frame: 0),
                                     oldFrame: 0, others: [1])).map { if case .done(_, let ok, _) = $0 { ok } else { true } } == [false])
        #expect(home.handle(.command(PageCommand(id: 2, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targetNode: 5, frame: 0),
                                     oldFrame: 0, others: [1])).count == 1)
        // Replicas are not carried out by this machine.
        #expect(home.handle(.command(PageCommand(id: 3, kind: .replicate, vm: 1, guestPage: 0x8000_0000, targetNode: 1, frame: 0),
                                     oldFrame: 0, others: [1])).count == 1)
        // A second move of a page under way.
        _ = home.handle(.command(PageCommand(id: 4, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targetNode: 1, frame: 0x5000),
                                 oldFrame: 0x1000, others: [1]))
        let again = home.handle(.command(PageCommand(id: 5, kind: .migrate, vm: 1, guestPage: 0x8000_0000, targetNode: 1, frame: 0x6000),
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
}
