/* Remote miss latency as the guest sees it. Hart 0 reads one word from each of
 * SAMPLES distinct lines spread over a 16 MiB buffer, timing every read with the
 * `time` CSR (10 MHz). On a cluster whose memory is interleaved by page over the nodes,
 * reads of pages homed elsewhere are remote misses, the others local hits; the
 * program reports the median and 99th percentile of the slow half (the misses) and
 * the whole run's lines per second. Other harts idle. On QEMU every read is fast. */
#include "runtime.h"

#define SAMPLES 4000
#define STRIDE (4096 + 128)   /* a new page and a new line each time */

/* Untouched RAM 32 MiB above the start (the VM needs 64 MiB): never written, so no
 * node holds its lines before the reads, and nothing has to zero it first. */
#define buffer ((volatile u8 *)0x82000000UL)
static u64 t[SAMPLES];

static inline u64 now(void) { u64 v; __asm__ volatile("csrr %0, time" : "=r"(v)); return v; }

static void sort(u64 *a, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            u64 v = a[i];
            int j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
            a[j] = v;
        }
}

static void put_us(u64 ticks) {  /* ticks of 100 ns as microseconds with one decimal */
    put_u64(ticks / 10);
    putc('.');
    put_u64(ticks % 10);
}

int main(u64 hartid, const void *fdt) {
    (void)fdt;
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    u64 sum = 0;
    u64 start = now();
    for (int i = 0; i < SAMPLES; i++) {
        volatile u8 *p = &buffer[(u64)i * STRIDE];
        u64 a = now();
        sum += *p;
        u64 b = now();
        t[i] = b - a;
    }
    u64 total = now() - start;
    sort(t, SAMPLES);
    /* The upper half: on two nodes, the reads of pages homed on the other node. */
    u64 *slow = &t[SAMPLES / 2];
    int n = SAMPLES - SAMPLES / 2;
    puts("missbench: samples ");
    put_u64(SAMPLES);
    puts(" checksum ");
    put_u64(sum);
    puts("\ninstret: miss median us ");
    put_us(slow[n / 2]);
    puts(" p99 us ");
    put_us(slow[n * 99 / 100]);
    puts(" lines/s ");
    put_u64(total ? (u64)SAMPLES * 10000000UL / total : 0);
    puts("\n");
    pass();
}
