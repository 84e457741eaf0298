/* Block I/O through virtio-blk (virtio-mmio version 2, polled, no interrupts).
 * Prints the eight slots (device id, and the capacity of block devices), then works
 * on the block device in the lowest slot, as the mode in the device tree's bootargs
 * says ("MODE SEED COUNT"; default "write 1 40"):
 *   layout   only the slot listing;
 *   write    COUNT writes of 1-16 sectors at sectors drawn from SEED in the disk's
 *            lower half, FLUSH, read back and check them, print a checksum of the
 *            whole disk, pass;
 *   hang     the same writes and FLUSH, print "flushed", then keep writing the upper
 *            half without flushing until killed;
 *   noflush  the writes of "write", checked and summed, but never a FLUSH: what the
 *            host does with unflushed data when the VM powers off;
 *   verify   check that the writes of "write SEED COUNT" are on the disk, print the
 *            checksum, pass.
 * A sector's bytes depend only on SEED and its number, so overlapping writes agree
 * and any written sector can be checked. QEMU and disco must print the same. */
#include "runtime.h"



#define VIRTIO(slot) (0x10001000UL + 0x1000UL * (slot))
#define REG(base, off) (*(volatile u32 *)((base) + (off)))
#define QSIZE 8
#define MAXSECTORS 16

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
static u8 data[MAXSECTORS * 512] __attribute__((aligned(4096)));
static u64 dev, capacity;
static u16 last_used;

static void fence(void) { __asm__ volatile("fence" ::: "memory"); }

static void die(const char *what) {
    puts("blk: ");
    puts(what);
    puts("\n");
    fail(3);
}

