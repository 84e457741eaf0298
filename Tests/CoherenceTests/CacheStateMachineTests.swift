import Testing
@testable import Coherence

@Suite struct CacheStateMachineTests {
    let line: LineAddress = 0x9000_0000
    let home: NodeID = 3

    @Test func readMissFetchesSharedCopy() {
        var cache = CacheStateMachine()
        #expect(cache.handle(.access(line: line, home: home, write: false)) ==
                [.miss(line: line), .send(.request(.getShared), line: line, to: home)])
        #expect(cache.state(of: line) == .waitingSharedData)
        #expect(cache.handle(.access(line: line, home: home, write: false)) == [.miss(line: line)])
        #expect(cache.handle(.data(line: line, exclusive: false, data: [1, 2])) == [.wake(line: line)])
        #expect(cache.handle(.access(line: line, home: home, write: false)) == [.hit(line: line)])
        #expect(cache.data(of: line) == [1, 2])
    }

    @Test func writeToSharedUpgradesAndInvalidationTurnsItIntoAFetch() {
        var cache = CacheStateMachine()
        _ = cache.handle(.access(line: line, home: home, write: false))
        _ = cache.handle(.data(line: line, exclusive: false, data: [0]))
        #expect(cache.handle(.access(line: line, home: home, write: true)) ==
                [.miss(line: line), .send(.request(.upgrade), line: line, to: home)])
        #expect(cache.handle(.invalidate(line: line, from: home)) == [.send(.invalidateAck, line: line, to: home), .lost(line: line)])
        #expect(cache.state(of: line) == .waitingModifiedData)
        #expect(cache.handle(.data(line: line, exclusive: true, data: [8])) == [.wake(line: line)])
        #expect(cache.handle(.access(line: line, home: home, write: true)) == [.hit(line: line)])
        cache.write(line, at: 0, bytes: [9])
        #expect(cache.data(of: line) == [9])
    }

    @Test func grantKeepsTheSharedData() {
        var cache = CacheStateMachine()
        _ = cache.handle(.access(line: line, home: home, write: false))
        _ = cache.handle(.data(line: line, exclusive: false, data: [4]))
        _ = cache.handle(.access(line: line, home: home, write: true))
        #expect(cache.handle(.grant(line: line)) == [.wake(line: line)])
        #expect(cache.state(of: line) == .modified)
        #expect(cache.data(of: line) == [4])
    }

    @Test func recallDowngradesOrInvalidates() {
        var cache = CacheStateMachine()
        _ = cache.handle(.access(line: line, home: home, write: true))
        _ = cache.handle(.data(line: line, exclusive: true, data: [6]))
        #expect(cache.handle(.recall(line: line, keepShared: true)) ==
                [.send(.recallReply(data: [6]), line: line, to: home), .downgraded(line: line)])
        #expect(cache.state(of: line) == .shared)
        _ = cache.handle(.access(line: line, home: home, write: true))
        _ = cache.handle(.grant(line: line))
        #expect(cache.handle(.recall(line: line, keepShared: false)) ==
                [.send(.recallReply(data: [6]), line: line, to: home), .lost(line: line)])
        #expect(cache.state(of: line) == nil)
    }

    @Test func capacityEvictsLeastRecentlyUsedWithWriteBack() {
        var cache = CacheStateMachine(geometry: LineGeometry(lineSize: 64), capacityBytes: 128)  // two lines
        let a: LineAddress = 0x1000, b: LineAddress = 0x1040, c: LineAddress = 0x1080
        _ = cache.handle(.access(line: a, home: 1, write: true))
        _ = cache.handle(.data(line: a, exclusive: true, data: [1]))
        _ = cache.handle(.access(line: b, home: 2, write: false))
        _ = cache.handle(.data(line: b, exclusive: false, data: [2]))
        _ = cache.handle(.access(line: b, home: 2, write: false))  // b is now more recent than a
        _ = cache.handle(.access(line: c, home: 1, write: false))
        let out = cache.handle(.data(line: c, exclusive: false, data: [3]))
        #expect(out == [.wake(line: c), .send(.putModified(data: [1]), line: a, to: 1), .lost(line: a)])
        #expect(cache.state(of: a) == .evictingModified)
        // A recall crossing the write-back is answered from the evicting copy.
        #expect(cache.handle(.recall(line: a, keepShared: false)) == [.send(.recallReply(data: [1]), line: a, to: 1)])
        #expect(cache.handle(.access(line: a, home: 1, write: false)) == [.miss(line: a)])
        #expect(cache.handle(.putAck(line: a)) == [.wake(line: a)])
        #expect(cache.state(of: a) == nil)
    }

    @Test func invalidationOfAbsentOrEvictingLinesIsAcknowledged() {
        var cache = CacheStateMachine(geometry: LineGeometry(lineSize: 64), capacityBytes: 64)
        #expect(cache.handle(.invalidate(line: line, from: home)) == [.send(.invalidateAck, line: line, to: home)])
        _ = cache.handle(.access(line: 0x40, home: 1, write: false))
        _ = cache.handle(.data(line: 0x40, exclusive: false, data: [1]))
        _ = cache.handle(.access(line: 0x80, home: 1, write: false))
        _ = cache.handle(.data(line: 0x80, exclusive: false, data: [2]))
        #expect(cache.state(of: 0x40) == .evictingShared)
        #expect(cache.handle(.invalidate(line: 0x40, from: 1)) == [.send(.invalidateAck, line: 0x40, to: 1)])
        #expect(cache.state(of: 0x40) == .evictingShared)
    }
}
