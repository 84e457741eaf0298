/* Spin-waiting, shaped like a teaching kernel's boot: hart 0 writes all of its RAM
 * (start.S clears the 8 MiB .bss while the other harts poll `bss_ready` without a
 * pause hint; then main fills it) while the other harts poll a flag, also without
 * the pause hint; then every hart sums its part of the first MiB and hart 0 prints
 * the total. On a cluster with fewer host cores than nodes a poller that takes a
 * whole core starves the node doing the work; Disco parks spinning VCPUs
 * (docs/architecture.md). Only hart 0 prints: the output is the same on any number
 * of harts and on QEMU. */
#include "runtime.h"

#define RAM_WORDS (1024 * 1024)      /* 8 MiB */
#define SUM_WORDS (128 * 1024)       /* the first MiB, summed in parts */

static u64 ram[RAM_WORDS] __attribute__((aligned(4096)));
static volatile u32 started;
static volatile u64 sums[8];
static volatile int harts;
static struct barrier all_harts;

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    if (hartid == 0) {
        harts = fdt_count_cpus(fdt);
        if (harts > 8) harts = 8;
        puts("spin: start\n");
        for (u64 i = 0; i < RAM_WORDS; i++) ram[i] = i * 0x9e3779b97f4a7c15UL;
        __asm__ volatile("fence" ::: "memory");
        started = 1;
    } else {
        while (!started) { }
    }
    u64 per = SUM_WORDS / harts, lo = hartid * per, hi = hartid + 1 == (u64)harts ? SUM_WORDS : lo + per;
    u64 s = 0;
    for (u64 i = lo; i < hi; i++) s += ram[i] ^ (ram[i] >> 7);
    sums[hartid] = s;
    barrier_wait(&all_harts, harts, &sense);
    finish_with_checksum("spin", hartid, sums, harts);
}
