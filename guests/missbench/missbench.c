/* Remote miss latency as the guest sees it. Hart 0 reads one word from each of
 * SAMPLES distinct lines spread over a 16 MiB buffer, timing every read with the
 * `time` CSR (10 MHz). On a cluster whose memory is interleaved by page over the nodes,
 * reads of pages homed elsewhere are remote misses, the others local hits; the
 * program reports the median and 99th percentile of the slow half (the misses) and
 * the whole run's lines per second. Then it reads 16 of those lines of each kind
 * again, many times: the remote ones are now in the node's remote cache, so the time
 * per read of those against the local ones is what a remote-cache hit costs. Last it streams: one word
 * of every line of another 8 MiB, in order, and reports lines per second over the
 * pages that were remote (a page slower than 20 us counts as remote). Other harts
 * idle. On QEMU every read is fast. */
#include "runtime.h"

#define SAMPLES 4000
#define STRIDE (4096 + 128)   /* a new page and a new line each time */

/* Untouched RAM 32 MiB above the start (the VM needs 64 MiB): never written, so no
 * node holds its lines before the reads, and nothing has to zero it first. */
#define buffer ((volatile u8 *)0x82000000UL)
static u64 t[SAMPLES];
/* Remote-cache hits: this many lines of each kind (pages few enough for the TLB), read
 * this many times. */
#define HIT_LINES 16
#define HIT_ROUNDS 4096
#define STREAM ((volatile u8 *)0x83000000UL)   /* 8 MiB, untouched too */
#define STREAM_PAGES 2048

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
    /* Remote-cache hits: the lines read above, again; remote ones (slow the first
     * time) and local ones timed apart, a whole round at a time. */
    int remote = 0, picked[2] = {0, 0};
    u64 hitLines[2][HIT_LINES];
    for (int i = 0; i < SAMPLES; i++) {
        int kind = t[i] > 200;
        remote += kind;
        if (picked[kind] < HIT_LINES) hitLines[kind][picked[kind]++] = (u64)i * STRIDE;
    }
    u64 hitTicks[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++) {
        u64 a = now();
        for (int r = 0; r < HIT_ROUNDS; r++)
            for (int i = 0; i < picked[kind]; i++) sum += buffer[hitLines[kind][i]];
        hitTicks[kind] = now() - a;
    }
    /* Streaming: every line of 8 MiB in order, a page at a time. */
    u64 remoteLines = 0, remoteTicks = 0;
    for (u64 p = 0; p < STREAM_PAGES; p++) {
        u64 a = now();
        for (u64 l = 0; l < 4096; l += 128) sum += STREAM[p * 4096 + l];
        u64 d = now() - a;
        if (d > 200) { remoteLines += 32; remoteTicks += d; }
    }
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
    /* Nanoseconds per read (ticks are 100 ns): hits in the remote cache, local reads. */
    puts("instret: read ns remote-cache hit ");
    put_u64(picked[1] ? hitTicks[1] * 100 / ((u64)picked[1] * HIT_ROUNDS) : 0);
    puts(" local ");
    put_u64(picked[0] ? hitTicks[0] * 100 / ((u64)picked[0] * HIT_ROUNDS) : 0);
    puts(" remote lines ");
    put_u64(remote);
    puts("\ninstret: stream remote lines ");
    put_u64(remoteLines);
    puts(" lines/s ");
    put_u64(remoteTicks ? remoteLines * 10000000UL / remoteTicks : 0);
    puts("\n");
    (void)sum;
    pass();
}
