import Cluster
import Testing
import TestSupport
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

    /// `withHit` is an access that hits, in one step: two caches fed the same random
    /// events (accesses, data, grants, invalidations, recalls, acknowledgements) — one
    /// always through `handle(.access)`, the other trying `withHit` first — say and hold
    /// the same thing after every event, evictions included.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func hitFastPathActsLikeAnAccessThatHits(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let geometry = LineGeometry(lineSize: 64)
        var slow = CacheStateMachine(geometry: geometry, capacityBytes: 128)
        var fast = CacheStateMachine(geometry: geometry, capacityBytes: 128)
        let lines: [LineAddress] = [0x1000, 0x1040, 0x1080, 0x10c0]
        var hits = 0
        for step in 0..<3000 {
            let line = lines[Int.random(in: 0..<lines.count, using: &rng)]
            let byte = UInt8(truncatingIfNeeded: step)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0, 1, 2:
                let write = Bool.random(using: &rng)
                let expected = slow.handle(.access(line: line, home: 1, write: write))
                if expected == [.hit(line: line)] && write { slow.write(line, at: 1, bytes: [byte]) }
                let read = fast.withHit(line, write: write) { p -> UInt8 in
                    if write { p.storeBytes(of: byte, toByteOffset: 1, as: UInt8.self) }
                    return p.load(fromByteOffset: 1, as: UInt8.self)
                }
                if let read {
                    hits += 1
                    #expect(expected == [.hit(line: line)], "step \(step)")
                    #expect(read == slow.data(of: line)?[1], "step \(step)")
                } else {
                    #expect(fast.handle(.access(line: line, home: 1, write: write)) == expected, "step \(step)")
                }
            case 3:
                let data = [UInt8](repeating: byte, count: 64)
                let exclusive = Bool.random(using: &rng)
                #expect(fast.handle(.data(line: line, exclusive: exclusive, data: data)) ==
                        slow.handle(.data(line: line, exclusive: exclusive, data: data)), "step \(step)")
            case 4:
                #expect(fast.handle(.grant(line: line)) == slow.handle(.grant(line: line)), "step \(step)")
            case 5:
                #expect(fast.handle(.invalidate(line: line, from: 1)) == slow.handle(.invalidate(line: line, from: 1)), "step \(step)")
            case 6:
                let keep = Bool.random(using: &rng)
                #expect(fast.handle(.recall(line: line, keepShared: keep)) == slow.handle(.recall(line: line, keepShared: keep)), "step \(step)")
            default:
                #expect(fast.handle(.putAck(line: line)) == slow.handle(.putAck(line: line)), "step \(step)")
            }
            for l in lines {
                #expect(fast.state(of: l) == slow.state(of: l), "step \(step) line \(l)")
                #expect(fast.data(of: l) == slow.data(of: l), "step \(step) line \(l)")
            }
        }
        #expect(hits > 100)
    }
}
