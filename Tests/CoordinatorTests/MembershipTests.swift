import Testing
@testable import Coordinator

@Suite struct MembershipTests {
    typealias M = MembershipStateMachine
    let res = M.Resources(cpus: 2, memoryBytes: 256 << 20)

    @Test func joinAssignsIdsAndDisjointMemorySlices() {
        var m = M()
        guard case .accepted(let a) = m.handle(.join(name: "a", resources: res, now: .zero)).first,
              case .accepted(let b) = m.handle(.join(name: "b", resources: M.Resources(cpus: 4, memoryBytes: 3 << 30), now: .zero)).first,
              case .accepted(let c) = m.handle(.join(name: "c", resources: res, now: .zero)).first
        else { Issue.record("join refused"); return }
        #expect([a.id, b.id, c.id] == [0, 1, 2])
        #expect(a.memoryBase == 0x1_0000_0000)
        #expect(b.memoryBase == a.memoryBase + (1 << 30))
        #expect(c.memoryBase == b.memoryBase + (3 << 30))
        #expect(m.home(of: b.memoryBase + 12345)?.id == 1)
        #expect(m.home(of: a.memoryBase + (256 << 20)) == nil)  // the gap after a's slice
    }

    @Test func badJoinsAreRefusedWithAReason() {
        var m = M(maxNodes: 2)
        _ = m.handle(.join(name: "a", resources: res, now: .zero))
        #expect(m.handle(.join(name: "a", resources: res, now: .zero)) ==
                [.rejected(name: "a", reason: "a node named 'a' is already a member")])
        #expect(m.handle(.join(name: "z", resources: M.Resources(cpus: 0, memoryBytes: 1 << 30), now: .zero)) ==
                [.rejected(name: "z", reason: "bad CPU count 0")])
        #expect(m.handle(.join(name: "z", resources: M.Resources(cpus: 1, memoryBytes: 1000), now: .zero)).count == 1)
        _ = m.handle(.join(name: "b", resources: res, now: .zero))
        #expect(m.handle(.join(name: "c", resources: res, now: .zero)) ==
                [.rejected(name: "c", reason: "the cluster is full (2 nodes)")])
    }

    @Test func silenceMakesSuspectThenDeadAndHeartbeatsRecover() {
        var m = M(suspectAfter: .seconds(1), deadAfter: .seconds(3))
        _ = m.handle(.join(name: "a", resources: res, now: .zero))
        _ = m.handle(.join(name: "b", resources: res, now: .zero))
        #expect(m.handle(.tick(now: .milliseconds(900))).isEmpty)
        _ = m.handle(.heartbeat(1, now: .milliseconds(900)))
        #expect(m.handle(.tick(now: .milliseconds(1200))) == [.suspect(0)])
        #expect(m.handle(.tick(now: .milliseconds(1300))).isEmpty)  // reported once
        #expect(m.handle(.heartbeat(0, now: .milliseconds(1400))) == [.recovered(0)])
        _ = m.handle(.heartbeat(1, now: .milliseconds(2000)))
        let out = m.handle(.tick(now: .milliseconds(4500)))
        #expect(out == [.dead(0, reason: "no heartbeat for 3.1 seconds"), .suspect(1)])
        #expect(m.alive.map(\.id) == [1])
        // The dead stay dead: a late heartbeat changes nothing.
        #expect(m.handle(.heartbeat(0, now: .seconds(5))).isEmpty)
        #expect(m.members[0]?.status == .dead)
    }

    @Test func deadNamesMayRejoinUnderANewId() {
        var m = M()
        _ = m.handle(.join(name: "a", resources: res, now: .zero))
        #expect(m.handle(.connectionLost(0, now: .seconds(1))) == [.dead(0, reason: "connection lost")])
        #expect(m.handle(.leave(0, now: .seconds(1))).isEmpty)
        guard case .accepted(let again) = m.handle(.join(name: "a", resources: res, now: .seconds(2))).first else {
            Issue.record("rejoin refused"); return
        }
        #expect(again.id == 1)
        #expect(again.memoryBase != m.members[0]!.memoryBase)
    }
}

@Suite struct PlacementTests {
    typealias P = PlacementPolicy
    let nodes = (0..<4).map { P.NodeCapacity(id: $0, cpus: 2, freeMemoryBytes: 1 << 30) }

    @Test func roundRobinSpreadsVCPUsAndInterleavesMemory() throws {
        let p = try P(strategy: .roundRobin).place(vcpus: 4, memoryBytes: 64 << 20, on: nodes)
        #expect(p.vcpuNodes == [0, 1, 2, 3])
        #expect(p.memoryBytes == [0: 16 << 20, 1: 16 << 20, 2: 16 << 20, 3: 16 << 20])
        let two = try P(strategy: .roundRobin).place(vcpus: 2, memoryBytes: 5 << 20, on: nodes, load: [0: 2, 1: 1])
        #expect(two.vcpuNodes == [2, 3])
        #expect(two.memoryBytes == [2: 3 << 20, 3: 2 << 20])
    }

