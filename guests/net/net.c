/* Frames through virtio-net (virtio-mmio version 2, polled, no interrupts), between
 * VMs on the virtual switch. The device tree's bootargs say the role:
 *   ping PEERS COUNT [STREAM]
 *                      broadcast HELLO until PEERS other VMs answered (each answer
 *                      proves the broadcast reached that VM), then COUNT pings to
 *                      each of them, stop-and-wait, payloads of 0-1490 bytes drawn from
 *                      the sequence number with a checksum; each pong must carry the
 *                      ping's payload with every byte plus one and a right checksum.
 *                      Prints the peers, a checksum of everything received and the
 *                      round trips (median, p99, frames per second); with STREAM,
 *                      then sends STREAM full-size frames back to back to the first
 *                      peer and prints how many arrived and the rate; then passes.
 *   pong               answer HELLOs and pings until the pinger says DONE; prints
 *                      what it answered and a checksum of the payloads, passes.
 *   pages PEERS COUNT NPAGES
 *                      jumbo frames of NPAGES whole pages (the NIC's MTU must allow
 *                      them): a header page, then data pages of a 32-page "file" laid
 *                      out as their own page-aligned descriptors, so that a node can
 *                      lend them instead of copying (docs/monitor.md). Sends COUNT
 *                      frames to PEERS sinks in batches of 4 (broadcast when PEERS > 1)
 *                      and waits for each sink's ack of a batch; then rewrites the file
 *                      pages the batch carried (a new version), so a sink that still
 *                      holds them must still see the old bytes. Prints a checksum of
 *                      the file at the end (a sink's write must not reach it).
 *   sink NPAGES [copy] takes frames into page-aligned buffers of NPAGES pages (with
 *                      `copy`, 64 bytes past a page boundary, so nothing can be
 *                      remapped: the benchmark's baseline), acks
 *                      each batch, and checks a batch only after the next one came
 *                      (after the sender rewrote its pages): every page against the
 *                      version the header names, and the frame's checksum; then
 *                      writes into the pages (its own copy) and gives them back.
 * A corrupted frame fails the guest (code 5), a peer that stops answering too (6). */
#include "runtime.h"



#define VIRTIO(slot) (0x10001000UL + 0x1000UL * (slot))
#define REG(base, off) (*(volatile u32 *)((base) + (off)))
#define MTIME (*(volatile u64 *)0x0200bff8UL)
#define TICKS_PER_US 10
#define QSIZE 32
#define HDR 12
#define BUF 1536
#define ETHERTYPE 0x88b5
#define MAXPEERS 8
#define MAXPAYLOAD 1490

enum { HELLO = 1, HELLO_ACK = 2, PING = 3, PONG = 4, DONE = 5, DONE_ACK = 6, STREAM = 7, PAGES = 8, PAGES_ACK = 9 };

struct desc { u64 addr; u32 len; u16 flags; u16 next; };
struct avail { u16 flags; u16 idx; u16 ring[QSIZE]; u16 used_event; };
struct used_elem { u32 id; u32 len; };
struct used { u16 flags; u16 idx; struct used_elem ring[QSIZE]; u16 avail_event; };
struct queue {
    struct desc desc[QSIZE] __attribute__((aligned(4096)));
    struct avail avail __attribute__((aligned(4096)));
    struct used used __attribute__((aligned(4096)));
    u16 last_used;
};

static struct queue rxq, txq;
static u8 rxbuf[QSIZE][BUF] __attribute__((aligned(64)));
/* Page mode (sink): QSIZE/2 receive chains of a 12-byte header and NPAGES pages. */
#define MAXPAGES 4
#define CHAINS (QSIZE / 2)
static u32 sink_pages, sink_offset;
static u8 rxhdr[CHAINS][16] __attribute__((aligned(64)));
static u8 rxpages[CHAINS][(MAXPAGES + 1) * 4096] __attribute__((aligned(4096)));
static u8 txbuf[BUF] __attribute__((aligned(64)));
static u64 dev;
static u8 mac[6];

static void fence(void) { __asm__ volatile("fence" ::: "memory"); }

