import Cluster
import Protocol
import Testing
import Transport
@testable import Coordinator

/// The coordinator's transitions, event by event, with no sockets and no clock:
/// joins, VM creation and placement, readiness, guest exits, stops, node deaths.
@Suite struct CoordinatorStateMachineTests {
    typealias SM = CoordinatorStateMachine
    static let ms: UInt64 = 1_000_000
    let client = ConnectionID(rawValue: 100)

    func node(_ i: Int) -> ConnectionID { ConnectionID(rawValue: UInt64(i + 1)) }

    func hello(_ i: Int, cpus: UInt16 = 2, memory: UInt64 = 256 << 20) -> Hello {
        Hello(role: .node, nodeID: -1, nonce: [], cpus: cpus, memoryBytes: memory, name: "n\(i)", listenAddress: "unix:/tmp/n\(i).sock")
    }

    /// A coordinator with `count` nodes joined and one client; VMs spread round-robin
    /// unless `strategy` says otherwise, so that most tests see VMs over several nodes.
    func cluster(_ count: Int, heartbeatMillis: UInt32 = 100, strategy: PlacementPolicy.Strategy = .roundRobin) -> SM {
        var sm = SM(configuration: .init(heartbeatMillis: heartbeatMillis, strategy: strategy))
        for i in 0..<count { _ = sm.handle(.connected(node(i), peer: hello(i)), now: 0) }
        _ = sm.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        return sm
    }

    func sent(_ ds: [SM.Directive], to c: ConnectionID) -> [Message] {
        ds.compactMap { if case .send(let m, c) = $0 { return m } else { return nil } }
    }

    let spec = "name: t\nvcpus: 2\nmemory: 16M\nbios: none\nkernel: /k.elf\nplacement: interleave\n"

    func create(_ sm: inout SM, spec: String? = nil, now: UInt64 = 0) -> (UInt32?, [SM.Directive]) {
        let ds = sm.handle(.received(client, .vmRequest(id: 7, request: .create(spec: spec ?? self.spec))), now: now)
        for m in sent(ds, to: client) {
            if case .vmResponse(7, true, let vm, _) = m { return (vm, ds) }
        }
        return (nil, ds)
    }

    @Test func joinIsAcceptedWithTheHeartbeatIntervalAndABadJoinIsRefusedAndClosed() {
        var sm = SM(configuration: .init(heartbeatMillis: 200))
        let ds = sm.handle(.connected(node(0), peer: hello(0)), now: 0)
        guard case .joinAccepted(let j)? = sent(ds, to: node(0)).first else { Issue.record("no joinAccepted: \(ds)"); return }
        #expect(j.nodeID == 0)
        #expect(j.heartbeatMillis == 200)
        #expect(j.memoryBytes == 256 << 20)
        let bad = sm.handle(.connected(node(1), peer: hello(0)), now: 0)  // the same name again
        #expect(sent(bad, to: node(1)) == [.joinRejected(reason: "a node named 'n0' is already a member")])
        #expect(bad.contains(.close(node(1))))
    }

    @Test func theBufferCacheIsTheTopOfEachSliceAndNoVMIsPlacedThere() throws {
        var sm = SM(configuration: .init(bufferCacheBytes: 200 << 20))  // more than half: capped at half
        let ds = sm.handle(.connected(node(0), peer: hello(0)), now: 0)
        guard case .joinAccepted(let j)? = sent(ds, to: node(0)).first else { Issue.record("no joinAccepted: \(ds)"); return }
        #expect(j.bufferCacheBytes == 128 << 20 && j.memoryBytes == 256 << 20)
        #expect(sm.freeBytes(of: 0) == 128 << 20)
        _ = sm.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        // A VM of 128 MiB fits below the cache; one more page does not.
        let (vm, _) = create(&sm, spec: "name: a\nvcpus: 1\nmemory: 128M\nbios: none\nkernel: /k.elf\n")
        #expect(vm != nil)
        #expect(sm.freeBytes(of: 0) == 0)
        let (refused, _) = create(&sm, spec: "name: b\nvcpus: 1\nmemory: 4K\nbios: none\nkernel: /k.elf\n")
        #expect(refused == nil)
    }

    @Test func createPlacesOverNodesWithPolicyChunksAndDistinctFrames() throws {
        var sm = cluster(2)
        let (vm, ds) = create(&sm)
        #expect(vm == 1)
        let starts = [0, 1].compactMap { i -> VMPlacement? in
            if case .vmStart(let p)? = sent(ds, to: node(i)).first { return p } else { return nil }
        }
        try #require(starts.count == 2)
        #expect(starts[0] == starts[1])
        let p = starts[0]
        #expect(p.vcpuNodes == [0, 1])
        #expect(p.deviceNode == 0)
        // 16 MiB in 4 KiB chunks (PlacementPolicy.chunkBytes), alternating over both nodes.
        #expect(p.chunkPages == 1)
        #expect(p.chunks.count == 4096)
        #expect(p.chunks.prefix(4).map(\.node) == [0, 1, 0, 1])
        #expect(Set(p.chunks.map(\.frameBase)).count == 4096)
        // A second VM gets frames after the first one's.
        let (vm2, ds2) = create(&sm)
        #expect(vm2 == 2)
        guard case .vmStart(let q)? = sent(ds2, to: node(0)).first else { Issue.record("no vmStart"); return }
        #expect(Set(q.chunks.map(\.frameBase)).isDisjoint(with: p.chunks.map(\.frameBase)))
    }

    @Test func compactPlacementKeepsEachVMOnOneNodeWhenItFits() throws {
        // Three 2-VCPU VMs on three nodes of 2 CPUs each: one node per VM, and the list says so.
        var sm = cluster(3, strategy: .compact)
        var homes: [[Int32]] = []
        for _ in 0..<3 {
            let (vm, ds) = create(&sm)
            guard case .vmStart(let p)? = ds.lazy.compactMap({ d -> Message? in
                if case .send(let m, _) = d, case .vmStart = m { return m } else { return nil }
            }).first else { Issue.record("no vmStart"); return }
            #expect(Set(p.vcpuNodes).count == 1 && Set(p.chunks.map(\.node)) == Set(p.vcpuNodes), "VM \(vm!): \(p.vcpuNodes)")
            homes.append(p.vcpuNodes)
        }
        #expect(Set(homes.map { $0[0] }) == [0, 1, 2])
        #expect(sm.listText.contains("vcpu_nodes: [0, 0], memory_nodes: {0: 16M}"), "\(sm.listText)")
        // A fourth finds no node with two free CPUs: it takes the least loaded ones, one VCPU each.
        let (_, ds) = create(&sm)
        guard case .vmStart(let p)? = ds.lazy.compactMap({ d -> Message? in
            if case .send(let m, _) = d, case .vmStart = m { return m } else { return nil }
        }).first else { Issue.record("no vmStart"); return }
        #expect(p.vcpuNodes.count == 2)
    }

