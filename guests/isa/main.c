/* ISA self-test suite: entry, the checking helpers, the C halves of the trap
 * handlers, and the SMP part. Every hart enters main; all take part in the SMP
 * counters, then hart 0 runs the single-hart groups while the others park. */
#include "isa.h"

#define EXIT_MAGIC 0x5e5e
#define SMP_ITERATIONS 1000

volatile struct trap_record mt, st;
volatile u64 m_resume, s_resume;
volatile int m_expect, s_expect;
static u64 checks;

void section(const char *name) {
    puts("== ");
    puts(name);
    puts("\n");
}

void check(const char *name, u64 got, u64 want) {
    checks++;
    puts(name);
    puts(": ");
    put_hex(got);
    if (got != want) {
        puts(" WRONG, want ");
        put_hex(want);
        puts("\n");
        fail(1);
    }
    puts(" ok\n");
}

void check_either(const char *name, u64 got, u64 a, u64 b) {
    checks++;
    puts(name);
    if (got != a && got != b) {
        puts(": ");
        put_hex(got);
        puts(" WRONG, want ");
        put_hex(a);
        puts(" or ");
        put_hex(b);
        puts("\n");
        fail(3);
    }
    puts(": ok\n");
}

void note(const char *name, u64 value) {
    puts(name);
    puts(": ");
    put_hex(value);
    puts("\n");
}

void expect_m(void) { m_expect = 1; }
void done_m(void) { m_expect = 0; m_resume = 0; }
void expect_s(void) { s_expect = 1; }
void done_s(void) { s_expect = 0; s_resume = 0; }

static void check_trap(const char *name, volatile struct trap_record *r, u64 before, u64 cause, u64 epc, u64 tval) {
    checks++;
    puts(name);
    puts(": cause ");
    put_u64(r->cause);
    puts(" tval ");
    put_hex(r->tval);
    if (r->count != before + 1 || r->cause != cause || r->epc != epc || r->tval != tval) {
        puts(" WRONG: count ");
        put_u64(r->count - before);
        puts(" epc ");
        put_hex(r->epc);
        puts(", want cause ");
        put_u64(cause);
        puts(" epc ");
        put_hex(epc);
        puts(" tval ");
        put_hex(tval);
        puts("\n");
        fail(2);
    }
    puts(" ok\n");
}

void check_m_trap(const char *name, u64 before, u64 cause, u64 epc, u64 tval) { check_trap(name, &mt, before, cause, epc, tval); }
void check_s_trap(const char *name, u64 before, u64 cause, u64 epc, u64 tval) { check_trap(name, &st, before, cause, epc, tval); }

static void unexpected(const char *who, u64 cause, u64 epc, u64 tval) {
    puts("unexpected trap in ");
    puts(who);
    puts(": cause ");
    put_hex(cause);
    puts(" epc ");
    put_hex(epc);
    puts(" tval ");
    put_hex(tval);
    puts("\n");
    fail(90);
}

/* Length of the instruction at the trapping pc, read in the trapped mode's
 * address space (MPRV with MPP as the trap left it; SUM and MXR so any mapped
 * code page is readable). */
static u64 m_insn_length(u64 epc) {
    u64 saved = csr_read(mstatus), half;
    csr_set(mstatus, MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR);
    __asm__ volatile("lhu %0, 0(%1)" : "=r"(half) : "r"(epc) : "memory");
    csr_write(mstatus, saved);
    return (half & 3) == 3 ? 4 : 2;
}

/* Returns 1 to leave the lower mode (enter_mode returns), 0 to mret. */
u64 isa_mtrap_c(u64 *frame) {
    u64 cause = csr_read(mcause), epc = csr_read(mepc), tval = csr_read(mtval);
    if (cause & INTERRUPT) {
        u64 code = cause & 63;
        if (mt.irq_count < 8) mt.irq_history[mt.irq_count] = cause;
        mt.irq_count++;
        mt.irq_cause = cause;
        mt.irq_slot = frame[0];
        mt.irq_epc = epc;
        if (code == 3) CLINT_MSIP[0] = 0;
        else if (code == 7) CLINT_MTIMECMP[0] = ~0UL;
        else if (code == 1) csr_clear(mip, 1UL << 1);
        else if (code == 5) { csr_clear(mie, 1UL << 5); }
        else unexpected("M (interrupt)", cause, epc, tval);
        return 0;
    }
    u64 mpp = (csr_read(mstatus) >> 11) & 3;
    if ((cause == CAUSE_ECALL_U || cause == CAUSE_ECALL_S) && frame[17] == EXIT_MAGIC) return 1;
    if (!m_expect) unexpected("M", cause, epc, tval);
    mt.count++;
    mt.cause = cause;
    mt.epc = epc;
    mt.tval = tval;
    mt.status = csr_read(mstatus);
    mt.slot = frame[0];
    (void)mpp;
    if (m_resume) {
        csr_write(mepc, m_resume);
        m_resume = 0;
    } else {
        csr_write(mepc, epc + m_insn_length(epc));
    }
    return 0;
}

