/* Zifencei: code written as data, made visible with fence.i, then executed;
 * rewritten in place and executed again (also as a compressed instruction). */
#include "isa.h"

static u32 code[16] __attribute__((aligned(64)));

static u64 call_code(void) {
    u64 r;
    __asm__ volatile("jalr ra, 0(%1)\n mv %0, a0" : "=r"(r) : "r"(code) : "ra", "a0", "memory");
    return r;
}

void test_fencei(void) {
    section("fence.i and self-modifying code");
    code[0] = 0x00700513;            /* li a0, 7 */
    code[1] = 0x00008067;            /* ret */
    __asm__ volatile("fence.i" ::: "memory");
    check("written code runs", call_code(), 7);
    code[0] = 0x06300513;            /* li a0, 99 */
    __asm__ volatile("fence.i" ::: "memory");
    check("rewritten code runs after fence.i", call_code(), 99);
    /* c.li a0, -3; c.jr ra as one word */
    code[0] = 0x80825575;
    __asm__ volatile("fence.i" ::: "memory");
    check("rewritten as compressed code", call_code(), (u64)-3);
    /* Patch an instruction in a loop: each pass runs the one stored last. */
    u64 sum = 0;
    for (u32 i = 1; i <= 5; i++) {
        code[0] = 0x00000513 | (i << 20);   /* li a0, i */
        code[1] = 0x00008067;
        __asm__ volatile("fence.i" ::: "memory");
        sum += call_code();
    }
    check("five patched runs", sum, 15);
}
