import Testing
@testable import RISCV

/// Instruction semantics and privileged behaviour, one program each, checked in
/// registers and CSRs. Programs end in `j .` so a budget stops them.
@Suite struct HartTests {
    func run(_ source: String, budget: Int = 1000) throws -> (Hart, TestMemory) {
        let (hart, mem) = try makeHart(source)
        _ = hart.run(budget: budget)
        return (hart, mem)
    }

    @Test func arithmeticAndEdgeCases() throws {
        let (h, _) = try run("""
            li a0, -1
            li a1, 0
            div a2, a0, a1          # by zero: all ones
            li t0, 1
            slli t0, t0, 63
            div a3, t0, a0          # overflow: the dividend
            rem a4, t0, a0          # overflow: 0
            remu a5, a0, a1         # by zero: the dividend
            li t1, 0x7fffffff
            addiw a6, t1, 1         # wraps and sign-extends
            mulh a7, t0, a0         # (-2^63) * -1, high half
            mulhsu s2, a0, a0       # -1 * (2^64 - 1), high half
            sraiw s3, a6, 4
            c.li s4, -5             # compressed forms
            c.addi s4, 3
            1: j 1b
            """)
        #expect(h[register: 12] == .max)
        #expect(h[register: 13] == 1 << 63)
        #expect(h[register: 14] == 0)
        #expect(h[register: 15] == .max)
        #expect(h[register: 16] == 0xffff_ffff_8000_0000)
        #expect(h[register: 17] == 0)
        #expect(h[register: 18] == .max)
        #expect(h[register: 19] == 0xffff_ffff_f800_0000)
        #expect(h[register: 20] == UInt64(bitPattern: -2))
    }

    @Test func illegalCSRTrapsWithTheInstructionInMtval() throws {
        let (h, _) = try run("""
            la t0, handler
            csrw mtvec, t0
            csrr a0, 0x7c0          # not implemented
            li a1, 1
            1: j 1b
            .align 2
            handler:
            csrr a2, mcause
            csrr a3, mtval
            csrr a4, mepc
            addi a4, a4, 4
            csrw mepc, a4
            mret
            """)
        #expect(h[register: 12] == 2)
        #expect(h[register: 13] == 0x7c00_2573)  // csrr a0, 0x7c0
        #expect(h[register: 11] == 1)  // resumed after the faulting instruction
    }

    @Test func ecallFromUserIsDelegatedToSupervisor() throws {
        let (h, _) = try run("""
            la t0, mhandler
            csrw mtvec, t0
            la t0, shandler
            csrw stvec, t0
            li t0, 0x100            # delegate ecall from U
            csrw medeleg, t0
            la t0, user
            csrw mepc, t0
            li t0, 0x1800
            csrc mstatus, t0        # MPP = U
            mret
            user:
            ecall
            1: j 1b
            .align 2
            shandler:
            csrr a0, scause
            csrr a1, sepc
            csrr a2, sstatus
            li a3, 42
            1: j 1b
            .align 2
            mhandler:
            li a3, 99
            1: j 1b
            """)
        #expect(h[register: 13] == 42)
        #expect(h[register: 10] == 8)
        #expect(h.privilege == .supervisor)
        #expect(h[register: 12] & 0x100 == 0)  // SPP = U
    }

    @Test func sv39WalkSetsAccessedAndDirtyAndFaultsPrecisely() throws {
        // Identity-map 0x80000000 with a 1 GiB superpage; map VA 0x40000000's first
        // 4 KiB page to PA 0x80080000 through a level-0 table without A/D bits.
        let (h, mem) = try run("""
            la t0, handler
            csrw mtvec, t0
            li t0, 0x80010000       # root table
            li t1, 0x80011000       # level-1 table
            srli t2, t1, 2
            ori t2, t2, 1
            sd t2, 8(t0)            # VPN2 = 1 -> level 1
            li t1, 0x80012000       # level-0 table
            srli t2, t1, 2
            ori t2, t2, 1
            li t3, 0x80011000
            sd t2, 0(t3)            # VPN1 = 0 -> level 0
            li t4, 0x80080000
            srli t4, t4, 2
            ori t4, t4, 0x7         # V R W, no A/D
            li t3, 0x80012000
            sd t4, 0(t3)
            li t4, 0x20000000       # 0x80000000 >> 2
            ori t4, t4, 0xcf        # V R W X A D
            sd t4, 16(t0)           # VPN2 = 2 -> superpage
            li t1, 0x8000000000080010   # Sv39, root PPN 0x80010
            csrw satp, t1
            la t0, super
            csrw mepc, t0
            li t0, 0x1800
            csrc mstatus, t0
            li t0, 0x800
            csrs mstatus, t0        # MPP = S
            mret
            super:
            li a0, 0x40000000
            ld a1, 0(a0)            # sets A
            li a2, 7
            sd a2, 8(a0)            # sets D
            li a3, 0x40001000
            ld a4, 0(a3)            # unmapped: load page fault
            1: j 1b
            .align 2
            handler:
            csrr a5, mcause
            csrr a6, mtval
            1: j 1b
            """, budget: 2000)
        let pte = mem.read64(0x8001_2000)
        #expect(pte & 0x40 != 0, "A bit")
        #expect(pte & 0x80 != 0, "D bit")
        #expect(mem.read64(0x8008_0008) == 7)
        #expect(h[register: 15] == 13)
        #expect(h[register: 16] == 0x4000_1000)
    }

