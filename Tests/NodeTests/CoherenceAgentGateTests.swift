import Coherence
import Protocol
import Testing
@testable import Node

/// A replicated page's home grants no write on it until its replicas are gone: reads
/// go on, writes from anywhere wait (and say so), and lifting the gate lets them go in
/// the order they came.
@Suite struct CoherenceAgentGateTests {
    let page = AgentPair.base0 + 0x2000

    @Test func writesWaitAtTheGateReadsDoNot() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        #expect(home.store(page + 8, size: 8, value: 41, requester: 1) == .ok)
        home.gate(page)
        #expect(home.isGated(page + 0x80))
        pair.collect()
        // The home's own CPUs: a read fast path, no write fast path, a store waits.
        #expect(home.directPage(page, write: false) != nil)
        #expect(home.directPage(page, write: true) == nil)
        #expect(home.store(page + 8, size: 8, value: 42, requester: 1) == .retry)
        #expect(home.takeWritesWanted() == [page])
        // Another node reads the page's current value; its write is held at the home.
        var v: UInt64 = 0
        #expect(other.load(page + 8, size: 8, requester: 2, value: &v) == .retry)
        pair.drain()
        #expect(other.load(page + 8, size: 8, requester: 2, value: &v) == .ok && v == 41)
        #expect(other.store(page + 0x100, size: 8, value: 7, requester: 3) == .retry)
        pair.drain()
        #expect(other.store(page + 0x100, size: 8, value: 7, requester: 3) == .retry)
        #expect(home.takeWritesWanted() == [page])
        #expect(!pair.completed[0].contains(1) && !pair.completed[1].contains(3))
        // A page that is not gated is untouched by any of this.
        #expect(home.store(page + 0x1000, size: 8, value: 5, requester: 4) == .ok)

        // Lifting the gate: the held request reaches the directory, the parked home
        // write asks again; both complete.
        home.ungate(page)
        #expect(!home.isGated(page))
        pair.drain()
        #expect(pair.completed[1].contains(3))
        #expect(other.store(page + 0x100, size: 8, value: 7, requester: 3) == .ok)
        #expect(home.store(page + 8, size: 8, value: 42, requester: 1) == .retry || pair.completed[0].contains(1))
        pair.drain()
        #expect(home.store(page + 8, size: 8, value: 42, requester: 1) == .ok)
        // The line node 1 wrote comes back with its value.
        #expect(home.load(page + 0x100, size: 8, requester: 5, value: &v) == .retry)
        pair.drain()
        #expect(home.load(page + 0x100, size: 8, requester: 5, value: &v) == .ok && v == 7)
        #expect(home.takeWritesWanted().isEmpty)
        #expect(home.rejectedMessages == 0 && other.rejectedMessages == 0)
    }

    @Test func gatingIsForHomePagesOnly() throws {
        let pair = try AgentPair()
        let remote = AgentPair.base1 + 0x1000
        pair.agents[0].gate(remote)
        #expect(!pair.agents[0].isGated(remote))
        // Ungating a page that was never gated changes nothing.
        pair.agents[0].ungate(page)
        #expect(pair.agents[0].directPage(page, write: true) != nil)
    }

    @Test func theHomeReportsItsOwnUseOfPagesOthersHoldLinesOf() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        var v: UInt64 = 0
        // Nobody else holds a line: the home's use is nobody's business.
        #expect(home.directPage(page, write: false) != nil)
        #expect(home.takeHomeTouches().isEmpty)
        // Another node reads a line: the home's read fast path is a read of a shared page.
        #expect(other.load(page, size: 8, requester: 2, value: &v) == .retry)
        pair.drain()
        #expect(home.directPage(page, write: false) != nil)
        #expect(home.takeHomeTouches() == [page: false])
        // Its write must take the line back: a write.
        #expect(home.store(page, size: 8, value: 1, requester: 1) == .retry)
        #expect(home.takeHomeTouches() == [page: true])
        pair.drain()
        // A scrub's recall is not the home's use.
        #expect(other.load(page + 0x80, size: 8, requester: 3, value: &v) == .retry)
        pair.drain()
        _ = home.beginScrub(page, 4096)
        #expect(home.takeHomeTouches().isEmpty)
    }

    @Test func aDowngradeBringsWrittenLinesHomeAndLeavesReadOnlyCopies() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        var v: UInt64 = 0
        #expect(other.store(page, size: 8, value: 9, requester: 1) == .retry)
        #expect(other.load(page + 0x80, size: 8, requester: 2, value: &v) == .retry)
        pair.drain()
        #expect(other.store(page, size: 8, value: 9, requester: 1) == .ok)
        #expect(other.load(page + 0x80, size: 8, requester: 2, value: &v) == .ok)
        // Only the written line is waited for; it comes home readable, the other node keeps
        // both lines read-only (its reads hit without a message).
        #expect(home.beginDowngrade(page) == [page])
        #expect(!home.isHomeReadable(page))
        pair.drain()
        #expect(home.isHomeReadable(page) && !home.isHome(page))
        #expect(home.load(page, size: 8, requester: 3, value: &v) == .ok && v == 9)
        #expect(other.load(page, size: 8, requester: 4, value: &v) == .ok && v == 9)
        #expect(other.load(page + 0x80, size: 8, requester: 5, value: &v) == .ok)
        pair.collect()
        #expect(pair.channels.allSatisfy { $0.isEmpty })
        #expect(home.beginDowngrade(page + 1) == nil && home.beginDowngrade(AgentPair.base1) == nil)
    }
}
