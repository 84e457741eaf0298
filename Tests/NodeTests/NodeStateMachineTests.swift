import Cluster
import Protocol
import Testing
import Transport
@testable import Node

/// A node's membership and VM bookkeeping, event by event: joining, heartbeats at the
/// coordinator's interval, clock offsets, peer connections, each VM's lifecycle.
@Suite struct NodeStateMachineTests {
    typealias SM = NodeStateMachine
    static let ms: UInt64 = 1_000_000

    func joined(_ id: Int32 = 1, heartbeatMillis: UInt32 = 200, now: UInt64 = 0) -> SM {
        var sm = SM(heartbeatMillis: 500)
        _ = sm.handle(.fromCoordinator(.joinAccepted(JoinAccepted(nodeID: id, memoryBase: 0x1_0000_0000, memoryBytes: 64 << 20,
                                                                  heartbeatMillis: heartbeatMillis))), now: now)
        return sm
    }

    func coordinatorMessages(_ ds: [SM.Directive]) -> [Message] {
        ds.compactMap { if case .sendCoordinator(let m) = $0 { return m } else { return nil } }
    }

    func placement(vm: UInt32 = 5, nodes: [Int32] = [0, 1, 2]) -> VMPlacement {
        VMPlacement(vm: vm, spec: "name: t\nvcpus: \(nodes.count)\nmemory: 1M\nbios: none\nkernel: /k\n",
                    vcpuNodes: nodes, deviceNode: nodes[0], chunkPages: 1,
                    chunks: (0..<256).map { MemoryChunk(node: nodes[$0 % nodes.count], frameBase: UInt64($0) << 12) },
                    nodes: nodes.map { NodeAddress(nodeID: $0, listenAddress: "unix:/tmp/n\($0)", memoryBase: 0, memoryBytes: 1 << 20) },
                    epochNanos: 0, lineSize: 128)
    }

    @Test func heartbeatsFollowTheIntervalTheCoordinatorNamed() {
        // Configured for 500 ms, told 200 ms at join: heartbeats must come every 200 ms,
        // or a coordinator that declares nodes dead after 6 × 200 ms would kill a well node.
        var sm = joined(heartbeatMillis: 200)
        #expect(sm.heartbeatNanos == 200 * Self.ms)
        var beats: [UInt64] = []
        for t in stride(from: UInt64(0), through: 1000 * Self.ms, by: UInt64.Stride(10 * Self.ms)) {
            for case .heartbeat(_, let at) in coordinatorMessages(sm.handle(.tick, now: t)) { beats.append(at / Self.ms) }
        }
        #expect(beats == [0, 200, 400, 600, 800, 1000])
    }

    @Test func noHeartbeatBeforeJoiningAndStatsEveryFourth() {
        var sm = SM()
        #expect(sm.handle(.tick, now: 10 * Self.ms).isEmpty)
        sm = joined(heartbeatMillis: 100)
        var reports = 0
        for i in 0..<8 { reports += sm.handle(.tick, now: UInt64(i) * 100 * Self.ms).filter { $0 == .reportStats }.count }
        #expect(reports == 2)
    }

    @Test func joinRejectedAndLostCoordinatorStopTheNode() {
        var sm = SM()
        #expect(sm.handle(.fromCoordinator(.joinRejected(reason: "full")), now: 0).contains(.stop(reason: "the coordinator refused to admit this node: full")))
        #expect(sm.handle(.tick, now: 0).isEmpty)  // stopped: nothing more
        var other = joined()
        #expect(other.handle(.coordinatorLost(reason: "EOF"), now: 0).contains(.stop(reason: "lost the coordinator: EOF")))
    }

    @Test func timeSyncAdoptsTheOffsetOfTheBestRoundTrip() {
        var sm = joined()
        // Sent at 1000, answered at 3000: the coordinator stamped 10_000 ns (100 ticks) at the midpoint 2000.
        let ds = sm.handle(.fromCoordinator(.timeSync(mtime: 100, sentAtNanos: 1000)), now: 3000)
        #expect(ds == [.setClockOffset(8000)])
    }

