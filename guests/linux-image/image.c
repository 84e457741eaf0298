/* Prints what a Linux kernel would find at entry under OpenSBI: where it was
 * loaded, a0 (hart id), a1 (device tree), and the device tree's /chosen
 * (bootargs, linux,initrd-start/end) and the initrd's first bytes; then asks
 * OpenSBI for a system reset (SBI SRST) as the bootargs say: "srst=shutdown"
 * or "srst=reboot". The same lines are expected from QEMU and disco. */
#include <stdint.h>

typedef unsigned long ulong;

static void putc_(char c) {
    volatile uint8_t *uart = (volatile uint8_t *)0x10000000UL;
    while (!(uart[5] & 0x20)) {}
    uart[0] = (uint8_t)c;
}
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void hex(ulong v) {
    puts_("0x");
    int started = 0;
    for (int i = 60; i >= 0; i -= 4) {
        int d = (v >> i) & 15;
        if (d || started || i == 0) { putc_("0123456789abcdef"[d]); started = 1; }
    }
}
static uint32_t be32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}
static int contains(const char *hay, ulong len, const char *needle) {
    for (ulong i = 0; i < len; i++) {
        ulong j = 0;
        while (needle[j] && i + j < len && hay[i + j] == needle[j]) j++;
        if (!needle[j]) return 1;
    }
    return 0;
}
static ulong cells(const uint8_t *v, uint32_t len) {
    ulong r = 0;
    for (uint32_t i = 0; i + 4 <= len; i += 4) r = r << 32 | be32(v + i);
    return r;
}

static long sbi_srst(ulong type, ulong reason) {
    register ulong a0 asm("a0") = type, a1 asm("a1") = reason;
    register ulong a6 asm("a6") = 0, a7 asm("a7") = 0x53525354;  /* "SRST" */
    asm volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a6), "r"(a7) : "memory");
    return (long)a0;
}

void image_main(ulong hart, ulong dtb, ulong loaded) {
    puts_("image: hello from a Linux-Image-header kernel\n");
    puts_("image: loaded at "); hex(loaded); puts_("\n");
    puts_("image: a0 (hart) "); hex(hart); puts_(" a1 (dtb) "); hex(dtb); puts_("\n");
    const uint8_t *fdt = (const uint8_t *)dtb;
    if (be32(fdt) != 0xd00dfeed) { puts_("image: no device tree at a1\n"); sbi_srst(0, 1); for (;;) {} }
    const uint8_t *p = fdt + be32(fdt + 8);
    const char *strings = (const char *)fdt + be32(fdt + 12);
    int depth = 0, in_chosen = 0;
    ulong start = 0, end = 0, have_start = 0, have_end = 0, start_len = 0, end_len = 0;
    const char *bootargs = "";
    ulong bootargs_len = 0;
    for (;;) {
        uint32_t token = be32(p); p += 4;
        if (token == 1) {
            const char *name = (const char *)p;
            depth++;
            if (depth == 2) in_chosen = streq(name, "chosen");
            while (*p) p++;
            p = (const uint8_t *)(((ulong)p + 4) & ~3UL);
        } else if (token == 2) {
            if (depth == 2) in_chosen = 0;
            depth--;
        } else if (token == 3) {
            uint32_t len = be32(p), nameoff = be32(p + 4);
            const uint8_t *v = p + 8;
            const char *name = strings + nameoff;
            if (in_chosen && streq(name, "linux,initrd-start")) {
                start = cells(v, len); have_start = 1; start_len = len;
            } else if (in_chosen && streq(name, "linux,initrd-end")) {
                end = cells(v, len); have_end = 1; end_len = len;
            } else if (in_chosen && streq(name, "bootargs")) {
                bootargs = (const char *)v; bootargs_len = len;
            }
            p = v + ((len + 3) & ~3U);
        } else if (token == 4) {
        } else {
            break;
        }
    }
    /* In a fixed order: the order of properties in /chosen is not part of the contract. */
    if (bootargs_len) { puts_("image: /chosen/bootargs "); puts_(bootargs); puts_("\n"); }
    if (have_start) { puts_("image: /chosen/linux,initrd-start "); hex(start); puts_(start_len == 8 ? " (2 cells)\n" : " (1 cell)\n"); }
    if (have_end) { puts_("image: /chosen/linux,initrd-end "); hex(end); puts_(end_len == 8 ? " (2 cells)\n" : " (1 cell)\n"); }
    if (have_start && have_end) {
        const uint8_t *rd = (const uint8_t *)start;
        ulong sum = 0;
        for (ulong a = start; a < end; a++) sum = sum * 31 + rd[a - start];
        puts_("image: initrd "); hex(end - start); puts_(" bytes, hash "); hex(sum); puts_(", begins \"");
        for (ulong i = 0; i < 16 && start + i < end; i++) putc_(rd[i] >= 32 && rd[i] < 127 ? (char)rd[i] : '.');
        puts_("\"\n");
    } else {
        puts_("image: no initrd in /chosen\n");
    }
    if (contains(bootargs, bootargs_len, "srst=reboot")) {
        puts_("image: asking OpenSBI for a cold reboot\n");
        long r = sbi_srst(1, 0);
        puts_("image: SRST returned "); hex((ulong)r); puts_("\n");
    } else if (contains(bootargs, bootargs_len, "srst=shutdown")) {
        puts_("image: asking OpenSBI for a shutdown\n");
        long r = sbi_srst(0, 0);
        puts_("image: SRST returned "); hex((ulong)r); puts_("\n");
    }
    puts_("image: done\n");
}
