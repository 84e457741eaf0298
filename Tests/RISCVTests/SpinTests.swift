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
