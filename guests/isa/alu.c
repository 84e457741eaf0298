/* RV64I and M: every register-register and immediate operation with its edge
 * cases, lui/auipc, branches and jumps. The instructions are written as inline
 * assembly with compression off, so each check runs exactly the 32-bit form. */
#include "isa.h"

#define RR(insn, a, b) ({ u64 _r; __asm__ volatile(".option push\n.option norvc\n" insn " %0, %1, %2\n.option pop" \
                          : "=r"(_r) : "r"((u64)(a)), "r"((u64)(b))); _r; })
#define RI(insn, a, imm) ({ u64 _r; __asm__ volatile(".option push\n.option norvc\n" insn " %0, %1, " #imm "\n.option pop" \
                            : "=r"(_r) : "r"((u64)(a))); _r; })

#define MIN64 0x8000000000000000UL
#define MAX64 0x7fffffffffffffffUL
#define ALL1  0xffffffffffffffffUL
#define MIN32 0xffffffff80000000UL   /* INT32_MIN sign-extended */

static void test_base(void) {
    section("rv64i register-register");
    check("add", RR("add", 0x7fffffffffffffffUL, 1), MIN64);
    check("add wraps", RR("add", ALL1, 2), 1);
    check("sub", RR("sub", 0, 1), ALL1);
    check("sub min", RR("sub", MIN64, 1), MAX64);
    check("sll by 63", RR("sll", 1, 63), MIN64);
    check("sll uses low 6 bits", RR("sll", 1, 65), 2);
    check("srl", RR("srl", MIN64, 63), 1);
    check("sra", RR("sra", MIN64, 63), ALL1);
    check("sra by 64 is by 0", RR("sra", MIN64, 64), MIN64);
    check("slt -1 < 0", RR("slt", ALL1, 0), 1);
    check("slt 0 < -1", RR("slt", 0, ALL1), 0);
    check("slt equal", RR("slt", 5, 5), 0);
    check("slt min < max", RR("slt", MIN64, MAX64), 1);
    check("sltu 0 < -1", RR("sltu", 0, ALL1), 1);
    check("sltu -1 < 0", RR("sltu", ALL1, 0), 0);
    check("sltu x0 (snez)", RR("sltu", 0, 7), 1);
    check("xor", RR("xor", 0xff00ff00ff00ff00UL, 0x0ff00ff00ff00ff0UL), 0xf0f0f0f0f0f0f0f0UL);
    check("or", RR("or", 0xff00000000000000UL, 0xffUL), 0xff000000000000ffUL);
    check("and", RR("and", 0xff00ff00ff00ff00UL, 0x0ff00ff00ff00ff0UL), 0x0f000f000f000f00UL);

    section("rv64i immediate");
    check("addi -1", RI("addi", 0, -1), ALL1);
    check("addi -2048", RI("addi", 0, -2048), 0xfffffffffffff800UL);
    check("addi 2047", RI("addi", 1, 2047), 2048);
    check("slti", RI("slti", ALL1, 0), 1);
    check("slti negative imm", RI("slti", 0, -1), 0);
    check("sltiu -1 (seqz-like)", RI("sltiu", 5, -1), 1);
    check("sltiu 1 (seqz)", RI("sltiu", 0, 1), 1);
    check("xori -1 (not)", RI("xori", 0x1234, -1), ~0x1234UL);
    check("ori", RI("ori", 0x1000, 0x7ff), 0x17ff);
    check("andi sign-extended", RI("andi", ALL1, -16), 0xfffffffffffffff0UL);
    check("slli 63", RI("slli", 3, 63), MIN64);
    check("srli 1", RI("srli", ALL1, 1), MAX64);
    check("srai 4", RI("srai", 0x8000000000000000UL, 4), 0xf800000000000000UL);
    check("srai 0", RI("srai", 0x1234, 0), 0x1234);

    section("rv64i word forms");
    check("addw sign-extends", RR("addw", 0x7fffffff, 1), MIN32);
    check("addw ignores upper bits", RR("addw", 0xffffffff00000001UL, 0x1234500000002UL), 3);
    check("subw", RR("subw", 0, 1), ALL1);
    check("subw to positive", RR("subw", MIN32, 1), 0x7fffffff);
    check("sllw", RR("sllw", 1, 31), MIN32);
    check("sllw by 32 is by 0", RR("sllw", 1, 32), 1);
    check("sllw by 33 is by 1", RR("sllw", 1, 33), 2);
    check("srlw", RR("srlw", 0xffffffff80000000UL, 31), 1);
    check("srlw by 32 is by 0", RR("srlw", 0x80000000UL, 32), MIN32);
    check("sraw", RR("sraw", 0x80000000UL, 31), ALL1);
    check("sraw by 63 is by 31", RR("sraw", 0x80000000UL, 63), ALL1);
    check("addiw", RI("addiw", 0x7fffffff, 1), MIN32);
    check("addiw 0 (sext.w)", RI("addiw", 0x00000000ffffffffUL, 0), ALL1);
    check("slliw", RI("slliw", 1, 31), MIN32);
    check("srliw", RI("srliw", ALL1, 4), 0x0fffffff);
    check("srliw 0 sign-extends", RI("srliw", 0x80000000UL, 0), MIN32);
    check("sraiw", RI("sraiw", 0x80000000UL, 4), 0xfffffffff8000000UL);

    section("lui/auipc");
    u64 v;
    __asm__ volatile("lui %0, 0xfffff" : "=r"(v));
    check("lui 0xfffff sign-extends", v, 0xfffffffffffff000UL);
    __asm__ volatile("lui %0, 0x80000" : "=r"(v));
    check("lui 0x80000", v, 0xffffffff80000000UL);
    __asm__ volatile("lui %0, 0x7ffff" : "=r"(v));
    check("lui 0x7ffff", v, 0x7ffff000UL);
    u64 here, there;
    __asm__ volatile(".option push\n.option norvc\n1: auipc %0, 0\n auipc %1, 1\n.option pop\n la %2, 1b"
                     : "=r"(here), "=r"(there), "=r"(v));
    check("auipc 0 is pc", here, v);
    check("auipc 1 is pc+4+0x1000", there - here, 0x1004);
    __asm__ volatile("1: auipc %0, 0xfffff\n la %1, 1b" : "=r"(there), "=r"(here));
    check("auipc -1 page", here - there, 0x1000);
}

