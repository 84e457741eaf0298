import Testing
@testable import Coherence

/// Transitions of the directory, one scenario per test, directive by directive.
@Suite struct DirectoryStateMachineTests {
    let line: LineAddress = 0x8000_0100
    func makeDirectory() -> DirectoryStateMachine { DirectoryStateMachine(home: 0) }

    @Test func uncachedReadGivesSharedCopyAndTakesHomeWriteRight() {
        var dir = makeDirectory()
        #expect(dir.localRights(line) == (true, true))
        let out = dir.handle(.request(.getShared, line: line, from: 1))
        #expect(out == [.revokeLocal(line: line, keepRead: true), .sendData(line: line, to: 1, exclusive: false)])
        #expect(dir.state(of: line) == .shared(NodeSet([1])))
        #expect(dir.localRights(line) == (true, false))
    }

    @Test func uncachedWriteGivesOwnership() {
        var dir = makeDirectory()
        let out = dir.handle(.request(.getModified, line: line, from: 2))
        #expect(out == [.revokeLocal(line: line, keepRead: false), .sendData(line: line, to: 2, exclusive: true)])
        #expect(dir.state(of: line) == .exclusive(2))
        #expect(dir.localRights(line) == (false, false))
    }

    @Test func writeToSharedLineInvalidatesOthersThenGrants() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getShared, line: line, from: 1))
        _ = dir.handle(.request(.getShared, line: line, from: 2))
        _ = dir.handle(.request(.getShared, line: line, from: 3))
        let out = dir.handle(.request(.upgrade, line: line, from: 2))
        #expect(out == [.revokeLocal(line: line, keepRead: false),
                        .sendInvalidate(line: line, to: 1), .sendInvalidate(line: line, to: 3)])
        // A request arriving meanwhile waits.
        #expect(dir.handle(.request(.getShared, line: line, from: 1)).isEmpty)
        #expect(dir.queuedCount(of: line) == 1)
        #expect(dir.handle(.invalidateAck(line: line, from: 3)).isEmpty)
        // Last ack: the upgrader still had its copy, so it gets a grant without data;
        // then the queued read recalls the line from the new owner.
        let done = dir.handle(.invalidateAck(line: line, from: 1))
        #expect(done == [.sendGrant(line: line, to: 2), .sendRecall(line: line, to: 2, keepShared: true)])
        let reply = dir.handle(.recallReply(line: line, from: 2, data: [7]))
        #expect(reply == [.writeMemory(line: line, data: [7]), .sendData(line: line, to: 1, exclusive: false)])
        #expect(dir.state(of: line) == .shared(NodeSet([1, 2])))
    }

    @Test func upgradeFromNodeThatLostItsCopyGetsData() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getShared, line: line, from: 1))
        _ = dir.handle(.request(.getShared, line: line, from: 2))
        // Node 2 wins the race to write; node 1's upgrade crosses the invalidation.
        #expect(dir.handle(.request(.upgrade, line: line, from: 2)) ==
                [.revokeLocal(line: line, keepRead: false), .sendInvalidate(line: line, to: 1)])
        _ = dir.handle(.request(.upgrade, line: line, from: 1))
        let out = dir.handle(.invalidateAck(line: line, from: 1))
        #expect(out == [.sendGrant(line: line, to: 2), .sendRecall(line: line, to: 2, keepShared: false)])
        let reply = dir.handle(.recallReply(line: line, from: 2, data: [9]))
        #expect(reply == [.writeMemory(line: line, data: [9]), .sendData(line: line, to: 1, exclusive: true)])
        #expect(dir.state(of: line) == .exclusive(1))
    }

    @Test func writeBackCrossingARecallIsAcknowledgedAndDropped() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getModified, line: line, from: 1))
        #expect(dir.handle(.request(.getShared, line: line, from: 2)) == [.sendRecall(line: line, to: 1, keepShared: true)])
        // Node 1 evicted the line before the recall reached it: its write-back comes
        // first and waits; the recall reply (same data) completes the transaction.
        #expect(dir.handle(.putModified(line: line, from: 1, data: [5])).isEmpty)
        let out = dir.handle(.recallReply(line: line, from: 1, data: [5]))
        #expect(out == [.writeMemory(line: line, data: [5]), .sendData(line: line, to: 2, exclusive: false),
                        .sendPutAck(line: line, to: 1)])
        #expect(dir.state(of: line) == .shared(NodeSet([2])))
    }

    @Test func writeBackFromOwnerRestoresHome() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getModified, line: line, from: 3))
        let out = dir.handle(.putModified(line: line, from: 3, data: [1, 2]))
        #expect(out == [.writeMemory(line: line, data: [1, 2]), .sendPutAck(line: line, to: 3)])
        #expect(dir.state(of: line) == .uncached)
        #expect(dir.trackedLines.isEmpty)
        #expect(dir.localRights(line) == (true, true))
    }

    @Test func evictionNoticesShrinkTheSharerSet() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getShared, line: line, from: 1))
        _ = dir.handle(.request(.getShared, line: line, from: 2))
        #expect(dir.handle(.putShared(line: line, from: 1)) == [.sendPutAck(line: line, to: 1)])
        #expect(dir.state(of: line) == .shared(NodeSet([2])))
        #expect(dir.handle(.putShared(line: line, from: 2)) == [.sendPutAck(line: line, to: 2)])
        #expect(dir.state(of: line) == .uncached)
    }

    @Test func homeCPUsTakePartLikeAnyone() {
        var dir = makeDirectory()
        #expect(dir.handle(.request(.getModified, line: line, from: 0)) == [.localGrant(line: line, exclusive: true)])
        _ = dir.handle(.request(.getShared, line: line, from: 1))
        #expect(dir.handle(.request(.getShared, line: line, from: 0)) == [.localGrant(line: line, exclusive: false)])
        // A home write must invalidate the remote sharer first.
        #expect(dir.handle(.request(.getModified, line: line, from: 0)) == [.sendInvalidate(line: line, to: 1)])
        #expect(dir.handle(.invalidateAck(line: line, from: 1)) == [.localGrant(line: line, exclusive: true)])
        #expect(dir.state(of: line) == .uncached)
        // A home read of a remotely owned line recalls it to Shared.
        _ = dir.handle(.request(.getModified, line: line, from: 2))
        #expect(dir.handle(.request(.getShared, line: line, from: 0)) == [.sendRecall(line: line, to: 2, keepShared: true)])
        #expect(dir.localRights(line) == (false, false))
        #expect(dir.handle(.recallReply(line: line, from: 2, data: [4])) ==
                [.writeMemory(line: line, data: [4]), .localGrant(line: line, exclusive: false)])
        #expect(dir.state(of: line) == .shared(NodeSet([2])))
    }

    @Test func missCountersArePerPagePerNode() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getShared, line: 0x8000_0000, from: 1))
        _ = dir.handle(.request(.getShared, line: 0x8000_0080, from: 1))
        _ = dir.handle(.request(.getModified, line: 0x8000_1000, from: 2))
        _ = dir.handle(.request(.getShared, line: 0x8000_0000, from: 0))  // local hit: not a miss
        #expect(dir.missCounts[0x8000_0000] == [1: 2])
        #expect(dir.missCounts[0x8000_1000] == [2: 1])
        // Only requests to write count as write misses.
        #expect(dir.writeMissCounts[0x8000_0000] == nil)
        #expect(dir.writeMissCounts[0x8000_1000] == [2: 1])
        dir.resetMissCounts()
        #expect(dir.missCounts.isEmpty && dir.writeMissCounts.isEmpty)
    }

    /// Every request is classified once, when it is served (not when it is queued),
    /// by what serving it took.
    @Test func servedRequestsAreCountedByTheirPath() {
        var dir = makeDirectory()
        _ = dir.handle(.request(.getShared, line: line, from: 1))         // direct
        _ = dir.handle(.request(.getShared, line: line, from: 2))         // direct
        _ = dir.handle(.request(.upgrade, line: line, from: 2))           // invalidates node 1
        _ = dir.handle(.request(.getShared, line: line, from: 3))         // queued behind it
        #expect(dir.served == .init(remoteDirect: 2, remoteAfterInvalidations: 1))
        _ = dir.handle(.invalidateAck(line: line, from: 1))               // node 3's read now recalls
        #expect(dir.served.remoteAfterRecall == 1)
        _ = dir.handle(.recallReply(line: line, from: 2, data: [1]))
        // An upgrade by the only sharer needs nobody: direct.
        _ = dir.handle(.request(.getShared, line: 0x8000_0200, from: 1))
        _ = dir.handle(.request(.upgrade, line: 0x8000_0200, from: 1))
        #expect(dir.served.remoteDirect == 4)
        // The home's CPUs: a hit is not counted, taking a line back is.
        _ = dir.handle(.request(.getShared, line: 0x8000_0300, from: 0))
        _ = dir.handle(.request(.getModified, line: line, from: 0))
        #expect(dir.served == .init(remoteDirect: 4, remoteAfterInvalidations: 1, remoteAfterRecall: 1,
                                    localAfterRemote: 1))
    }

    @Test func staleAnswersAreIgnored() {
        var dir = makeDirectory()
        #expect(dir.handle(.invalidateAck(line: line, from: 1)).isEmpty)
        #expect(dir.handle(.recallReply(line: line, from: 1, data: [1])).isEmpty)
        _ = dir.handle(.request(.getModified, line: line, from: 1))
        _ = dir.handle(.request(.getModified, line: line, from: 2))
        // An ack from a node we are not waiting for changes nothing.
        #expect(dir.handle(.invalidateAck(line: line, from: 3)).isEmpty)
        #expect(dir.handle(.recallReply(line: line, from: 3, data: [1])).isEmpty)
        if case .busy = dir.state(of: line) {} else { Issue.record("line should still be busy") }
    }
}