    @Test func memorySpillsToHostsWithRoomOrFails() throws {
        let tight = [P.NodeCapacity(id: 0, cpus: 1, freeMemoryBytes: 2 << 20),
                     P.NodeCapacity(id: 1, cpus: 1, freeMemoryBytes: 8 << 20)]
        let p = try P(strategy: .roundRobin).place(vcpus: 2, memoryBytes: 8 << 20, on: tight)
        #expect(p.memoryBytes == [0: 2 << 20, 1: 6 << 20])
        #expect(throws: P.PlacementError.self) { try P(strategy: .roundRobin).place(vcpus: 2, memoryBytes: 12 << 20, on: tight) }
        #expect(throws: P.PlacementError.self) { try P().place(vcpus: 1, memoryBytes: 1, on: []) }
    }

    @Test func chunksCoverMemoryInGuestOrder() throws {
        let p = try P(strategy: .roundRobin, chunkBytes: 1 << 20).place(vcpus: 2, memoryBytes: (5 << 20) + 4096, on: nodes)
        #expect(p.chunks == [0, 1, 0, 1, 0, 1])
        #expect(p.bytes(ofChunk: 0) == 1 << 20)
        #expect(p.bytes(ofChunk: 5) == 4096)
        #expect(p.memoryBytes == [0: 3 << 20, 1: (2 << 20) + 4096])
    }

    @Test func chunkSizeKeepsPlacementsSmall() {
        #expect(P.chunkBytes(for: 16 << 20) == 4096)
        #expect(P.chunkBytes(for: 128 << 20) == 32 << 10)
        #expect(P.chunkBytes(for: (128 << 20) + 1) == 64 << 10)
        #expect(P.chunkBytes(for: 16 << 30) == 4 << 20)
    }

    @Test func packedKeepsAVMOnOneNode() throws {
        let p = try P(strategy: .packed).place(vcpus: 3, memoryBytes: 64 << 20, on: nodes, load: [0: 2, 1: 2, 3: 1])
        #expect(p.vcpuNodes == [2, 2, 2])
        #expect(p.memoryBytes == [2: 64 << 20])
    }

    @Test func compactKeepsAVMTogetherAndSpreadsOnlyWhatDoesNotFit() throws {
        // Fits on one node: the one with the most free CPUs (lowest id on a tie).
        let one = try P().place(vcpus: 2, memoryBytes: 8 << 20, on: nodes, load: [0: 1])
        #expect(one.vcpuNodes == [1, 1] && one.memoryBytes == [1: 8 << 20])
        // Three VCPUs on 2-CPU nodes: two nodes, the emptier first, memory over both.
        let three = try P().place(vcpus: 3, memoryBytes: 4 << 20, on: nodes, load: [0: 1, 1: 1])
        #expect(three.vcpuNodes == [2, 2, 3])
        #expect(Set(three.chunks) == [2, 3])
        // A node with CPUs but no room for the memory is not chosen alone.
        let small = [P.NodeCapacity(id: 0, cpus: 4, freeMemoryBytes: 2 << 20), P.NodeCapacity(id: 1, cpus: 2, freeMemoryBytes: 1 << 30)]
        #expect(try P().place(vcpus: 2, memoryBytes: 8 << 20, on: small).vcpuNodes == [1, 1])
        // Overcommitted: every CPU is busy, the VCPUs go round-robin from the least loaded.
        let busy = try P().place(vcpus: 2, memoryBytes: 4 << 20, on: nodes, load: [0: 2, 1: 2, 2: 3, 3: 2])
        #expect(busy.vcpuNodes == [0, 1])
    }

    @Test func memoryCanBeHomedOnOneChosenNode() throws {
        let p = try P().place(vcpus: 2, memoryBytes: 8 << 20, on: nodes, load: [1: 1], memoryOn: 3)
        #expect(p.vcpuNodes == [0, 0])          // the VCPUs as compact places them
        #expect(p.memoryBytes == [3: 8 << 20])
        #expect(p.nodes == [0, 3])
        #expect(throws: P.PlacementError(description: "node 7 is not a live node")) {
            try P().place(vcpus: 1, memoryBytes: 4096, on: nodes, memoryOn: 7)
        }
        #expect(throws: P.PlacementError(description: "node 1 has no 2048 MiB free")) {
            try P().place(vcpus: 1, memoryBytes: 2 << 30, on: nodes, memoryOn: 1)
        }
    }

    @Test func nodeFailureTakesDownOnlyTheVMsThatUsedIt() throws {
        let policy = P(strategy: .roundRobin)
        let vmA = try policy.place(vcpus: 2, memoryBytes: 4 << 20, on: Array(nodes[0...1]))
        let vmB = try policy.place(vcpus: 1, memoryBytes: 4 << 20, on: [nodes[2]])
        let vmC = try policy.place(vcpus: 2, memoryBytes: 4 << 20, on: Array(nodes[1...2]))
        let placements = ["a": vmA, "b": vmB, "c": vmC]
        #expect(P.affected(by: 0, placements: placements) == ["a"])
        #expect(P.affected(by: 1, placements: placements) == ["a", "c"])
        #expect(P.affected(by: 3, placements: placements) == [])
    }
}
