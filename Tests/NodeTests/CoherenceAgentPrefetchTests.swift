import Coherence
import Protocol
import Testing
@testable import Node

/// A stream of misses through remote memory asks for the next lines of the page ahead
/// of the accesses, and never for a line of another page.
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
        #expect(requested(pair) == [page + 0x80, page + 0x100, page + 0x180, page + 0x200, page + 0x280])
        #expect(other.prefetches == 4 && other.remoteMisses == 2)
        pair.drain()
        // The prefetched lines are here: reads hit, nothing is sent.
        for offset in stride(from: UInt64(0x100), through: 0x280, by: 0x80) {
            #expect(other.load(page + offset, size: 8, requester: 1, value: &v) == .ok)
        }
        pair.collect()
        #expect(pair.channels.allSatisfy { $0.isEmpty })
    }

    @Test func aPrefetchStopsAtTheEndOfThePage() throws {
        let pair = try AgentPair()
        let other = pair.agents[1]
        var v: UInt64 = 0
        #expect(other.load(page + 0xe00, size: 8, requester: 1, value: &v) == .retry)
        pair.drain()
        #expect(other.load(page + 0xe80, size: 8, requester: 1, value: &v) == .retry)
        #expect(requested(pair) == [page + 0xe80, page + 0xf00, page + 0xf80])
        // Writes stream with write rights.
        pair.drain()
        #expect(other.store(page + 0x400, size: 8, value: 1, requester: 2) == .retry)
        pair.drain()
        #expect(other.store(page + 0x480, size: 8, value: 1, requester: 2) == .retry)
        let kinds = other.outgoing.compactMap { if case .coherenceRequest(let k, _) = $0.message { return k } else { return nil } }
        #expect(kinds.count == 5 && kinds.allSatisfy { $0 == .getModified })
    }
}