static void die(const char *what, u32 code) {
    puts("net: ");
    puts(what);
    puts("\n");
    fail(code);
}

static void put_mac(const u8 *m) {
    const char *hex = "0123456789abcdef";
    for (int i = 0; i < 6; i++) {
        if (i) putc(':');
        putc(hex[m[i] >> 4]);
        putc(hex[m[i] & 15]);
    }
}

/* ---- the device ---- */

static void setup_queue(u32 index, struct queue *q) {
    REG(dev, 0x030) = index;
    if (REG(dev, 0x034) < QSIZE) die("queue too small", 3);
    REG(dev, 0x038) = QSIZE;
    REG(dev, 0x080) = (u32)(u64)q->desc;    REG(dev, 0x084) = (u32)((u64)q->desc >> 32);
    REG(dev, 0x090) = (u32)(u64)&q->avail;  REG(dev, 0x094) = (u32)((u64)&q->avail >> 32);
    REG(dev, 0x0a0) = (u32)(u64)&q->used;   REG(dev, 0x0a4) = (u32)((u64)&q->used >> 32);
    REG(dev, 0x044) = 1;
}

static void post_rx(u16 id) {
    if (sink_pages) {  /* chain `id` is descriptors 2id (header) and 2id+1 (the pages) */
        rxq.desc[2 * id] = (struct desc){ (u64)rxhdr[id], HDR, 2 | 1, (u16)(2 * id + 1) };
        rxq.desc[2 * id + 1] = (struct desc){ (u64)(rxpages[id] + sink_offset), sink_pages * 4096, 2, 0 };
        rxq.avail.ring[rxq.avail.idx % QSIZE] = (u16)(2 * id);
        fence();
        rxq.avail.idx = rxq.avail.idx + 1;
        fence();
        return;
    }
    rxq.desc[id] = (struct desc){ (u64)rxbuf[id], BUF, 2, 0 };
    rxq.avail.ring[rxq.avail.idx % QSIZE] = id;
    fence();
    rxq.avail.idx = rxq.avail.idx + 1;
    fence();
}

static u32 mtu = 1500;

static void init(void) {
    dev = 0;
    for (int slot = 0; slot < 8; slot++)
        if (REG(VIRTIO(slot), 0x000) == 0x74726976 && REG(VIRTIO(slot), 0x008) == 1) { dev = VIRTIO(slot); break; }
    if (!dev) die("no virtio-net device", 3);
    REG(dev, 0x070) = 0;
    REG(dev, 0x070) = 1;
    REG(dev, 0x070) = 1 | 2;
    REG(dev, 0x014) = 1;
    u32 high = REG(dev, 0x010);
    REG(dev, 0x014) = 0;
    u32 low = REG(dev, 0x010);
    if (!(high & 1)) die("no VIRTIO_F_VERSION_1", 3);
    if (!(low & (1u << 5))) die("no VIRTIO_NET_F_MAC", 3);
    REG(dev, 0x024) = 1;
    REG(dev, 0x020) = 1;
    REG(dev, 0x024) = 0;
    REG(dev, 0x020) = (1u << 5) | (low & (1u << 16)) | (low & (1u << 3));
    REG(dev, 0x070) = 1 | 2 | 8;
    if (!(REG(dev, 0x070) & 8)) die("features not accepted", 3);
    for (int i = 0; i < 6; i++) mac[i] = *(volatile u8 *)(dev + 0x100 + i);
    if (low & (1u << 3)) mtu = *(volatile u16 *)(dev + 0x10a);  /* VIRTIO_NET_F_MTU */
    setup_queue(0, &rxq);
    setup_queue(1, &txq);
    rxq.avail.flags = 1;  /* polled: no interrupts */
    txq.avail.flags = 1;
    for (u16 i = 0; i < (sink_pages ? CHAINS : QSIZE); i++) post_rx(i);
    REG(dev, 0x070) = 1 | 2 | 8 | 4;
    REG(dev, 0x050) = 0;
}

