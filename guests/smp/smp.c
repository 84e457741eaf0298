/* SMP test: every hart takes part in atomic counting, two kinds of spin lock,
 * a sense-reversing barrier and IPIs through the CLINT. Only hart 0 prints, so
 * the output is the same on any number of harts and on QEMU. */
#include "runtime.h"

#define CLINT_MSIP ((volatile u32 *)0x2000000UL)
#define ITERATIONS 2000

static volatile u64 amo_counter, lrsc_counter, swap_counter, acks;
static volatile u32 lrsc_lock, swap_lock;
static int harts;

static void lock_lrsc(volatile u32 *l) {
    u32 tmp;
    __asm__ volatile(
        "1: lr.w.aq %0, (%1)\n"
        "   bnez %0, 1b\n"
        "   li %0, 1\n"
        "   sc.w.rl %0, %0, (%1)\n"
        "   bnez %0, 1b\n"
        : "=&r"(tmp) : "r"(l) : "memory");
}

static void unlock(volatile u32 *l) { __asm__ volatile("amoswap.w.rl zero, zero, (%0)" :: "r"(l) : "memory"); }

static void lock_swap(volatile u32 *l) {
    u32 old;
    do {
        __asm__ volatile("amoswap.w.aq %0, %2, (%1)" : "=r"(old) : "r"(l), "r"(1) : "memory");
    } while (old);
}

static struct barrier all_harts;
static void barrier(u32 *local_sense) { barrier_wait(&all_harts, harts, local_sense); }

static void report(const char *what, u64 got, u64 want) {
    puts("smp: ");
    puts(what);
    puts(" = ");
    put_u64(got);
    puts(got == want ? " ok\n" : " WRONG\n");
    if (got != want) fail(2);
}

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) puts("smp: start\n");

    for (int i = 0; i < ITERATIONS; i++)
        __asm__ volatile("amoadd.d zero, %1, (%0)" :: "r"(&amo_counter), "r"(1UL) : "memory");
    for (int i = 0; i < ITERATIONS; i++) { lock_lrsc(&lrsc_lock); lrsc_counter = lrsc_counter + 1; unlock(&lrsc_lock); }
    for (int i = 0; i < ITERATIONS; i++) { lock_swap(&swap_lock); swap_counter = swap_counter + 1; unlock(&swap_lock); }
    barrier(&sense);

    if (hartid == 0) {
        report("amoadd counter per hart", amo_counter / harts, ITERATIONS);
        report("lr/sc lock counter per hart", lrsc_counter / harts, ITERATIONS);
        report("amoswap lock counter per hart", swap_counter / harts, ITERATIONS);
        report("counters divide evenly", amo_counter % harts + lrsc_counter % harts + swap_counter % harts, 0);
    }
    barrier(&sense);

    /* IPIs: every hart enables machine software interrupts; hart 0 raises msip
     * for each other hart, which acknowledges from its handler. */
    __asm__ volatile("csrs mie, %0" :: "r"(1UL << 3));
    __asm__ volatile("csrs mstatus, %0" :: "r"(1UL << 3));
    barrier(&sense);
    if (hartid == 0) {
        for (int h = 1; h < harts; h++) CLINT_MSIP[h] = 1;
        while (acks != (u64)(harts - 1)) __asm__ volatile("pause");
        report("IPIs acknowledged by the other harts", acks, (u64)(harts - 1));
    } else {
        /* Sleep without losing the wake-up: check and WFI with MIE clear (a pending,
         * enabled interrupt still ends WFI), then open MIE to take it. */
        while (software_interrupts[hartid] == 0) {
            __asm__ volatile("csrc mstatus, %0" :: "r"(1UL << 3));
            if (software_interrupts[hartid] == 0) __asm__ volatile("wfi");
            __asm__ volatile("csrs mstatus, %0" :: "r"(1UL << 3));
        }
        __asm__ volatile("amoadd.d zero, %1, (%0)" :: "r"(&acks), "r"(1UL) : "memory");
    }
    barrier(&sense);

    if (hartid == 0) {
        /* A few M-extension edge cases, computed by whatever hart count ran. */
        volatile i64 min = (i64)(1UL << 63), minus1 = -1, zero = 0, seven = 7;
        report("div by zero is all ones", (u64)(min / zero == -1), 1);
        report("overflowing div gives the dividend", (u64)(min / minus1 == min), 1);
        report("rem by zero gives the dividend", (u64)(seven % zero), 7);
        puts("smp: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
