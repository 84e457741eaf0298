/* The global buffer cache's test guest (virtio-blk, virtio-mmio version 2, polled).
 * Reads the first PAGES pages of the disk in the lowest slot into page-aligned
 * buffers at 0x80200000 (16 pages a request, whole pages: what the buffer cache maps
 * shared), checksums them, adds 1 to one byte of WRITES of the pages (each write
 * makes the monitor copy a shared page first), checksums again, fills PRIVATE pages
 * of its own at 0x80600000, reads page 0 of the disk again into a page of its own and
 * checks it is the disk's (no write leaked into a shared page), and prints
 * "bcache: done". Bootargs "MODE PAGES WRITES PRIVATE" (default "run 256 8 32"):
 * run passes then; hold waits for interrupts forever (a benchmark measures the
 * memory of VMs still running, then stops them); split (two harts) has hart 1 do
 * the checksums and the writes of what hart 0 read, so that on a VM spread over two
 * nodes the other node reads and writes the pages the disk node shares. QEMU and
 * disco print the same. */
#include "runtime.h"



#define VIRTIO(slot) (0x10001000UL + 0x1000UL * (slot))
#define REG(base, off) (*(volatile u32 *)((base) + (off)))
#define QSIZE 8
#define BUFFERS 0x80200000UL
#define MAXPAGES 1024
#define PRIVATE 0x80600000UL
#define MAXPRIVATE 512
#define REREAD (PRIVATE + MAXPRIVATE * 4096UL)
#define CHUNK 16

struct desc { u64 addr; u32 len; u16 flags; u16 next; };
struct avail { u16 flags; u16 idx; u16 ring[QSIZE]; u16 used_event; };
struct used_elem { u32 id; u32 len; };
struct used { u16 flags; u16 idx; struct used_elem ring[QSIZE]; u16 avail_event; };
struct req { u32 type; u32 reserved; u64 sector; };

static struct desc descs[QSIZE] __attribute__((aligned(4096)));
static struct avail avail __attribute__((aligned(4096)));
static struct used used __attribute__((aligned(4096)));
static struct req header __attribute__((aligned(16)));
static volatile u8 status;
static u64 dev, capacity;
static u16 last_used;

static void fence(void) { __asm__ volatile("fence" ::: "memory"); }

static void die(const char *what) {
    puts("bcache: ");
    puts(what);
    puts("\n");
    fail(3);
}

/* One IN request of `pages` pages at disk page `page` into `buffer`. */
static u8 read_pages(u64 page, u32 pages, u64 buffer) {
    header.type = 0;
    header.reserved = 0;
    header.sector = page * 8;
    status = 0xff;
    descs[0] = (struct desc){ (u64)&header, 16, 1, 1 };
    descs[1] = (struct desc){ buffer, pages * 4096, 3, 2 };
    descs[2] = (struct desc){ (u64)&status, 1, 2, 0 };
    avail.ring[avail.idx % QSIZE] = 0;
    fence();
    avail.idx = avail.idx + 1;
    fence();
    REG(dev, 0x050) = 0;
    while (*(volatile u16 *)&used.idx == last_used) {
        if (REG(dev, 0x070) & 64) die("device needs reset");
    }
    fence();
    last_used++;
    REG(dev, 0x064) = REG(dev, 0x060);
    return status;
}

static void init(void) {
    REG(dev, 0x070) = 0;
    REG(dev, 0x070) = 1;
    REG(dev, 0x070) = 1 | 2;
    REG(dev, 0x014) = 1;
    u32 high = REG(dev, 0x010);
    if (!(high & 1)) die("no VIRTIO_F_VERSION_1");
    REG(dev, 0x024) = 1;
    REG(dev, 0x020) = 1;
    REG(dev, 0x024) = 0;
    REG(dev, 0x020) = 0;
    REG(dev, 0x070) = 1 | 2 | 8;
    if (!(REG(dev, 0x070) & 8)) die("features not accepted");
    REG(dev, 0x030) = 0;
    if (REG(dev, 0x034) < QSIZE) die("queue too small");
    REG(dev, 0x038) = QSIZE;
    REG(dev, 0x080) = (u32)(u64)descs;  REG(dev, 0x084) = (u32)((u64)descs >> 32);
    REG(dev, 0x090) = (u32)(u64)&avail; REG(dev, 0x094) = (u32)((u64)&avail >> 32);
    REG(dev, 0x0a0) = (u32)(u64)&used;  REG(dev, 0x0a4) = (u32)((u64)&used >> 32);
    REG(dev, 0x044) = 1;
    REG(dev, 0x070) = 1 | 2 | 8 | 4;
}

static u64 fnv(u64 h, const volatile u8 *p, u64 n) {
    for (u64 i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3UL; }
    return h;
}

/* ---- the device tree's /chosen/bootargs ---- */

static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