/* Sends `len` bytes of frame from txbuf + HDR and waits until the device took it. */
static void send(u32 len) {
    for (int i = 0; i < HDR; i++) txbuf[i] = 0;
    txq.desc[0] = (struct desc){ (u64)txbuf, HDR + len, 0, 0 };
    txq.avail.ring[txq.avail.idx % QSIZE] = 0;
    fence();
    txq.avail.idx = txq.avail.idx + 1;
    fence();
    REG(dev, 0x050) = 1;
    while (*(volatile u16 *)&txq.used.idx == txq.last_used) {
        if (REG(dev, 0x070) & 64) die("device needs reset", 3);
    }
    txq.last_used++;
}

/* The next received frame (its length in *len), or 0; give it back with `release`. */
static u8 *receive(u32 *len, u16 *id) {
    if (*(volatile u16 *)&rxq.used.idx == rxq.last_used) {
        if (REG(dev, 0x070) & 64) die("device needs reset", 3);
        return 0;
    }
    fence();
    struct used_elem e = rxq.used.ring[rxq.last_used % QSIZE];
    rxq.last_used++;
    if (e.id >= QSIZE || e.len < HDR) die("bad used element", 3);
    *len = e.len - HDR;
    if (sink_pages) {
        if (e.id & 1) die("bad used element", 3);
        *id = (u16)(e.id / 2);
        return rxpages[*id] + sink_offset;
    }
    *id = (u16)e.id;
    return rxbuf[e.id] + HDR;
}

static void release(u16 id) {
    post_rx(id);
    REG(dev, 0x050) = 0;
}

/* ---- frames: dst src type | kind 0 seq(2) len(2) csum(4) | payload ---- */

static u32 fnv32(const u8 *p, u32 n) {
    u32 h = 0x811c9dc5u;
    for (u32 i = 0; i < n; i++) { h ^= p[i]; h *= 0x01000193u; }
    return h;
}

static u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) { p[0] = v >> 8; p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (u8)v; }

#define F (txbuf + HDR)
#define PAYLOAD 24

/* Builds a frame to `dst` in txbuf and sends it. */
static void send_kind(const u8 *dst, u8 kind, u16 seq, const u8 *payload, u16 len) {
    for (int i = 0; i < 6; i++) { F[i] = dst[i]; F[6 + i] = mac[i]; }
    put16(F + 12, ETHERTYPE);
    F[14] = kind;
    F[15] = 0;
    put16(F + 16, seq);
    put16(F + 18, len);
    for (u32 i = 0; i < len; i++) F[PAYLOAD + i] = payload[i];
    put32(F + 20, fnv32(F + PAYLOAD, len));
    send(PAYLOAD + len);
}

struct frame { const u8 *src; u8 kind; u16 seq; u16 len; const u8 *payload; };

/* Parses a received frame of ours; 0 if it is someone else's. Fails on a bad checksum. */
static int parse(const u8 *p, u32 n, struct frame *f) {
    if (n < PAYLOAD || get16(p + 12) != ETHERTYPE) return 0;
    f->src = p + 6;
    f->kind = p[14];
    f->seq = get16(p + 16);
    f->len = get16(p + 18);
    if (f->len > MAXPAYLOAD || PAYLOAD + f->len > n) die("frame shorter than its length field", 5);
    f->payload = p + PAYLOAD;
    if (fnv32(f->payload, f->len) != get32(p + 20)) die("CHECKSUM MISMATCH", 5);
    return 1;
}

static int same_mac(const u8 *a, const u8 *b) {
    for (int i = 0; i < 6; i++) if (a[i] != b[i]) return 0;
    return 1;
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
            if (in_chosen && equal(strings + nameoff, "bootargs")) return (const char *)(p + 8);
            p += 8 + ((len + 3) & ~3);
        } else if (token == 4) {
            continue;
        } else {
            return "";
        }
    }
}

static const char *word(const char *s, const char **end) {
    while (*s == ' ') s++;
    const char *e = s;
    while (*e && *e != ' ') e++;
    *end = e;
    return s;
}

static u64 number(const char *s, const char *e, u64 fallback) {
    if (s == e) return fallback;
    u64 v = 0;
    for (; s < e; s++) v = v * 10 + (u64)(*s - '0');
    return v;
}

/* ---- the roles ---- */

