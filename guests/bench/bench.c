/* A CPU-bound single-hart benchmark: integer arithmetic, a sort, CRC-32, memory
 * copies and calls. Prints a checksum (deterministic) and, last, the retired
 * instruction count for MIPS figures. */
#include "runtime.h"

#ifndef ITERATIONS
#define ITERATIONS 400
#endif

static u32 data[4096];
static u8 bufa[8192], bufb[8192];

static u32 crc32(const u8 *p, int n) {
    u32 crc = 0xffffffffu;
    for (int i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static void insertion_sort(u32 *a, int n) {
    for (int i = 1; i < n; i++) {
        u32 v = a[i];
        int j = i - 1;
        while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; }
        a[j + 1] = v;
    }
}

__attribute__((noinline)) static u64 mix(u64 a, u64 b) { return (a * 6364136223846793005UL) ^ (b + (a >> 17)); }

static void copy(u8 *dst, const u8 *src, int n) { for (int i = 0; i < n; i++) dst[i] = src[i]; }

int main(u64 hartid, const void *fdt) {
    (void)fdt;
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    u64 seed = 12345, sum = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        for (int i = 0; i < 512; i++) { seed = mix(seed, (u64)i); data[i] = (u32)(seed >> 32); }
        insertion_sort(data, 512);
        sum += data[0] ^ data[511] ^ data[256];
        for (int i = 0; i < 8192; i++) bufa[i] = (u8)(seed >> (i & 31)) + (u8)i;
        copy(bufb, bufa, 8192);
        sum += crc32(bufb, 2048);
        for (u64 i = 1; i < 20000; i++) sum += (sum / i) ^ (i * i);
    }
    puts("bench: checksum ");
    put_hex(sum);
    puts("\n");
    u64 instret = read_instret();
    puts("instret: ");
    put_u64(instret);
    puts("\n");
    pass();
}
