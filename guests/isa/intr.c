/* Interrupts: machine software (CLINT msip) and timer (mtimecmp) interrupts,
 * direct and vectored mtvec, priority, WFI wake-up with interrupts globally off,
 * and the Sstc supervisor timer (stimecmp) delegated to S or taken in M. */
#include "isa.h"

#define SPIN_LIMIT 20000000UL

static void wait_irq(volatile struct trap_record *r, u64 before) {
    for (u64 i = 0; r->irq_count == before && i < SPIN_LIMIT; i++) __asm__ volatile("pause");
}

static void arm_timer(u64 ticks) { CLINT_MTIMECMP[0] = *CLINT_MTIME + ticks; }

static u64 s_wait_stimer(u64 ticks) {
    u64 before = st.irq_count, now;
    __asm__ volatile("rdtime %0" : "=r"(now));
    csr_write(0x14d, now + ticks);
    csr_set(sie, 1UL << 5);
    csr_set(sstatus, MSTATUS_SIE);
    for (u64 i = 0; st.irq_count == before && i < SPIN_LIMIT; i++) __asm__ volatile("pause");
    csr_clear(sstatus, MSTATUS_SIE);
    return st.irq_count - before;
}

static u64 s_arm_stimer(u64 ticks) {
    u64 now;
    __asm__ volatile("rdtime %0" : "=r"(now));
    csr_write(0x14d, now + ticks);
    for (u64 i = 0; mt.irq_count == 0 && i < 10; i++) { }
    return 0;
}

static u64 s_spin_until_m_irq(u64 before) {
    for (u64 i = 0; mt.irq_count == before && i < SPIN_LIMIT; i++) __asm__ volatile("pause");
    return mt.irq_count - before;
}

