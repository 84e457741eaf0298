import Coherence
import Protocol
import Testing
@testable import Node

/// A stopped VM's frames, before the coordinator hands them out again: the home takes
/// every line back from other nodes' caches and zeroes the frames, and accesses the
/// old VM left parked are forgotten.
@Suite struct CoherenceAgentScrubTests {
    let base = AgentPair.base0

    @Test func linesHeldElsewhereComeHomeAndTheFramesReadZero() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let modified = base + 0x1000, shared = base + 0x2080
        // Node 1 writes one line (Modified there) and reads another (Shared).
        #expect(other.store(modified, size: 8, value: 0xdead, requester: 1) == .retry)
        var v: UInt64 = 0
        #expect(other.load(shared, size: 8, requester: 2, value: &v) == .retry)
        pair.drain()
        #expect(other.store(modified, size: 8, value: 0xdead, requester: 1) == .ok)
        #expect(home.store(base + 0x3000, size: 8, value: 7, requester: 3) == .ok)  // home data too

        let waiting = try #require(home.beginScrub(base, 0x4000))
        #expect(Set(waiting) == [modified, shared])
        #expect(!home.isHome(modified))
        pair.drain()
        #expect(waiting.allSatisfy(home.isHome))
        home.zero(base, 0x4000)
        for a in [modified, shared, base + 0x3000] {
            #expect(home.load(a, size: 8, requester: 4, value: &v) == .ok && v == 0, "0x\(String(a, radix: 16))")
        }
        // The other node's next read misses and gets the zeroes.
        #expect(other.load(modified, size: 8, requester: 5, value: &v) == .retry)
        pair.drain()
        #expect(other.load(modified, size: 8, requester: 5, value: &v) == .ok && v == 0)
    }

    @Test func onlyHomeMemoryCanBeScrubbed() throws {
        let pair = try AgentPair()
        #expect(pair.agents[0].beginScrub(AgentPair.base1, 4096) == nil)   // node 1's memory
        #expect(pair.agents[0].beginScrub(base + 1, 4096) == nil)          // not page aligned
        #expect(pair.agents[0].beginScrub(base, 1 << 30) == nil)           // past the slice
    }

    @Test func aDroppedVMsParkedAccessesAreForgotten() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let line = base + 0x5000
        // VM 7's hart on node 1 parks a store; the VM is dropped before the line comes.
        let requester = UInt64(7) << 32 | 1
        #expect(other.store(line, size: 8, value: 0xbad, requester: requester) == .retry)
        other.forgetParked(vm: 7)
        pair.drain()
        #expect(!pair.completed[1].contains(requester))
        // The store was never performed: the home reads what it had.
        var v: UInt64 = 1
        #expect(home.load(line, size: 8, requester: 9, value: &v) == .retry || v == 0)
        pair.drain()
        #expect(home.load(line, size: 8, requester: 9, value: &v) == .ok && v == 0)
    }
}