    @Test func vmLifecycleLoadReleaseExit() {
        var sm = joined(1)
        let start = sm.handle(.fromCoordinator(.vmStart(placement())), now: 0)
        guard case .startVM(let p, let spec)? = start.first else { Issue.record("\(start)"); return }
        #expect(p.vm == 5 && spec.vcpus == 3)
        // Only the higher id is dialled (node 2); node 0 dials us.
        #expect(start.contains(.dial(2, .unix(path: "/tmp/n2"))))
        #expect(!start.contains(.dial(0, .unix(path: "/tmp/n0"))))
        // Released only after it loaded.
        #expect(sm.handle(.fromCoordinator(.vmStatus(vm: 5, state: .running, exit: nil, detail: "")), now: 0).isEmpty)
        #expect(coordinatorMessages(sm.handle(.vmLoaded(5), now: 0)) == [.vmStatus(vm: 5, state: .starting, exit: nil, detail: "loaded")])
        #expect(sm.handle(.fromCoordinator(.vmStatus(vm: 5, state: .running, exit: nil, detail: "")), now: 0) == [.releaseVM(5)])
        #expect(sm.handle(.fromCoordinator(.console(vm: 5, bytes: [1])), now: 0) == [.consoleInput(5, [1])])
        let exit = sm.handle(.vmExited(5, .fail(code: 2)), now: 0)
        #expect(exit.contains(.dropVM(5, reason: "finished: fail(code: 2)")))
        #expect(coordinatorMessages(exit) == [.vmStatus(vm: 5, state: .stopped, exit: .fail(code: 2), detail: "fail 2")])
        #expect(sm.isFinished(5))
        // Late traffic for it is ignored; a second exit is not reported twice.
        #expect(sm.handle(.vmExited(5, .pass), now: 0).isEmpty)
        #expect(sm.handle(.fromCoordinator(.console(vm: 5, bytes: [1])), now: 0).isEmpty)
        #expect(!sm.handle(.fromCoordinator(.vmStart(placement())), now: 0).contains { if case .startVM = $0 { return true } else { return false } })
    }

    @Test func aVMThatCannotLoadIsReportedFailedAndDropped() {
        var sm = joined(1)
        _ = sm.handle(.fromCoordinator(.vmStart(placement())), now: 0)
        let ds = sm.handle(.vmLoadFailed(5, reason: "no such file"), now: 0)
        #expect(ds.contains(.dropVM(5, reason: "no such file")))
        #expect(coordinatorMessages(ds) == [.vmStatus(vm: 5, state: .failed, exit: nil, detail: "node 1: no such file")])
        var bad = joined(1)
        var p = placement()
        p.spec = "vcpus: [1"
        let parsed = bad.handle(.fromCoordinator(.vmStart(p)), now: 0)
        #expect(coordinatorMessages(parsed).count == 1)
        #expect(bad.isFinished(5))
    }

    @Test func vmStopDropsTheVM() {
        var sm = joined(0)
        _ = sm.handle(.fromCoordinator(.vmStart(placement())), now: 0)
        _ = sm.handle(.vmLoaded(5), now: 0)
        let stop = sm.handle(.fromCoordinator(.vmStop(vm: 5, reason: "node 2 died")), now: 0)
        // Dropped first, then said so.
        #expect(stop.suffix(2) == [.dropVM(5, reason: "node 2 died"), .sendCoordinator(.vmDropped(vm: 5))])
        #expect(sm.vms.isEmpty)
        // A VM this node never ran (or already forgot) is answered too.
        #expect(sm.handle(.fromCoordinator(.vmStop(vm: 9, reason: "x")), now: 0) == [.sendCoordinator(.vmDropped(vm: 9))])
        // Scrubbing its frames comes only for a VM that is gone here.
        #expect(sm.handle(.fromCoordinator(.scrubFrames(vm: 5, base: 0x1000, bytes: 4096)), now: 0) == [.scrubFrames(5, base: 0x1000, bytes: 4096)])
        #expect(sm.handle(.framesScrubbed(5, base: 0x1000, bytes: 4096), now: 0) == [.sendCoordinator(.framesScrubbed(vm: 5, base: 0x1000, bytes: 4096))])
        _ = sm.handle(.fromCoordinator(.vmStart(placement(vm: 6))), now: 0)
        #expect(!sm.handle(.fromCoordinator(.scrubFrames(vm: 6, base: 0x1000, bytes: 4096)), now: 0).contains(.scrubFrames(6, base: 0x1000, bytes: 4096)))
    }