static u8 payload[MAXPAYLOAD];
static u64 rtts[4096];

static u16 fill(u32 seq) {
    u16 len = (u16)((seq * 389u) % (MAXPAYLOAD + 1));
    u32 x = seq * 2654435761u + 1;
    for (u16 i = 0; i < len; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; payload[i] = (u8)x; }
    return len;
}

static void sort(u64 *v, u32 n) {
    for (u32 i = 1; i < n; i++) {
        u64 x = v[i];
        u32 j = i;
        while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
        v[j] = x;
    }
}

__attribute__((noreturn)) static void ping(u32 npeers, u32 count, u32 stream) {
    static const u8 broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    u8 peers[MAXPEERS][6];
    u32 known = 0;
    if (npeers == 0 || npeers > MAXPEERS) die("PEERS must be 1-8", 2);
    if (count > 4096) count = 4096;
    u64 start = MTIME, last = 0;
    while (known < npeers) {
        if (last == 0 || MTIME - last > 50000UL * TICKS_PER_US) {  /* every 50 ms */
            send_kind(broadcast, HELLO, 0, 0, 0);
            last = MTIME;
        }
        if (MTIME - start > 120000000UL * TICKS_PER_US) die("peers did not answer the broadcast", 6);
        u32 n; u16 id; struct frame f;
        u8 *p = receive(&n, &id);
        if (!p) continue;
        if (parse(p, n, &f) && f.kind == HELLO_ACK) {
            int seen = 0;
            for (u32 i = 0; i < known; i++) seen |= same_mac(peers[i], f.src);
            if (!seen) {
                /* Keep them sorted so the order (and the output) does not depend on timing. */
                u32 j = known++;
                while (j > 0) {
                    int less = 0;
                    for (int k = 0; k < 6; k++) {
                        if (f.src[k] != peers[j - 1][k]) { less = f.src[k] < peers[j - 1][k]; break; }
                    }
                    if (!less) break;
                    for (int k = 0; k < 6; k++) peers[j][k] = peers[j - 1][k];
                    j--;
                }
                for (int k = 0; k < 6; k++) peers[j][k] = f.src[k];
            }
        }
        release(id);
    }
    puts("net: broadcast answered by ");
    put_u64(known);
    puts(" peers:");
    for (u32 i = 0; i < known; i++) { putc(' '); put_mac(peers[i]); }
    puts("\n");

    u64 h = 0xcbf29ce484222325UL, bytes = 0, retries = 0;
    u32 samples = 0;
    u64 begin = MTIME;
    for (u32 p = 0; p < known; p++) {
        for (u32 seq = 1; seq <= count; seq++) {
            u16 len = fill(seq);
            u64 sent = MTIME;
            send_kind(peers[p], PING, (u16)seq, payload, len);
            for (;;) {
                if (MTIME - sent > 2000000UL * TICKS_PER_US) {
                    if (++retries > 50) die("a peer stopped answering", 6);
                    sent = MTIME;
                    send_kind(peers[p], PING, (u16)seq, payload, len);
                }
                u32 n; u16 id; struct frame f;
                u8 *q = receive(&n, &id);
                if (!q) continue;
                int mine = parse(q, n, &f) && f.kind == PONG && f.seq == (u16)seq && same_mac(f.src, peers[p]);
                if (mine) {
                    if (f.len != len) die("pong of the wrong length", 5);
                    for (u16 i = 0; i < len; i++) {
                        if (f.payload[i] != (u8)(payload[i] + 1)) die("pong payload differs from the ping's", 5);
                        h ^= f.payload[i];
                        h *= 0x100000001b3UL;
                    }
                    bytes += len;
                    if (samples < 4096) rtts[samples++] = MTIME - sent;
                }
                release(id);
                if (mine) break;
            }
        }
    }
    u64 elapsed = MTIME - begin;
    u64 streamed = 0, stream_ticks = 0;
    if (stream) {
        u16 len = MAXPAYLOAD;  /* a full-size frame */
        for (u16 i = 0; i < len; i++) payload[i] = (u8)(i * 13);
        u64 t0 = MTIME;
        for (u32 i = 1; i <= stream; i++) send_kind(peers[0], STREAM, (u16)i, payload, len);
        stream_ticks = MTIME - t0;
    }
    for (u32 p = 0; p < known; p++) {
        for (u32 tries = 0;; tries++) {
            if (tries > 50) die("a peer did not acknowledge DONE", 6);
            send_kind(peers[p], DONE, 0, 0, 0);
            u64 sent = MTIME;
            int acked = 0;
            while (!acked && MTIME - sent < 200000UL * TICKS_PER_US) {
                u32 n; u16 id; struct frame f;
                u8 *q = receive(&n, &id);
                if (!q) continue;
                acked = parse(q, n, &f) && f.kind == DONE_ACK && same_mac(f.src, peers[p]);
                if (acked && p == 0 && f.len >= 4) streamed = get32(f.payload);
                release(id);
            }
            if (acked) break;
        }
    }
    puts("net: ");
    put_u64((u64)count * known);
    puts(" pings answered, ");
    put_u64(bytes);
    puts(" payload bytes checked, checksum ");
    put_hex(h);
    puts("\n");
    sort(rtts, samples);
    puts("net: rtt median us ");
    put_u64(rtts[samples / 2] / TICKS_PER_US);
    puts(" p99 us ");
    put_u64(rtts[samples * 99 / 100] / TICKS_PER_US);
    puts(" frames/s ");
    put_u64(elapsed ? 2UL * samples * 10000000UL / elapsed : 0);
    puts(" retries ");
    put_u64(retries);
    puts("\n");
    if (stream) {
        puts("instret: stream sent ");
        put_u64(stream);
        puts(" received ");
        put_u64(streamed);
        puts(" frames/s ");
        put_u64(stream_ticks ? streamed * 10000000UL / stream_ticks : 0);
        puts("\n");
    }
    pass();
}