    @Test func aVMRunsOnlyWhenEveryParticipantLoaded() {
        var sm = cluster(2)
        let (vm, _) = create(&sm)
        let first = sm.handle(.received(node(0), .vmStatus(vm: vm!, state: .starting, exit: nil, detail: "loaded")), now: 0)
        #expect(first.allSatisfy { if case .send = $0 { return false } else { return true } })
        #expect(sm.vms[vm!]?.state == .starting)
        let second = sm.handle(.received(node(1), .vmStatus(vm: vm!, state: .starting, exit: nil, detail: "loaded")), now: 0)
        let go = Message.vmStatus(vm: vm!, state: .running, exit: nil, detail: "")
        #expect(sent(second, to: node(0)) == [go])
        #expect(sent(second, to: node(1)) == [go])
        #expect(sent(second, to: client) == [go])
        #expect(sm.vms[vm!]?.state == .running)
    }

    @Test func theGuestsExitReachesTheClientTypedAndStopsEveryParticipant() {
        var sm = cluster(2)
        let (vm, _) = create(&sm)
        for i in 0..<2 { _ = sm.handle(.received(node(i), .vmStatus(vm: vm!, state: .starting, exit: nil, detail: "")), now: 0) }
        let ds = sm.handle(.received(node(0), .vmStatus(vm: vm!, state: .stopped, exit: .fail(code: 3), detail: "fail 3")), now: 0)
        #expect(sent(ds, to: client) == [.vmStatus(vm: vm!, state: .stopped, exit: .fail(code: 3), detail: "fail 3")])
        #expect(sent(ds, to: node(1)) == [.vmStop(vm: vm!, reason: "fail 3")])
        #expect(sm.vms[vm!]?.exit == .fail(code: 3))
        // A late status about a finished VM changes nothing.
        let late = sm.handle(.received(node(1), .vmStatus(vm: vm!, state: .failed, exit: nil, detail: "late")), now: 0)
        #expect(late.isEmpty)
        #expect(sm.vms[vm!]?.state == .stopped)
    }

    @Test func aNodeNotInTheVMCannotChangeIt() {
        var sm = cluster(3)
        let (vm, _) = create(&sm)  // VCPUs on nodes 0 and 1
        _ = sm.handle(.received(node(2), .vmStatus(vm: vm!, state: .stopped, exit: .pass, detail: "lie")), now: 0)
        #expect(sm.vms[vm!]?.state == .starting)
    }

    @Test func stopRequestAndUnknownStop() {
        var sm = cluster(1)
        let (vm, _) = create(&sm)
        let ds = sm.handle(.received(client, .vmRequest(id: 9, request: .stop(vm: vm!))), now: 0)
        #expect(sent(ds, to: node(0)) == [.vmStop(vm: vm!, reason: "stopped by request")])
        #expect(sent(ds, to: client).contains(.vmResponse(id: 9, ok: true, createdVM: nil, body: "stopped VM \(vm!)")))
        let again = sm.handle(.received(client, .vmRequest(id: 10, request: .stop(vm: vm!))), now: 0)
        #expect(sent(again, to: client) == [.vmResponse(id: 10, ok: false, createdVM: nil, body: "no running VM \(vm!)")])
    }

    @Test func badSpecsAreRefusedWithTheReason() {
        var sm = cluster(1)
        let ds = sm.handle(.received(client, .vmRequest(id: 1, request: .create(spec: "vcpus: 0\nbios: none\nkernel: /k"))), now: 0)
        guard case .vmResponse(1, false, nil, let body)? = sent(ds, to: client).first else { Issue.record("\(ds)"); return }
        #expect(body.contains("vcpus must be between 1 and 64"))
        var empty = SM()
        _ = empty.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        let none = empty.handle(.received(client, .vmRequest(id: 2, request: .create(spec: spec))), now: 0)
        #expect(sent(none, to: client) == [.vmResponse(id: 2, ok: false, createdVM: nil, body: "no live nodes to run the VM on")])
    }

    @Test func aNodeThatHeartbeatsLateButWithinTheAgreedIntervalsStaysAlive() {
        // Heartbeat every 100 ms; suspect after 3 silent intervals, dead after 6.
        var sm = cluster(2)
        var now: UInt64 = 0
        var log: [SM.Directive] = []
        // Node 1 heartbeats every 250 ms (2.5 intervals late each time), node 0 is silent.
        for _ in 0..<8 {
            for _ in 0..<5 {
                now += 50 * Self.ms
                log += sm.handle(.tick, now: now)
            }
            log += sm.handle(.received(node(1), .heartbeat(sequence: 0, sentAtNanos: 0)), now: now)
        }
        #expect(sm.membership.members[1]?.status == .alive)
        #expect(sm.membership.members[0]?.status == .dead)
        #expect(log.contains(.close(node(0))))
        #expect(!log.contains(.close(node(1))))
    }

    @Test func aDeadNodeFailsOnlyTheVMsThatUsedIt() {
        var sm = cluster(3)
        let (a, _) = create(&sm)                                            // nodes 0, 1
        let (b, _) = create(&sm, spec: spec.replacingOccurrences(of: "vcpus: 2", with: "vcpus: 1"))  // node 2 (least loaded)
        let ds = sm.handle(.disconnected(node(1), reason: "reset"), now: 0)
        #expect(sm.vms[a!]?.state == .failed)
        #expect(sm.vms[a!]?.detail.contains("node 1 died") == true)
        #expect(sm.vms[b!]?.state == .starting)
        #expect(sent(ds, to: node(0)) == [.vmStop(vm: a!, reason: sm.vms[a!]!.detail)])
        #expect(sent(ds, to: node(1)).isEmpty)
        #expect(sent(ds, to: client) == [.vmStatus(vm: a!, state: .failed, exit: nil, detail: sm.vms[a!]!.detail)])
    }