    @Test func messagesForAPeerWaitUntilItConnects() {
        var sm = joined(0)
        let c = ConnectionID(rawValue: 9)
        #expect(sm.connection(toNode: 1) == nil)
        sm.hold(.invalidate(line: 128), forNode: 1)
        sm.hold(.invalidate(line: 256), forNode: 1)
        let ds = sm.handle(.peerConnected(c, node: 1), now: 0)
        #expect(ds.filter { if case .send = $0 { return true } else { return false } } ==
                [.send(.invalidate(line: 128), on: c), .send(.invalidate(line: 256), on: c)])
        #expect(sm.connection(toNode: 1) == c && sm.node(of: c) == 1)
        _ = sm.handle(.peerLost(c, reason: "reset"), now: 0)
        #expect(sm.connection(toNode: 1) == nil && sm.node(of: c) == nil)
    }
}

@Suite struct VCPUSchedulerTests {
    typealias S = VCPUScheduler
    func v(_ vm: UInt32, _ i: Int) -> S.VCPU { .init(vm: vm, index: i) }

    @Test func roundRobinOverEveryReleasedVCPU() {
        var s = S()
        s.add(vm: 1, count: 2)
        s.add(vm: 2, count: 1)
        let picks = (0..<6).compactMap { _ in s.next(hasWakeUp: { _ in false }) }
        #expect(picks == [v(1, 0), v(1, 1), v(2, 0), v(1, 0), v(1, 1), v(2, 0)])
    }

    @Test func parkedAndWaitingVCPUsAreSkippedUntilWokenOrInterrupted() {
        var s = S()
        s.add(vm: 1, count: 2)
        s.ran(v(1, 0), .parked)
        s.ran(v(1, 1), .waitingForInterrupt)
        #expect(s.next(hasWakeUp: { _ in false }) == nil)
        #expect(s.next(hasWakeUp: { $0 == self.v(1, 1) }) == v(1, 1))
        s.wake(v(1, 0))
        #expect(s.takeWoken() == [v(1, 0)])
        #expect(s.takeWoken().isEmpty)
        #expect(s.states[v(1, 0)] == .runnable)
        // Waking a VCPU that is not parked changes nothing.
        s.wake(v(1, 1))
        #expect(s.takeWoken().isEmpty)
    }

    @Test func onlyVCPUsATimerCouldRunWakeAnIdleNode() {
        var s = S()
        s.add(vm: 1, count: 5)
        s.ran(v(1, 0), .parked)
        s.ran(v(1, 1), .waitingForInterrupt)
        s.ran(v(1, 2), .spinning, now: 0)
        s.hold(v(1, 3))
        #expect((0..<5).map { s.wakesOnTimer(v(1, $0)) } == [false, true, true, false, true])
        #expect(!s.wakesOnTimer(v(2, 0)))  // not placed here
        s.wake(v(1, 0))  // its line arrived
        #expect(s.wakesOnTimer(v(1, 0)))
    }

    /// An interrupt that is pending but masked cannot change what a VCPU spins on:
    /// it waits for its park to end, not for that interrupt (which would make it probe
    /// over and over); a takeable one ends the park.
    @Test func aSpinningVCPUIgnoresAMaskedInterrupt() {
        var s = S(spinPark: 1000, spinNotice: 10)
        s.add(vm: 1, count: 1)
        s.ran(v(1, 0), .spinning, now: 100)
        let pending: (S.VCPU) -> Bool = { _ in true }
        #expect(s.next(now: 200, hasWakeUp: pending, hasTakeable: { _ in false }) == nil)
        #expect(s.next(now: 200, hasWakeUp: pending, hasTakeable: { _ in true }) == v(1, 0))
        s.ran(v(1, 0), .spinning, now: 300)
        #expect(s.next(now: 1300, hasWakeUp: pending, hasTakeable: { _ in false }) == v(1, 0))
    }

