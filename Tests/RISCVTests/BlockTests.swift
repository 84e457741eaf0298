import Testing
@testable import RISCV

/// Block execution (Hart+Blocks.swift) must be invisible: budgets are exact to the
/// instruction, branches leave a block in its middle, interrupts are taken at the
/// very instruction boundary where they become enabled, faults and parked accesses in
/// the middle of a block stop exactly there, and a store is seen by the next fetch.
@Suite struct BlockTests {
    @Test func budgetsAreExactWithinABlock() throws {
        // One straight block of ten addi (and its jump), run a few instructions at a time.
        let (h, mem) = try makeHart("""
            .option norvc
            1: addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            addi a0, a0, 1
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }
        var expected: UInt64 = 0
        for budget in [1, 3, 2, 7, 11, 1, 5, 22, 4] {
            let before = h.instructionsRetired
            #expect(h.run(budget: budget) == .budgetExhausted)
            #expect(h.instructionsRetired == before + UInt64(budget))
            // Every 11th instruction is the jump.
            let start = before, end = before + UInt64(budget)
            for i in start..<end where i % 11 != 10 { expected += 1 }
            #expect(h[register: 10] == expected, "after budget \(budget)")
            #expect(h.pc == TestMemory.base + 4 * (end % 11))
        }
    }

    @Test func takenBranchesLeaveTheBlockInTheMiddle() throws {
        let (h, mem) = try makeHart("""
            li a0, 0
            li t0, 5
            loop:
            addi a0, a0, 1
            addi t0, t0, -1
            bnez t0, loop           # taken four times, then falls through in the block
            addi a0, a0, 100
            beqz a0, never          # never taken
            addi a0, a0, 1000
            1: j 1b
            never:
            li a0, -1
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }
        _ = h.run(budget: 200)
        #expect(h[register: 10] == 1105)
    }

    @Test func anInterruptIsTakenRightAfterTheWriteThatEnablesIt() throws {
        // MTIP is pending and MTIE set from the start; setting mstatus.MIE in the middle
        // of straight code must trap before the very next instruction.
        let (h, mem) = try makeHart("""
            la t0, handler
            csrw mtvec, t0
            li t0, 0x80
            csrw mie, t0
            li a0, 1
            csrsi mstatus, 8
            after:
            li a0, 2
            li a1, 3
            1: j 1b
            .align 2
            handler:
            csrr a2, mepc
            la t0, after
            sub a2, a2, t0          # 0: mepc is the instruction after the csrsi
            mv a3, a0               # the interrupted code's a0: still 1
            li t0, 0x80
            csrc mie, t0
            mret
            """)
        defer { withExtendedLifetime(mem) {} }
        h.setInterrupt(.machineTimer, true)
        _ = h.run(budget: 100)
        #expect(h[register: 12] == 0)
        #expect(h[register: 13] == 1)
        #expect(h[register: 10] == 2)
        #expect(h[register: 11] == 3)
    }

    @Test func aStoreRewritingTheNextInstructionIsSeen() throws {
        // The last sw rewrites the instruction right after it, in the same block, with
        // the TLB warm for both the load and the store (so neither leaves the inline
        // path on a miss); no FENCE.I.
        let (h, mem) = try makeHart("""
            .option norvc
            la t0, target
            la t2, word
            sw zero, 0(t2)
            lw t1, replacement
            sw t1, 0(t0)
            target:
            li a0, 5
            1: j 1b
            .align 2
            replacement:
            li a0, 9
            word:
            .word 0
            """)
        defer { withExtendedLifetime(mem) {} }
        _ = h.run(budget: 20)
        #expect(h[register: 10] == 9)
    }

    @Test func aParkedAccessInTheMiddleOfABlockStopsThere() throws {
        let (h, mem) = try makeHart("""
            .option norvc
            li a0, 0x10000000
            li a2, 1
            li a3, 2
            ld a1, 0(a0)
            li a4, 3
            1: j 1b
            """)
        mem.retryMMIO = true
        let before = h.instructionsRetired
        #expect(h.run(budget: 100) == .parked)
        #expect(h.pc == TestMemory.base + 12)  // li a0 is one lui
        #expect(h.instructionsRetired == before + 3)
        #expect(h[register: 12] == 1 && h[register: 13] == 2 && h[register: 14] == 0)
        mem.retryMMIO = false
        mem.mmioWord = 77
        _ = h.run(budget: 3)
        #expect(h[register: 11] == 77)
        #expect(h[register: 14] == 3)
    }