u64 isa_strap_c(u64 *frame) {
    u64 cause = csr_read(scause), epc = csr_read(sepc), tval = csr_read(stval);
    if (cause & INTERRUPT) {
        u64 code = cause & 63;
        if (st.irq_count < 8) st.irq_history[st.irq_count] = cause;
        st.irq_count++;
        st.irq_cause = cause;
        st.irq_slot = frame[0];
        st.irq_epc = epc;
        /* Not stimecmp = ~0: QEMU 7.2 then arms its timer with an overflowed
         * deadline and now and then loses the next supervisor timer interrupt. */
        if (code == 5) csr_clear(sie, 1UL << 5);
        else if (code == 1) csr_clear(sip, 1UL << 1);
        else unexpected("S (interrupt)", cause, epc, tval);
        return 0;
    }
    if (cause == CAUSE_ECALL_U && frame[17] == EXIT_MAGIC) return 1;
    if (!s_expect) unexpected("S", cause, epc, tval);
    st.count++;
    st.cause = cause;
    st.epc = epc;
    st.tval = tval;
    st.status = csr_read(sstatus);
    st.slot = frame[0];
    if (s_resume) {
        csr_write(sepc, s_resume);
        s_resume = 0;
    } else {
        u64 saved = csr_read(sstatus), half;
        csr_set(sstatus, MSTATUS_SUM | MSTATUS_MXR);
        __asm__ volatile("lhu %0, 0(%1)" : "=r"(half) : "r"(epc) : "memory");
        csr_write(sstatus, saved);
        csr_write(sepc, epc + ((half & 3) == 3 ? 4 : 2));
    }
    return 0;
}

u64 run_in(u64 mode, u64 (*fn)(u64), u64 arg) {
    return enter_mode(mode, (u64)fn, arg, (u64)lower_stack_top, (u64)mode_exit);
}

/* ---- SMP ------------------------------------------------------------------------ */

static volatile u64 smp_amo_counter, smp_lrsc_counter, smp_done;
static volatile u32 smp_amo_w;

static void smp_part(u64 hartid, int harts) {
    for (int i = 0; i < SMP_ITERATIONS; i++) {
        __asm__ volatile("amoadd.d zero, %1, (%0)" :: "r"(&smp_amo_counter), "r"(1UL) : "memory");
        __asm__ volatile("amoadd.w.aqrl zero, %1, (%0)" :: "r"(&smp_amo_w), "r"(2U) : "memory");
        u64 tmp;
        __asm__ volatile(
            "1: lr.d %0, (%1)\n"
            "   addi %0, %0, 1\n"
            "   sc.d %0, %0, (%1)\n"
            "   bnez %0, 1b\n"
            : "=&r"(tmp) : "r"(&smp_lrsc_counter) : "memory");
    }
    __asm__ volatile("amoadd.d zero, %1, (%0)" :: "r"(&smp_done), "r"(1UL) : "memory");
    if (hartid != 0) return;
    while (smp_done != (u64)harts) __asm__ volatile("pause");
    section("smp");
    check("amoadd.d total / harts", smp_amo_counter / harts, SMP_ITERATIONS);
    check("amoadd.w total / harts", smp_amo_w / harts, 2 * SMP_ITERATIONS);
    check("lr/sc total / harts", smp_lrsc_counter / harts, SMP_ITERATIONS);
    check("totals divide evenly", smp_amo_counter % harts + smp_amo_w % harts + smp_lrsc_counter % harts, 0);
}

int main(u64 hartid, const void *fdt) {
    int harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) {
        puts("isa: start\n");
        note("mtimecmp[0] at reset", CLINT_MTIMECMP[0]);
        note("mip.MTIP at reset", (csr_read(mip) >> 7) & 1);
        puts("harts: ");
        put_u64(harts);
        puts("\n");
    }
    smp_part(hartid, harts);
    if (hartid != 0) {
        for (;;) __asm__ volatile("wfi");
    }

    csr_write(mscratch, (u64)m_trap_stack_top);
    csr_write(mtvec, (u64)isa_mtrap);
    /* One PMP region over everything, so S and U may access memory. */
    csr_write(pmpaddr0, ~0UL >> 10);
    csr_write(pmpcfg0, 0x1f);

    test_alu();
    test_rvc();
    test_memory();
    test_atomics();
    test_csr();
    test_traps();
    test_modes();
    test_interrupts();
    test_vm();
    test_fencei();

    puts("isa: ");
    put_u64(checks);
    puts(" checks passed\n");
    pass();
}