__attribute__((noreturn)) static void pong(void) {
    u64 h = 0xcbf29ce484222325UL, answered = 0;
    u32 last_seq = 0, streamed = 0;
    int hello_seen = 0;
    u64 done_at = 0;
    for (;;) {
        if (done_at && MTIME - done_at > 500000UL * TICKS_PER_US) break;
        u32 n; u16 id; struct frame f;
        u8 *p = receive(&n, &id);
        if (!p) continue;
        if (parse(p, n, &f)) {
            u8 src[6];
            for (int i = 0; i < 6; i++) src[i] = f.src[i];
            if (f.kind == HELLO) {
                if (!hello_seen) {
                    puts("net: broadcast HELLO from ");
                    put_mac(src);
                    puts("\n");
                    hello_seen = 1;
                }
                send_kind(src, HELLO_ACK, 0, 0, 0);
            } else if (f.kind == PING) {
                for (u16 i = 0; i < f.len; i++) payload[i] = (u8)(f.payload[i] + 1);
                if (f.seq != last_seq) {
                    for (u16 i = 0; i < f.len; i++) { h ^= payload[i]; h *= 0x100000001b3UL; }
                    answered++;
                    last_seq = f.seq;
                }
                send_kind(src, PONG, f.seq, payload, f.len);
            } else if (f.kind == STREAM) {
                streamed++;
            } else if (f.kind == DONE) {
                u8 count[4];
                put32(count, streamed);
                send_kind(src, DONE_ACK, 0, count, 4);
                if (!done_at) done_at = MTIME;
            }
        }
        release(id);
    }
    puts("net: answered ");
    put_u64(answered);
    puts(" pings, checksum ");
    put_hex(h);
    puts("\n");
    pass();
}

/* ---- page frames ---- */

#define FILEPAGES 32
#define BATCH 4
static u8 file[FILEPAGES][4096] __attribute__((aligned(4096)));
static u8 hdrpage[4096] __attribute__((aligned(4096)));
static u16 version[FILEPAGES];

/* The bytes of file page `index` at `ver`. */
static void pattern(u8 *page, u32 index, u32 ver) {
    u64 x = index * 0x9e3779b97f4a7c15UL + ver * 0xbf58476d1ce4e5b9UL + 1;
    u64 *w = (u64 *)page;
    for (int i = 0; i < 512; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; w[i] = x; }
}

