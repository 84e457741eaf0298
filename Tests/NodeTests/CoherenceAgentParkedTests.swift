import Coherence
import Protocol
import RISCV
import Testing
@testable import Node

/// A parked access belongs to the instruction that parked. Once its CPU is past that
/// instruction, what the agent still holds for it must not be handed to a later
/// access of the same address, size and kind, nor performed behind the CPU's back.
@Suite struct CoherenceAgentParkedTests {
    static let base0 = AgentPair.base0

    /// A load performed for an instruction that then went another way (a page walk
    /// that found the A/D bits set needs no AMO; an instruction that faulted on
    /// re-execution) is forgotten: a later load of the same address reads memory as it
    /// is then, not the value of the old one.
    @Test func aLaterLoadDoesNotGetTheValueOfAnUnusedOne() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let a = Self.base0 + 0x40
        #expect(home.store(a, size: 8, value: 1, requester: 100) == .ok)
        var v: UInt64 = 0
        #expect(other.load(a, size: 8, requester: 7, value: &v) == .retry)
        pair.drain()
        #expect(pair.completed[1].contains(7))
        #expect(other.hasPerformedAccess(requester: 7))

        // The CPU went past without using it.
        let unused = other.forgetPerformed(requester: 7)
        #expect(unused == [CoherenceAgent.Unused(address: a, size: 8, access: .load)])
        #expect(other.unusedLoads == 1 && other.unusedWrites == 0)
        #expect(!other.hasParkedAccess(requester: 7))

        // The home writes 2 (taking node 1's copy away); node 1 then reads 2.
        #expect(pair.complete { home.store(a, size: 8, value: 2, requester: 100) })
        var loaded: UInt64 = 0
        #expect(pair.complete { other.load(a, size: 8, requester: 7, value: &loaded) })
        #expect(loaded == 2)
    }

    /// An AMO performed and not used is reported as a write; the same AMO asked again
    /// later is performed again (the stale result is not handed out instead).
    @Test func aLaterAMOIsPerformedNotAnsweredFromAnUnusedOne() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let pte = Self.base0 + 0x1000
        #expect(home.store(pte, size: 8, value: 0x1, requester: 100) == .ok)
        var old: UInt64 = 0
        #expect(other.atomic(.or, pte, size: 8, operand: 0x40, expected: 0, requester: 3, old: &old) == .retry)
        pair.drain()
        #expect(other.forgetPerformed(requester: 3).map(\.access) == [.atomic(.or, operand: 0x40, expected: 0)])
        #expect(other.unusedWrites == 1)

        // The kernel clears the bit again; the next walk's AMO must set it in memory.
        #expect(pair.complete { home.store(pte, size: 8, value: 0x1, requester: 100) })
        #expect(pair.complete { other.atomic(.or, pte, size: 8, operand: 0x40, expected: 0, requester: 3, old: &old) })
        #expect(old == 0x1)
        var now: UInt64 = 0
        #expect(pair.complete { home.load(pte, size: 8, requester: 100, value: &now) })
        #expect(now == 0x41)
    }

    /// An access not yet performed is forgotten when its CPU runs again for another
    /// reason: when its line arrives nothing is performed (the CPU, now perhaps in an
    /// interrupt handler, no longer does that AMO); asked again, it is done once.
    @Test func aForgottenWaitingAMOIsNotPerformedWhenItsLineArrives() throws {
        let pair = try AgentPair()
        let (home, other) = (pair.agents[0], pair.agents[1])
        let counter = Self.base0 + 0x2000
        #expect(home.store(counter, size: 4, value: 10, requester: 100) == .ok)
        var old: UInt64 = 0
        #expect(other.atomic(.add, counter, size: 4, operand: 1, expected: 0, requester: 5, old: &old) == .retry)
        other.forgetWaiting(requester: 5)
        #expect(!other.hasParkedAccess(requester: 5))
        pair.drain()
        #expect(!pair.completed[1].contains(5), "nothing is performed for a forgotten access")

        // The CPU comes back to the instruction: the line is here now, done once.
        #expect(other.atomic(.add, counter, size: 4, operand: 1, expected: 0, requester: 5, old: &old) == .ok)
        #expect(old == 10)
        var now: UInt64 = 0
        #expect(pair.complete { home.load(counter, size: 4, requester: 100, value: &now) })
        #expect(now == 11)
    }

    /// Forgetting waiting accesses keeps the performed ones: the CPU must still pick
    /// those up.
    @Test func forgettingWaitingAccessesKeepsPerformedOnes() throws {
        let pair = try AgentPair()
        let other = pair.agents[1]
        var v: UInt64 = 0
        #expect(other.load(Self.base0 + 0x3000, size: 8, requester: 9, value: &v) == .retry)
        pair.drain()
        #expect(other.load(Self.base0 + 0x3400, size: 8, requester: 9, value: &v) == .retry)
        other.forgetWaiting(requester: 9)
        #expect(other.hasPerformedAccess(requester: 9))
        #expect(other.hasPerformedAccess(.load, requester: 9, address: Self.base0 + 0x3000, size: 8))
        #expect(!other.hasPerformedAccess(.load, requester: 9, address: Self.base0 + 0x3400, size: 8))
    }
}