#define BR(insn, a, b) ({ u64 _t; __asm__ volatile(".option push\n.option norvc\n li %0, 1\n " insn " %1, %2, 1f\n li %0, 0\n1:\n.option pop" \
                          : "=&r"(_t) : "r"((u64)(a)), "r"((u64)(b))); _t; })

static void test_branches(void) {
    section("branches");
    check("beq taken", BR("beq", 5, 5), 1);
    check("beq not taken", BR("beq", 5, 6), 0);
    check("bne taken", BR("bne", 5, 6), 1);
    check("bne not taken", BR("bne", 5, 5), 0);
    check("blt -1 < 1 taken", BR("blt", ALL1, 1), 1);
    check("blt 1 < -1 not taken", BR("blt", 1, ALL1), 0);
    check("blt equal not taken", BR("blt", 3, 3), 0);
    check("bge equal taken", BR("bge", 3, 3), 1);
    check("bge min >= max not taken", BR("bge", MIN64, MAX64), 0);
    check("bltu 1 < -1 taken", BR("bltu", 1, ALL1), 1);
    check("bltu -1 < 1 not taken", BR("bltu", ALL1, 1), 0);
    check("bgeu -1 >= 1 taken", BR("bgeu", ALL1, 1), 1);
    check("bgeu 0 >= 1 not taken", BR("bgeu", 0, 1), 0);
    u64 back;
    __asm__ volatile(".option push\n.option norvc\n li %0, 0\n j 2f\n1: addi %0, %0, 1\n j 3f\n2: beq x0, x0, 1b\n li %0, 99\n3:\n.option pop" : "=&r"(back));
    check("backward branch", back, 1);

    section("jumps");
    u64 link, target, after;
    __asm__ volatile(".option push\n.option norvc\n jal %0, 1f\n2: nop\n1: la %1, 2b\n.option pop" : "=r"(link), "=r"(target));
    check("jal links pc+4", link, target);
    __asm__ volatile(".option push\n.option norvc\n la t0, 1f\n addi t0, t0, 1\n jalr %0, 0(t0)\n2: li %1, 0\n j 3f\n1: li %1, 1\n3: la %2, 2b\n.option pop"
                     : "=r"(link), "=r"(target), "=r"(after) :: "t0");
    check("jalr clears bit 0 of the target", target, 1);
    check("jalr links pc+4", link, after);
    __asm__ volatile(".option push\n.option norvc\n la t0, 1f\n jalr t0, 8(t0)\n1: li %0, 0\n j 2f\n li %0, 1\n2:\n.option pop"
                     : "=r"(target) :: "t0");
    check("jalr rd == rs1 uses the old rs1", target, 1);
    __asm__ volatile(".option push\n.option norvc\n la t0, 1f\n addi t0, t0, 8\n jalr x0, -8(t0)\n li %0, 0\n j 2f\n1: li %0, 1\n2:\n.option pop"
                     : "=r"(target) :: "t0");
    check("jalr negative offset", target, 1);
}