static int equal(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

static const char *bootargs(const void *fdt) {
    const u8 *base = fdt;
    if (be32(base) != 0xd00dfeed) return "";
    const u8 *p = base + be32(base + 8);
    const char *strings = (const char *)base + be32(base + 12);
    int depth = 0, in_chosen = 0;
    for (;;) {
        u32 token = be32(p);
        p += 4;
        if (token == 1) {
            const char *name = (const char *)p;
            int len = 0;
            while (name[len]) len++;
            depth++;
            in_chosen = depth == 2 && equal(name, "chosen");
            p += (len + 4) & ~3;
        } else if (token == 2) {
            depth--;
            in_chosen = 0;
        } else if (token == 3) {
            u32 len = be32(p), nameoff = be32(p + 4);
            if (in_chosen && equal(strings + nameoff, "bootargs")) return (const char *)p + 8;
            p += 8 + ((len + 3) & ~3u);
        } else if (token != 4) {
            return "";
        }
    }
}

static const char *word(const char *s, char *out, int size) {
    while (*s == ' ') s++;
    int n = 0;
    while (*s && *s != ' ') { if (n < size - 1) out[n++] = *s; s++; }
    out[n] = 0;
    return s;
}

static u64 number(const char *s, u64 otherwise) {
    if (!*s) return otherwise;
    u64 v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (u64)(*s++ - '0');
    return v;
}

/* split mode: hart 0 reads, then hart 1 checks and writes (phase 1 -> 2). */
static volatile u64 phase, first_sum, read_sum, wrote_sum;

static void check_and_write(u64 pages, u64 writes) {
    volatile u8 *buf = (volatile u8 *)BUFFERS;
    first_sum = fnv(0xcbf29ce484222325UL, buf, 4096);
    read_sum = fnv(0xcbf29ce484222325UL, buf, pages * 4096);
    for (u64 k = 0; k < writes; k++) {
        u64 page = k * (pages / (writes ? writes : 1));
        buf[page * 4096 + 8 + k] += 1;
    }
    wrote_sum = fnv(0xcbf29ce484222325UL, buf, pages * 4096);
}

int main(u64 hartid, const void *fdt) {
    char mode[16], pages_text[24], writes_text[24], private_text[24];
    const char *args = bootargs(fdt);
    args = word(args, mode, sizeof mode);
    args = word(args, pages_text, sizeof pages_text);
    args = word(args, writes_text, sizeof writes_text);
    word(args, private_text, sizeof private_text);
    int hold = equal(mode, "hold"), split = equal(mode, "split");
    u64 pages = number(pages_text, 256), writes = number(writes_text, 8), private = number(private_text, 32);
    if (hartid != 0) {
        if (hartid == 1 && split) {
            while (phase != 1) __asm__ volatile("pause");
            fence();
            check_and_write(pages, writes);
            fence();
            phase = 2;
        }
        for (;;) __asm__ volatile("wfi");
    }
    if (mode[0] && !hold && !split && !equal(mode, "run")) die("unknown mode (run, hold, split)");
    if (pages < 1 || pages > MAXPAGES || writes > pages || private > MAXPRIVATE) die("bad arguments (PAGES 1-1024, WRITES <= PAGES, PRIVATE <= 512)");

    int slot = -1;
    for (int s = 0; s < 8 && slot < 0; s++) {
        u64 base = VIRTIO(s);
        if (REG(base, 0x000) == 0x74726976 && REG(base, 0x004) == 2 && REG(base, 0x008) == 2) slot = s;
    }
    if (slot < 0) die("no block device");
    dev = VIRTIO(slot);
    capacity = REG(dev, 0x100) | (u64)REG(dev, 0x104) << 32;
    if (capacity < pages * 8) die("disk smaller than PAGES pages");
    init();

    for (u64 p = 0; p < pages; p += CHUNK) {
        u32 n = pages - p < CHUNK ? (u32)(pages - p) : CHUNK;
        if (read_pages(p, n, BUFFERS + p * 4096) != 0) die("read failed");
    }
    if (split) {
        fence();
        phase = 1;
        while (phase != 2) __asm__ volatile("pause");
        fence();
    } else {
        check_and_write(pages, writes);
    }
    u64 first = first_sum, h = read_sum;
    puts("bcache: read "); put_u64(pages); puts(" pages, checksum "); put_hex(h); puts("\n");
    h = wrote_sum;
    puts("bcache: wrote "); put_u64(writes); puts(" pages, checksum "); put_hex(h); puts("\n");

    volatile u64 *mine = (volatile u64 *)PRIVATE;
    for (u64 i = 0; i < private * 512; i++) mine[i] = i * 0x9e3779b97f4a7c15UL ^ (i >> 3);
    h = fnv(0xcbf29ce484222325UL, (volatile u8 *)PRIVATE, private * 4096);
    puts("bcache: private "); put_u64(private); puts(" pages, checksum "); put_hex(h); puts("\n");

    if (read_pages(0, 1, REREAD) != 0) die("read failed");
    if (fnv(0xcbf29ce484222325UL, (volatile u8 *)REREAD, 4096) != first) die("page 0 read again differs from the first read");
    puts("bcache: page 0 read again matches\n");
    puts("bcache: done\n");
    if (hold) for (;;) __asm__ volatile("wfi");
    pass();
}
