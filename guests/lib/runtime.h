#ifndef DISCO_GUEST_RUNTIME_H
#define DISCO_GUEST_RUNTIME_H
typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
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
#endif