    @Test func misalignedLoadsWorkAndMisalignedAMOsTrap() throws {
        let (h, mem) = try run("""
            la t0, handler
            csrw mtvec, t0
            li a0, 0x80001001
            li t1, 0x1122334455667788
            sd t1, 0(a0)
            ld a1, 0(a0)
            amoadd.w a2, t1, (a0)
            1: j 1b
            .align 2
            handler:
            csrr a3, mcause
            csrr a4, mtval
            1: j 1b
            """)
        #expect(h[register: 11] == 0x1122_3344_5566_7788)
        #expect(mem.read64(0x8000_1000) == 0x2233_4455_6677_8800)
        #expect(h[register: 13] == 6)
        #expect(h[register: 14] == 0x8000_1001)
    }

    @Test func loadReservedStoreConditional() throws {
        let (h, _) = try run("""
            li a0, 0x80002000
            li t0, 5
            sd t0, 0(a0)
            lr.d t1, (a0)
            addi t1, t1, 1
            sc.d a1, t1, (a0)       # succeeds: 0
            sc.d a2, t1, (a0)       # no reservation: 1
            lr.d t1, (a0)
            addi a5, a0, 8
            sc.d a3, t1, (a5)       # other address: 1
            ld a4, 0(a0)
            1: j 1b
            """)
        #expect(h[register: 11] == 0)
        #expect(h[register: 12] == 1)
        #expect(h[register: 13] == 1)
        #expect(h[register: 14] == 6)
    }

    /// As on QEMU, an SC without a matching reservation fails before any access:
    /// neither a misaligned nor an unmapped address traps.
    @Test func failedStoreConditionalMakesNoAccess() throws {
        let (h, _) = try run("""
            la t0, handler
            csrw mtvec, t0
            li a3, -1
            li a0, 0x80002002
            sc.w a1, zero, (a0)     # misaligned, no reservation: fails, no trap
            sc.d a2, zero, (zero)   # nothing at 0: fails, no trap
            1: j 1b
            .align 2
            handler:
            csrr a3, mcause
            1: j 1b
            """)
        #expect(h[register: 11] == 1)
        #expect(h[register: 12] == 1)
        #expect(h[register: 13] == UInt64.max)
    }

    /// CSRRS/CSRRC with a zero mask do not write, whichever register holds the
    /// zero (as on QEMU): no trap on a read-only CSR. CSRRW always writes.
    @Test func csrSetAndClearWithAZeroMaskDoNotWrite() throws {
        let (h, _) = try run("""
            la t0, handler
            csrw mtvec, t0
            li a5, 0
            csrrs a0, mhartid, a5   # no trap
            csrrc a1, mvendorid, a5 # no trap
            li a5, 1
            csrrs a2, mhartid, a5   # traps
            1: j 1b
            .align 2
            handler:
            csrr a3, mcause
            1: j 1b
            """)
        #expect(h[register: 10] == 0)
        #expect(h[register: 11] == 0)
        #expect(h[register: 13] == 2)
    }

    /// Writing mtvec/stvec with a reserved mode (2, 3) leaves them unchanged, as on QEMU.
    @Test func trapVectorWritesWithReservedModesAreIgnored() throws {
        let (h, _) = try run("""
            li t0, 0x80001001
            csrw mtvec, t0
            csrw stvec, t0
            li t0, 0x80002002
            csrw mtvec, t0
            csrw stvec, t0
            li t0, 0x80003003
            csrw mtvec, t0
            csrw stvec, t0
            csrr a0, mtvec
            csrr a1, stvec
            1: j 1b
            """)
        #expect(h[register: 10] == 0x8000_1001)
        #expect(h[register: 11] == 0x8000_1001)
    }