    @Test func framesComeBackOnceEveryNodeDroppedTheVMAndTheHomesScrubbedThem() throws {
        var sm = cluster(2)
        let (vm, ds) = create(&sm)
        guard case .vmStart(let p)? = sent(ds, to: node(0)).first else { Issue.record("no vmStart"); return }
        #expect(sm.nodesText.contains("free: 248M"))  // 8M of 256M on each node
        let runs = sm.vms[vm!]!.frameRuns
        #expect(runs.count == 2 && runs.values.allSatisfy { $0.count == 1 && $0[0].bytes == 8 << 20 })
        // Stopped: no scrub before both nodes dropped it.
        _ = sm.handle(.received(client, .vmRequest(id: 3, request: .stop(vm: vm!))), now: 0)
        // One node's drop is not enough.
        #expect(sm.handle(.received(node(0), .vmDropped(vm: vm!)), now: 0).isEmpty)
        let scrub = sm.handle(.received(node(1), .vmDropped(vm: vm!)), now: 0)
        let r0 = runs[0]![0], r1 = runs[1]![0]
        #expect(sent(scrub, to: node(0)) == [.scrubFrames(vm: vm!, base: r0.base, bytes: r0.bytes)])
        #expect(sent(scrub, to: node(1)) == [.scrubFrames(vm: vm!, base: r1.base, bytes: r1.bytes)])
        // A home that lies about what it scrubbed frees nothing.
        _ = sm.handle(.received(node(1), .framesScrubbed(vm: vm!, base: r0.base, bytes: r0.bytes)), now: 0)
        #expect(sm.vms[vm!]!.frameRuns.count == 2)
        _ = sm.handle(.received(node(0), .framesScrubbed(vm: vm!, base: r0.base, bytes: r0.bytes)), now: 0)
        _ = sm.handle(.received(node(1), .framesScrubbed(vm: vm!, base: r1.base, bytes: r1.bytes)), now: 0)
        #expect(sm.vms[vm!]!.frameRuns.isEmpty)
        #expect(sm.nodesText.components(separatedBy: "free: 256M").count - 1 == 2, "\(sm.nodesText)")
        // The next VM gets the same frames again.
        let (_, again) = create(&sm)
        guard case .vmStart(let q)? = sent(again, to: node(0)).first else { Issue.record("no vmStart"); return }
        #expect(Set(q.chunks.map(\.frameBase)) == Set(p.chunks.map(\.frameBase)))
    }

    @Test func aDeadNodeCountsAsDroppedButItsFramesAreNotScrubbed() {
        var sm = cluster(2)
        let (vm, _) = create(&sm)
        _ = sm.handle(.disconnected(node(1), reason: "gone"), now: 0)  // fails the VM
        let scrub = sm.handle(.received(node(0), .vmDropped(vm: vm!)), now: 0)
        #expect(sent(scrub, to: node(0)).count == 1)
        #expect(sent(scrub, to: node(1)).isEmpty)
    }

    @Test func heartbeatsAreAnsweredWithTheClusterTime() {
        var sm = cluster(1)
        let ds = sm.handle(.received(node(0), .heartbeat(sequence: 1, sentAtNanos: 42)), now: 5_000)
        #expect(sent(ds, to: node(0)) == [.timeSync(mtime: 50, sentAtNanos: 42)])
    }

    @Test func stoppingStopsEveryActiveVM() {
        var sm = cluster(1)
        let (vm, _) = create(&sm)
        let ds = sm.handle(.stopping(reason: "signal"), now: 0)
        #expect(sent(ds, to: node(0)).count == 1)
        #expect(sm.vms[vm!]?.exit == .stopped)
    }

    @Test func consoleBytesAreRoutedBothWays() {
        var sm = cluster(2)
        let (vm, _) = create(&sm)
        let input = sm.handle(.received(client, .console(vm: vm!, bytes: [65])), now: 0)
        #expect(sent(input, to: node(0)) == [.console(vm: vm!, bytes: [65])])  // the device node
        let output = sm.handle(.received(node(0), .console(vm: vm!, bytes: [66])), now: 0)
        #expect(sent(output, to: client) == [.console(vm: vm!, bytes: [66])])
    }

    // MARK: - Consoles

