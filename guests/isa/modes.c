/* S and U mode: ecall causes, xRET and the status stack, CSR privilege,
 * counter enables, delegation to S, and the mstatus trap-virtualisation bits
 * TW, TSR and TVM. Code runs in S/U through run_in() with translation off. */
#include "isa.h"

#define S_SETUP() do { csr_write(stvec, (u64)isa_strap); csr_write(sscratch, (u64)s_trap_stack_top); } while (0)

static u64 ecall_here(u64 unused) {
    (void)unused;
    u64 pc;
    __asm__ volatile("li a7, 1\n la %0, 1f\n1: ecall" : "=&r"(pc) :: "a7", "memory");
    return pc;
}

static u64 illegal_here(u64 unused) {
    (void)unused;
    u64 pc;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: .word 0x0000000b\n.option pop" : "=&r"(pc) :: "memory");
    return pc;
}

static u64 read_mscratch(u64 unused) { (void)unused; return csr_read(mscratch); }
static u64 read_sstatus(u64 unused) { (void)unused; return csr_read(sstatus); }
static u64 do_sret(u64 unused) { (void)unused; __asm__ volatile("la t0, 1f\n csrw sepc, t0\n sret\n1:" ::: "t0", "memory"); return 0; }
static u64 raw_sret(u64 unused) { (void)unused; __asm__ volatile("sret" ::: "memory"); return 0; }
static u64 do_mret(u64 unused) { (void)unused; __asm__ volatile("mret" ::: "memory"); return 0; }
static u64 do_wfi(u64 unused) { (void)unused; __asm__ volatile("wfi" ::: "memory"); return 0; }
static u64 read_satp(u64 unused) { (void)unused; return csr_read(satp); }
static u64 do_sfence(u64 unused) { (void)unused; __asm__ volatile("sfence.vma" ::: "memory"); return 0; }
static u64 rd_cycle(u64 unused) { (void)unused; u64 v; __asm__ volatile("rdcycle %0" : "=r"(v)); return v; }
static u64 rd_time(u64 unused) { (void)unused; u64 v; __asm__ volatile("rdtime %0" : "=r"(v)); return v; }
static u64 rd_instret(u64 unused) { (void)unused; u64 v; __asm__ volatile("rdinstret %0" : "=r"(v)); return v; }
static u64 rd_hpm3(u64 unused) { (void)unused; return csr_read(hpmcounter3); }
static u64 rd_stimecmp(u64 unused) { (void)unused; return csr_read(0x14d); }

/* sret from S to S with SPIE set: SIE comes back, SPIE = 1, SPP = U. */
static u64 sret_stack(u64 unused) {
    (void)unused;
    csr_clear(sstatus, MSTATUS_SIE);
    csr_set(sstatus, MSTATUS_SPP | MSTATUS_SPIE);
    __asm__ volatile("la t0, 1f\n csrw sepc, t0\n sret\n1:" ::: "t0", "memory");
    u64 s = csr_read(sstatus);
    csr_clear(sstatus, MSTATUS_SIE);
    return s;
}

/* From S, sret into U at the label, which ecalls (delegated to S? no: to M) and
 * comes back through mode_exit. Returns the U-mode ecall pc. */
static u64 sret_to_user(u64 unused) {
    (void)unused;
    csr_clear(sstatus, MSTATUS_SPP);
    u64 pc;
    __asm__ volatile("la t0, 1f\n csrw sepc, t0\n sret\n1: li a7, 2\n la %0, 2f\n2: ecall" : "=&r"(pc) :: "t0", "a7", "memory");
    return pc;
}

static u64 traps_in(u64 mode, u64 (*fn)(u64)) {
    u64 before = mt.count;
    expect_m();
    run_in(mode, fn, 0);
    done_m();
    return mt.count - before;
}

static void check_illegal_in(const char *name, u64 mode, u64 (*fn)(u64)) {
    u64 n = traps_in(mode, fn);
    check(name, n == 1 && mt.cause == CAUSE_ILLEGAL, 1);
}

static void check_legal_in(const char *name, u64 mode, u64 (*fn)(u64)) {
    check(name, traps_in(mode, fn), 0);
}

