#include "runtime.h"

#define UART ((volatile u8 *)0x10000000UL)
#define FINISHER ((volatile u32 *)0x100000UL)
#define CLINT_MSIP ((volatile u32 *)0x2000000UL)

volatile u64 software_interrupts[8];

void putc(char c) {
    while ((UART[5] & 0x20) == 0) { }
    UART[0] = (u8)c;
}

void puts(const char *s) { while (*s) putc(*s++); }

void put_u64(u64 v) {
    char buf[24];
    int i = 0;
    do { buf[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (i) putc(buf[--i]);
}

void put_hex(u64 v) {
    puts("0x");
    for (int shift = 60; shift >= 0; shift -= 4) putc("0123456789abcdef"[(v >> shift) & 15]);
}

void pass(void) {
    *FINISHER = 0x5555;
    for (;;) { }
}

void fail(u32 code) {
    *FINISHER = (code << 16) | 0x3333;
    for (;;) { }
}

void trap_handler(u64 mcause) {
    u64 hart = read_csr_mhartid();
    if (mcause == ((1UL << 63) | 3)) {      /* machine software interrupt */
        CLINT_MSIP[hart] = 0;
        software_interrupts[hart]++;
        return;
    }
    if (mcause == ((1UL << 63) | 7) && timer_interrupt) {  /* machine timer, if the guest takes it */
        timer_interrupt(hart);
        return;
    }
    puts("unexpected trap, mcause ");
    put_hex(mcause);
    puts("\n");
    fail(99);
}

static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

int fdt_count_cpus(const void *fdt) {
    const u8 *base = fdt;
    if (be32(base) != 0xd00dfeed) return 1;
    const u8 *p = base + be32(base + 8);
    int depth = 0, in_cpus = 0, count = 0;
    for (;;) {
        u32 token = be32(p);
        p += 4;
        if (token == 1) {                   /* BEGIN_NODE */
            const char *name = (const char *)p;
            int len = 0;
            while (name[len]) len++;
            depth++;
            if (depth == 2 && len == 4 && name[0] == 'c' && name[1] == 'p' && name[2] == 'u' && name[3] == 's') in_cpus = 1;
            if (in_cpus && depth == 3 && len > 4 && name[0] == 'c' && name[1] == 'p' && name[2] == 'u' && name[3] == '@') count++;
            p += (len + 4) & ~3;
        } else if (token == 2) {            /* END_NODE */
            if (depth == 2) in_cpus = 0;
            depth--;
        } else if (token == 3) {            /* PROP */
            u32 len = be32(p);
            p += 8 + ((len + 3) & ~3u);
        } else if (token == 4) {            /* NOP */
        } else {
            break;                          /* END or garbage */
        }
    }
    return count ? count : 1;
}

void finish_with_checksum(const char *name, u64 hartid, volatile u64 *sums, int harts) {
    if (hartid == 0) {
        u64 total = 0;
        for (int h = 0; h < harts; h++) total += sums[h];
        puts(name);
        puts(": checksum ");
        put_hex(total);
        puts("\n");
        puts(name);
        puts(": done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
