import Coherence
import Protocol
import Testing
@testable import Node

/// A stream of misses through remote memory asks for the rest of the page ahead of the
/// accesses, never for a line of another page, and goes on into the next page.
@Suite struct CoherenceAgentPrefetchTests {
    let page = AgentPair.base0 + 0x3000

    func requested(_ pair: AgentPair) -> [UInt64] {
        pair.agents[1].outgoing.compactMap { if case .coherenceRequest(_, let line) = $0.message { return line } else { return nil } }
    }

    @Test func sequentialMissesFetchTheNextLinesOfThePage() throws {
        let pair = try AgentPair()
        let other = pair.agents[1]
        var v: UInt64 = 0
        #expect(other.load(page, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == [page])  // one miss is not a stream
        pair.drain()
        #expect(other.load(page, size: 8, requester: 1, value: &v) == .ok)
        #expect(other.load(page + 0x80, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == Array(stride(from: page + 0x80, through: page + 0xf80, by: 0x80)))
        #expect(other.prefetches == 30 && other.remoteMisses == 2)
        pair.drain()
        // The prefetched lines are here: reads hit, nothing is sent.
        for offset in stride(from: UInt64(0x100), through: 0xf80, by: 0x80) {
            #expect(other.load(page + offset, size: 8, requester: 1, value: &v) == .ok)
        }
        pair.collect()
        #expect(pair.channels.allSatisfy { $0.isEmpty })
    }

    /// Two misses two lines from the end of the page (a stream): returns the pair with
    /// the second miss's requests not yet delivered.
    func streamNearTheEndOfThePage() throws -> AgentPair {
        let pair = try AgentPair()
        var v: UInt64 = 0
        #expect(pair.agents[1].load(page + 0xe00, size: 8, requester: 1, value: &v) == .retry)
        pair.drain()
        #expect(pair.agents[1].load(page + 0xe80, size: 8, requester: 1, value: &v) == .retry)
        return pair
    }

    @Test func aPrefetchStopsAtTheEndOfThePage() throws {
        let pair = try streamNearTheEndOfThePage()
        let other = pair.agents[1]
        #expect(requested(pair) == [page + 0xe80, page + 0xf00, page + 0xf80])
        // Writes stream with write rights.
        pair.drain()
        #expect(other.store(page + 0x400, size: 8, value: 1, requester: 2) == .retry)
        pair.drain()
        #expect(other.store(page + 0x480, size: 8, value: 1, requester: 2) == .retry)
        let kinds = other.outgoing.compactMap { if case .coherenceRequest(let k, _) = $0.message { return k } else { return nil } }
        // The miss and 0x500-0xd80 writable; 0xe00-0xf80 are here read-only (from above):
        // upgraded.
        #expect(kinds.filter { $0 == .getModified }.count == 19, "\(kinds)")
        #expect(kinds.filter { $0 == .upgrade }.count == 4, "\(kinds)")
        #expect(kinds.count == 23, "\(kinds)")
    }

    /// A loop that reads and then writes each word: the read misses fetch read-only lines,
    /// the writes upgrade them. Once the writes stream, the lines of the page it holds
    /// read-only are upgraded ahead of them, and the next page's first read (going on
    /// with a write stream) asks for its line, and the rest of that page, writable.
    @Test func aReadWriteLoopStreamsWithWriteRights() throws {
        let pair = try AgentPair()
        let other = pair.agents[1]
        var v: UInt64 = 0
        func kinds() -> [CoherenceKind] {
            other.outgoing.compactMap { if case .coherenceRequest(let k, _) = $0.message { return k } else { return nil } }
        }
        #expect(other.load(page, size: 8, requester: 1, value: &v) == .retry)
        pair.drain()
        #expect(other.load(page, size: 8, requester: 1, value: &v) == .ok)
        #expect(other.store(page, size: 8, value: 1, requester: 1) == .retry)
        pair.drain()
        #expect(other.store(page, size: 8, value: 1, requester: 1) == .ok)
        // The second line: a read miss starts a (read) stream for the rest of the page.
        #expect(other.load(page + 0x80, size: 8, requester: 1, value: &v) == .retry)
        #expect(kinds().count == 31 && kinds().allSatisfy { $0 == .getShared })
        pair.drain()
        #expect(other.load(page + 0x80, size: 8, requester: 1, value: &v) == .ok)
        #expect(other.store(page + 0x80, size: 8, value: 1, requester: 1) == .retry)
        pair.drain()
        #expect(other.store(page + 0x80, size: 8, value: 1, requester: 1) == .ok)
        #expect(other.load(page + 0x100, size: 8, requester: 1, value: &v) == .ok)
        // The third line's store goes on with the stream: every line after it upgraded.
        #expect(other.store(page + 0x100, size: 8, value: 1, requester: 1) == .retry)
        #expect(kinds() == Array(repeating: .upgrade, count: 30), "\(kinds())")
        pair.drain()
        for offset in stride(from: UInt64(0x100), through: 0xf80, by: 0x80) {
            #expect(other.store(page + offset, size: 8, value: 2, requester: 1) == .ok)
        }
        // The next page's first read goes on with the write stream: all of it writable.
        #expect(other.load(page + 0x1000, size: 8, requester: 1, value: &v) == .retry)
        #expect(kinds() == Array(repeating: .getModified, count: 32), "\(kinds())")
        pair.drain()
        #expect(other.load(page + 0x1000, size: 8, requester: 1, value: &v) == .ok)
        for offset in stride(from: UInt64(0), through: 0xf80, by: 0x80) {
            #expect(other.store(page + 0x1000 + offset, size: 8, value: 3, requester: 1) == .ok)
        }
    }

    /// A stream that prefetched to the end of a page goes on with the next page's first
    /// miss (the whole of that page at once); a miss far from the last one starts nothing.
    @Test func aStreamGoesOnIntoTheNextPageAndScatteredMissesStartNone() throws {
        let pair = try streamNearTheEndOfThePage()
        let other = pair.agents[1]
        var v: UInt64 = 0
        pair.drain()
        let next = page + 0x1000
        #expect(other.load(next, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == Array(stride(from: next, through: next + 0xf80, by: 0x80)))
        pair.drain()
        // Scattered: 16 lines on from the last miss (and past no prefetched line).
        let far = next + 0x2000
        #expect(other.load(far, size: 8, requester: 1, value: &v) == .retry)
        pair.drain()
        #expect(other.load(far + 0x800, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == [far + 0x800])
        // Within 4 lines it is a stream again.
        pair.drain()
        #expect(other.load(far + 0xa00, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == Array(stride(from: far + 0xa00, through: far + 0xf80, by: 0x80)))
    }
}