/* One request: IN (0), OUT (1) or FLUSH (4) of `sectors` sectors through `data`. */
static u8 request(u32 type, u64 sector, u32 sectors) {
    header.type = type;
    header.reserved = 0;
    header.sector = sector;
    status = 0xff;
    descs[0] = (struct desc){ (u64)&header, 16, 1, 1 };
    if (type == 4) {
        descs[1] = (struct desc){ (u64)&status, 1, 2, 0 };
    } else {
        descs[1] = (struct desc){ (u64)data, sectors * 512, (u16)(type == 0 ? 3 : 1), 2 };
        descs[2] = (struct desc){ (u64)&status, 1, 2, 0 };
    }
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
    REG(dev, 0x014) = 0;
    u32 low = REG(dev, 0x010);
    if (!(high & 1)) die("no VIRTIO_F_VERSION_1");
    if (!(low & (1u << 9))) die("no VIRTIO_BLK_F_FLUSH");
    REG(dev, 0x024) = 1;
    REG(dev, 0x020) = 1;
    REG(dev, 0x024) = 0;
    REG(dev, 0x020) = 1u << 9;
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

/* ---- the workload ---- */

static u64 rng;
static u64 next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static u8 byte_of(u64 seed, u64 sector, u32 i) {
    u64 x = (seed * 0x9e3779b97f4a7c15UL) ^ (sector * 0xbf58476d1ce4e5b9UL) ^ (i / 8);
    x ^= x >> 31; x *= 0x94d049bb133111ebUL; x ^= x >> 29;
    return (u8)(x >> (8 * (i % 8)));
}

static void fill(u64 seed, u64 sector, u32 sectors) {
    for (u32 s = 0; s < sectors; s++)
        for (u32 i = 0; i < 512; i++) data[s * 512 + i] = byte_of(seed, sector + s, i);
}

static int check(u64 seed, u64 sector, u32 sectors) {
    for (u32 s = 0; s < sectors; s++)
        for (u32 i = 0; i < 512; i++)
            if (data[s * 512 + i] != byte_of(seed, sector + s, i)) return 0;
    return 1;
}

/* Request k of a run: a sector in [lo, hi) and a length. */
static void pick(u64 lo, u64 hi, u64 *sector, u32 *sectors) {
    *sectors = 1 + (u32)(next() % MAXSECTORS);
    *sector = lo + next() % (hi - lo - MAXSECTORS);
}

static void write_phase(u64 seed, u32 count) {
    rng = seed * 2654435761UL + 1;
    for (u32 k = 0; k < count; k++) {
        u64 sector; u32 sectors;
        pick(0, capacity / 2, &sector, &sectors);
        fill(seed, sector, sectors);
        if (request(1, sector, sectors) != 0) die("write failed");
    }
}

static void verify_phase(u64 seed, u32 count) {
    rng = seed * 2654435761UL + 1;
    for (u32 k = 0; k < count; k++) {
        u64 sector; u32 sectors;
        pick(0, capacity / 2, &sector, &sectors);
        if (request(0, sector, sectors) != 0) die("read failed");
        if (!check(seed, sector, sectors)) {
            puts("blk: MISMATCH at sector ");
            put_u64(sector);
            puts("\n");
            fail(4);
        }
    }
    puts("blk: verified ");
    put_u64(count);
    puts(" requests\n");
}

static void checksum(void) {
    u64 h = 0xcbf29ce484222325UL;
    for (u64 s = 0; s < capacity; s += MAXSECTORS) {
        u32 n = capacity - s < MAXSECTORS ? (u32)(capacity - s) : MAXSECTORS;
        if (request(0, s, n) != 0) die("read failed");
        for (u32 i = 0; i < n * 512; i++) { h ^= data[i]; h *= 0x100000001b3UL; }
    }
    puts("blk: checksum ");
    put_hex(h);
    puts("\n");
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

int main(u64 hartid, const void *fdt) {
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    char mode[16], seed_text[24], count_text[24];
    const char *args = bootargs(fdt);
    args = word(args, mode, sizeof mode);
    args = word(args, seed_text, sizeof seed_text);
    word(args, count_text, sizeof count_text);
    if (!mode[0]) { mode[0] = 'w'; mode[1] = 'r'; mode[2] = 'i'; mode[3] = 't'; mode[4] = 'e'; mode[5] = 0; }
    u64 seed = number(seed_text, 1);
    u32 count = (u32)number(count_text, 40);

    int first = -1;
    for (int slot = 0; slot < 8; slot++) {
        u64 base = VIRTIO(slot);
        if (REG(base, 0x000) != 0x74726976 || REG(base, 0x004) != 2) die("not a virtio-mmio version 2 slot");
        u32 id = REG(base, 0x008);
        puts("blk: slot ");
        put_u64((u64)slot);
        puts(" id ");
        put_u64(id);
        if (id == 2) {
            u64 sectors = REG(base, 0x100) | (u64)REG(base, 0x104) << 32;
            puts(" capacity ");
            put_u64(sectors);
            if (first < 0) { first = slot; capacity = sectors; }
        }
        puts("\n");
    }
    if (equal(mode, "layout")) pass();
    if (first < 0) die("no block device");
    if (capacity < 4 * MAXSECTORS) die("disk too small");
    dev = VIRTIO(first);
    puts("blk: using slot ");
    put_u64((u64)first);
    puts("\n");
    init();

    if (equal(mode, "noflush")) {
        write_phase(seed, count);
        puts("blk: wrote ");
        put_u64(count);
        puts(" requests without a flush\n");
        verify_phase(seed, count);
        checksum();
    } else if (equal(mode, "write") || equal(mode, "hang")) {
        write_phase(seed, count);
        if (request(4, 0, 0) != 0) die("flush failed");
        puts("blk: wrote and flushed ");
        put_u64(count);
        puts(" requests\n");
        if (equal(mode, "hang")) {
            puts("blk: flushed\n");
            rng = seed + 12345;
            for (u64 k = 1;; k++) {
                u64 sector; u32 sectors;
                pick(capacity / 2, capacity, &sector, &sectors);
                fill(seed + 1, sector, sectors);
                if (request(1, sector, sectors) != 0) die("write failed");
                if (k % 16 == 0) { puts("blk: unflushed writes "); put_u64(k); puts("\n"); }
            }
        }
        verify_phase(seed, count);
        checksum();
    } else if (equal(mode, "verify")) {
        verify_phase(seed, count);
        checksum();
    } else {
        die("unknown mode (layout, write, noflush, hang, verify)");
    }
    puts("blk: done\n");
    pass();
}
