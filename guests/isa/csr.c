/* Zicsr and Zicntr in M-mode: the six CSR instructions and their read/write
 * rules, unimplemented and read-only CSRs, WARL fields, counters. */
#include "isa.h"

/* Runs one CSR instruction with the trap handler armed; returns traps taken. */
#define TRAPS(asm_text, ...) ({ u64 _b = mt.count; expect_m(); __asm__ volatile(asm_text __VA_ARGS__); done_m(); mt.count - _b; })

static void test_csr_instructions(void) {
    section("zicsr");
    u64 old, v;
    csr_write(sscratch, 0x1234);
    __asm__ volatile("csrrw %0, sscratch, %1" : "=r"(old) : "r"(0xf0f0UL));
    check("csrrw returns the old value", old, 0x1234);
    check("csrrw wrote", csr_read(sscratch), 0xf0f0);
    __asm__ volatile("csrrs %0, sscratch, %1" : "=r"(old) : "r"(0x000fUL));
    check("csrrs returns the old value", old, 0xf0f0);
    check("csrrs set bits", csr_read(sscratch), 0xf0ff);
    __asm__ volatile("csrrc %0, sscratch, %1" : "=r"(old) : "r"(0x00f0UL));
    check("csrrc returns the old value", old, 0xf0ff);
    check("csrrc cleared bits", csr_read(sscratch), 0xf00f);
    __asm__ volatile("csrrwi %0, sscratch, 31" : "=r"(old));
    check("csrrwi returns the old value", old, 0xf00f);
    check("csrrwi wrote the zero-extended immediate", csr_read(sscratch), 31);
    __asm__ volatile("csrrci %0, sscratch, 5" : "=r"(old));
    check("csrrci", csr_read(sscratch), 26);
    __asm__ volatile("csrrsi %0, sscratch, 1" : "=r"(old));
    check("csrrsi", csr_read(sscratch), 27);
    check("csrrsi old", old, 26);
    csr_write(sscratch, ~0UL);
    __asm__ volatile("csrrs %0, sscratch, x0" : "=r"(v));
    check("csrrs with x0 reads", v, ~0UL);
    __asm__ volatile("csrrw x0, sscratch, %0" :: "r"(5UL));
    check("csrrw with rd=x0 writes", csr_read(sscratch), 5);
    __asm__ volatile("li %0, 77\n csrrw %0, sscratch, %0" : "=&r"(v));
    check("csrrw rd == rs1 reads the old value", v, 5);
    check("csrrw rd == rs1 wrote the old rs1", csr_read(sscratch), 77);

    section("read-only and unimplemented csrs");
    u64 pc, before;
    /* rs1 = x0 / uimm = 0 does not write, so it is legal on a read-only CSR. */
    check("csrrs mhartid, x0 does not trap", TRAPS("csrrs %0, mhartid, x0" : "=r"(v)), 0);
    check("mhartid", v, 0);
    check("csrrsi mvendorid, 0 does not trap", TRAPS("csrrsi %0, mvendorid, 0" : "=r"(v)), 0);
    check("csrrc marchid, x0 does not trap", TRAPS("csrrc %0, marchid, x0" : "=r"(v)), 0);
    /* QEMU decides by the value, not the register: a zero in rs1 != x0 is no write. */
    volatile u64 zero = 0, one = 1;
    check("csrrs mimpid with a zero in rs1 != x0 (no trap, as QEMU)", TRAPS("csrrs %0, mimpid, %1" : "=r"(v) : "r"(zero)), 0);
    check("csrrc mimpid with a zero in rs1 != x0 (no trap, as QEMU)", TRAPS("csrrc %0, mimpid, %1" : "=r"(v) : "r"(zero)), 0);
    check("csrrs mimpid with a one traps", TRAPS("csrrs %0, mimpid, %1" : "=r"(v) : "r"(one)), 1);
    check("cause", mt.cause, CAUSE_ILLEGAL);
    check("csrrw mimpid with a zero traps", TRAPS("csrrw %0, mimpid, %1" : "=r"(v) : "r"(zero)), 1);
    check("csrrci mhartid, 0 does not trap", TRAPS("csrrci %0, mhartid, 0" : "=r"(v)), 0);
    before = mt.count;
    expect_m();
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: csrw mhartid, %1\n.option pop" : "=&r"(pc) : "r"(1UL));
    check_m_trap("csrw mhartid", before, CAUSE_ILLEGAL, pc, *(volatile u32 *)pc);
    before = mt.count;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: csrrwi x0, cycle, 0\n.option pop" : "=&r"(pc));
    check_m_trap("csrrwi cycle", before, CAUSE_ILLEGAL, pc, *(volatile u32 *)pc);
    check("its encoding", *(volatile u32 *)pc, 0xc0005073UL);
    before = mt.count;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: csrr a0, 0x5c0\n.option pop" : "=&r"(pc) :: "a0");
    check_m_trap("csrr 0x5c0 (unimplemented)", before, CAUSE_ILLEGAL, pc, 0x5c002573UL);
    before = mt.count;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: csrw 0x7c5, zero\n.option pop" : "=&r"(pc));
    check_m_trap("csrw 0x7c5 (unimplemented)", before, CAUSE_ILLEGAL, pc, 0x7c501073UL);
    done_m();
}