static void test_ecall_and_xret(void) {
    section("ecall from S and U, xret");
    u64 before = mt.count;
    expect_m();
    u64 pc = run_in(MODE_S, ecall_here, 0);
    check_m_trap("ecall from S", before, CAUSE_ECALL_S, pc, 0);
    check("trap from S: MPP = S", (mt.status >> 11) & 3, MODE_S);
    before = mt.count;
    pc = run_in(MODE_U, ecall_here, 0);
    check_m_trap("ecall from U", before, CAUSE_ECALL_U, pc, 0);
    check("trap from U: MPP = U", (mt.status >> 11) & 3, MODE_U);
    before = mt.count;
    pc = run_in(MODE_U, illegal_here, 0);
    check_m_trap("illegal instruction in U", before, CAUSE_ILLEGAL, pc, 0xb);
    done_m();

    u64 s = run_in(MODE_S, sret_stack, 0);
    check("sret: SIE = old SPIE", (s & MSTATUS_SIE) != 0, 1);
    check("sret: SPIE = 1", (s & MSTATUS_SPIE) != 0, 1);
    check("sret: SPP = U", (s & MSTATUS_SPP) != 0, 0);
    before = mt.count;
    expect_m();
    pc = run_in(MODE_S, sret_to_user, 0);
    check_m_trap("sret to U, then ecall", before, CAUSE_ECALL_U, pc, 0);
    done_m();

}

static void test_privilege(void) {
    section("privilege checks");
    check_illegal_in("S reads mscratch", MODE_S, read_mscratch);
    check_illegal_in("U reads sstatus", MODE_U, read_sstatus);
    check_legal_in("S reads sstatus", MODE_S, read_sstatus);
    check_illegal_in("mret in S", MODE_S, do_mret);
    check_illegal_in("mret in U", MODE_U, do_mret);
    check_illegal_in("sret in U", MODE_U, raw_sret);
    check_legal_in("sret in S", MODE_S, do_sret);
    check_illegal_in("wfi in U", MODE_U, do_wfi);
    check_illegal_in("sfence.vma in U", MODE_U, do_sfence);

    section("mstatus TW, TSR, TVM");
    csr_set(mstatus, MSTATUS_TW);
    check_illegal_in("wfi in S with TW", MODE_S, do_wfi);
    csr_clear(mstatus, MSTATUS_TW);
    csr_set(mstatus, MSTATUS_TSR);
    check_illegal_in("sret in S with TSR", MODE_S, do_sret);
    csr_clear(mstatus, MSTATUS_TSR);
    csr_set(mstatus, MSTATUS_TVM);
    check_illegal_in("satp read in S with TVM", MODE_S, read_satp);
    check_illegal_in("sfence.vma in S with TVM", MODE_S, do_sfence);
    csr_clear(mstatus, MSTATUS_TVM);
    check_legal_in("satp read in S without TVM", MODE_S, read_satp);
    check_legal_in("sfence.vma in S without TVM", MODE_S, do_sfence);
    /* TW/TSR/TVM do not affect M. */
    csr_set(mstatus, MSTATUS_TVM | MSTATUS_TSR);
    u64 v = csr_read(satp);
    __asm__ volatile("sfence.vma" ::: "memory");
    csr_clear(mstatus, MSTATUS_TVM | MSTATUS_TSR);
    check("TVM does not trap in M", v, 0);

    section("counter enables");
    csr_write(mcounteren, 0);
    csr_write(scounteren, 0);
    check_illegal_in("rdcycle in S, mcounteren.CY = 0", MODE_S, rd_cycle);
    check_illegal_in("rdtime in S, mcounteren.TM = 0", MODE_S, rd_time);
    check_illegal_in("rdinstret in S, mcounteren.IR = 0", MODE_S, rd_instret);
    csr_write(mcounteren, 7);
    check_legal_in("rdcycle in S, mcounteren.CY = 1", MODE_S, rd_cycle);
    check_legal_in("rdtime in S, mcounteren.TM = 1", MODE_S, rd_time);
    check_legal_in("rdinstret in S, mcounteren.IR = 1", MODE_S, rd_instret);
    check_illegal_in("rdcycle in U, scounteren.CY = 0", MODE_U, rd_cycle);
    check_illegal_in("rdtime in U, scounteren.TM = 0", MODE_U, rd_time);
    check_illegal_in("rdinstret in U, scounteren.IR = 0", MODE_U, rd_instret);
    csr_write(scounteren, 7);
    check_legal_in("rdcycle in U, both enabled", MODE_U, rd_cycle);
    check_legal_in("rdtime in U, both enabled", MODE_U, rd_time);
    check_legal_in("rdinstret in U, both enabled", MODE_U, rd_instret);
    csr_write(mcounteren, 6);
    check_illegal_in("rdcycle in U, mcounteren.CY = 0", MODE_U, rd_cycle);
    check_illegal_in("hpmcounter3 in S, mcounteren.HPM3 = 0", MODE_S, rd_hpm3);
    csr_write(mcounteren, 8);
    note("hpmcounter3 in S, mcounteren.HPM3 = 1: traps", traps_in(MODE_S, rd_hpm3));
    csr_write(0x30a, 1UL << 63);
    csr_write(mcounteren, 0);
    check_illegal_in("stimecmp in S, mcounteren.TM = 0", MODE_S, rd_stimecmp);
    csr_write(mcounteren, 2);
    check_legal_in("stimecmp in S, mcounteren.TM = 1, STCE = 1", MODE_S, rd_stimecmp);
    csr_write(0x30a, 0);
    check_illegal_in("stimecmp in S, STCE = 0", MODE_S, rd_stimecmp);
    csr_write(mcounteren, 0);
    csr_write(scounteren, 0);
}

