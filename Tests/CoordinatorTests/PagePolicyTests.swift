import Testing
@testable import Coordinator

/// The page policy's rules one by one: the trigger threshold, one dominant node
/// (migrate), several readers (replicate), writers (stay), the cap on migrations, the
/// counter reset, per-VM parameters.
@Suite struct PagePolicyTests {
    typealias P = PagePolicy
    let ms: UInt64 = 1_000_000
    let page = P.Page(vm: 1, address: 0x8000_3000)
    let small = P.Parameters(trigger: 10, sharing: 4, writeLimit: 1, migrateLimit: 1, resetInterval: .milliseconds(100), settle: .zero)

    func report(_ misses: [Int: UInt64], writes: UInt64 = 0, home: Int = 0, replicas: Set<Int> = [], page: P.Page? = nil) -> P.Event {
        .misses([P.Report(page: page ?? self.page, placement: P.Placement(home: home, replicas: replicas),
                          misses: misses, writeMisses: writes)])
    }

    @Test func belowTheTriggerNothingHappensAndReportsAddUp() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 6]), now: 0).isEmpty)
        #expect(p.handle(report([1: 3]), now: ms).isEmpty)
        #expect(p.handle(report([1: 1]), now: 2 * ms) == [.migrate(page, from: 0, to: 1)])
    }

    @Test func oneDominantNodeGetsThePageAndTheHomeKeepsItsOwn() {
        var p = P(defaults: small)
        // Node 2's 3 misses are below the sharing threshold: node 1 dominates.
        #expect(p.handle(report([1: 12, 2: 3]), now: 0) == [.migrate(page, from: 0, to: 1)])
        // The home's own misses (it waited for remote copies) never move the page.
        let other = P.Page(vm: 1, address: 0x8000_4000)
        #expect(p.handle(report([0: 50], page: other), now: 0).isEmpty)
    }

    @Test func readSharedPagesReplicateToTheirReadersWithoutACopy() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10, 2: 5, 3: 4], home: 0, replicas: [3]), now: 0) == [.replicate(page, to: [1, 2])])
    }

    @Test func aMigrationWaitsForThePageToStayHotFromOneNode() {
        var settled = small
        settled.settle = .milliseconds(30)
        var p = P(defaults: settled)
        #expect(p.handle(report([1: 10]), now: 0).isEmpty)
        #expect(p.handle(report([1: 10]), now: 20 * ms).isEmpty)
        // Another node's report shows it shared before the page settled: it is replicated.
        #expect(p.handle(report([2: 5]), now: 25 * ms) == [.replicate(page, to: [1, 2])])
        _ = p.handle(.moveDone(page, migrated: false), now: 26 * ms)
        // Hot from node 1 alone for 30 ms: it migrates.
        let other = P.Page(vm: 1, address: 0x8000_9000)
        #expect(p.handle(report([1: 10], page: other), now: 40 * ms).isEmpty)
        #expect(p.handle(report([1: 1], page: other), now: 60 * ms).isEmpty)
        #expect(p.handle(report([1: 1], page: other), now: 70 * ms) == [.migrate(other, from: 0, to: 1)])
    }

    @Test func aPageItsHomeUsesIsSharedWithTheHome() {
        var p = P(defaults: small)
        // The home read it this interval: node 1's misses replicate it instead of moving it.
        #expect(p.handle(.misses([P.Report(page: page, placement: P.Placement(home: 0), misses: [:], writeMisses: 0, homeUse: .read)]),
                         now: 0).isEmpty)
        #expect(p.handle(report([1: 10]), now: ms) == [.replicate(page, to: [1])])
        // A page the home writes is write-shared: it stays.
        let written = P.Page(vm: 1, address: 0x8000_7000)
        _ = p.handle(.misses([P.Report(page: written, placement: P.Placement(home: 0), misses: [:], writeMisses: 0, homeUse: .write)]), now: 0)
        #expect(p.handle(report([1: 10], page: written), now: ms).isEmpty)
        // Home use is forgotten with the interval: then node 1 alone uses it, and it moves.
        _ = p.handle(.tick, now: 200 * ms)
        #expect(p.handle(report([1: 10], page: written), now: 201 * ms) == [.migrate(written, from: 0, to: 1)])
    }

    @Test func aCollapsedPageIsWriteSharedForTheRestOfTheInterval() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10, 2: 5]), now: 0) == [.replicate(page, to: [1, 2])])
        _ = p.handle(.moveDone(page, migrated: false), now: ms)
        _ = p.handle(.collapsed(page), now: 2 * ms)
        #expect(p.handle(report([1: 10, 2: 5]), now: 3 * ms).isEmpty)
        _ = p.handle(.tick, now: 200 * ms)
        #expect(p.handle(report([1: 10, 2: 5]), now: 201 * ms) == [.replicate(page, to: [1, 2])])
    }

    @Test func aPageThatKeepsCollapsingIsFrozenLongerEachTime() {
        var p = P(defaults: small)
        var now: UInt64 = 0
        var freezes: [UInt64] = []
        for _ in 0..<4 {
            // Replicated as soon as it is not frozen; collapsed again right after.
            var decided = p.handle(report([1: 10, 2: 5]), now: now)
            while decided.isEmpty {
                now += ms
                _ = p.handle(.tick, now: now)
                decided = p.handle(report([1: 10, 2: 5]), now: now)
            }
            #expect(decided == [.replicate(page, to: [1, 2])])
            _ = p.handle(.moveDone(page, migrated: false), now: now)
            let collapsedAt = now
            _ = p.handle(.collapsed(page), now: now)
            while p.isFrozen(page, now: now) { now += ms }
            freezes.append((now - collapsedAt) / ms)
        }
        #expect(freezes == [100, 200, 400, 800])
        // After a quiet strike window the next collapse freezes it for one interval again.
        now += 3000 * ms
        _ = p.handle(.tick, now: now)
        #expect(p.handle(report([1: 10, 2: 5]), now: now) == [.replicate(page, to: [1, 2])])
        _ = p.handle(.moveDone(page, migrated: false), now: now)
        _ = p.handle(.collapsed(page), now: now)
        #expect(p.isFrozen(page, now: now + 99 * ms) && !p.isFrozen(page, now: now + 100 * ms))
    }

    @Test func aPageThatMigratesBackAndForthIsFrozen() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10], home: 0), now: 0) == [.migrate(page, from: 0, to: 1)])
        _ = p.handle(.moveDone(page, migrated: true), now: ms)
        #expect(!p.isFrozen(page, now: 2 * ms))  // one migration is no strike
        _ = p.handle(.tick, now: 150 * ms)
        #expect(p.handle(report([0: 10], home: 1), now: 151 * ms) == [.migrate(page, from: 1, to: 0)])
        _ = p.handle(.moveDone(page, migrated: true), now: 152 * ms)
        // Back within the strike window: frozen for an interval, whoever misses on it.
        _ = p.handle(.tick, now: 251 * ms)
        #expect(p.handle(report([1: 50], home: 0), now: 251 * ms).isEmpty)
        _ = p.handle(.tick, now: 360 * ms)
        #expect(p.handle(report([1: 10], home: 0), now: 360 * ms) == [.migrate(page, from: 0, to: 1)])
        _ = p.handle(.moveDone(page, migrated: true), now: 361 * ms)
        // The second strike doubles the freeze.
        #expect(p.isFrozen(page, now: 560 * ms) && !p.isFrozen(page, now: 561 * ms))
        // The policy forgets the VM's history with the VM.
        p.remove(vm: 1)
        #expect(!p.isFrozen(page, now: 362 * ms))
    }

    @Test func writeSharedPagesStayWhereTheyAre() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10, 2: 8], writes: 1), now: 0).isEmpty)
        #expect(p.handle(report([1: 10, 2: 8]), now: ms).isEmpty)  // the write still counts this interval
    }

    @Test func anOutstandingPageGetsNoSecondDecision() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10]), now: 0).count == 1)
        #expect(p.outstanding == [page])
        #expect(p.handle(report([1: 50]), now: ms).isEmpty)
        _ = p.handle(.moveFailed(page), now: 2 * ms)
        // Misses counted while it was outstanding were dropped: it must get hot again.
        #expect(p.handle(report([1: 9], home: 0), now: 3 * ms).isEmpty)
        #expect(p.handle(report([1: 1], home: 0), now: 3 * ms) == [.migrate(page, from: 0, to: 1)])
    }

    @Test func migrationsPerIntervalAreCappedAgainstPingPong() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 10], home: 0), now: 0) == [.migrate(page, from: 0, to: 1)])
        _ = p.handle(.moveDone(page, migrated: true), now: ms)
        // Now node 2 hammers it: moved once this interval already, it stays on node 1.
        #expect(p.handle(report([2: 20], home: 1), now: 2 * ms).isEmpty)
        // After the reset interval it may move again.
        _ = p.handle(.tick, now: 150 * ms)
        #expect(p.handle(report([2: 10], home: 1), now: 151 * ms) == [.migrate(page, from: 1, to: 2)])
    }

    @Test func countersRestartEveryInterval() {
        var p = P(defaults: small)
        #expect(p.handle(report([1: 9]), now: 0).isEmpty)
        _ = p.handle(.tick, now: 50 * ms)   // not yet an interval
        #expect(p.handle(report([1: 0]), now: 50 * ms).isEmpty)
        _ = p.handle(.tick, now: 100 * ms)  // an interval: the 9 misses are gone
        #expect(p.handle(report([1: 9]), now: 101 * ms).isEmpty)
        #expect(p.handle(report([1: 1]), now: 102 * ms).count == 1)
    }

    @Test func parametersArePerVMAndThePolicyCanBeOff() {
        var p = P(defaults: small)
        var off = small
        off.enabled = false
        p.set(off, for: 2)
        let vm2 = P.Page(vm: 2, address: 0x8000_3000)
        #expect(p.handle(report([1: 100], page: vm2), now: 0).isEmpty)
        var eager = small
        eager.trigger = 2
        p.set(eager, for: 3)
        let vm3 = P.Page(vm: 3, address: 0x8000_3000)
        #expect(p.handle(report([1: 2], page: vm3), now: 0) == [.migrate(vm3, from: 0, to: 1)])
        p.remove(vm: 3)
        #expect(p.outstanding.isEmpty)
        #expect(p.parameters(for: 3) == small)
    }

    @Test func decisionsComeInPageOrder() {
        var p = P(defaults: small)
        let a = P.Page(vm: 1, address: 0x8000_1000), b = P.Page(vm: 1, address: 0x8000_2000)
        let reports = [b, a].map { P.Report(page: $0, placement: P.Placement(home: 0), misses: [1: 10], writeMisses: 0) }
        #expect(p.handle(.misses(reports), now: 0) == [.migrate(a, from: 0, to: 1), .migrate(b, from: 0, to: 1)])
    }
}
