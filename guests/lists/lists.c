/* Doubly linked lists moved between lock-protected queues, the way a kernel's
 * scheduler moves tasks between run queues: each queue is a circular list with its
 * head and ticket lock in its own page; items live in pages of their own, spread so
 * that every page holds items that every hart touches. A hart repeatedly locks two
 * queues (in address order), checks both lists link by link (next->prev == self,
 * prev->next == self, the count), and moves an item from one to the other. On a
 * cluster the pages are shared between nodes and move (migrate, replicate, collapse)
 * while the lists change; a stale line or a lost write breaks a link, which the
 * checks find. Timer ticks interrupt everything. Only hart 0 prints. */
#include "runtime.h"

#define QUEUES 4
#define ITEMS 96
#define ROUNDS 1500

struct node { struct node *next, *prev; u64 owner; u64 pad[5]; };
struct queue {
    volatile u32 lock;
    u32 pad;
    volatile u64 count;
    struct node head;
} __attribute__((aligned(4096)));

static struct queue queues[QUEUES];
/* Items: 64 bytes each, 64 to a page, in 2 pages... spread over 6 pages with gaps. */
static struct node items[ITEMS * 4] __attribute__((aligned(4096)));
static volatile u64 broken[8];
static int harts;
static struct barrier all_harts;

#define TICK 3000
static volatile u64 ticks[8];
void timer_interrupt(u64 hart) {
    ticks[hart] = ticks[hart] + 1;
    CLINT_MTIMECMP[hart] = *CLINT_MTIME + TICK;
}

static void add_tail(struct node *n, struct node *head) {
    struct node *prev = head->prev;
    n->next = head; n->prev = prev; prev->next = n; head->prev = n;
}
static void del(struct node *n) {
    n->prev->next = n->next; n->next->prev = n->prev;
    n->next = n->prev = 0;
}
/* 0 if the list is whole and has `count` items of queue `q`. */
static int check(struct queue *q, int qi) {
    u64 seen = 0;
    struct node *h = &q->head, *p = h;
    for (;;) {
        struct node *n = *(struct node *volatile *)&p->next;
        if (!n || n->prev != p) return 1;
        if (n == h) break;
        if (n->owner != (u64)qi) return 2;
        if (++seen > ITEMS) return 3;
        p = n;
    }
    return seen == q->count ? 0 : 4;
}

int main(u64 hartid, const void *fdt) {
    u32 sense = 0;
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if (hartid == 0) {
        puts("lists: start\n");
        for (int q = 0; q < QUEUES; q++) {
            queues[q].head.next = queues[q].head.prev = &queues[q].head;
            queues[q].count = 0;
        }
        for (int i = 0; i < ITEMS; i++) {
            struct node *n = &items[i * 4];       /* every 4th slot: items over 6 pages */
            n->owner = (u64)(i % QUEUES);
            add_tail(n, &queues[i % QUEUES].head);
            queues[i % QUEUES].count++;
        }
    }
    barrier_wait(&all_harts, harts, &sense);
    CLINT_MTIMECMP[hartid] = *CLINT_MTIME + TICK;
    __asm__ volatile("csrs mie, %0" : : "r"(1UL << 7));
    __asm__ volatile("csrsi mstatus, 8");
    if (hartid < (u64)harts) {
        u64 seed = hartid * 2654435761UL + 1;
        for (int r = 0; r < ROUNDS; r++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            int a = (int)((seed >> 33) % QUEUES), b = (int)((seed >> 40) % QUEUES);
            if (a == b) b = (b + 1) % QUEUES;
            int lo = a < b ? a : b, hi = a < b ? b : a;
            ticket_lock(&queues[lo].lock);
            /* The second lock as the scheduler's double_lock_balance does: try first. */
            while (!ticket_trylock(&queues[hi].lock)) __asm__ volatile("pause");
            int e = check(&queues[a], a) * 10 + check(&queues[b], b);
            if (e) broken[hartid] = broken[hartid] * 100 + (u64)e;
            struct node *n = queues[a].head.next;
            if (!e && n != &queues[a].head) {
                del(n);
                queues[a].count = queues[a].count - 1;
                n->owner = (u64)b;
                add_tail(n, &queues[b].head);
                queues[b].count = queues[b].count + 1;
            }
            ticket_unlock(&queues[hi].lock);
            ticket_unlock(&queues[lo].lock);
        }
    }
    __asm__ volatile("csrci mstatus, 8");
    CLINT_MTIMECMP[hartid] = ~0UL;
    barrier_wait(&all_harts, harts, &sense);
    if (hartid == 0) {
        u64 bad = 0, total = 0;
        for (int h = 0; h < harts; h++) bad |= broken[h];
        for (int q = 0; q < QUEUES; q++) { if (check(&queues[q], q)) bad |= 1; total += queues[q].count; }
        puts("lists: links "); puts(bad ? "BROKEN" : "ok"); puts("\n");
        puts("lists: items "); put_u64(total); puts("\n");
        if (bad) { puts("lists: code "); put_u64(bad); puts("\n"); fail(1); }
        puts("lists: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
