/* Ticket locks the way Linux takes them on RISC-V (asm-generic ticket spinlock): a
 * 32-bit amoadd.w takes a ticket in the upper half, the owner is the lower half,
 * and unlock is a 16-bit store of owner + 1 (mixed-size accesses to one word). Every
 * hart takes the locks over and over; inside it updates counters that live in the
 * lock's page, and now and then writes a table that every hart reads outside the
 * locks (read-mostly data: a page policy replicates it, then the write collapses it).
 * On a cluster these pages are shared between nodes and move while the locks are
 * taken; a lost update or a stale read shows as a wrong count or a hang. Only hart 0
 * prints, and what it prints does not depend on timing. */
#include "runtime.h"

#define ROUNDS 2000
#define LOCKS 3
#define TABLE_WORDS 512

struct locked {
    volatile u32 lock;
    u32 pad;
    volatile u64 counter;
    volatile u64 per_hart[8];
} __attribute__((aligned(4096)));

static struct locked locks[LOCKS];
static volatile u64 table[TABLE_WORDS] __attribute__((aligned(4096)));
static volatile u64 seen[8];
static int harts;
static struct barrier all_harts;

/* Timer interrupts arrive in the middle of everything, as a kernel's tick does: the
 * handler bumps a shared tick count (hart 0) and a per-hart one, and re-arms. */
#define TICK 2000
static volatile u64 jiffies;
static volatile u64 ticks[8];

void timer_interrupt(u64 hart) {
    if (hart == 0) jiffies = jiffies + 1;
    ticks[hart] = ticks[hart] + 1;
    CLINT_MTIMECMP[hart] = *CLINT_MTIME + TICK;
}

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) {
        puts("locks: start\n");
        for (int i = 0; i < TABLE_WORDS; i++) table[i] = 0;
    }
    barrier_wait(&all_harts, harts, &sense);
    CLINT_MTIMECMP[hartid] = *CLINT_MTIME + TICK;
    __asm__ volatile("csrs mie, %0" : : "r"(1UL << 7));
    __asm__ volatile("csrsi mstatus, 8");
    if (hartid < (u64)harts) {
        u64 reads = 0;
        for (int r = 0; r < ROUNDS; r++) {
            struct locked *k = &locks[(r + hartid) % LOCKS];
            ticket_lock(&k->lock);
            k->counter = k->counter + 1;
            k->per_hart[hartid] = k->per_hart[hartid] + 1;
            if (r % 16 == 0) {
                /* The table is only written under lock 0's owner... by anyone holding any
                 * lock: make it atomic with an AMO so that the total is exact. */
                __asm__ volatile("amoadd.d zero, %1, (%0)" : : "r"(&table[hartid * 8]), "r"(1UL) : "memory");
            }
            ticket_unlock(&k->lock);
            for (int i = 0; i < TABLE_WORDS; i += 8) reads += table[i] >= 0 ? 1 : 0;
            reads += jiffies & 1;
        }
        seen[hartid] = reads;
    }
    __asm__ volatile("csrci mstatus, 8");
    CLINT_MTIMECMP[hartid] = ~0UL;
    barrier_wait(&all_harts, harts, &sense);
    if (hartid == 0) {
        u64 total = 0, per = 0, bad = 0;
        for (int i = 0; i < LOCKS; i++) {
            total += locks[i].counter;
            for (int h = 0; h < harts; h++) per += locks[i].per_hart[h];
            if ((u16)locks[i].lock != (u16)(locks[i].lock >> 16)) bad++;
        }
        u64 writes = 0;
        for (int i = 0; i < TABLE_WORDS; i++) writes += table[i];
        u64 expected = (u64)harts * ROUNDS;
        puts("locks: acquisitions "); puts(total == expected ? "ok" : "WRONG"); puts("\n");
        puts("locks: per-hart counts "); puts(per == expected ? "ok" : "WRONG"); puts("\n");
        puts("locks: locks released "); puts(bad == 0 ? "ok" : "WRONG"); puts("\n");
        puts("locks: table writes "); puts(writes == (u64)harts * ((ROUNDS + 15) / 16) ? "ok" : "WRONG"); puts("\n");
        if (total != expected || per != expected || bad || writes != (u64)harts * ((ROUNDS + 15) / 16)) {
            puts("locks: acquisitions "); put_u64(total); puts(" of "); put_u64(expected); puts("\n");
            fail(1);
        }
        puts("locks: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
