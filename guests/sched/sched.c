/* A long SMP workload for VCPU scheduling and migration: ROUNDS rounds in which every
 * hart hashes its own buffer, takes an LR/SC lock to add to a shared counter, then
 * waits at a barrier; after each round hart 0 sends every other hart an IPI (CLINT
 * msip), which it takes in WFI and acknowledges. So a VCPU that moves between nodes
 * mid-run keeps its registers, its place in the lock protocol and its interrupts, or
 * the output changes or the run hangs. Only hart 0 prints; the output depends on the
 * hart count (the per-hart sums), not on timing. */
#include "runtime.h"

#ifndef ROUNDS
#define ROUNDS 160
#endif
#define WORDS 2048                     /* 16 KiB per hart */
#define PASSES 48                      /* hash passes over the buffer per round */

#define CLINT_MSIP ((volatile u32 *)0x2000000UL)
static u64 buffers[8][WORDS] __attribute__((aligned(4096)));
static volatile u64 sums[8] __attribute__((aligned(64)));
static volatile u32 lock __attribute__((aligned(64)));
static volatile u64 counter, acks;
static int harts;
static struct barrier all_harts;

static void take(void) {
    u32 old;
    do {
        __asm__ volatile("1: lr.w.aq %0, (%1)\n bnez %0, 1b\n sc.w.rl %0, %2, (%1)"
                         : "=&r"(old) : "r"(&lock), "r"(1) : "memory");
    } while (old != 0);
}
static void give(void) { __asm__ volatile("amoswap.w.rl zero, zero, (%0)" :: "r"(&lock) : "memory"); }

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    u64 *b = buffers[hartid];
    u64 x = 0x9e3779b97f4a7c15UL * (hartid + 1);
    for (int i = 0; i < WORDS; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; b[i] = x; }
    __asm__ volatile("csrs mie, %0" :: "r"(1UL << 3));
    __asm__ volatile("csrs mstatus, %0" :: "r"(1UL << 3));
    barrier_wait(&all_harts, harts, &sense);
    if (hartid == 0) puts("sched: start\n");
    u64 s = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int p = 0; p < PASSES; p++) {
            for (int i = 0; i < WORDS; i++) {
                u64 v = b[i] ^ (s + (u64)i * 0xff51afd7ed558ccdUL);
                v ^= v >> 33; v *= 0xc4ceb9fe1a85ec53UL; v ^= v >> 29;
                b[i] = v;
                s += v >> 7;
            }
        }
        take();
        counter += (u64)r + hartid;
        give();
        barrier_wait(&all_harts, harts, &sense);
        if (hartid == 0) {
            for (int h = 1; h < harts; h++) CLINT_MSIP[h] = 1;
            while (acks != (u64)(r + 1) * (u64)(harts - 1)) __asm__ volatile("pause");
        } else {
            while (software_interrupts[hartid] != (u64)(r + 1)) {
                __asm__ volatile("csrc mstatus, %0" :: "r"(1UL << 3));
                if (software_interrupts[hartid] != (u64)(r + 1)) __asm__ volatile("wfi");
                __asm__ volatile("csrs mstatus, %0" :: "r"(1UL << 3));
            }
            __asm__ volatile("amoadd.d zero, %1, (%0)" :: "r"(&acks), "r"(1UL) : "memory");
        }
        barrier_wait(&all_harts, harts, &sense);
    }
    sums[hartid] = s;
    barrier_wait(&all_harts, harts, &sense);
    if (hartid == 0) {
        puts("sched: harts "); put_u64((u64)harts);
        puts(", lock counter "); put_u64(counter);
        puts(", IPIs acknowledged "); put_u64(acks); puts("\n");
        for (int h = 0; h < harts; h++) { puts("sched: hart "); put_u64((u64)h); puts(" sum "); put_hex(sums[h]); puts("\n"); }
        puts("sched: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