    func connectClient(_ sm: inout SM, _ c: ConnectionID) {
        _ = sm.handle(.connected(c, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "console")), now: 0)
    }

    func attach(_ sm: inout SM, _ c: ConnectionID, _ which: String) -> Message? {
        sent(sm.handle(.received(c, .consoleAttach(vm: which)), now: 0), to: c).first
    }

    @Test func consolesAttachByIdOrNameGetTheBacklogThenLiveOutputAndDetach() throws {
        var sm = SM(configuration: .init(strategy: .roundRobin, consoleBacklogBytes: 8))
        for i in 0..<2 { _ = sm.handle(.connected(node(i), peer: hello(i)), now: 0) }
        connectClient(&sm, client)
        let (vm, p) = try #require(runningVM(&sm))
        let device = node(Int(p.deviceNode))
        // Output before anyone attached: the owner gets it, the backlog keeps the last 8 bytes.
        let early = sm.handle(.received(device, .console(vm: vm, bytes: Array("0123456789".utf8))), now: 0)
        #expect(sent(early, to: client) == [.console(vm: vm, bytes: Array("0123456789".utf8))])
        #expect(early.contains(.consoleOutput(vm: vm, name: "t", log: nil, bytes: Array("0123456789".utf8))))
        let a = ConnectionID(rawValue: 200), b = ConnectionID(rawValue: 201)
        connectClient(&sm, a)
        connectClient(&sm, b)
        #expect(attach(&sm, a, "\(vm)") == .consoleAttached(vm: vm, ok: true, detail: "attached to VM \(vm) 't'", backlog: Array("23456789".utf8)))
        #expect(attach(&sm, b, "t") == .consoleAttached(vm: vm, ok: true, detail: "attached to VM \(vm) 't'", backlog: Array("23456789".utf8)))
        // Live output reaches the owner and both consoles, once each.
        let live = sm.handle(.received(device, .console(vm: vm, bytes: [33])), now: 0)
        for c in [client, a, b] { #expect(sent(live, to: c) == [.console(vm: vm, bytes: [33])]) }
        #expect(sm.vms[vm]!.backlog == Array("3456789!".utf8))
        // Input from a console goes to the VM's device node only.
        let input = sm.handle(.received(b, .console(vm: vm, bytes: [10])), now: 0)
        #expect(input == [.send(.console(vm: vm, bytes: [10]), to: device)])
        // Detached, and disconnected: no more output for them; the owner still gets it.
        _ = sm.handle(.received(a, .consoleDetach(vm: vm)), now: 0)
        _ = sm.handle(.disconnected(b, reason: "gone"), now: 0)
        let after = sm.handle(.received(device, .console(vm: vm, bytes: [34])), now: 0)
        #expect(sent(after, to: a).isEmpty && sent(after, to: b).isEmpty)
        #expect(sent(after, to: client) == [.console(vm: vm, bytes: [34])])
        // A detached console's input is refused, not delivered.
        let late = sm.handle(.received(a, .console(vm: vm, bytes: [10])), now: 0)
        #expect(sent(late, to: device).isEmpty)
        guard case .error? = sent(late, to: a).first else { Issue.record("no error for input from a detached console"); return }
    }

    @Test func inputFromTwoConsolesGoesOnlyToEachOnesVM() throws {
        var sm = cluster(2)
        let (one, p1) = try #require(runningVM(&sm))
        let (two, p2) = try #require(runningVM(&sm, spec: spec.replacingOccurrences(of: "name: t", with: "name: u")))
        let a = ConnectionID(rawValue: 200), b = ConnectionID(rawValue: 201)
        connectClient(&sm, a)
        connectClient(&sm, b)
        #expect(attach(&sm, a, "t").map { if case .consoleAttached(one, true, _, _) = $0 { true } else { false } } == true)
        #expect(attach(&sm, b, "u").map { if case .consoleAttached(two, true, _, _) = $0 { true } else { false } } == true)
        #expect(sm.handle(.received(a, .console(vm: one, bytes: [1])), now: 0) == [.send(.console(vm: one, bytes: [1]), to: node(Int(p1.deviceNode)))])
        #expect(sm.handle(.received(b, .console(vm: two, bytes: [2])), now: 0) == [.send(.console(vm: two, bytes: [2]), to: node(Int(p2.deviceNode)))])
        // a is not attached to the second VM: its input there is refused.
        let stray = sm.handle(.received(a, .console(vm: two, bytes: [3])), now: 0)
        #expect(!stray.contains { if case .send(.console, _) = $0 { true } else { false } })
        // Output of each VM reaches only its own console (and the owner).
        let out = sm.handle(.received(node(Int(p2.deviceNode)), .console(vm: two, bytes: [4])), now: 0)
        #expect(sent(out, to: a).isEmpty)
        #expect(sent(out, to: b) == [.console(vm: two, bytes: [4])])
    }

    @Test func attachingToAnUnknownOrEndedVMIsRefusedAndAnEndedVMsConsolesAreTold() throws {
        var sm = cluster(2)
        let (vm, _) = try #require(runningVM(&sm))
        let a = ConnectionID(rawValue: 200)
        connectClient(&sm, a)
        #expect(attach(&sm, a, "99") == .consoleAttached(vm: 0, ok: false, detail: "no VM 99", backlog: []))
        #expect(attach(&sm, a, "nosuch") == .consoleAttached(vm: 0, ok: false, detail: "no VM named 'nosuch'", backlog: []))
        _ = attach(&sm, a, "t")
        let stop = sm.handle(.received(client, .vmRequest(id: 9, request: .stop(vm: vm))), now: 0)
        #expect(sent(stop, to: a) == [.vmStatus(vm: vm, state: .stopped, exit: .stopped, detail: "stopped by request")])
        guard case .consoleAttached(_, false, let why, _)? = attach(&sm, a, "\(vm)") else { Issue.record("attached to a stopped VM"); return }
        #expect(why.contains("not running"))
    }

    @Test func aConsoleLogThatCannotBeWrittenFailsTheCreateAndOneThatCanIsWritten() {
        var sm = SM(configuration: .init(strategy: .roundRobin, checkConsoleLog: { $0.hasPrefix("/bad") ? "Permission denied" : nil }))
        for i in 0..<2 { _ = sm.handle(.connected(node(i), peer: hello(i)), now: 0) }
        connectClient(&sm, client)
        let (refused, ds) = create(&sm, spec: spec + "console-log: /bad/t.log\n")
        #expect(refused == nil)
        #expect(sent(ds, to: client) == [.vmResponse(id: 7, ok: false, createdVM: nil, body: "console-log /bad/t.log: Permission denied")])
        let (vm, _) = create(&sm, spec: spec + "console-log: /tmp/t.log\n")
        let out = sm.handle(.received(node(0), .console(vm: vm!, bytes: [65])), now: 0)
        #expect(out.contains(.consoleOutput(vm: vm!, name: "t", log: "/tmp/t.log", bytes: [65])))
    }

    // MARK: - Page moves

    /// A running 2-VCPU VM over nodes 0 and 1 (one-page chunks), with its placement.
    func runningVM(_ sm: inout SM, spec: String? = nil) -> (UInt32, VMPlacement)? {
        let (vm, ds) = create(&sm, spec: spec)
        guard let vm, case .vmStart(let p)? = sent(ds, to: node(0)).first else { return nil }
        for n in p.vcpuNodes { _ = sm.handle(.received(node(Int(n)), .vmStatus(vm: vm, state: .starting, exit: nil, detail: "")), now: 0) }
        return sm.vms[vm]?.state == .running ? (vm, p) : nil
    }

    func migrate(_ sm: inout SM, _ vm: UInt32, _ page: UInt64, to n: Int32, rid: UInt64 = 40) -> [SM.Directive] {
        sm.handle(.received(client, .vmRequest(id: rid, request: .migrate(vm: vm, guestPage: page, node: n))), now: 5 * Self.ms)
    }

    @Test func aMoveGoesToThePagesHomeAndItsFramesAreAccountedWhenItIsDone() throws {
        var sm = cluster(2)
        let (vm, p) = try #require(runningVM(&sm))
        let home = Int(p.chunks[0].node), other = 1 - home
        let ds = migrate(&sm, vm, 0x8000_0000, to: Int32(other))
        guard case .pageCommand(let c)? = sent(ds, to: node(home)).first else { Issue.record("no pageCommand: \(ds)"); return }
        #expect(c.kind == .migrate && c.vm == vm && c.guestPage == 0x8000_0000 && c.targets == [PageTarget(node: Int32(other), frame: c.targets.first?.frame ?? 0)])
        #expect(sent(ds, to: client).isEmpty)  // answered when done
        // The new frame is the VM's already; the same page cannot move twice at once.
        #expect(sm.vms[vm]!.frameRuns[other]!.contains(.init(base: c.frame, bytes: 4096)))
        let twice = migrate(&sm, vm, 0x8000_0000, to: Int32(other), rid: 41)
        #expect(sent(twice, to: client) == [.vmResponse(id: 41, ok: false, createdVM: nil, body: "page 0x80000000 is being moved")])
        // Only the page's home may report it done.
        _ = sm.handle(.received(node(other), .pageCommandDone(id: c.id, ok: true, detail: "")), now: 6 * Self.ms)
        #expect(sm.vms[vm]!.movedPages.isEmpty)
        let done = sm.handle(.received(node(home), .pageCommandDone(id: c.id, ok: true, detail: "")), now: 6 * Self.ms)
        guard case .vmResponse(40, true, nil, let body)? = sent(done, to: client).first else { Issue.record("\(done)"); return }
        #expect(body.contains("from node \(home) to node \(other)"))
        #expect(sm.pageHome(sm.vms[vm]!, 0x8000_0000) == .init(node: other, frame: c.frame))
        // The old frame left the VM's runs (the run split around it) and is free again.
        let homeRuns = sm.vms[vm]!.frameRuns[home]!
        #expect(homeRuns.reduce(0) { $0 + $1.bytes } == (8 << 20) - 4096)
        #expect(!homeRuns.contains { p.chunks[0].frameBase >= $0.base && p.chunks[0].frameBase < $0.base + $0.bytes })
        #expect(sm.vms[vm]!.memoryOnNodes[other] == (8 << 20) + 4096 && sm.vms[vm]!.migrations == 1)
        #expect(sm.statsText.contains("{vm: \(vm), state: running, migrations: 1, move_us_p50: 1000"))
        // It moves back from its new home.
        let back = migrate(&sm, vm, 0x8000_0000, to: Int32(home), rid: 42)
        guard case .pageCommand(let c2)? = sent(back, to: node(other)).first else { Issue.record("\(back)"); return }
        #expect(c2.targets.map(\.node) == [Int32(home)])
        // A refused move gives its new frame back.
        _ = sm.handle(.received(node(other), .pageCommandDone(id: c2.id, ok: false, detail: "no")), now: 7 * Self.ms)
        #expect(!sm.vms[vm]!.frameRuns[home]!.contains(.init(base: c2.frame, bytes: 4096)))
        #expect(sm.pageHome(sm.vms[vm]!, 0x8000_0000)?.node == other)
    }

    // MARK: - VCPU moves

    func migrateVCPU(_ sm: inout SM, _ vm: UInt32, _ vcpu: UInt32, to n: Int32, overcommit: Bool = false, rid: UInt64 = 60) -> [Message] {
        sent(sm.handle(.received(client, .vmRequest(id: rid, request: .migrateVCPU(vm: vm, vcpu: vcpu, node: n, overcommit: overcommit))),
                       now: 5 * Self.ms), to: client)
    }

    func refusal(_ ms: [Message]) -> String {
        if case .vmResponse(_, false, nil, let body)? = ms.first { return body }
        return "not refused: \(ms)"
    }

    @Test func aVCPUMoveIsCheckedSentToItsNodeAndRecordedWhenTheNewNodeRunsIt() throws {
        var sm = cluster(3)
        let (vm, p) = try #require(runningVM(&sm))
        #expect(p.vcpuNodes == [0, 1])
        #expect(refusal(migrateVCPU(&sm, 99, 0, to: 1)) == "no VM 99")
        #expect(refusal(migrateVCPU(&sm, vm, 2, to: 0)) == "VM \(vm) 't' has no VCPU 2 (it has 2: 0...1)")
        #expect(refusal(migrateVCPU(&sm, vm, 1, to: 7)) == "node 7 is not a live node")
        #expect(refusal(migrateVCPU(&sm, vm, 1, to: 2)).hasPrefix("node 2 takes no part in VM \(vm) (its nodes are [0, 1])"))
        #expect(refusal(migrateVCPU(&sm, vm, 1, to: 1)) == "VCPU 1 of VM \(vm) is on node 1 already")
        // VCPU 1 goes from node 1 to node 0 (2 CPUs, 1 VCPU): the command goes to node 1.
        let ds = sm.handle(.received(client, .vmRequest(id: 61, request: .migrateVCPU(vm: vm, vcpu: 1, node: 0, overcommit: false))),
                           now: 5 * Self.ms)
        #expect(sent(ds, to: node(1)) == [.vcpuMigrate(vm: vm, vcpu: 1, node: 0)])
        #expect(sent(ds, to: client).isEmpty)  // answered when done
        #expect(refusal(migrateVCPU(&sm, vm, 1, to: 0, rid: 62)) == "VCPU 1 of VM \(vm) is moving already")
        // Only the VCPU's old or new node may report; the new node says it runs it.
        _ = sm.handle(.received(node(2), .vcpuMigrated(vm: vm, vcpu: 1, node: 0, ok: true, detail: "")), now: 6 * Self.ms)
        #expect(sm.vms[vm]!.placement.vcpuNodes == [0, 1])
        let done = sm.handle(.received(node(0), .vcpuMigrated(vm: vm, vcpu: 1, node: 0, ok: true, detail: "from node 1")), now: 7 * Self.ms)
        guard case .vmResponse(61, true, nil, let body)? = sent(done, to: client).first else { Issue.record("\(done)"); return }
        #expect(body == "moved VM \(vm) VCPU 1 from node 1 to node 0 in 2000 us")
        #expect(sm.vms[vm]!.placement.vcpuNodes == [0, 0] && sm.vms[vm]!.vcpuMigrations == 1)
        // Node 1 still takes part (its memory), so the VCPU may go back there.
        #expect(sm.vms[vm]!.participants == [0, 1])
        #expect(sm.listText.contains("vcpu_nodes: [0, 0]") && sm.listText.contains("vcpu_migrations: 1"))
        // A move its node refuses changes nothing and says why.
        _ = sm.handle(.received(client, .vmRequest(id: 63, request: .migrateVCPU(vm: vm, vcpu: 0, node: 1, overcommit: false))), now: 8 * Self.ms)
        let refused = sm.handle(.received(node(0), .vcpuMigrated(vm: vm, vcpu: 0, node: 1, ok: false, detail: "VCPU 0 stayed busy for 5 s")),
                                now: 9 * Self.ms)
        #expect(sent(refused, to: client) == [.vmResponse(id: 63, ok: false, createdVM: nil, body: "VCPU move failed: VCPU 0 stayed busy for 5 s")])
        #expect(sm.vms[vm]!.placement.vcpuNodes == [0, 0])
    }

    @Test func aVCPUMovesOntoAFullNodeOnlyWhenToldToOvercommit() throws {
        var sm = SM(configuration: .init(heartbeatMillis: 100, strategy: .roundRobin, balancing: .init(enabled: false)))
        for i in 0..<2 { _ = sm.handle(.connected(node(i), peer: hello(i, cpus: 1)), now: 0) }
        _ = sm.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        let (vm, _) = try #require(runningVM(&sm))
        #expect(refusal(migrateVCPU(&sm, vm, 1, to: 0)) == "node 0 has no free CPU (1 VCPUs on 1 CPUs); --overcommit moves it there anyway, to share its CPUs")
        let ds = sm.handle(.received(client, .vmRequest(id: 64, request: .migrateVCPU(vm: vm, vcpu: 1, node: 0, overcommit: true))), now: 5 * Self.ms)
        #expect(sent(ds, to: node(1)) == [.vcpuMigrate(vm: vm, vcpu: 1, node: 0)])
        _ = sm.handle(.received(node(0), .vcpuMigrated(vm: vm, vcpu: 1, node: 0, ok: true, detail: "")), now: 6 * Self.ms)
        // `vm list` says that node 0's CPU is time-shared now.
        #expect(sm.listText.contains("cpus_shared: {0: \"2 VCPUs time-share 1 CPU\"}"), "\(sm.listText)")
    }

    /// Two nodes of 2 CPUs and a client; a 4-VCPU VM that compact placement spreads
    /// over both, then VCPU 3 moved to node 0 by an overcommitted command: node 0 runs 3
    /// VCPUs on 2 CPUs while node 1 has one free.
    func overloadedVM(_ sm: inout SM) throws -> UInt32 {
        _ = sm.handle(.connected(node(0), peer: hello(0, cpus: 2)), now: 0)
        _ = sm.handle(.connected(node(1), peer: hello(1, cpus: 2)), now: 0)
        _ = sm.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        let (vm, p) = try #require(runningVM(&sm, spec: spec.replacingOccurrences(of: "vcpus: 2", with: "vcpus: 4")))
        #expect(p.vcpuNodes == [0, 0, 1, 1])
        _ = sm.handle(.received(client, .vmRequest(id: 65, request: .migrateVCPU(vm: vm, vcpu: 3, node: 0, overcommit: true))), now: 5 * Self.ms)
        _ = sm.handle(.received(node(0), .vcpuMigrated(vm: vm, vcpu: 3, node: 0, ok: true, detail: "")), now: 6 * Self.ms)
        return vm
    }

    /// The balancer, on: a node with more VCPUs than CPUs while another node of the VM
    /// has one free gives it a VCPU after the overload settled; one move, then calm.
    @Test func theBalancerMovesAVCPUOffAnOverloadedNode() throws {
        var sm = SM(configuration: .init(heartbeatMillis: 100, strategy: .compact))
        let vm = try overloadedVM(&sm)
        var moves: [Message] = []
        for t in stride(from: UInt64(100), through: 40_000, by: 50) {
            for m in sent(sm.handle(.tick, now: t * Self.ms), to: node(0)) { if case .vcpuMigrate = m { moves.append(m) } }
            if let m = moves.last, case .vcpuMigrate(_, let v, let n) = m, sm.vms[vm]!.placement.vcpuNodes[Int(v)] != Int32(n) {
                _ = sm.handle(.received(node(Int(n)), .vcpuMigrated(vm: vm, vcpu: v, node: n, ok: true, detail: "")), now: t * Self.ms + 1)
            }
            for n in 0..<2 { _ = sm.handle(.received(node(n), .heartbeat(sequence: t, sentAtNanos: 0)), now: t * Self.ms) }
        }
        // VCPU 3 moved by command (cooling down): VCPU 1 is the one that goes.
        #expect(moves == [.vcpuMigrate(vm: vm, vcpu: 1, node: 1)], "\(moves)")
        #expect(sm.vms[vm]!.placement.vcpuNodes == [0, 1, 1, 0])
    }

    /// The same overload, but node 0's reports say VCPU 1 idles (its run time grows by
    /// 1% of the wall time): 2 busy VCPUs on 2 CPUs, so nothing moves; once VCPU 1 runs
    /// again, the balancer moves a busy VCPU (VCPU 1: VCPU 3 is cooling down).
    @Test func theBalancerLeavesANodeWhoseExtraVCPUIdles() throws {
        var sm = SM(configuration: .init(heartbeatMillis: 100, strategy: .compact))
        let vm = try overloadedVM(&sm)
        var moves: [Message] = []
        var run: [Int64] = [0, 0, 0, 0]
        var idle = true
        for t in stride(from: UInt64(100), through: 40_000, by: 50) {
            if t == 20_000 { idle = false }
            // Node 0 reports every second: VCPUs 0 and 3 ran all of it, VCPU 1 1% (or all).
            if t % 1000 == 0 {
                run[0] += 1_000_000_000
                run[3] += 1_000_000_000
                run[1] += idle ? 10_000_000 : 1_000_000_000
                let counters = [0, 1, 3].map { Counter(name: "vm.\(vm).vcpu.\($0).run_ns", value: run[$0]) }
                _ = sm.handle(.received(node(0), .stats(StatsReport(nodeID: 0, uptimeNanos: t * Self.ms, counters: counters))), now: t * Self.ms)
            }
            for m in sent(sm.handle(.tick, now: t * Self.ms), to: node(0)) { if case .vcpuMigrate = m { moves.append(m) } }
            if t == 19_950 { #expect(moves.isEmpty, "moved while VCPU 1 idled: \(moves)") }
            if let m = moves.last, case .vcpuMigrate(_, let v, let n) = m, sm.vms[vm]!.placement.vcpuNodes[Int(v)] != Int32(n) {
                _ = sm.handle(.received(node(Int(n)), .vcpuMigrated(vm: vm, vcpu: v, node: n, ok: true, detail: "")), now: t * Self.ms + 1)
            }
            for n in 0..<2 { _ = sm.handle(.received(node(n), .heartbeat(sequence: t, sentAtNanos: 0)), now: t * Self.ms) }
        }
        #expect(moves == [.vcpuMigrate(vm: vm, vcpu: 1, node: 1)], "\(moves)")
    }

    @Test func replicasGetFramesAndAWriteCollapseGivesThemBack() throws {
        var sm = cluster(3)
        let (vm, p) = try #require(runningVM(&sm, spec: spec.replacingOccurrences(of: "vcpus: 2", with: "vcpus: 3")))
        let home = Int(p.chunks[0].node)
        let others = [0, 1, 2].filter { $0 != home }
        let free = others.map { sm.freeBytes(of: $0) }
        let ds = sm.handle(.received(client, .vmRequest(id: 50, request: .replicate(vm: vm, guestPage: 0x8000_0000,
                                                                                   nodes: others.map(Int32.init)))), now: 5 * Self.ms)
        guard case .pageCommand(let c)? = sent(ds, to: node(home)).first else { Issue.record("no pageCommand: \(ds)"); return }
        #expect(c.kind == .replicate && c.targets.map(\.node) == others.map(Int32.init))
        #expect(others.map { sm.freeBytes(of: $0) } == free.map { $0 - 4096 })
        // Migrating a page with a replication under way is refused; done, the replicas are in the pmap.
        let done = sm.handle(.received(node(home), .pageCommandDone(id: c.id, ok: true, detail: "")), now: 6 * Self.ms)
        guard case .vmResponse(50, true, nil, let body)? = sent(done, to: client).first else { Issue.record("\(done)"); return }
        #expect(body.contains("replicated VM \(vm) page 0x80000000"))
        #expect(sm.vms[vm]!.replicas[0x8000_0000] == Dictionary(uniqueKeysWithValues: c.targets.map { (Int($0.node), $0.frame) }))
        let moving = migrate(&sm, vm, 0x8000_0000, to: Int32(others[0]), rid: 51)
        #expect(sent(moving, to: client).first.map { "\($0)" }?.contains("is replicated") == true)
        // Only the home reports a collapse, and only of the replicas it has.
        _ = sm.handle(.received(node(others[0]), .pageReplicasDropped(vm: vm, guestPage: 0x8000_0000, nodes: others.map(Int32.init))), now: 7 * Self.ms)
        _ = sm.handle(.received(node(home), .pageReplicasDropped(vm: vm, guestPage: 0x8000_0000, nodes: [Int32(others[0])])), now: 7 * Self.ms)
        #expect(sm.vms[vm]!.replicas[0x8000_0000] != nil)
        _ = sm.handle(.received(node(home), .pageReplicasDropped(vm: vm, guestPage: 0x8000_0000, nodes: others.map(Int32.init))), now: 7 * Self.ms)
        #expect(sm.vms[vm]!.replicas.isEmpty && sm.vms[vm]!.collapses == 1 && sm.vms[vm]!.replications == 2)
        #expect(others.map { sm.freeBytes(of: $0) } == free)
        #expect(sm.statsText.contains("replications: 2") && sm.statsText.contains("collapses: 1"))
    }

    @Test func firstTouchGivesEachPageAFrameOnItsFirstTouchersNodeAndTellsEveryNode() throws {
        var sm = cluster(2)
        let ft = spec.replacingOccurrences(of: "placement: interleave\n", with: "")
        let (vm, p) = try #require(runningVM(&sm, spec: ft))
        #expect(p.firstTouch && p.chunks.isEmpty)
        // Nothing is homed yet; the reservation (the VM's runs) covers all of its memory.
        #expect(sm.vms[vm]!.memoryOnNodes.isEmpty)
        #expect(sm.vms[vm]!.frameRuns.values.flatMap { $0 }.reduce(0) { $0 + $1.bytes } == 16 << 20)
        #expect(sm.pageHome(sm.vms[vm]!, 0x8000_5000) == nil)
        let refused = migrate(&sm, vm, 0x8000_5000, to: 0)
        #expect(sent(refused, to: client).first.map { "\($0)" }?.contains("has no frame yet") == true)
        // Node 1 touches a page: it is homed on node 1, which hears of it first, and so
        // is the rest of its block of 16 pages (placed ahead, in the same batch).
        let ds = sm.handle(.received(node(1), .pageTouch(vm: vm, guestPage: 0x8000_5000)), now: 5 * Self.ms)
        guard case .pageAssigned(vm, 0x8000_5000, 1, let frame)? = sent(ds, to: node(1)).first else { Issue.record("\(ds)"); return }
        #expect(sent(ds, to: node(0)).isEmpty)
        let ahead = sent(ds, to: node(1)).dropFirst().compactMap { m -> UInt64? in
            guard case .pageAssigned(vm, let q, 1, _) = m else { return nil }
            return q
        }
        let block: [UInt64] = (0..<UInt64(16)).filter { $0 != 5 }.map { 0x8000_0000 + $0 * 4096 }
        #expect(ahead == block)
        #expect(sm.vms[vm]!.touchedLocal == 1 && sm.vms[vm]!.placedAhead == 15)
        for m in sent(ds, to: node(1)).dropFirst() {
            guard case .pageAssigned(vm, let q, 1, let f) = m else { continue }
            #expect(sent(sm.handle(.received(node(1), .pageAssigned(vm: vm, guestPage: q, node: 1, frame: f)), now: 5 * Self.ms),
                         to: node(0)) == [.pageAssigned(vm: vm, guestPage: q, node: 1, frame: f)])
        }
        #expect(sm.vms[vm]!.frameRuns[1]!.contains { frame >= $0.base && frame < $0.base + $0.bytes })
        // Until the home says it filled the frame, the page cannot move and nobody else learns of it.
        #expect(sm.pageHome(sm.vms[vm]!, 0x8000_5000) == nil)
        let early = sm.handle(.received(node(0), .pageTouch(vm: vm, guestPage: 0x8000_5000)), now: 5 * Self.ms)
        #expect(sent(early, to: node(0)).isEmpty && sent(early, to: node(1)).isEmpty)
        // Only the page's home can say it is filled.
        #expect(sent(sm.handle(.received(node(0), .pageAssigned(vm: vm, guestPage: 0x8000_5000, node: 1, frame: frame)),
                               now: 5 * Self.ms), to: node(1)).isEmpty)
        let filled = sm.handle(.received(node(1), .pageAssigned(vm: vm, guestPage: 0x8000_5000, node: 1, frame: frame)), now: 5 * Self.ms)
        #expect(sent(filled, to: node(0)) == [.pageAssigned(vm: vm, guestPage: 0x8000_5000, node: 1, frame: frame)])
        #expect(sent(filled, to: node(1)).isEmpty)
        #expect(sm.pageHome(sm.vms[vm]!, 0x8000_5000) == .init(node: 1, frame: frame))
        // A second filled report is a lie now.
        #expect(sm.handle(.received(node(1), .pageAssigned(vm: vm, guestPage: 0x8000_5000, node: 1, frame: frame)), now: 5 * Self.ms)
            .allSatisfy { if case .send = $0 { return false } else { return true } })
        // A touch after that (node 0 asked again before it heard) is answered with the same frame, to it alone.
        let again = sm.handle(.received(node(0), .pageTouch(vm: vm, guestPage: 0x8000_5000)), now: 6 * Self.ms)
        #expect(sent(again, to: node(0)) == [.pageAssigned(vm: vm, guestPage: 0x8000_5000, node: 1, frame: frame)])
        #expect(sent(again, to: node(1)).isEmpty)
        // Node 1's half of the reservation runs out: its next pages go to node 0, which
        // fills them before node 1 hears.
        // Node 1 walks on through fresh memory, touching each page it was not told of.
        var frames: Set<UInt64> = Set((0..<16).compactMap { sm.pageHome(sm.vms[vm]!, 0x8000_0000 + UInt64($0) * 4096)?.frame })
        #expect(frames.count == 16)
        var homes: [Int: Int] = [1: 16]
        for i in 0..<2100 {
            let page = 0x8001_0000 + UInt64(i) * 4096
            guard sm.pageHome(sm.vms[vm]!, page) == nil else { continue }
            let d = sm.handle(.received(node(1), .pageTouch(vm: vm, guestPage: page)), now: 7 * Self.ms)
            let told = sent(d, to: node(1)) + sent(d, to: node(0))
            guard case .pageAssigned(_, page, let n, _)? = told.first else { Issue.record("\(d)"); return }
            #expect(sent(d, to: node(Int(n))) == told)
            // Placed ahead only on the toucher's own node.
            #expect(n == 1 || told.count == 1)
            for m in told {
                guard case .pageAssigned(_, let q, n, let f) = m else { Issue.record("\(m)"); continue }
                #expect(frames.insert(f).inserted)
                homes[Int(n), default: 0] += 1
                let back = sm.handle(.received(node(Int(n)), .pageAssigned(vm: vm, guestPage: q, node: n, frame: f)), now: 7 * Self.ms)
                #expect(sent(back, to: node(1 - Int(n))) == [.pageAssigned(vm: vm, guestPage: q, node: n, frame: f)])
            }
        }
        // Node 1's 2048 frames, then node 0 for the rest of the 16 + 2100 pages, one by one.
        #expect(homes == [1: 2048, 0: 68])
        #expect(sm.vms[vm]!.memoryOnNodes == [1: 2048 * 4096, 0: 68 * 4096])
        // Lies: a page outside RAM, a node outside the VM.
        #expect(sent(sm.handle(.received(node(0), .pageTouch(vm: vm, guestPage: 0x9000_0000)), now: 8 * Self.ms), to: node(0)).isEmpty)
        #expect(sm.handle(.received(node(0), .pageTouch(vm: 77, guestPage: 0x8000_0000)), now: 8 * Self.ms).isEmpty)
    }

    @Test func firstTouchOnOneNodeIsThatNode() throws {
        // Two VCPUs fit on one node (compact placement): no touches to ask for.
        var sm = cluster(2, strategy: .compact)
        let ft = spec.replacingOccurrences(of: "placement: interleave\n", with: "")
        let (_, p) = try #require(runningVM(&sm, spec: ft))
        #expect(!p.firstTouch && p.chunks.count == 4096 && Set(p.chunks.map(\.node)).count == 1)
    }

    @Test func movesThatCannotBeAreRefused() throws {
        var sm = cluster(3)
        let (vm, p) = try #require(runningVM(&sm))
        let home = Int(p.chunks[0].node)
        func refusal(_ ds: [SM.Directive]) -> String? {
            if case .vmResponse(_, false, _, let body)? = sent(ds, to: client).first { return body } else { return nil }
        }
        #expect(refusal(migrate(&sm, vm, 0x8000_0000, to: Int32(home)))?.contains("already") == true)
        #expect(refusal(migrate(&sm, vm, 0x8000_0000, to: 2))?.contains("does not take part") == true)
        #expect(refusal(migrate(&sm, vm, 0x8000_0800, to: 1 - Int32(home)))?.contains("not a page") == true)
        #expect(refusal(migrate(&sm, vm, 0x9000_0000, to: 1 - Int32(home)))?.contains("not a page") == true)
        #expect(refusal(migrate(&sm, 99, 0x8000_0000, to: 0))?.contains("no running VM") == true)
    }

    @Test func hotRemoteAccessesMoveAPageUnlessThePolicyIsOffOrTheVMsTriggerIsHigher() throws {
        for (policy, extra) in [(true, ""), (false, "numaPolicy: off\n"), (false, "numaParameters: {trigger: 1000}\n")] {
            var sm = cluster(2)
            let (vm, p) = try #require(runningVM(&sm, spec: spec + extra))
            let home = Int(p.chunks[0].node), other = 1 - home
            let report = Message.pageAccesses(vm: vm, entries: [PageAccessCount(guestPage: 0x8000_0000, accesses: 200, writes: 200)])
            // Hot from one node: it migrates once it stayed so for the settle time (30 ms).
            let first = sm.handle(.received(node(other), report), now: Self.ms)
            #expect(sent(first, to: node(home)).isEmpty)
            let ds = sm.handle(.received(node(other), report), now: 40 * Self.ms)
            let commands = sent(ds, to: node(home)).filter { if case .pageCommand = $0 { true } else { false } }
            #expect(commands.count == (policy ? 1 : 0), "policy \(policy): \(ds)")
            if case .pageCommand(let c)? = commands.first { #expect(c.targets == [PageTarget(node: Int32(other), frame: c.targets.first?.frame ?? 0)]) }
        }
    }
}