    @Test func aFaultInTheMiddleOfABlockHasItsOwnPC() throws {
        let (h, mem) = try makeHart("""
            .option norvc
            la t0, handler
            csrw mtvec, t0
            li a1, 1
            li a2, 2
            bad:
            lw a3, 0(zero)          # no memory at 0: load access fault
            li a4, 4
            1: j 1b
            .align 2
            handler:
            csrr a5, mepc
            csrr a6, mcause
            csrr a7, minstret
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }
        _ = h.run(budget: 40)
        #expect(h[register: 15] == TestMemory.base + 20)
        #expect(h[register: 16] == 5)
        #expect(h[register: 14] == 0)
        // la (2) + csrw + 2 li retired before the fault, the handler's two csrr before the read.
        #expect(h[register: 17] == 7)
    }

    // MARK: - Superinstructions

    @Test func aBudgetCanEndBetweenTheHalvesOfASuperinstruction() throws {
        // addi + bne fuse into one entry; single steps must still stop between them.
        let (h, mem) = try makeHart("""
            .option norvc
            li a1, 3
            loop:
            addi a0, a0, 1
            bne a0, a1, loop
            1: j 1b
            """)
        defer { withExtendedLifetime(mem) {} }
        var pcs: [UInt64] = []
        var a0s: [UInt64] = []
        for _ in 0..<8 {
            #expect(h.run(budget: 1) == .budgetExhausted)
            pcs.append(h.pc - TestMemory.base)
            a0s.append(h[register: 10])
        }
        #expect(pcs == [4, 8, 4, 8, 4, 8, 12, 12])
        #expect(a0s == [0, 1, 1, 2, 2, 3, 3, 3])
        #expect(h.instructionsRetired == 8)
    }

    @Test func aFusedLoadOffTheFastPathStillRunsItsBranch() throws {
        // lw + beqz fuse; the lw reads a device word (out of line), so the branch runs
        // as the start of the next block; then the same load parks.
        let (h, mem) = try makeHart("""
            .option norvc
            li a0, 0x10000000
            again:
            lw t1, 0(a0)
            beqz t1, wasZero
            li a2, 1
            j again
            wasZero:
            li a3, 2
            1: j 1b
            """)
        mem.mmioWord = 5
        _ = h.run(budget: 4)  // li, lw, beqz (not taken), li a2
        #expect(h[register: 6] == 5 && h[register: 12] == 1 && h[register: 13] == 0)
        mem.retryMMIO = true
        #expect(h.run(budget: 10) == .parked)  // j, then lw parks
        #expect(h.pc == TestMemory.base + 4)
        mem.retryMMIO = false
        mem.mmioWord = 0
        _ = h.run(budget: 3)  // lw, beqz (taken), li a3
        #expect(h[register: 6] == 0 && h[register: 13] == 2)
    }

    // MARK: - Chains across pages

    @Test func blocksChainedIntoAnotherPageKeepTheirAddresses() throws {
        // A loop calls a function on the next page that reads a CSR (out of line) and
        // takes its own address with auipc; from the second call on, the call chains
        // into that page without returning to run. Then a call there makes an ecall (a
        // trap whose mepc must be in that page); the handler skips it.
        let (h, mem) = try makeHart("""
            .option norvc
            la t0, handler
            csrw mtvec, t0
            li t0, 5
            csrw mscratch, t0
            li s0, 3
            loop:
            call far
            addi s0, s0, -1
            bnez s0, loop
            call trapper
            1: j 1b
            handler:
            csrr a5, mepc
            addi t1, a5, 4
            csrw mepc, t1
            mret
            .org 0x1000
            far:
            addi a2, a2, 1
            csrr a3, mscratch
            auipc a4, 0
            add a6, a6, a3
            ret
            trapper:
            addi a7, a7, 1
            ecall
            addi a7, a7, 1
            ret
            """)
        defer { withExtendedLifetime(mem) {} }
        _ = h.run(budget: 200)
        #expect(h[register: 8] == 0)
        #expect(h[register: 12] == 3)
        #expect(h[register: 16] == 15)
        #expect(h[register: 14] == TestMemory.base + 0x1008)
        #expect(h[register: 15] == TestMemory.base + 0x1018)
        #expect(h[register: 17] == 2)
    }
}