    @Test func retryParksAndReexecutes() throws {
        let (h, mem) = try makeHart("""
            li a0, 0x10000000
            ld a1, 0(a0)
            li a2, 1
            1: j 1b
            """)
        mem.retryMMIO = true
        #expect(h.run(budget: 100) == .parked)
        #expect(h.pc == 0x8000_0004)
        mem.retryMMIO = false
        mem.mmioWord = 77
        _ = h.run(budget: 10)
        #expect(h[register: 11] == 77)
        #expect(h[register: 12] == 1)
    }

    @Test func timerInterruptWakesWFIAndVectorsMtvec() throws {
        let (h, mem) = try makeHart("""
            la t0, vectors
            ori t0, t0, 1           # vectored
            csrw mtvec, t0
            li t0, 0x80
            csrw mie, t0            # MTIE
            csrsi mstatus, 8        # MIE
            wfi
            li a1, 1
            1: j 1b
            .align 8
            .option norvc
            vectors:
            .rept 7
            j 1b
            .endr
            csrr a0, mcause         # entry 7: machine timer
            li t0, 0x80
            csrc mie, t0
            mret
            """)
        _ = mem
        #expect(h.run(budget: 100) == .waitingForInterrupt)
        #expect(!h.hasWakeUpInterrupt)
        h.setInterrupt(.machineTimer, true)
        #expect(h.hasWakeUpInterrupt)
        _ = h.run(budget: 100)
        #expect(h[register: 10] == (UInt64(1) << 63) | 7)
        #expect(h[register: 11] == 1)
    }

    /// A pending interrupt wakes WFI whatever the global enable says, but is taken only
    /// if the privilege and the enable bits allow it: a hart spinning with interrupts
    /// masked has one and not the other (the node does not probe it for it).
    @Test func takeableInterruptsFollowTheGlobalEnable() throws {
        let (h, mem) = try makeHart("""
            li t0, 0x8
            csrw mie, t0            # MSIE, MIE still clear
            1: j 1b
            """)
        withExtendedLifetime(mem) {  // the hart does not own its memory
            _ = h.run(budget: 3)
            h.setInterrupt(.machineSoftware, true)
            #expect(h.hasWakeUpInterrupt)
            #expect(!h.hasTakeableInterrupt)
            h.mstatus |= Hart.mstatusMIE
            #expect(h.hasTakeableInterrupt)
        }
    }

    /// An Sstc timer that has fired is a pending interrupt, no longer a deadline to
    /// wake for (as the CLINT leaves out an asserted mtimecmp).
    @Test func aFiredSupervisorTimerIsNoLongerADeadline() throws {
        let (h, mem) = try makeHart("""
            li t0, 1
            slli t0, t0, 63
            csrw menvcfg, t0        # STCE
            li t0, 0x20
            csrw mie, t0            # STIE
            li t0, 1000
            csrw stimecmp, t0
            1: j 1b
            """)
        mem.time = 10
        _ = h.run(budget: 8)
        #expect(h.supervisorTimerDeadline == 1000)
        mem.time = 1000
        #expect(h.supervisorTimerDeadline == nil)
        #expect(h.hasWakeUpInterrupt)
    }

    /// A hart that spins in S-mode with interrupts on sees its Sstc timer fire between
    /// slices: the interrupt is takeable at once (the node probes it), not only after
    /// the hart's next slice has read the clock.
    @Test func aTimerThatFiredBetweenSlicesIsTakeable() throws {
        let (h, mem) = try makeHart("""
            li t0, 1
            slli t0, t0, 63
            csrw menvcfg, t0        # STCE
            li t0, 0x20
            csrw mie, t0            # STIE
            csrw mideleg, t0        # STI to S-mode
            li t0, 1000
            csrw stimecmp, t0
            la t0, 1f
            csrw mepc, t0
            li t0, 0x1800
            csrc mstatus, t0
            li t0, 0x800
            csrs mstatus, t0        # MPP = S
            mret
            1: csrsi sstatus, 2     # SIE
            2: j 2b
            """)
        mem.time = 10
        _ = h.run(budget: 20)
        #expect(h.privilege == .supervisor)
        #expect(!h.hasTakeableInterrupt)
        mem.time = 1000
        #expect(h.hasTakeableInterrupt)
    }
}
