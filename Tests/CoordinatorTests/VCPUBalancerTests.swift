import Cluster
import Testing
@testable import Coordinator

/// The balancing policy alone: when it moves a VCPU, where to, and that it never
/// moves one back and forth.
@Suite struct VCPUBalancerTests {
    typealias B = VCPUBalancer
    static let s: UInt64 = 1_000_000_000

    func placed(_ vm: UInt32, _ nodes: [NodeID], allowed: Set<NodeID>) -> [B.Placed] {
        nodes.enumerated().map { B.Placed(vcpu: .init(vm: vm, vcpu: $0.offset), node: $0.element, allowed: allowed) }
    }

    @Test func anOverloadedNodeGivesAVCPUToAFreeNodeOfTheVMAfterSettling() {
        var b = B()
        let cpus: [NodeID: Int] = [0: 2, 1: 2]
        var vcpus = placed(1, [0, 0, 0, 1], allowed: [0, 1])
        // Node 0 runs 3 VCPUs on 2 CPUs; node 1 has a CPU free. Not before `settle`.
        #expect(b.evaluate(now: 0, cpus: cpus, vcpus: vcpus, moving: false) == nil)
        #expect(b.evaluate(now: 1 * Self.s, cpus: cpus, vcpus: vcpus, moving: false) == nil)
        // Another move under way: wait.
        #expect(b.evaluate(now: 2 * Self.s, cpus: cpus, vcpus: vcpus, moving: true) == nil)
        let move = b.evaluate(now: 2 * Self.s, cpus: cpus, vcpus: vcpus, moving: false)
        // The highest VCPU leaves (VCPU 0 stays with the devices).
        #expect(move == B.Move(vcpu: .init(vm: 1, vcpu: 2), from: 0, to: 1))
        vcpus[2].node = 1
        // Balanced now (2 and 2): nothing moves again, however long it runs.
        for t in 3...100 { #expect(b.evaluate(now: UInt64(t) * Self.s, cpus: cpus, vcpus: vcpus, moving: false) == nil) }
    }

    /// Only busy VCPUs load a node: 3 VCPUs on 2 CPUs of which one idles is no overload;
    /// a node whose VCPUs idle has CPUs to give; an idle VCPU is never the one that moves.
    @Test func idleVCPUsLoadNoCPU() {
        var b = B()
        var idleOne = placed(1, [0, 0, 0, 1], allowed: [0, 1])
        idleOne[1].busy = false
        for t in 0...10 { #expect(b.evaluate(now: UInt64(t) * Self.s, cpus: [0: 2, 1: 2], vcpus: idleOne, moving: false) == nil) }
        // Node 0: 3 busy VCPUs on 2 CPUs; node 1: 2 CPUs and 2 VCPUs, both idle. VCPU 4
        // (the highest) idles too, so VCPU 2 is the one that goes.
        var c = B()
        var vcpus = placed(2, [0, 0, 0, 1, 1], allowed: [0, 1]) + [B.Placed(vcpu: .init(vm: 2, vcpu: 5), node: 0, allowed: [0, 1], busy: false)]
        vcpus[3].busy = false
        vcpus[4].busy = false
        _ = c.evaluate(now: 0, cpus: [0: 2, 1: 2], vcpus: vcpus, moving: false)
        #expect(c.evaluate(now: 2 * Self.s, cpus: [0: 2, 1: 2], vcpus: vcpus, moving: false)
                == B.Move(vcpu: .init(vm: 2, vcpu: 2), from: 0, to: 1))
    }

    /// Busy means at least half the fair share of a CPU the node's time slicing gives.
    @Test func busyIsHalfTheFairShare() {
        #expect(B.isBusy(share: 0.9, cpus: 2, placed: 2))
        #expect(!B.isBusy(share: 0.02, cpus: 2, placed: 2))
        #expect(!B.isBusy(share: 0.45, cpus: 2, placed: 2))
        // 3 VCPUs time-sharing 2 CPUs get 2/3 each at most: a third is half of it.
        #expect(B.isBusy(share: 0.34, cpus: 2, placed: 3) && !B.isBusy(share: 0.3, cpus: 2, placed: 3))
        // 4 on 1 CPU: a quarter at most.
        #expect(B.isBusy(share: 0.2, cpus: 1, placed: 4) && !B.isBusy(share: 0.1, cpus: 1, placed: 4))
    }

    @Test func noMoveWithoutAFreeCPUOrOutsideTheVMsNodes() {
        var b = B()
        // Both nodes overloaded: moving would only move the overload.
        let full = placed(1, [0, 0, 0, 1, 1, 1], allowed: [0, 1])
        for t in 0...10 { #expect(b.evaluate(now: UInt64(t) * Self.s, cpus: [0: 2, 1: 2], vcpus: full, moving: false) == nil) }
        // Node 2 is free but takes no part in the VM.
        let elsewhere = placed(2, [0, 0, 0], allowed: [0])
        for t in 0...10 { #expect(b.evaluate(now: UInt64(t) * Self.s, cpus: [0: 2, 2: 4], vcpus: elsewhere, moving: false) == nil) }
        // A target that would be overloaded by the move is no target.
        var c = B()
        let tight = placed(3, [0, 0, 0, 1], allowed: [0, 1])
        for t in 0...10 { #expect(c.evaluate(now: UInt64(t) * Self.s, cpus: [0: 2, 1: 1], vcpus: tight, moving: false) == nil) }
    }

    @Test func offMeansNoMoves() {
        var b = B(parameters: .init(enabled: false))
        let vcpus = placed(1, [0, 0, 0, 0], allowed: [0, 1])
        for t in 0...10 { #expect(b.evaluate(now: UInt64(t) * Self.s, cpus: [0: 1, 1: 4], vcpus: vcpus, moving: false) == nil) }
    }

    /// Hysteresis: one move per interval, the overload must settle again after a move,
    /// and a VCPU that moved stays for its cooldown even when the load says otherwise.
    @Test func movesAreSpacedAndAMovedVCPUStaysPut() {
        var b = B(parameters: .init(interval: 1 * Self.s, settle: 2 * Self.s, cooldown: 30 * Self.s))
        let cpus: [NodeID: Int] = [0: 1, 1: 3]
        var vcpus = placed(1, [0, 0, 0, 0], allowed: [0, 1])
        _ = b.evaluate(now: 0, cpus: cpus, vcpus: vcpus, moving: false)
        let first = b.evaluate(now: 2 * Self.s, cpus: cpus, vcpus: vcpus, moving: false)
        #expect(first == B.Move(vcpu: .init(vm: 1, vcpu: 3), from: 0, to: 1))
        vcpus[3].node = 1
        // Still 3 VCPUs on node 0's one CPU, but its overload must last `settle` again.
        #expect(b.evaluate(now: 3 * Self.s, cpus: cpus, vcpus: vcpus, moving: false) == nil)
        let second = b.evaluate(now: 4 * Self.s, cpus: cpus, vcpus: vcpus, moving: false)
        #expect(second == B.Move(vcpu: .init(vm: 1, vcpu: 2), from: 0, to: 1))
        vcpus[2].node = 1
        // The CPUs change (say the nodes were restarted with other --cpus): node 1 is
        // overloaded now, but VCPUs 2 and 3 moved lately and stay for their cooldown.
        let shrunk: [NodeID: Int] = [0: 3, 1: 1]
        #expect(b.evaluate(now: 6 * Self.s, cpus: shrunk, vcpus: vcpus, moving: false) == nil)
        #expect(b.evaluate(now: 20 * Self.s, cpus: shrunk, vcpus: vcpus, moving: false) == nil)
        // After the cooldown, VCPU 3 may go back to node 0's free CPU.
        #expect(b.evaluate(now: 33 * Self.s, cpus: shrunk, vcpus: vcpus, moving: false) == B.Move(vcpu: .init(vm: 1, vcpu: 3), from: 1, to: 0))
    }

    @Test func aCommandedMoveCountsForTheIntervalAndCooldown() {
        var b = B()
        let vcpus = placed(1, [0, 0, 0], allowed: [0, 1])
        _ = b.evaluate(now: 0, cpus: [0: 2, 1: 2], vcpus: vcpus, moving: false)
        b.moved(.init(vm: 1, vcpu: 2), now: 2 * Self.s)
        #expect(b.evaluate(now: 2 * Self.s + 1, cpus: [0: 2, 1: 2], vcpus: vcpus, moving: false) == nil)
        // VCPU 2 is cooling down: VCPU 1 goes instead.
        #expect(b.evaluate(now: 4 * Self.s, cpus: [0: 2, 1: 2], vcpus: vcpus, moving: false)?.vcpu == .init(vm: 1, vcpu: 1))
    }
}
