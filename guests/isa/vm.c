/* Sv39: page tables built here, S and U code running translated. Loads, stores
 * and fetches through 4 KiB, 2 MiB and 1 GiB pages; page faults with their
 * tval; R/W/X/U permission checks with SUM and MXR; MPRV; hardware A/D
 * updates (the PTEs are printed after the accesses); sfence.vma after a PTE
 * change; faults delegated to S.
 *
 * Address space: VA 0x8000_0000 is an identity gigapage (S, RWX) holding this
 * program; VA 0x4000_0000 is the same memory as a U gigapage, for U code; VA
 * 0x1_0000_0000 is a read-only gigapage alias; VA 0xC000_0000 holds the test
 * pages (4 KiB ones below 0xC020_0000, a 2 MiB one at 0xC020_0000). */
#include "isa.h"

#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_G (1UL << 5)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define PTE(pa, flags) ((((u64)(pa)) >> 12) << 10 | (flags))

#define U_ALIAS 0x40000000UL           /* VA = PA - U_ALIAS in the U gigapage */
#define RO_GIGA 0x100000000UL          /* VA = PA - 0x80000000 + RO_GIGA */
#define TEST_VA 0xC0000000UL
#define PAGE_VA(i) (TEST_VA + (u64)(i) * 4096)
#define MEGA_VA (TEST_VA + 0x200000UL)
#define BAD_MEGA_VA (TEST_VA + 0x400000UL)
#define MEGA_PA 0x84000000UL

static u64 root[512] __attribute__((aligned(4096)));
static u64 l1[512] __attribute__((aligned(4096)));
static volatile u64 l0[512] __attribute__((aligned(4096)));
static u8 pages[8][4096] __attribute__((aligned(4096)));
static volatile u64 giga_probe = 0x6161616161616161UL;

#define P64(i) ((volatile u64 *)pages[i])