static int is_pattern(const u8 *page, u32 index, u32 ver) {
    static u8 want[4096] __attribute__((aligned(8)));
    pattern(want, index, ver);
    const u64 *a = (const u64 *)page, *b = (const u64 *)want;
    for (int i = 0; i < 512; i++) if (a[i] != b[i]) return 0;
    return 1;
}

static u32 fnv32_more(u32 h, const u8 *p, u32 n) {
    for (u32 i = 0; i < n; i++) { h ^= p[i]; h *= 0x01000193u; }
    return h;
}

/* Sends the header page and `data` file pages as one frame, each page its own descriptor. */
static void send_pages(const u32 *pages, u32 data) {
    for (int i = 0; i < HDR; i++) txbuf[i] = 0;
    txq.desc[0] = (struct desc){ (u64)txbuf, HDR, 1, 1 };
    txq.desc[1] = (struct desc){ (u64)hdrpage, 4096, data ? 1 : 0, 2 };
    for (u32 j = 0; j < data; j++)
        txq.desc[2 + j] = (struct desc){ (u64)file[pages[j]], 4096, j + 1 < data ? 1 : 0, (u16)(3 + j) };
    txq.avail.ring[txq.avail.idx % QSIZE] = 0;
    fence();
    txq.avail.idx = txq.avail.idx + 1;
    fence();
    REG(dev, 0x050) = 1;
    while (*(volatile u16 *)&txq.used.idx == txq.last_used) {
        if (REG(dev, 0x070) & 64) die("device needs reset", 3);
    }
    txq.last_used++;
}