static void test_warl(void) {
    section("csr fields");
    u64 misa = csr_read(misa);
    const u64 imacsu = (1 << 0) | (1 << 2) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);
    check("misa has I M A C S U", misa & imacsu, imacsu);
    check("misa MXL is 64", misa >> 62, 2);
    u64 saved = csr_read(mstatus);
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, 2UL << 11);
    /* MPP is WARL and 2 is reserved: QEMU 7.2 keeps the 2, disco makes it 0. */
    check_either("mstatus.MPP after writing 2 (0 or 2)", (csr_read(mstatus) >> 11) & 3, 0, 2);
    csr_set(mstatus, MSTATUS_MPP);
    check("mstatus.MPP = 3", (csr_read(mstatus) >> 11) & 3, 3);
    check("mstatus UXL/SXL", (csr_read(mstatus) >> 32) & 0xf, 0xa);
    csr_write(mstatus, saved);
    csr_write(sstatus, MSTATUS_FIELDS);
    note("mstatus fields after sstatus = all fields", csr_read(mstatus) & MSTATUS_FIELDS);
    check("sstatus.UXL", (csr_read(sstatus) >> 32) & 3, 2);
    csr_write(sstatus, ~0UL);
    /* UXL is WARL with 1 and 3 reserved: QEMU 7.2 takes the 3, disco keeps 2. */
    check_either("sstatus.UXL after writing ~0 (2 or 3)", (csr_read(sstatus) >> 32) & 3, 2, 3);
    csr_write(mstatus, saved);

    u64 mtvec = csr_read(mtvec);
    csr_write(mtvec, 0x80001000UL | 1);
    check("mtvec vectored", csr_read(mtvec), 0x80001001UL);
    csr_write(mtvec, 0x80002000UL | 2);
    note("mtvec after writing mode 2", csr_read(mtvec));
    csr_write(mtvec, 0x80003000UL | 3);
    note("mtvec after writing mode 3", csr_read(mtvec));
    csr_write(mtvec, mtvec);
    csr_write(stvec, 0x80001000UL | 1);
    check("stvec vectored", csr_read(stvec), 0x80001001UL);
    csr_write(stvec, 0x80002000UL | 2);
    note("stvec after writing mode 2", csr_read(stvec));
    csr_write(stvec, 0x80003000UL | 3);
    note("stvec after writing mode 3", csr_read(stvec));
    csr_write(stvec, 0);

    /* The spec keeps xepc[0] zero; QEMU 7.2 stores the bit and drops it on xret. */
    csr_write(mepc, 0x80000003UL);
    check_either("mepc after writing an odd value", csr_read(mepc), 0x80000002UL, 0x80000003UL);
    csr_write(sepc, ~0UL);
    check_either("sepc after writing ~0", csr_read(sepc), ~1UL, ~0UL);
    /* QEMU 7.2 has the H extension and LCOFI, disco neither: only the bits of
     * RV64 M/S/U without those extensions are compared. */
    const u64 h_exceptions = (1UL << 10) | (0xfUL << 20);
    const u64 std_ints = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 11);
    csr_write(medeleg, ~0UL);
    note("medeleg writable bits (without H)", csr_read(medeleg) & ~h_exceptions);
    csr_write(medeleg, 0);
    csr_write(mideleg, ~0UL);
    note("mideleg writable bits (standard interrupts)", csr_read(mideleg) & std_ints);
    csr_write(mie, ~0UL);
    note("mie writable bits (standard interrupts)", csr_read(mie) & std_ints);
    note("sie view (mie & mideleg)", csr_read(sie) & std_ints);
    csr_write(sie, 0);
    note("mie after sie = 0", csr_read(mie) & std_ints);
    csr_write(mie, 0);
    csr_write(mideleg, 0);
    csr_write(mcounteren, ~0UL);
    note("mcounteren writable bits", csr_read(mcounteren));
    csr_write(scounteren, ~0UL);
    note("scounteren writable bits", csr_read(scounteren));
    csr_write(mcounteren, 0);
    csr_write(scounteren, 0);
    csr_write(0x30a, ~0UL);
    note("menvcfg STCE", csr_read(0x30a) >> 63);
    csr_write(0x30a, 0);
    csr_write(mip, ~0UL);
    note("mip writable bits (S interrupts, no Sstc)", csr_read(mip) & ((1 << 1) | (1 << 5) | (1 << 9)));
    csr_write(mip, 0);
    csr_write(satp, (8UL << 60) | 0x80123UL);
    check("satp Sv39", csr_read(satp), (8UL << 60) | 0x80123UL);
    csr_write(satp, (7UL << 60) | 0x80456UL);
    check("satp keeps its value for a reserved mode", csr_read(satp), (8UL << 60) | 0x80123UL);
    csr_write(satp, 0);
    check("satp bare", csr_read(satp), 0);
    csr_write(sscratch, 0);
}

static void test_counters(void) {
    section("zicntr");
    u64 c0, c1, t0, t1, i0, i1;
    __asm__ volatile("rdcycle %0\n rdtime %1\n rdinstret %2" : "=r"(c0), "=r"(t0), "=r"(i0));
    for (volatile int i = 0; i < 1000; i++) { }
    __asm__ volatile("rdcycle %0\n rdtime %1\n rdinstret %2" : "=r"(c1), "=r"(t1), "=r"(i1));
    check("cycle is monotone", c1 > c0, 1);
    check("time is monotone", t1 >= t0, 1);
    check("instret is monotone", i1 > i0, 1);
    check("mcycle readable", csr_read(mcycle) >= c1, 1);
    check("minstret readable", csr_read(minstret) >= i1, 1);
    check("mtime moves with time", *CLINT_MTIME >= t1, 1);
}

void test_csr(void) {
    test_csr_instructions();
    test_warl();
    test_counters();
}