    @Test func aSpinningVCPUWaitsForAReasonToLookAgain() {
        var s = S(spinPark: 1000, spinNotice: 10)
        s.add(vm: 1, count: 2)
        let none: (S.VCPU) -> Bool = { _ in false }
        // VCPU 1 spins: while VCPU 0 spins too nothing runs, until the park ends.
        s.ran(v(1, 1), .spinning, now: 100)
        s.ran(v(1, 0), .spinning, now: 200)
        #expect(s.states[v(1, 1)] == .spinning)
        #expect(s.next(now: 500, hasWakeUp: none) == nil)
        #expect(s.nextSpinDeadline == 1100)
        #expect(s.next(now: 1100, hasWakeUp: none) == v(1, 1))
        #expect(s.isProbing(v(1, 1)) && !s.isProbing(v(1, 0)))
        s.ran(v(1, 1), .spinning, now: 1100)
        #expect(!s.isProbing(v(1, 1)))
        // A pending interrupt ends a park.
        #expect(s.next(now: 1150, hasWakeUp: { $0 == self.v(1, 0) }) == v(1, 0))
        // A slice that did work: every spinner looks again soon (it may have written
        // what they poll).
        s.ran(v(1, 0), .budgetExhausted, now: 1200)
        #expect(s.nextSpinDeadline == 1210)
        #expect(s.next(now: 1205, hasWakeUp: none) == v(1, 0))
        s.ran(v(1, 0), .waitingForInterrupt, now: 1206)
        #expect(s.next(now: 1207, hasWakeUp: none) == nil)
        #expect(s.next(now: 1210, hasWakeUp: none) == v(1, 1) && s.isProbing(v(1, 1)))
        // So does a message (the runtime calls wakeSpinners); many messages, one look.
        s.ran(v(1, 1), .spinning, now: 1300)
        for t in UInt64(1301)...1309 { s.wakeSpinners(now: t) }
        #expect(s.nextSpinDeadline == 1311)
        #expect(s.next(now: 1311, hasWakeUp: none) == v(1, 1) && s.states[v(1, 1)] == .runnable)
        // A probe that finds the VCPU working ends its probing.
        s.ran(v(1, 1), .budgetExhausted, now: 1400)
        #expect(!s.isProbing(v(1, 1)))
        s.remove(vm: 1)
        #expect(s.nextSpinDeadline == nil && s.next(now: .max, hasWakeUp: { _ in true }) == nil)
    }

    @Test func aRemovedVMsVCPUsAreNeverPickedAgain() {
        // The old loop iterated over a copy of the node's VMs while handling messages
        // between slices, so a VM stopped meanwhile still ran a slice.
        var s = S()
        s.add(vm: 1, count: 2)
        s.add(vm: 2, count: 2)
        s.add(vm: 3, count: 1)
        #expect(s.next(hasWakeUp: { _ in true }) == v(1, 0))
        #expect(s.next(hasWakeUp: { _ in true }) == v(1, 1))
        s.ran(v(2, 0), .parked)
        s.wake(v(2, 0))
        s.remove(vm: 2)
        s.ran(v(2, 1), .budgetExhausted)  // a slice that was running when it went
        #expect(s.takeWoken().isEmpty)
        let picks = (0..<6).compactMap { _ in s.next(hasWakeUp: { _ in true }) }
        #expect(picks == [v(3, 0), v(1, 0), v(1, 1), v(3, 0), v(1, 0), v(1, 1)])
        s.remove(vm: 1)
        s.remove(vm: 3)
        #expect(s.isEmpty && s.next(hasWakeUp: { _ in true }) == nil)
    }

