/* Shared declarations of the ISA self-test suite (guests/isa). Only hart 0 runs
 * the checks; every check prints one line and a wrong value ends the run
 * through the test finisher with a failure code. */
#ifndef DISCO_ISA_H
#define DISCO_ISA_H
#include "runtime.h"

#define MSTATUS_SIE  (1UL << 1)
#define MSTATUS_MIE  (1UL << 3)
#define MSTATUS_SPIE (1UL << 5)
#define MSTATUS_MPIE (1UL << 7)
#define MSTATUS_SPP  (1UL << 8)
#define MSTATUS_MPP  (3UL << 11)
#define MSTATUS_MPRV (1UL << 17)
#define MSTATUS_SUM  (1UL << 18)
#define MSTATUS_MXR  (1UL << 19)
#define MSTATUS_TVM  (1UL << 20)
#define MSTATUS_TW   (1UL << 21)
#define MSTATUS_TSR  (1UL << 22)
#define MSTATUS_FIELDS (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP | \
                        MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR)

#define MODE_U 0
#define MODE_S 1
#define MODE_M 3

#define CAUSE_ILLEGAL 2
#define CAUSE_BREAKPOINT 3
#define CAUSE_LOAD_MISALIGNED 4
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_STORE_MISALIGNED 6
#define CAUSE_STORE_ACCESS 7
#define CAUSE_ECALL_U 8
#define CAUSE_ECALL_S 9
#define CAUSE_ECALL_M 11
#define CAUSE_FETCH_PAGE 12
#define CAUSE_LOAD_PAGE 13
#define CAUSE_STORE_PAGE 15
#define INTERRUPT (1UL << 63)

#define CLINT_MSIP     ((volatile u32 *)0x2000000UL)
#define CLINT_MTIMECMP ((volatile u64 *)0x2004000UL)
#define CLINT_MTIME    ((volatile u64 *)0x200bff8UL)

#define csr_read(csr) ({ u64 _v; __asm__ volatile("csrr %0, " #csr : "=r"(_v) :: "memory"); _v; })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" :: "r"((u64)(v)) : "memory")
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" :: "r"((u64)(v)) : "memory")
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" :: "r"((u64)(v)) : "memory")

/* What the last trap taken in M (mt) or S (st) recorded. */
struct trap_record {
    u64 count;      /* exceptions taken */
    u64 cause, epc, tval;
    u64 status;     /* mstatus (sstatus) as the handler found it */
    u64 slot;       /* vector slot the handler was entered through (0: base) */
    u64 irq_count;  /* interrupts taken */
    u64 irq_cause, irq_slot, irq_epc;
    u64 irq_history[8];  /* causes in the order taken (first 8) */
};
extern volatile struct trap_record mt, st;
/* If non-zero, the next exception resumes there instead of after the faulting
 * instruction (for faults whose instruction cannot be read, e.g. fetch faults). */
extern volatile u64 m_resume, s_resume;
/* Exceptions are only allowed while these are set; anything else fails the run. */
extern volatile int m_expect, s_expect;

/* Assembly (trap.S). */
void isa_mtrap(void);
void isa_mvec(void);
void isa_strap(void);
void isa_svec(void);
void mode_exit(void);
/* Runs fn(arg) in `mode` with stack `sp`, returning to `exit_ra` when fn returns
 * (mode_exit, or its alias for U code); returns fn's result. */
u64 enter_mode(u64 mode, u64 fn, u64 arg, u64 sp, u64 exit_ra);
extern u64 m_trap_stack_top[], s_trap_stack_top[];
extern char lower_stack_top[];

/* main.c */
void check(const char *name, u64 got, u64 want);
/* For values where QEMU 7.2 departs from the spec: accepts either, prints neither. */
void check_either(const char *name, u64 got, u64 a, u64 b);
void note(const char *name, u64 value);   /* prints a value without checking it */
void section(const char *name);
/* Runs fn(arg) in S or U mode (identity code addresses); returns its result. */
u64 run_in(u64 mode, u64 (*fn)(u64), u64 arg);
/* Resets the trap records and allows n... exceptions in M (or S). */
void expect_m(void);
void expect_s(void);
void done_m(void);
void done_s(void);
void check_m_trap(const char *name, u64 count_before, u64 cause, u64 epc, u64 tval);
void check_s_trap(const char *name, u64 count_before, u64 cause, u64 epc, u64 tval);

/* Test groups. */
void test_alu(void);
void test_rvc(void);
void test_memory(void);
void test_atomics(void);
void test_csr(void);
void test_traps(void);
void test_modes(void);
void test_interrupts(void);
void test_vm(void);
void test_fencei(void);
#endif