static void test_muldiv(void) {
    section("rv64m");
    check("mul", RR("mul", 0x100000001UL, 0x100000001UL), 0x200000001UL);
    check("mul wraps", RR("mul", MIN64, 2), 0);
    check("mulh -1*-1", RR("mulh", ALL1, ALL1), 0);
    check("mulh min*min", RR("mulh", MIN64, MIN64), 0x4000000000000000UL);
    check("mulh min*-1", RR("mulh", MIN64, ALL1), 0);
    check("mulh -1*1", RR("mulh", ALL1, 1), ALL1);
    check("mulhu -1*-1", RR("mulhu", ALL1, ALL1), 0xfffffffffffffffeUL);
    check("mulhu", RR("mulhu", 1UL << 32, 1UL << 32), 1);
    check("mulhsu -1*-1", RR("mulhsu", ALL1, ALL1), ALL1);
    check("mulhsu 1*-1", RR("mulhsu", 1, ALL1), 0);
    check("mulhsu min*-1", RR("mulhsu", MIN64, ALL1), 0x8000000000000000UL);
    check("mulhsu -2*2^63", RR("mulhsu", 0xfffffffffffffffeUL, MIN64), ALL1);
    check("mulw sign-extends", RR("mulw", 0x10000, 0x8000), MIN32);
    check("mulw ignores upper bits", RR("mulw", 0xffffffff00000003UL, 0x7700000005UL), 15);
    check("div", RR("div", (u64)-7, 2), (u64)-3);
    check("div by zero", RR("div", 5, 0), ALL1);
    check("div min/-1 overflow", RR("div", MIN64, ALL1), MIN64);
    check("divu", RR("divu", ALL1, 2), MAX64);
    check("divu by zero", RR("divu", 5, 0), ALL1);
    check("rem", RR("rem", (u64)-7, 2), ALL1);
    check("rem by zero", RR("rem", (u64)-7, 0), (u64)-7);
    check("rem min/-1 overflow", RR("rem", MIN64, ALL1), 0);
    check("remu", RR("remu", ALL1, 10), 5);
    check("remu by zero", RR("remu", 9, 0), 9);
    check("divw", RR("divw", 0xfffffff9UL, 2), (u64)-3);
    check("divw by zero", RR("divw", 5, 0), ALL1);
    check("divw min/-1 overflow", RR("divw", 0x80000000UL, ALL1), MIN32);
    check("divuw", RR("divuw", 0xfffffffeUL, 1), 0xfffffffffffffffeUL);
    check("divuw by zero", RR("divuw", 5, 0), ALL1);
    check("remw", RR("remw", 0xfffffff9UL, 2), ALL1);
    check("remw by zero", RR("remw", 0x80000000UL, 0), MIN32);
    check("remw min/-1 overflow", RR("remw", 0x80000000UL, ALL1), 0);
    check("remuw", RR("remuw", 0xfffffff9UL, 10), 9);
    check("remuw by zero sign-extends", RR("remuw", 0x80000001UL, 0), 0xffffffff80000001UL);
}

void test_alu(void) {
    test_base();
    test_branches();
    test_muldiv();
}