__attribute__((noreturn)) static void pages_sender(u32 npeers, u32 count, u32 npages) {
    static const u8 broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    if (npages < 2 || npages > MAXPAGES) die("NPAGES must be 2-4", 2);
    if (npeers == 0 || npeers > MAXPEERS) die("PEERS must be 1-8", 2);
    if (mtu + 14 < npages * 4096) die("the NIC's MTU is too small for page frames (give it mtu=16384)", 2);
    for (u32 i = 0; i < FILEPAGES; i++) { version[i] = 1; pattern(file[i], i, 1); }
    u8 peers[MAXPEERS][6];
    u32 known = 0;
    u64 start = MTIME, last = 0;
    while (known < npeers) {
        if (last == 0 || MTIME - last > 50000UL * TICKS_PER_US) { send_kind(broadcast, HELLO, 0, 0, 0); last = MTIME; }
        if (MTIME - start > 120000000UL * TICKS_PER_US) die("peers did not answer the broadcast", 6);
        u32 n; u16 id; struct frame f;
        u8 *p = receive(&n, &id);
        if (!p) continue;
        if (parse(p, n, &f) && f.kind == HELLO_ACK) {
            int seen = 0;
            for (u32 i = 0; i < known; i++) seen |= same_mac(peers[i], f.src);
            if (!seen) { for (int k = 0; k < 6; k++) peers[known][k] = f.src[k]; known++; }
        }
        release(id);
    }
    const u8 *dst = npeers == 1 ? peers[0] : broadcast;
    u32 data = npages - 1, next = 0;
    u64 t0 = MTIME;
    for (u32 seq = 1; seq <= count;) {
        u32 used[BATCH * MAXPAGES], nused = 0, first = seq;
        for (u32 k = 0; k < BATCH && seq <= count; k++, seq++) {
            u32 pages[MAXPAGES];
            u8 *h = hdrpage;
            for (int i = 0; i < 6; i++) { h[i] = dst[i]; h[6 + i] = mac[i]; }
            put16(h + 12, ETHERTYPE);
            h[14] = PAGES;
            h[15] = (k + 1 == BATCH || seq == count) ? 1 : 0;  /* the batch's last */
            put16(h + 16, (u16)seq);
            put16(h + 18, (u16)data);
            for (u32 j = 0; j < data; j++) {
                pages[j] = next++ % FILEPAGES;
                used[nused++] = pages[j];
                put16(h + PAYLOAD + 4 * j, (u16)pages[j]);
                put16(h + PAYLOAD + 4 * j + 2, version[pages[j]]);
            }
            for (u32 i = PAYLOAD + 4 * data; i < 4096; i++) h[i] = (u8)(i ^ seq);
            u32 c = fnv32_more(0x811c9dc5u, h + PAYLOAD, 4096 - PAYLOAD);
            for (u32 j = 0; j < data; j++) c = fnv32_more(c, file[pages[j]], 4096);
            put32(h + 20, c);
            send_pages(pages, data);
        }
        /* Every sink acks the batch... */
        u32 acked = 0;
        u8 ackers[MAXPEERS][6];
        u64 sent = MTIME;
        while (acked < npeers) {
            if (MTIME - sent > 5000000UL * TICKS_PER_US) die("a sink did not ack a batch of page frames", 6);
            u32 n; u16 id; struct frame f;
            u8 *q = receive(&n, &id);
            if (!q) continue;
            if (parse(q, n, &f) && f.kind == PAGES_ACK && f.seq == (u16)(seq - 1)) {
                int seen = 0;
                for (u32 i = 0; i < acked; i++) seen |= same_mac(ackers[i], f.src);
                if (!seen) { for (int k = 0; k < 6; k++) ackers[acked][k] = f.src[k]; acked++; }
            }
            release(id);
        }
        /* ... then the pages it carried change while the sinks still hold them. */
        for (u32 i = 0; i < nused; i++) {
            u32 p = used[i];
            if (version[p] == (u16)(first + 1)) continue;  /* rewritten already in this batch */
            version[p] = (u16)(first + 1);
            pattern(file[p], p, version[p]);
        }
    }
    u64 ticks = MTIME - t0;
    for (u32 p = 0; p < npeers; p++) {
        for (u32 tries = 0;; tries++) {
            if (tries > 50) die("a sink did not acknowledge DONE", 6);
            send_kind(peers[p], DONE, 0, 0, 0);
            u64 sent = MTIME;
            int ok = 0;
            while (!ok && MTIME - sent < 200000UL * TICKS_PER_US) {
                u32 n; u16 id; struct frame f;
                u8 *q = receive(&n, &id);
                if (!q) continue;
                ok = parse(q, n, &f) && f.kind == DONE_ACK && same_mac(f.src, peers[p]);
                release(id);
            }
            if (ok) break;
        }
    }
    u32 h = 0x811c9dc5u;
    for (u32 i = 0; i < FILEPAGES; i++) h = fnv32_more(h, file[i], 4096);
    puts("net: pages sent ");
    put_u64(count);
    puts(" frames of ");
    put_u64(npages);
    puts(" pages to ");
    put_u64(npeers);
    puts(" sinks, file checksum ");
    put_hex(h);
    puts("\n");
    puts("instret: pages frames/s ");
    put_u64(ticks ? (u64)count * 10000000UL / ticks : 0);
    puts("\n");
    pass();
}

/* Checks page frame `id` (n bytes) of the sink: its header, checksum and every page. */
static u32 check_pages(u16 id, u32 n, u32 sum) {
    u8 *p = rxpages[id] + sink_offset;
    if (n != sink_pages * 4096) die("page frame of the wrong length", 5);
    u32 data = get16(p + 18);
    if (data + 1 != sink_pages) die("page frame with the wrong page count", 5);
    u32 c = fnv32_more(0x811c9dc5u, p + PAYLOAD, 4096 - PAYLOAD);
    for (u32 j = 0; j < data; j++) c = fnv32_more(c, p + 4096 * (j + 1), 4096);
    if (c != get32(p + 20)) die("PAGE FRAME CHECKSUM MISMATCH", 5);
    for (u32 j = 0; j < data; j++) {
        if (!is_pattern(p + 4096 * (j + 1), get16(p + PAYLOAD + 4 * j), get16(p + PAYLOAD + 4 * j + 2)))
            die("a page differs from the version its frame names", 5);
    }
    /* The buffer is ours again: write into it (the node copies a remapped page first). */
    for (u32 j = 0; j <= data; j++) *(volatile u64 *)(p + 4096 * j + 64) = 0x5a5a5a5a5a5a5a5aUL ^ j;
    return fnv32_more(sum, p + 4096, 4096 * data);
}

