/* NUMA-unaware workload shaped like the Disco paper's raytrace: hart 0 builds a large
 * table, then every hart reads it all over (a chain of dependent lookups) while running
 * the same code, and writes nothing shared until it is done. On a cluster the table and
 * the code start out on the node of hart 0 (first touch); the monitor should replicate
 * them to the nodes that read them. The total work and the checksum do not depend on
 * the number of harts; only hart 0 prints, so the output equals QEMU's. */
#include "runtime.h"

#define TABLE_WORDS (64 * 1024)      /* 512 KiB, read-shared */
#define LOOKUPS (2 * 1024 * 1024)    /* in all, split over the harts */

static u64 table[TABLE_WORDS] __attribute__((aligned(4096)));
static volatile u64 sums[8] __attribute__((aligned(4096)));
static int harts;

static struct barrier all_harts;
static void barrier(u32 *local_sense) { barrier_wait(&all_harts, harts, local_sense); }

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) {
        puts("shared: start\n");
        u64 x = 88172645463325252UL;
        for (u64 i = 0; i < TABLE_WORDS; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            table[i] = x;
        }
    }
    barrier(&sense);

    /* Lookups [lo, hi) of the whole chain set; each lookup starts from its own index. */
    u64 per = LOOKUPS / harts, lo = hartid * per, hi = hartid + 1 == (u64)harts ? LOOKUPS : lo + per;
    u64 s = 0;
    for (u64 i = lo; i < hi; i++) {
        u64 v = table[(i * 2654435761UL) % TABLE_WORDS];
        v = table[(v ^ i) % TABLE_WORDS];
        s += v >> 3;
    }
    sums[hartid] = s;
    barrier(&sense);

    finish_with_checksum("shared", hartid, sums, harts);
}
