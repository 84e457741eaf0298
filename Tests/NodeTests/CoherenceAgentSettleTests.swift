import Coherence
import Protocol
import RISCV
import Testing
@testable import Node

/// `settle()` retries lines whose parked accesses the last grant could not serve. It
/// bounds its work per call; the bound must never cost a line, or the access parked on
/// it waits forever (nothing else asks for the line again).
@Suite struct CoherenceAgentSettleTests {
    static let base0 = AgentPair.base0

    /// More lines than one settle round handles each have a store parked behind a
    /// read grant (the grant served the load parked with it, not the store). Every
    /// store must still be performed.
    @Test func everyParkedStoreBehindAReadGrantCompletes() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let count = 100
        let lines = (0..<count).map { Self.base0 + UInt64($0) * 128 }

        // Node 1 takes every line Modified.
        for (i, line) in lines.enumerated() {
            #expect(other.store(line, size: 8, value: 1, requester: UInt64(i)) == .retry)
        }
        pair.drain()
        for (i, line) in lines.enumerated() {
            #expect(other.store(line, size: 8, value: 1, requester: UInt64(i)) == .ok)
        }

        // Home CPUs: a load (asks for the line Shared) and a store behind it on each line.
        for (i, line) in lines.enumerated() {
            var v: UInt64 = 0
            #expect(home.load(line, size: 8, requester: UInt64(2 * i), value: &v) == .retry)
            #expect(home.store(line, size: 8, value: 0x100 + UInt64(i), requester: UInt64(2 * i + 1)) == .retry)
        }
        pair.collect()
        // Node 1 answers every recall; the home takes in all the read grants before it
        // settles once, so all the stores wait for a retry at the same time.
        while let m = pair.channels[1].first {
            pair.channels[1].removeFirst()
            #expect(other.receive(m, from: 0))
            pair.collect()
        }
        let grants = pair.channels[0]
        pair.channels[0].removeAll()
        for m in grants { #expect(home.absorb(m, from: 1)) }
        pair.collect()
        #expect(pair.completed[0] == Set((0..<count).map { UInt64(2 * $0) }), "the read grants serve the loads")

        // Any call settles; then the protocol runs to the end.
        var v: UInt64 = 0
        #expect(home.load(Self.base0 + 0x8000, size: 8, requester: 10_000, value: &v) == .ok)
        pair.drain()

        let stores = Set((0..<count).map { UInt64(2 * $0 + 1) })
        let missing = stores.subtracting(pair.completed[0]).sorted()
        #expect(missing.isEmpty, "parked stores never performed (requesters): \(missing)")
        for (i, line) in lines.enumerated() where !missing.contains(UInt64(2 * i + 1)) {
            #expect(home.store(line, size: 8, value: 0x100 + UInt64(i), requester: UInt64(2 * i + 1)) == .ok)
            #expect(home.load(line, size: 8, requester: 20_000, value: &v) == .ok)
            #expect(v == 0x100 + UInt64(i))
        }
    }
}