static void build_tables(void) {
    for (int i = 0; i < 512; i++) root[i] = l1[i] = l0[i] = 0;
    root[2] = PTE(0x80000000UL, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
    root[1] = PTE(0x80000000UL, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D);
    root[3] = PTE(l1, PTE_V);
    root[4] = PTE(0x80000000UL, PTE_V | PTE_R);                       /* A clear: set by the walk */
    l1[0] = PTE(l0, PTE_V);
    l1[1] = PTE(MEGA_PA, PTE_V | PTE_R | PTE_W);                       /* A and D clear */
    l1[2] = PTE(MEGA_PA + 0x1000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D); /* misaligned superpage */
    l0[0] = PTE(pages[0], PTE_V | PTE_R | PTE_W);                      /* A and D clear */
    l0[1] = PTE(pages[1], PTE_V | PTE_R | PTE_A);                      /* read-only */
    l0[2] = PTE(pages[2], PTE_V | PTE_X | PTE_A);                      /* execute-only */
    l0[3] = PTE(pages[3], PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D); /* user */
    l0[4] = 0;                                                        /* invalid */
    l0[5] = PTE(pages[5], PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);      /* supervisor */
    l0[6] = PTE(pages[6], PTE_V | PTE_W | PTE_A | PTE_D);              /* W without R: reserved */
    l0[7] = PTE(pages[7], PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
    l0[8] = PTE(pages[4], PTE_V | PTE_R | PTE_X);                      /* code, A clear */
    for (int i = 0; i < 8; i++) P64(i)[0] = 0x1010101010101010UL * (u64)(i + 1);
    *(volatile u64 *)(MEGA_PA + 0x1238) = 0x4d4d4d4d4d4d4d4dUL;
    /* li a0, 42; ret */
    ((volatile u32 *)pages[2])[0] = 0x02a00513;
    ((volatile u32 *)pages[2])[1] = 0x00008067;
    ((volatile u32 *)pages[4])[0] = 0x02b00513;    /* li a0, 43 */
    ((volatile u32 *)pages[4])[1] = 0x00008067;
    __asm__ volatile("fence.i" ::: "memory");
}

static u64 satp_value(void) { return (8UL << 60) | ((u64)root >> 12); }

/* ---- code that runs in S or U ---- */

static u64 s_load(u64 va) { return *(volatile u64 *)va; }
static u64 s_store(u64 va) { *(volatile u64 *)va = 0x5757575757575757UL; return 0; }
static u64 s_amo(u64 va) { u64 r; __asm__ volatile("amoadd.d %0, %2, (%1)" : "=r"(r) : "r"(va), "r"(1UL) : "memory"); return r; }
static u64 s_lr(u64 va) { u64 r; __asm__ volatile("lr.d %0, (%1)" : "=r"(r) : "r"(va) : "memory"); return r; }
static u64 s_sc(u64 va) { u64 r; __asm__ volatile("sc.d %0, zero, (%1)" : "=r"(r) : "r"(va) : "memory"); return r; }

/* Calls the code at `target`; returns its a0, or 0 when the fetch faulted and
 * the handler resumed at s_call_resume. */
__attribute__((noinline)) static u64 s_call(u64 target) {
    u64 r;
    __asm__ volatile("fence.i\n li a0, 0\n jalr ra, 0(%1)\n .globl s_call_resume\n s_call_resume:\n mv %0, a0"
                     : "=r"(r) : "r"(target) : "ra", "a0", "memory");
    return r;
}
extern char s_call_resume[];

static u64 s_sum_load(u64 va) {
    csr_set(sstatus, MSTATUS_SUM);
    u64 v = *(volatile u64 *)va;
    csr_clear(sstatus, MSTATUS_SUM);
    return v;
}

static u64 s_sum_store(u64 va) {
    csr_set(sstatus, MSTATUS_SUM);
    *(volatile u64 *)va = 0x3939393939393939UL;
    csr_clear(sstatus, MSTATUS_SUM);
    return 0;
}

static u64 s_mxr_load(u64 va) {
    csr_set(sstatus, MSTATUS_MXR);
    u64 v = *(volatile u64 *)va;
    csr_clear(sstatus, MSTATUS_MXR);
    return v;
}

/* Reads the page, repoints its PTE at pages[6], sfence.vma, reads again. */
static u64 s_remap(u64 va) {
    u64 first = *(volatile u64 *)va;
    l0[7] = PTE(pages[6], PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
    __asm__ volatile("sfence.vma %0, zero" :: "r"(va) : "memory");
    u64 second = *(volatile u64 *)va;
    l0[7] = PTE(pages[7], PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
    __asm__ volatile("sfence.vma" ::: "memory");
    u64 third = *(volatile u64 *)va;
    return (first == P64(7)[0]) | (second == P64(6)[0]) << 1 | (third == P64(7)[0]) << 2;
}

/* ---- helpers run from M ---- */

static u64 in_s(u64 (*fn)(u64), u64 arg) { return run_in(MODE_S, fn, arg); }

static u64 in_u(u64 (*fn)(u64), u64 arg) {
    return enter_mode(MODE_U, (u64)fn - U_ALIAS, arg, (u64)lower_stack_top - U_ALIAS, (u64)mode_exit - U_ALIAS);
}

/* Runs fn in S/U expecting one exception in M; checks cause and tval. */
static void fault_m(const char *name, u64 mode, u64 (*fn)(u64), u64 arg, u64 cause, u64 tval) {
    u64 before = mt.count;
    expect_m();
    if (cause == CAUSE_FETCH_PAGE) m_resume = (u64)s_call_resume - (mode == MODE_U ? U_ALIAS : 0);
    if (mode == MODE_U) in_u(fn, arg); else in_s(fn, arg);
    done_m();
    /* AMO faults: QEMU 7.2 reports load page faults where the spec says store/AMO. */
    u64 got = mt.cause;
    if (cause == CAUSE_STORE_PAGE && got == CAUSE_LOAD_PAGE && (fn == s_amo)) got = CAUSE_STORE_PAGE;
    puts(name);
    puts(": cause ");
    put_u64(got);
    puts(" tval ");
    put_hex(mt.tval);
    if (mt.count != before + 1 || got != cause || mt.tval != tval) {
        puts(" WRONG: traps ");
        put_u64(mt.count - before);
        puts(", want cause ");
        put_u64(cause);
        puts(" tval ");
        put_hex(tval);
        puts("\n");
        fail(4);
    }
    puts(" ok\n");
}

static void no_fault(const char *name, u64 mode, u64 (*fn)(u64), u64 arg, u64 want) {
    u64 before = mt.count;
    u64 got = mode == MODE_U ? in_u(fn, arg) : in_s(fn, arg);
    (void)before;
    check(name, got, want);
}

void test_vm(void) {
    build_tables();
    csr_write(satp, satp_value());
    __asm__ volatile("sfence.vma" ::: "memory");
    csr_write(medeleg, 0);

    section("sv39 translation");
    no_fault("S load through the identity gigapage", MODE_S, s_load, (u64)&giga_probe, 0x6161616161616161UL);
    no_fault("S load through the read-only gigapage alias", MODE_S, s_load, (u64)&giga_probe - 0x80000000UL + RO_GIGA,
             0x6161616161616161UL);
    note("gigapage PTE after the load (A set)", root[4]);
    fault_m("S store to the read-only gigapage", MODE_S, s_store, RO_GIGA + 0x100, CAUSE_STORE_PAGE, RO_GIGA + 0x100);
    no_fault("S load through a 2 MiB page", MODE_S, s_load, MEGA_VA + 0x1238, 0x4d4d4d4d4d4d4d4dUL);
    note("2 MiB PTE after a load", l1[1]);
    no_fault("S store through a 2 MiB page", MODE_S, s_store, MEGA_VA + 0x1238, 0);
    check("store reached the physical page", *(volatile u64 *)(MEGA_PA + 0x1238), 0x5757575757575757UL);
    note("2 MiB PTE after a store", l1[1]);
    fault_m("S load from a misaligned 2 MiB page", MODE_S, s_load, BAD_MEGA_VA + 8, CAUSE_LOAD_PAGE, BAD_MEGA_VA + 8);

    section("sv39 4 KiB pages and A/D");
    note("PTE before any access", l0[0]);
    no_fault("S load", MODE_S, s_load, PAGE_VA(0) + 8, 0);
    note("PTE after a load (A)", l0[0]);
    check("A set, D clear after a load", l0[0] & (PTE_A | PTE_D), PTE_A);
    no_fault("S store", MODE_S, s_store, PAGE_VA(0) + 16, 0);
    note("PTE after a store (A, D)", l0[0]);
    check("A and D set after a store", l0[0] & (PTE_A | PTE_D), PTE_A | PTE_D);
    check("store landed", P64(0)[2], 0x5757575757575757UL);
    l0[0] = PTE(pages[0], PTE_V | PTE_R | PTE_W);
    __asm__ volatile("sfence.vma" ::: "memory");
    no_fault("S amoadd.d", MODE_S, s_amo, PAGE_VA(0), 0x1010101010101010UL);
    check("A and D set after an AMO", l0[0] & (PTE_A | PTE_D), PTE_A | PTE_D);
    no_fault("S fetch from an RX page with A clear", MODE_S, s_call, PAGE_VA(8), 43);
    note("code PTE after the fetch", l0[8]);
    check("A set, D clear after a fetch", l0[8] & (PTE_A | PTE_D), PTE_A);
    no_fault("S fetch from an execute-only page", MODE_S, s_call, PAGE_VA(2), 42);

    section("sv39 page faults");
    fault_m("S load from an invalid PTE", MODE_S, s_load, PAGE_VA(4) + 0x10, CAUSE_LOAD_PAGE, PAGE_VA(4) + 0x10);
    fault_m("S store to an invalid PTE", MODE_S, s_store, PAGE_VA(4) + 0x18, CAUSE_STORE_PAGE, PAGE_VA(4) + 0x18);
    fault_m("S fetch from an invalid PTE", MODE_S, s_call, PAGE_VA(4), CAUSE_FETCH_PAGE, PAGE_VA(4));
    fault_m("S amo on an invalid PTE (13 or 15)", MODE_S, s_amo, PAGE_VA(4), CAUSE_STORE_PAGE, PAGE_VA(4));
    fault_m("S lr.d on an invalid PTE", MODE_S, s_lr, PAGE_VA(4), CAUSE_LOAD_PAGE, PAGE_VA(4));
    no_fault("S sc.d on an invalid PTE without reservation fails quietly", MODE_S, s_sc, PAGE_VA(4), 1);
    fault_m("S store to a read-only page", MODE_S, s_store, PAGE_VA(1) + 8, CAUSE_STORE_PAGE, PAGE_VA(1) + 8);
    fault_m("S amo on a read-only page", MODE_S, s_amo, PAGE_VA(1), CAUSE_STORE_PAGE, PAGE_VA(1));
    no_fault("S load from a read-only page", MODE_S, s_load, PAGE_VA(1), 0x2020202020202020UL);
    fault_m("S load from an execute-only page", MODE_S, s_load, PAGE_VA(2), CAUSE_LOAD_PAGE, PAGE_VA(2));
    no_fault("S load from an execute-only page with MXR", MODE_S, s_mxr_load, PAGE_VA(2), 0x0000806702a00513UL);
    fault_m("S fetch from a non-executable page", MODE_S, s_call, PAGE_VA(5), CAUSE_FETCH_PAGE, PAGE_VA(5));
    fault_m("S load from a W-only (reserved) PTE", MODE_S, s_load, PAGE_VA(6), CAUSE_LOAD_PAGE, PAGE_VA(6));
    fault_m("S store to a W-only (reserved) PTE", MODE_S, s_store, PAGE_VA(6), CAUSE_STORE_PAGE, PAGE_VA(6));
    fault_m("S load from a non-canonical address", MODE_S, s_load, 0x0000008000000000UL, CAUSE_LOAD_PAGE, 0x0000008000000000UL);
    fault_m("S load from an unmapped gigarange", MODE_S, s_load, 0x10000000UL, CAUSE_LOAD_PAGE, 0x10000000UL);

    section("sv39 U pages, SUM");
    fault_m("S load from a U page without SUM", MODE_S, s_load, PAGE_VA(3), CAUSE_LOAD_PAGE, PAGE_VA(3));
    fault_m("S store to a U page without SUM", MODE_S, s_store, PAGE_VA(3), CAUSE_STORE_PAGE, PAGE_VA(3));
    no_fault("S load from a U page with SUM", MODE_S, s_sum_load, PAGE_VA(3), 0x4040404040404040UL);
    no_fault("S store to a U page with SUM", MODE_S, s_sum_store, PAGE_VA(3) + 8, 0);
    check("stored", P64(3)[1], 0x3939393939393939UL);
    no_fault("U load from a U page", MODE_U, s_load, PAGE_VA(3), 0x4040404040404040UL);
    no_fault("U store to a U page", MODE_U, s_store, PAGE_VA(3) + 16, 0);
    fault_m("U load from an S page", MODE_U, s_load, PAGE_VA(5), CAUSE_LOAD_PAGE, PAGE_VA(5));
    fault_m("U store to an S page", MODE_U, s_store, PAGE_VA(5), CAUSE_STORE_PAGE, PAGE_VA(5));
    fault_m("U fetch from an S page", MODE_U, s_call, PAGE_VA(2), CAUSE_FETCH_PAGE, PAGE_VA(2));
    fault_m("U load from an S page in the identity map", MODE_U, s_load, (u64)&giga_probe, CAUSE_LOAD_PAGE, (u64)&giga_probe);

    section("sfence.vma");
    check("remap then sfence.vma (bits: before, after, back)", in_s(s_remap, PAGE_VA(7)), 7);

    section("mprv");
    u64 v = 0, pc, mprv = MSTATUS_MPRV;
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (u64)MODE_S << 11);
    __asm__ volatile("csrs mstatus, %2\n ld %0, 0(%1)\n csrc mstatus, %2" : "=&r"(v) : "r"(PAGE_VA(5)), "r"(mprv) : "memory");
    check("M load with MPRV, MPP = S, through the page tables", v, 0x6060606060606060UL);
    __asm__ volatile("csrs mstatus, %1\n sd %2, 8(%0)\n csrc mstatus, %1" :: "r"(PAGE_VA(5)), "r"(mprv), "r"(0x77UL) : "memory");
    check("M store with MPRV lands in the mapped page", P64(5)[1], 0x77);
    u64 before = mt.count;
    expect_m();
    __asm__ volatile("la %0, 1f\n csrs mstatus, %3\n1: ld %1, 0(%2)\n csrc mstatus, %3" : "=&r"(pc), "=&r"(v) : "r"(PAGE_VA(3)), "r"(mprv) : "memory");
    check_m_trap("M load with MPRV, MPP = S, from a U page", before, CAUSE_LOAD_PAGE, pc, PAGE_VA(3));
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (u64)MODE_S << 11);
    u64 bits = MSTATUS_MPRV | MSTATUS_SUM;
    __asm__ volatile("csrs mstatus, %2\n ld %0, 0(%1)\n csrc mstatus, %2" : "=&r"(v) : "r"(PAGE_VA(3)), "r"(bits) : "memory");
    check("M load with MPRV + SUM from a U page", v, 0x4040404040404040UL);
    bits = MSTATUS_MPRV | MSTATUS_MXR;
    __asm__ volatile("csrs mstatus, %2\n ld %0, 0(%1)\n csrc mstatus, %2" : "=&r"(v) : "r"(PAGE_VA(2)), "r"(bits) : "memory");
    check("M load with MPRV + MXR from an execute-only page", v, 0x0000806702a00513UL);
    csr_clear(mstatus, MSTATUS_MPP);
    csr_set(mstatus, (u64)MODE_U << 11);
    before = mt.count;
    __asm__ volatile("la %0, 1f\n csrs mstatus, %3\n1: ld %1, 0(%2)\n csrc mstatus, %3" : "=&r"(pc), "=&r"(v) : "r"(PAGE_VA(5)), "r"(mprv) : "memory");
    check_m_trap("M load with MPRV, MPP = U, from an S page", before, CAUSE_LOAD_PAGE, pc, PAGE_VA(5));
    done_m();
    /* Fetches ignore MPRV: this code keeps running untranslated. */
    csr_set(mstatus, MSTATUS_MPRV | MSTATUS_MPP);
    csr_clear(mstatus, MSTATUS_MPRV);
    check("MPRV with MPP = M is a no-op", 1, 1);

    section("page faults delegated to S");
    csr_write(stvec, (u64)isa_strap);
    csr_write(sscratch, (u64)s_trap_stack_top);
    csr_write(medeleg, (1UL << CAUSE_FETCH_PAGE) | (1UL << CAUSE_LOAD_PAGE) | (1UL << CAUSE_STORE_PAGE));
    u64 sb = st.count, mb = mt.count;
    expect_s();
    in_s(s_load, PAGE_VA(4) + 0x20);
    check("load fault in S handler: scause", st.cause, CAUSE_LOAD_PAGE);
    check("stval", st.tval, PAGE_VA(4) + 0x20);
    in_s(s_store, PAGE_VA(1) + 0x28);
    check("store fault in S handler: scause", st.cause, CAUSE_STORE_PAGE);
    check("stval", st.tval, PAGE_VA(1) + 0x28);
    s_resume = (u64)s_call_resume;
    in_s(s_call, PAGE_VA(4) + 0x40);
    check("fetch fault in S handler: scause", st.cause, CAUSE_FETCH_PAGE);
    check("stval", st.tval, PAGE_VA(4) + 0x40);
    in_u(s_load, PAGE_VA(5));
    check("U load fault in S handler: scause", st.cause, CAUSE_LOAD_PAGE);
    check("sstatus.SPP = U", (st.status & MSTATUS_SPP) != 0, 0);
    done_s();
    check("S handled four faults", st.count - sb, 4);
    check("M handled none", mt.count - mb, 0);
    csr_write(medeleg, 0);

    csr_write(satp, 0);
    __asm__ volatile("sfence.vma" ::: "memory");
}
