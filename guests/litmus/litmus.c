/* Litmus tests for the memory model, run by harts 0 and 1 (others idle):
 *   MP    hart 0: data = 1; flag = 1        hart 1: r1 = flag; r2 = data
 *         forbidden under sequential consistency (and RVWMO with fences): r1 == 1 && r2 == 0
 *   SB    hart 0: x = 1; r1 = y             hart 1: y = 1; r2 = x
 *         forbidden under sequential consistency: r1 == 0 && r2 == 0
 *   LR/SC both harts add 1 to one counter ROUNDS times with an LR/SC loop: no update lost.
 * Each round starts both harts together (a barrier) so the accesses race. The guest
 * prints how often each forbidden outcome was seen and how often each allowed one
 * was; disco promises sequential consistency, so it must print 0 forbidden. (QEMU on
 * an x86 host may show SB's relaxed outcome: it is the oracle for the ISA, not here.) */
#include "runtime.h"

#define ROUNDS 1000

static volatile u64 data, flag, x, y, counter;
static volatile u32 arrive, sense;
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
        puts("litmus: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
