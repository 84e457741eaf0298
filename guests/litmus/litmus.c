/* Litmus tests for the memory model, run by harts 0 and 1 (others idle):
 *   MP    hart 0: data = 1; flag = 1        hart 1: r1 = flag; r2 = data
 *         forbidden under sequential consistency (and RVWMO with fences): r1 == 1 && r2 == 0
 *   SB    hart 0: x = 1; r1 = y             hart 1: y = 1; r2 = x
 *         forbidden under sequential consistency: r1 == 0 && r2 == 0
 *   LR/SC both harts add 1 to one counter ROUNDS times with an LR/SC loop: no update lost.
 *   CMODX hart 1 rewrites a function hart 0 has just run (li a0, i; ret), then sets a
 *         flag; hart 0 sees the flag, executes fence.i and calls it: it must run the
 *         new code (a stale decoded instruction would return the old value).
 * Each round starts both harts together (a barrier) so the accesses race. The guest
 * prints how often each forbidden outcome was seen and how often each allowed one
 * was; disco promises sequential consistency, so it must print 0 forbidden. (QEMU on
 * an x86 host may show SB's relaxed outcome: it is the oracle for the ISA, not here.) */
#include "runtime.h"

#define ROUNDS 1000

static volatile u64 data, flag, x, y, counter;
static volatile u32 arrive, sense;
static volatile u64 generation;
/* A function rewritten at run time: two instructions, in data (M-mode, no PMP: executable). */
static volatile u32 code[2] __attribute__((aligned(64)));
typedef u64 (*function)(void);

static void write_function(u32 value) {
    code[0] = 0x00000513u | ((value & 0x7ff) << 20); /* addi a0, zero, value */
    code[1] = 0x00008067u;                            /* jalr zero, 0(ra) */
}
static volatile u64 r1s[ROUNDS], r2s[ROUNDS];

static void barrier(u32 *local) {
    *local = !*local;
    u32 arrived;
    __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(arrived) : "r"(&arrive), "r"(1) : "memory");
    if (arrived == 1) {
        arrive = 0;
        __asm__ volatile("fence" ::: "memory");
        sense = *local;
    } else {
        while (sense != *local) { }
    }
}

static void add_lrsc(volatile u64 *p) {
    u64 tmp;
    __asm__ volatile(
        "1: lr.d %0, (%1)\n"
        "   addi %0, %0, 1\n"
        "   sc.d %0, %0, (%1)\n"
        "   bnez %0, 1b\n"
        : "=&r"(tmp) : "r"(p) : "memory");
}

static void line(const char *what, u64 n) {
    puts("litmus: ");
    puts(what);
    puts(" ");
    put_u64(n);
    puts("\n");
}

int main(u64 hartid, const void *fdt) {
    (void)fdt;
    if (hartid > 1) for (;;) __asm__ volatile("wfi");
    u32 local = 0;
    if (hartid == 0) puts("litmus: start\n");

    /* Message passing. */
    for (int i = 0; i < ROUNDS; i++) {
        if (hartid == 0) { data = 0; flag = 0; }
        barrier(&local);
        if (hartid == 0) {
            data = 1;
            __asm__ volatile("fence w,w" ::: "memory");
            flag = 1;
        } else {
            u64 f = flag;
            __asm__ volatile("fence r,r" ::: "memory");
            r1s[i] = f;
            r2s[i] = data;
        }
        barrier(&local);
    }
    if (hartid == 0) {
        u64 forbidden = 0;
        for (int i = 0; i < ROUNDS; i++) {
            if (r1s[i] == 1 && r2s[i] == 0) forbidden++;

        }
        line("mp forbidden (flag=1, data=0):", forbidden);
        if (forbidden) fail(3);
    }
    barrier(&local);

    /* Store buffering, with full fences: forbidden on RVWMO too. */
    for (int i = 0; i < ROUNDS; i++) {
        if (hartid == 0) { x = 0; y = 0; }
        barrier(&local);
        if (hartid == 0) {
            x = 1;
            __asm__ volatile("fence rw,rw" ::: "memory");
            r1s[i] = y;
        } else {
            y = 1;
            __asm__ volatile("fence rw,rw" ::: "memory");
            r2s[i] = x;
        }
        barrier(&local);
    }
    if (hartid == 0) {
        u64 forbidden = 0;
        for (int i = 0; i < ROUNDS; i++) if (r1s[i] == 0 && r2s[i] == 0) forbidden++;
        line("sb forbidden (both read 0):", forbidden);
        if (forbidden) fail(4);
    }
    barrier(&local);

    /* LR/SC contention. */
    for (int i = 0; i < ROUNDS; i++) add_lrsc(&counter);
    barrier(&local);
    if (hartid == 0) {
        line("lr/sc counter (want 2000):", counter);
        if (counter != 2 * ROUNDS) fail(5);
        write_function(0);
        __asm__ volatile("fence.i" ::: "memory");
    }
    barrier(&local);

    /* Cross-hart code modification. */
    function f = (function)(void *)code;
    for (int i = 0; i < ROUNDS; i++) {
        if (hartid == 0) (void)f(); /* run (and let the hart cache) the old code */
        barrier(&local);
        if (hartid == 1) {
            write_function((u32)i + 1);
            __asm__ volatile("fence w,w" ::: "memory");
            generation = (u64)i + 1;
        } else {
            while (generation != (u64)i + 1) { }
            __asm__ volatile("fence.i" ::: "memory");
            r1s[i] = f();
        }
        barrier(&local);
    }
    if (hartid == 0) {
        u64 forbidden = 0;
        for (int i = 0; i < ROUNDS; i++) if (r1s[i] != (((u64)i + 1) & 0x7ff)) forbidden++;
        line("cmodx stale code run:", forbidden);
        if (forbidden) fail(6);
        puts("litmus: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