static u64 s_illegal_and_ebreak(u64 unused) {
    (void)unused;
    u64 pc;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: .word 0x0000000b\n.option pop" : "=&r"(pc) :: "memory");
    return pc;
}

static u64 s_ebreak(u64 unused) {
    (void)unused;
    u64 pc;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: ebreak\n.option pop" : "=&r"(pc) :: "memory");
    return pc;
}

static u64 s_raise_ssip(u64 unused) {
    (void)unused;
    csr_set(sstatus, MSTATUS_SIE);
    csr_set(sip, 1UL << 1);
    for (volatile int i = 0; i < 10; i++) { }
    csr_clear(sstatus, MSTATUS_SIE);
    return 0;
}

static u64 s_spin(u64 unused) {
    (void)unused;
    for (volatile int i = 0; i < 10; i++) { }
    return 0;
}

static void test_delegation(void) {
    section("delegation to S");
    S_SETUP();
    csr_write(medeleg, (1UL << CAUSE_ILLEGAL) | (1UL << CAUSE_BREAKPOINT) | (1UL << CAUSE_ECALL_U));
    u64 sb = st.count, mb = mt.count;
    expect_s();
    u64 pc = run_in(MODE_S, s_illegal_and_ebreak, 0);
    check_s_trap("illegal in S, delegated", sb, CAUSE_ILLEGAL, pc, 0xb);
    check("sstatus.SPP after a trap from S", (st.status & MSTATUS_SPP) != 0, 1);
    sb = st.count;
    pc = run_in(MODE_S, s_ebreak, 0);
    check_s_trap("ebreak in S, delegated", sb, CAUSE_BREAKPOINT, pc, 0);
    sb = st.count;
    pc = run_in(MODE_U, ecall_here, 0);
    check_s_trap("ecall from U, delegated", sb, CAUSE_ECALL_U, pc, 0);
    check("sstatus.SPP after a trap from U", (st.status & MSTATUS_SPP) != 0, 0);
    sb = st.count;
    pc = run_in(MODE_U, illegal_here, 0);
    check_s_trap("illegal in U, delegated", sb, CAUSE_ILLEGAL, pc, 0xb);
    check("M saw none of them", mt.count, mb);
    done_s();
    /* Delegation never applies to traps taken in M. */
    expect_m();
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: .word 0x0000000b\n.option pop" : "=&r"(pc) :: "memory");
    check_m_trap("illegal in M stays in M despite medeleg", mb, CAUSE_ILLEGAL, pc, 0xb);
    done_m();
    csr_write(medeleg, 0);

    section("interrupt delegation");
    /* SSIP delegated: taken in S when SIE is set. */
    csr_write(mideleg, 1UL << 1);
    csr_write(mie, 1UL << 1);
    u64 ib = st.irq_count;
    run_in(MODE_S, s_raise_ssip, 0);
    check("delegated SSI taken in S", st.irq_count - ib, 1);
    check("scause", st.irq_cause, INTERRUPT | 1);
    check("through the stvec base (direct)", st.irq_slot, 0);
    csr_write(stvec, (u64)isa_svec | 1);
    ib = st.irq_count;
    run_in(MODE_S, s_raise_ssip, 0);
    csr_write(stvec, (u64)isa_strap);
    check("delegated SSI, vectored stvec", st.irq_count - ib, 1);
    check("entered through slot 1", st.irq_slot, 1);
    /* Not delegated: pending SSIP goes to M as soon as S runs (M-level
     * interrupts are always enabled below M). */
    csr_write(mideleg, 0);
    ib = mt.irq_count;
    csr_set(mip, 1UL << 1);
    run_in(MODE_S, s_spin, 0);
    check("undelegated SSI taken in M from S", mt.irq_count - ib, 1);
    check("mcause", mt.irq_cause, INTERRUPT | 1);
    check("mip.SSIP cleared by the handler", csr_read(mip) & 2, 0);
    /* Delegated but SIE = 0 in S: stays pending; taken once U runs. */
    csr_write(mideleg, 1UL << 1);
    ib = st.irq_count;
    csr_set(mip, 1UL << 1);
    run_in(MODE_S, s_spin, 0);
    check("delegated SSI with SIE = 0 not taken in S", st.irq_count - ib, 0);
    run_in(MODE_U, s_spin, 0);
    check("delegated SSI taken from U regardless of SIE", st.irq_count - ib, 1);
    check("delegated SSI not taken in M", csr_read(mip) & 2, 0);
    csr_write(mie, 0);
    csr_write(mideleg, 0);
}

void test_modes(void) {
    test_ecall_and_xret();
    test_privilege();
    test_delegation();
}