@Suite struct FrameAllocatorTests {
    func release(_ a: inout FrameAllocator, _ start: UInt64, _ bytes: UInt64) -> Bool { a.release(start, bytes) }

    @Test func allocatesWholePagesFirstFitUntilFull() {
        var a = FrameAllocator(base: 0x1_0000_0000, size: 5 * 4096)
        #expect(a.allocate(4096) == 0x1_0000_0000)
        #expect(a.allocate(1) == 0x1_0000_1000)        // rounded up to a page
        #expect(a.allocate(4 * 4096) == nil)           // does not fit: nothing taken
        #expect(a.freeBytes == 3 * 4096)
        #expect(a.allocate(3 * 4096) == 0x1_0000_2000)
        #expect(a.freeBytes == 0)
    }

    @Test func releasedRunsAreReusedAndMerged() {
        var a = FrameAllocator(base: 0, size: 8 * 4096)
        let x = a.allocate(2 * 4096)!, y = a.allocate(2 * 4096)!, z = a.allocate(4 * 4096)!
        #expect(a.freeBytes == 0)
        #expect(release(&a, y, 2 * 4096))
        #expect(a.allocate(3 * 4096) == nil)          // two pages free, not three
        #expect(release(&a, x, 2 * 4096))               // merges with y's run
        #expect(a.free.count == 1 && a.largestRun == 4 * 4096)
        #expect(a.allocate(3 * 4096) == 0)
        #expect(release(&a, 0, 3 * 4096))
        #expect(release(&a, z, 4 * 4096))               // everything back: one run again
        #expect(a == FrameAllocator(base: 0, size: 8 * 4096))
    }

    @Test func bogusReleasesChangeNothing() {
        var a = FrameAllocator(base: 0x10000, size: 4 * 4096)
        let x = a.allocate(4096)!
        let before = a
        #expect(!release(&a, x + 4096, 4096))           // already free
        #expect(!release(&a, 0, 4096))                  // outside the slice
        #expect(!release(&a, x + 1, 4096))              // not page aligned
        #expect(a == before)
        #expect(release(&a, x, 4096))
        #expect(!release(&a, x, 4096))                  // twice
    }

    @Test func withheldFramesAreNeverHandedOutNorTakenBack() {
        var a = FrameAllocator(base: 0x10000, size: 4 * 4096, withheld: 2 * 4096)
        #expect(a.freeBytes == 2 * 4096)
        #expect(a.allocate(3 * 4096) == nil)
        #expect(a.allocate(2 * 4096) == 0x10000)
        #expect(!release(&a, 0x10000 + 2 * 4096, 4096))  // the withheld top
        #expect(release(&a, 0x10000, 2 * 4096))
    }
}

extension PageCommand {
    /// The first target's frame (a migration's new frame).
    var frame: UInt64 { targets.first?.frame ?? 0 }
}
