import Testing
@testable import RISCV

/// Spin detection (`HartExit.spinning`): a hart that comes back to the same
/// instruction with every register unchanged polls memory that has not changed.
@Suite struct SpinTests {
    /// A flag at `flag` (a page of its own), polled with and without the pause hint,
    /// from a direct page and from one the hart reaches only out of line.
    static let poll = """
        la t0, flag
        1: lw t1, 0(t0)
        beqz t1, 1b
        li a0, 1
        2: lw t1, 4(t0)
        bnez t1, 3f
        .word 0x0100000f        # pause
        j 2b
        3: li a0, 2
        li a1, 0
        4: addi a1, a1, 1       # a loop that works: never spinning
        j 4b
        .align 12
        flag: .word 0, 0
        """

    func flagAddress(_ h: Hart) -> UInt64 { TestMemory.base + 0x1000 }

    @Test(arguments: [false, true])
    func aPollingLoopSpinsUntilItsFlagChanges(outOfLine: Bool) throws {
        let (h, mem) = try makeHart(Self.poll)
        if outOfLine { mem.indirectPages.insert(TestMemory.base + 0x1000) }
        // The first slices learn the loop; within a few it is reported, not run on.
        var ends: [HartExit] = []
        for _ in 0..<4 { ends.append(h.run(budget: 2000)) }
        #expect(ends.contains(.spinning), "\(ends)")
        #expect(h[register: 10] == 0)
        let retired = h.instructionsRetired
        #expect(h.run(budget: 2000) == .spinning)
        #expect(h.instructionsRetired - retired < 2000)  // it stopped at the loop's head
        // The flag changes: it goes on, to the pause loop, which spins as well.
        (mem.ram + 0x1000).storeBytes(of: UInt32(1), as: UInt32.self)
        ends = (0..<4).map { _ in h.run(budget: 2000) }
        #expect(h[register: 10] == 1)
        #expect(ends.last == .spinning, "\(ends)")
        (mem.ram + 0x1004).storeBytes(of: UInt32(1), as: UInt32.self)
        ends = (0..<8).map { _ in h.run(budget: 2000) }
        #expect(h[register: 10] == 2)
        #expect(ends.suffix(6).allSatisfy { $0 == .budgetExhausted }, "\(ends)")
    }

    @Test func aSpinLockOnAnAtomicSpins() throws {
        let (h, mem) = try makeHart("""
            la t0, lock
            li t2, 1
            1: amoswap.w t1, t2, (t0)
            bnez t1, 1b
            li a0, 1
            2: j 2b
            .align 12
            lock: .word 1
            """)
        _ = mem
        let ends = (0..<4).map { _ in h.run(budget: 2000) }
        #expect(ends.contains(.spinning), "\(ends)")
        #expect(h[register: 10] == 0)
    }

    @Test func turnedOffItIsNeverReported() throws {
        let (h, mem) = try makeHart(Self.poll)
        h.detectsSpinning = false
        // The hart holds its memory unowned(unsafe): keep it alive while the hart runs.
        withExtendedLifetime(mem) {
            #expect((0..<8).allSatisfy { _ in h.run(budget: 2000) == .budgetExhausted })
        }
    }
}

/// `Hart.slowPathCharge`: slow instructions use more of a slice's budget, fast ones do not.
@Suite struct SlowPathChargeTests {
    /// A loop that counts in a1 and loads from `data` each time round.
    static let loop = """
        la t0, data
        li a1, 0
        1: lw t1, 0(t0)
        addi a1, a1, 1
        j 1b
        .align 12
        data: .word 7
        """

    /// Instructions a slice of `budget` retires after the loop is warm.
    func retired(charge: Int, outOfLine: Bool, budget: Int = 3_000) throws -> UInt64 {
        let (h, mem) = try makeHart(Self.loop)
        if outOfLine { mem.indirectPages.insert(TestMemory.base + 0x1000) }
        h.detectsSpinning = false
        h.slowPathCharge = charge
        return withExtendedLifetime(mem) {
            _ = h.run(budget: budget)
            let before = h.instructionsRetired
            #expect(h.run(budget: budget) == .budgetExhausted)
            return h.instructionsRetired - before
        }
    }

    @Test func outOfLineLoadsEndTheSliceSooner() throws {
        // One load in three instructions, each load using 1 + 30 of the budget: about
        // 3 instructions per 32 of budget.
        let uncharged = try retired(charge: 0, outOfLine: true)
        let charged = try retired(charge: 30, outOfLine: true)
        #expect(uncharged >= 2_990 && uncharged <= 3_010, "\(uncharged)")
        #expect(charged >= 250 && charged <= 320, "\(charged)")
    }

    @Test func directLoadsAreNotCharged() throws {
        let charged = try retired(charge: 30, outOfLine: false)
        #expect(charged >= 2_990 && charged <= 3_010, "\(charged)")
    }

    @Test func codeFetchedOutOfLineIsCharged() throws {
        let (h, mem) = try makeHart(Self.loop)
        mem.indirectPages.insert(TestMemory.base)  // the code's page
        h.detectsSpinning = false
        h.slowPathCharge = 30
        withExtendedLifetime(mem) {
            _ = h.run(budget: 3_000)
            let before = h.instructionsRetired
            _ = h.run(budget: 3_000)
            let n = h.instructionsRetired - before
            #expect(n >= 90 && n <= 110, "\(n)")  // 3,000 / (1 + 30 + a few loads)
        }
    }

    @Test func aChargeLargerThanTheBudgetStillRunsAnInstruction() throws {
        let (h, mem) = try makeHart(Self.loop)
        mem.indirectPages.insert(TestMemory.base + 0x1000)
        h.detectsSpinning = false
        h.slowPathCharge = 10_000
        withExtendedLifetime(mem) {
            for _ in 0..<20 { _ = h.run(budget: 50) }
            #expect(h[register: 11] > 0)
        }
    }
}