void test_interrupts(void) {
    u64 before;
    section("machine software interrupt");
    csr_write(mtvec, (u64)isa_mtrap);
    csr_write(mie, 1UL << 3);
    before = mt.irq_count;
    CLINT_MSIP[0] = 1;
    check("msip pending in mip", (csr_read(mip) >> 3) & 1, 1);
    check("not taken while mstatus.MIE = 0", mt.irq_count - before, 0);
    csr_set(mstatus, MSTATUS_MIE);
    wait_irq(&mt, before);
    csr_clear(mstatus, MSTATUS_MIE);
    check("taken once MIE is set", mt.irq_count - before, 1);
    check("mcause", mt.irq_cause, INTERRUPT | 3);
    check("direct mtvec: base", mt.irq_slot, 0);
    check("msip cleared by the handler", CLINT_MSIP[0], 0);
    check("mip.MSIP follows", (csr_read(mip) >> 3) & 1, 0);

    section("machine timer interrupt");
    csr_write(mie, 1UL << 7);
    before = mt.irq_count;
    arm_timer(200);
    csr_set(mstatus, MSTATUS_MIE);
    for (u64 i = 0; mt.irq_count == before && i < SPIN_LIMIT; i++) __asm__ volatile("wfi");
    csr_clear(mstatus, MSTATUS_MIE);
    check("timer interrupt after wfi", mt.irq_count - before, 1);
    check("mcause", mt.irq_cause, INTERRUPT | 7);
    check("mip.MTIP clear after mtimecmp = ~0", (csr_read(mip) >> 7) & 1, 0);
    /* WFI wakes on a pending enabled interrupt even with MIE = 0, and it is
     * not taken until MIE is set. */
    before = mt.irq_count;
    arm_timer(200);
    for (u64 i = 0; !((csr_read(mip) >> 7) & 1) && i < SPIN_LIMIT; i++) __asm__ volatile("wfi");
    check("wfi with MIE = 0 returns when MTIP rises", (csr_read(mip) >> 7) & 1, 1);
    check("and nothing was taken", mt.irq_count - before, 0);
    csr_set(mstatus, MSTATUS_MIE);
    wait_irq(&mt, before);
    csr_clear(mstatus, MSTATUS_MIE);
    check("taken when MIE is set", mt.irq_count - before, 1);
    /* mtime is writable? Read-only view: it only moves forward. */
    u64 t0 = *CLINT_MTIME, t1 = *CLINT_MTIME;
    check("mtime monotone", t1 >= t0, 1);

    section("vectored mtvec and priority");
    csr_write(mtvec, (u64)isa_mvec | 1);
    csr_write(mie, (1UL << 3) | (1UL << 7));
    before = mt.irq_count;
    CLINT_MSIP[0] = 1;
    CLINT_MTIMECMP[0] = 0;      /* both pending now */
    check("MSIP and MTIP pending", (csr_read(mip) >> 3) & 0x11, 0x11);
    csr_set(mstatus, MSTATUS_MIE);
    for (u64 i = 0; mt.irq_count < before + 2 && i < SPIN_LIMIT; i++) __asm__ volatile("pause");
    csr_clear(mstatus, MSTATUS_MIE);
    check("two interrupts taken", mt.irq_count - before, 2);
    check("software first", mt.irq_history[before], INTERRUPT | 3);
    check("then the timer", mt.irq_history[before + 1], INTERRUPT | 7);
    check("timer through slot 7", mt.irq_slot, 7);
    before = mt.irq_count;
    CLINT_MSIP[0] = 1;
    csr_set(mstatus, MSTATUS_MIE);
    wait_irq(&mt, before);
    csr_clear(mstatus, MSTATUS_MIE);
    check("software through slot 3", mt.irq_slot, 3);
    u64 eb = mt.count, pc;
    expect_m();
    __asm__ volatile("la %0, 1f\n1: ecall" : "=&r"(pc) :: "memory");
    done_m();
    check_m_trap("exception with vectored mtvec", eb, CAUSE_ECALL_M, pc, 0);
    check("goes to the base", mt.slot, 0);
    csr_write(mie, 0);
    csr_write(mtvec, (u64)isa_mtrap);

    section("sstc supervisor timer");
    csr_write(0x30a, 1UL << 63);             /* menvcfg.STCE */
    csr_write(mcounteren, 2);                /* TM: S may use time and stimecmp */
    csr_write(0x14d, 0);
    check("mip.STIP when time >= stimecmp", (csr_read(mip) >> 5) & 1, 1);
    csr_write(0x14d, ~0UL);
    csr_write(0x14d, *CLINT_MTIME + (1UL << 40));
    check("mip.STIP clear when stimecmp is far ahead", (csr_read(mip) >> 5) & 1, 0);
    csr_set(mip, 1UL << 5);
    check("mip.STIP not writable with STCE", (csr_read(mip) >> 5) & 1, 0);
    csr_write(stvec, (u64)isa_strap);
    csr_write(sscratch, (u64)s_trap_stack_top);
    csr_write(mideleg, 1UL << 5);
    csr_write(mie, 1UL << 5);
    before = st.irq_count;
    check("delegated STI taken in S", run_in(MODE_S, s_wait_stimer, 300), 1);
    check("scause", st.irq_cause, INTERRUPT | 5);
    check("sie.STIE cleared by the S handler", csr_read(mie) & (1UL << 5), 0);
    check("mip.STIP still pending (time >= stimecmp)", (csr_read(mip) >> 5) & 1, 1);
    csr_write(stvec, (u64)isa_svec | 1);
    check("delegated STI, vectored stvec", run_in(MODE_S, s_wait_stimer, 300), 1);
    check("through slot 5", st.irq_slot, 5);
    csr_write(stvec, (u64)isa_strap);
    /* Not delegated: the supervisor timer goes to M (handler clears mie.STIE). */
    csr_write(mideleg, 0);
    csr_write(mie, 1UL << 5);
    before = mt.irq_count;
    run_in(MODE_S, s_arm_stimer, 200);
    run_in(MODE_S, s_spin_until_m_irq, before);
    check("undelegated STI taken in M", mt.irq_count - before, 1);
    check("mcause", mt.irq_cause, INTERRUPT | 5);
    csr_write(mie, 0);
    csr_write(0x14d, *CLINT_MTIME + (1UL << 40));
    csr_write(0x30a, 0);
    csr_write(mcounteren, 0);
}
