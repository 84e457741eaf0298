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
void fail(u32 code) __attribute__((noreturn));
/* Number of /cpus/cpu@N nodes in the device tree at `fdt`. */
int fdt_count_cpus(const void *fdt);
void trap_handler(u64 mcause);
extern volatile u64 software_interrupts[8];

static inline u64 read_csr_mhartid(void) { u64 v; __asm__ volatile("csrr %0, mhartid" : "=r"(v)); return v; }
static inline u64 read_instret(void) { u64 v; __asm__ volatile("csrr %0, minstret" : "=r"(v)); return v; }
#endif
