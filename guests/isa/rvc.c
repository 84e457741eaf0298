/* Checks of the compressed instructions in rvc_asm.S. */
#include "isa.h"

void rvc_alu(u64 *out);
void rvc_mem(u64 *out, u64 *buf);
u64 rvc_jumps(void);

void test_rvc(void) {
    static u64 out[24], buf[32];
    section("rvc");
    rvc_alu(out);
    check("c.li -32", out[0], (u64)-32);
    check("c.addi", out[1], 30);
    check("c.addiw sign-extends", out[2], 0xffffffff80000000UL);
    check("c.lui negative", out[3], 0xfffffffffffff000UL);
    check("c.lui 1", out[4], 0x1000);
    check("c.addi16sp -496", out[5], 496);
    check("c.addi4spn 1020", out[6], 1020);
    check("c.slli 63", out[7], 1UL << 63);
    check("c.srai 63", out[8], ~0UL);
    check("c.srli 60", out[9], 0xf);
    check("c.andi -6", out[10], 0xa);
    check("c.sub", out[11], 7);
    check("c.xor", out[12], 4);
    check("c.or", out[13], 7);
    check("c.and", out[14], 3);
    check("c.subw", out[15], 0x7fffffff);
    check("c.addw sign-extends", out[16], 0xffffffff80000000UL);
    check("c.mv + c.add", out[17], 0xffffffff80000001UL);
    check("c.nop and c.addi 0", out[18], 0xffffffff80000000UL);
    check("c.slli 32", out[19], 0x1f00000000UL);
    check("c.srli 33", out[20], 0xf);

    buf[0] = 0x00000000f0000001UL;
    buf[1] = 0x123456789abcdef0UL;
    buf[15] = 0x8000000000000000UL;  /* word 31 is its upper half */
    buf[31] = 0xfedcba9876543210UL;
    rvc_mem(out, buf);
    check("c.lw sign-extends", out[0], 0xfffffffff0000001UL);
    check("c.ld", out[1], 0x123456789abcdef0UL);
    check("c.lw offset 124", out[2], 0xffffffff80000000UL);
    check("c.ld offset 248", out[3], 0xfedcba9876543210UL);
    check("c.sw", buf[2], 0x55667788UL);
    check("c.sd", buf[3], 0x1122334455667788UL);
    check("c.sdsp/c.ldsp", out[4], 0x1122334455667788UL);
    check("c.swsp/c.lwsp", out[5], 0x55667788UL);
    check("c.lwsp sign-extends", out[6], ~0UL);

    check("c.j c.beqz c.bnez c.jalr c.jr paths", rvc_jumps(), 0xff);
}
