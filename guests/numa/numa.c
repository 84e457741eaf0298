/* NUMA-unaware workload, like the Disco paper's engineering runs: hart 0 first
 * touches all the data, then every hart works on its own partition of it, reading
 * a small shared table as it goes. On a cluster the partitions start out homed
 * wherever the placement put them; the monitor's page policy should move each
 * partition's pages to the node of the hart that works on it. Only hart 0 prints,
 * so the output is the same on any number of harts and on QEMU. */
#include "runtime.h"

#define DATA_WORDS (128 * 1024)      /* 1 MiB of data */
#define TABLE_WORDS 512              /* 4 KiB shared, read-only table */
#ifndef ROUNDS
#define ROUNDS 24                    /* numa-long.elf: 240 (guests/Makefile) */
#endif

static u64 data[DATA_WORDS] __attribute__((aligned(4096)));
static u64 table[TABLE_WORDS] __attribute__((aligned(4096)));
static volatile u64 sums[8];
static int harts;

static struct barrier all_harts;
static void barrier(u32 *local_sense) { barrier_wait(&all_harts, harts, local_sense); }

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) {
        puts("numa: start\n");
        for (u64 i = 0; i < TABLE_WORDS; i++) table[i] = i * 2654435761UL;
        for (u64 i = 0; i < DATA_WORDS; i++) data[i] = i;
    }
    barrier(&sense);

    /* Partitions by hart count; the total does not depend on it. */
    u64 per = DATA_WORDS / harts, lo = hartid * per, hi = hartid + 1 == (u64)harts ? DATA_WORDS : lo + per;
    for (int r = 0; r < ROUNDS; r++)
        for (u64 i = lo; i < hi; i++) data[i] = data[i] * 3 + table[i % TABLE_WORDS] + r;
    u64 s = 0;
    for (u64 i = lo; i < hi; i++) s += data[i];
    sums[hartid] = s;
    barrier(&sense);

    finish_with_checksum("numa", hartid, sums, harts);
}