    /// Fairness is per VM: a VM with three busy VCPUs and one with one get the node
    /// half each (not three quarters and one quarter), measured by what the slices cost.
    @Test func busyVMsShareTheNodeEquallyWhateverTheirVCPUCount() {
        var s = S()
        s.add(vm: 1, count: 3)
        s.add(vm: 2, count: 1)
        var ran: [UInt32: UInt64] = [:]
        for _ in 0..<4000 {
            guard let p = s.next(hasWakeUp: { _ in false }) else { break }
            s.charge(p, nanos: 1000, instructions: 2000)
            s.ran(p, .budgetExhausted)
            ran[p.vm, default: 0] += 1000
        }
        #expect(ran[1] == 2_000_000 && ran[2] == 2_000_000, "\(ran)")
        // Within VM 1 its VCPUs took turns: each ran a third of its share.
        for i in 0..<3 {
            #expect(s.accounts[v(1, i)]?.runNanos == 666_000 || s.accounts[v(1, i)]?.runNanos == 667_000,
                    "\(String(describing: s.accounts[v(1, i)]))")
            #expect(s.accounts[v(1, i)]!.instructions == 2 * s.accounts[v(1, i)]!.runNanos)
        }
        #expect(s.accounts[v(2, 0)]?.slices == 2000)
    }

    /// Slices of different lengths: the VM charged less runs until it caught up.
    @Test func aVMWhoseSlicesCostMoreRunsLessOften() {
        var s = S()
        s.add(vm: 1, count: 1)
        s.add(vm: 2, count: 1)
        var picks: [UInt32: Int] = [:]
        for _ in 0..<300 {
            let p = s.next(hasWakeUp: { _ in false })!
            s.charge(p, nanos: p.vm == 1 ? 3000 : 1000, instructions: 1)
            s.ran(p, .budgetExhausted)
            picks[p.vm, default: 0] += 1
        }
        #expect(picks[1] == 75 && picks[2] == 225, "\(picks)")
        #expect(s.vmCharged[1]! - s.vmCharged[2]! <= 3000)
    }

    /// A VM that waited (WFI) does not bank the time it did not use: back, it is at most
    /// `catchUpNanos` behind, so the busy VM still gets the node after that.
    @Test func anIdleVMComesBackAtMostCatchUpBehind() {
        var s = S(catchUpNanos: 10_000)
        s.add(vm: 1, count: 1)
        s.add(vm: 2, count: 1)
        s.ran(v(2, 0), .waitingForInterrupt)
        for _ in 0..<100 {
            let p = s.next(hasWakeUp: { _ in false })!
            #expect(p == v(1, 0))
            s.charge(p, nanos: 1000, instructions: 1)
            s.ran(p, .budgetExhausted)
        }
        // VM 2's interrupt arrives: it runs first, but only for catchUpNanos' worth.
        var picks: [S.VCPU] = []
        for _ in 0..<20 {
            let p = s.next(hasWakeUp: { _ in true })!
            picks.append(p)
            s.charge(p, nanos: 1000, instructions: 1)
            s.ran(p, .budgetExhausted)
        }
        #expect(picks.prefix(10).allSatisfy { $0 == v(2, 0) }, "\(picks)")
        #expect(picks.suffix(10).filter { $0 == v(1, 0) }.count == 5, "\(picks)")
    }

    /// A VCPU held for a move is never picked; removing VCPUs (they left) keeps the
    /// others' turns; one that arrives joins them; a VM that arrives starts even with the others.
    @Test func heldVCPUsAreSkippedAndMovedOnesLeaveAndJoin() {
        var s = S()
        s.add(vm: 1, count: 3)
        s.hold(v(1, 1))
        #expect(s.states[v(1, 1)] == .held)
        s.ran(v(1, 1), .budgetExhausted)  // a slice that ended as the hold came: still held
        #expect(s.states[v(1, 1)] == .held)
        let picks = (0..<4).compactMap { _ in s.next(hasWakeUp: { _ in true }) }
        #expect(picks == [v(1, 0), v(1, 2), v(1, 0), v(1, 2)])
        s.charge(v(1, 0), nanos: 500, instructions: 1)
        s.remove(v(1, 0))
        s.remove(v(1, 1))  // it left
        #expect(s.accounts[v(1, 0)] == nil && s.states[v(1, 0)] == nil && s.states[v(1, 1)] == nil)
        s.add(vm: 1, harts: [7])
        let next = (0..<4).compactMap { _ in s.next(hasWakeUp: { _ in true }) }
        #expect(next == [v(1, 2), v(1, 7), v(1, 2), v(1, 7)], "\(next)")
        s.add(vm: 2, harts: [0])
        #expect(s.vmCharged[2] == s.vmCharged[1])
    }
}