__attribute__((noreturn)) static void sink(void) {
    u16 held[2 * BATCH], prev[2 * BATCH];
    u32 lens[2 * BATCH], prevlens[2 * BATCH];
    u32 nheld = 0, nprev = 0, frames = 0, expected = 1, sum = 0x811c9dc5u;
    u64 done_at = 0;
    for (;;) {
        if (done_at && MTIME - done_at > 500000UL * TICKS_PER_US) break;
        u32 n; u16 id; struct frame f;
        u8 *p = receive(&n, &id);
        if (!p) continue;
        if (n >= PAYLOAD && get16(p + 12) == ETHERTYPE && p[14] == PAGES) {
            if (get16(p + 16) != (u16)expected) die("page frames out of order", 5);
            expected++;
            if (nheld == 2 * BATCH) die("too many page frames held", 5);
            held[nheld] = id;
            lens[nheld++] = n;
            if (p[15]) {  /* the batch is complete: ack it, then check the one before */
                u8 src[6];
                for (int i = 0; i < 6; i++) src[i] = p[6 + i];
                send_kind(src, PAGES_ACK, (u16)(expected - 1), 0, 0);
                for (u32 i = 0; i < nprev; i++) { sum = check_pages(prev[i], prevlens[i], sum); frames++; release(prev[i]); }
                for (u32 i = 0; i < nheld; i++) { prev[i] = held[i]; prevlens[i] = lens[i]; }
                nprev = nheld;
                nheld = 0;
            }
            continue;
        }
        if (parse(p, n, &f)) {
            u8 src[6];
            for (int i = 0; i < 6; i++) src[i] = f.src[i];
            if (f.kind == HELLO) {
                send_kind(src, HELLO_ACK, 0, 0, 0);
            } else if (f.kind == DONE) {
                for (u32 i = 0; i < nprev; i++) { sum = check_pages(prev[i], prevlens[i], sum); frames++; release(prev[i]); }
                for (u32 i = 0; i < nheld; i++) { sum = check_pages(held[i], lens[i], sum); frames++; release(held[i]); }
                nprev = nheld = 0;
                send_kind(src, DONE_ACK, 0, 0, 0);
                if (!done_at) done_at = MTIME;
            }
        }
        release(id);
    }
    puts("net: sink checked ");
    put_u64(frames);
    puts(" page frames, checksum ");
    put_hex(sum);
    puts("\n");
    pass();
}

int main(u64 hartid, const void *fdt) {
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    const char *end;
    const char *args = bootargs(fdt);
    const char *mode = word(args, &end);
    if (end - mode == 4 && mode[0] == 's' && mode[1] == 'i') {
        const char *a = word(end, &end);
        sink_pages = (u32)number(a, end, 4);
        const char *b = word(end, &end);
        if (end - b == 4 && b[0] == 'c' && b[1] == 'o' && b[2] == 'p' && b[3] == 'y') sink_offset = 64;
        if (sink_pages < 2 || sink_pages > MAXPAGES) die("sink NPAGES must be 2-4", 2);
    }
    init();
    puts("net: mac ");
    put_mac(mac);
    puts("\n");
    if (sink_pages) sink();
    if (end - mode == 5 && mode[0] == 'p' && mode[1] == 'a') {
        const char *a = word(end, &end);
        u64 peers = number(a, end, 1);
        const char *b = word(end, &end);
        u64 count = number(b, end, 64);
        const char *c = word(end, &end);
        u64 npages = number(c, end, 4);
        pages_sender((u32)peers, (u32)count, (u32)npages);
    }
    if (end - mode == 4 && mode[0] == 'p' && mode[1] == 'i') {
        const char *a = word(end, &end);
        u64 peers = number(a, end, 1);
        const char *b = word(end, &end);
        u64 count = number(b, end, 100);
        const char *c = word(end, &end);
        u64 stream = number(c, end, 0);
        ping((u32)peers, (u32)count, (u32)stream);
    }
    pong();
}
