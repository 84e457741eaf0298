#ifndef DISCO_GUEST_RUNTIME_H
#define DISCO_GUEST_RUNTIME_H
typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef int i32;
typedef unsigned char u8;

void putc(char c);
void puts(const char *s);
void put_u64(u64 v);        /* decimal */
void put_hex(u64 v);        /* 0x... */
void pass(void) __attribute__((noreturn));
/* The end of a partitioned workload, after its last barrier: hart 0 adds up the
 * harts' partial sums, prints "<name>: checksum 0x..." and "<name>: done" and passes;
 * the other harts wait for interrupts. */
void finish_with_checksum(const char *name, u64 hartid, volatile u64 *sums, int harts) __attribute__((noreturn));
void fail(u32 code) __attribute__((noreturn));
/* Number of /cpus/cpu@N nodes in the device tree at `fdt`. */
int fdt_count_cpus(const void *fdt);
void trap_handler(u64 mcause);
extern volatile u64 software_interrupts[8];
/* A guest that enables the machine timer interrupt defines this; it must re-arm or
 * disarm mtimecmp. */
void timer_interrupt(u64 hart) __attribute__((weak));

static inline u64 read_csr_mhartid(void) { u64 v; __asm__ volatile("csrr %0, mhartid" : "=r"(v)); return v; }
static inline u64 read_instret(void) { u64 v; __asm__ volatile("csrr %0, minstret" : "=r"(v)); return v; }

/* A sense-reversing barrier for `harts` harts: each hart keeps its own sense (start
 * at 0); the last to arrive resets the count and flips the shared sense. */
struct barrier { volatile u32 count; volatile u32 sense; };
static inline void barrier_wait(struct barrier *b, int harts, u32 *local_sense) {
    *local_sense = !*local_sense;
    u32 arrived;
    __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(arrived) : "r"(&b->count), "r"(1) : "memory");
    if ((int)arrived + 1 == harts) {
        b->count = 0;
        __asm__ volatile("fence" ::: "memory");
        b->sense = *local_sense;
    } else {
        while (b->sense != *local_sense) __asm__ volatile("pause");
    }
}
/* The CLINT's timer registers (QEMU virt). */
#define CLINT_MTIMECMP ((volatile u64 *)0x2004000UL)
#define CLINT_MTIME ((volatile u64 *)0x200bff8UL)

/* Ticket spinlocks the way Linux takes them on RISC-V (asm-generic ticket spinlock): a
 * 32-bit amoadd.w takes a ticket in the upper half, the owner is the lower half, unlock
 * is a 16-bit store of owner + 1, and trylock is an LR/SC compare-and-swap of the whole
 * word (mixed-size accesses to one word). */
static inline void ticket_lock(volatile u32 *l) {
    u32 v;
    __asm__ volatile("amoadd.w.aqrl %0, %2, (%1)" : "=r"(v) : "r"(l), "r"(1u << 16) : "memory");
    u16 ticket = (u16)(v >> 16);
    while ((u16)*l != ticket) __asm__ volatile("pause");
    __asm__ volatile("fence r, rw" ::: "memory");
}
static inline int ticket_trylock(volatile u32 *l) {
    u32 old = *l, seen, fail;
    if ((old >> 16) != (old & 0xffff)) return 0;
    __asm__ volatile(
        "1: lr.w.aqrl %0, (%2)\n"
        "   bne %0, %3, 2f\n"
        "   sc.w.rl %1, %4, (%2)\n"
        "   bnez %1, 1b\n"
        "2:\n"
        : "=&r"(seen), "=&r"(fail) : "r"(l), "r"(old), "r"(old + (1u << 16)) : "memory");
    return seen == old;
}
static inline void ticket_unlock(volatile u32 *l) {
    u32 v = *l;
    __asm__ volatile("fence rw, w" ::: "memory");
    *(volatile u16 *)l = (u16)(v + 1);
}
#endif
