/* The F and D extensions against QEMU: every F/D instruction, with every static
 * rounding mode and dynamic rounding through frm, on edge-case operands (zeros,
 * infinities, quiet and signalling NaNs, subnormals, the largest and smallest
 * normals, halfway cases, integer conversion limits, improperly NaN-boxed singles)
 * and on seeded pseudo-random operands. Each instruction runs in inline assembly on
 * raw register bits (fmv.d.x in, fmv.x.d out, so NaN-boxing is visible), with fflags
 * cleared before and read after. Result bits and flags go into a hash per
 * instruction and rounding mode; some cases are printed in full. Also: mstatus.FS
 * and SD, FP instructions and CSRs trapping while FS is Off, reserved rounding
 * modes, fcsr/frm/fflags aliasing, the compressed loads and stores, tselect.
 *
 * Built for rv64imafdc with the lp64 (integer) ABI, so it links with the runtime. */
#include "runtime.h"

/* ------------------------------------------------------------------------- */
/* Illegal-instruction catcher: records mcause and mtval and skips the instruction. */

volatile u64 trap_count, trap_cause, trap_value, trap_saved_t1;

__asm__(
    "    .align 4\n"
    "fp_trap:\n"
    "    csrw mscratch, t0\n"
    "    la t0, trap_saved_t1\n"
    "    sd t1, 0(t0)\n"
    "    la t0, trap_count\n"
    "    ld t1, 0(t0)\n"
    "    addi t1, t1, 1\n"
    "    sd t1, 0(t0)\n"
    "    la t0, trap_cause\n"
    "    csrr t1, mcause\n"
    "    sd t1, 0(t0)\n"
    "    la t0, trap_value\n"
    "    csrr t1, mtval\n"
    "    sd t1, 0(t0)\n"
    "    csrr t0, mepc\n"
    "    andi t1, t1, 3\n"
    "    addi t0, t0, 2\n"
    "    addi t1, t1, -3\n"
    "    bnez t1, 1f\n"
    "    addi t0, t0, 2\n"
    "1:  csrw mepc, t0\n"
    "    la t0, trap_saved_t1\n"
    "    ld t1, 0(t0)\n"
    "    csrr t0, mscratch\n"
    "    mret\n");
extern char fp_trap[];

/* ------------------------------------------------------------------------- */
/* Hashing and printing. */

static u64 hash;
static u64 flags_seen;
static void mix(u64 v) {
    for (int i = 0; i < 8; i++) {
        hash ^= (v >> (8 * i)) & 0xff;
        hash *= 0x100000001b3UL;
    }
}
static void record(u64 result, u64 flags) {
    mix(result);
    mix(flags);
    flags_seen |= flags;
}
static void begin(void) { hash = 0xcbf29ce484222325UL; flags_seen = 0; }
static u64 total, edge_hash, edge_flags;
/* The edge-case part of a line: kept until the random part is done. */
static void report_edge(void) { edge_hash = hash; edge_flags = flags_seen; }
static void put_flags(u64 f) { putc("0123456789abcdef"[(f >> 4) & 1]); putc("0123456789abcdef"[f & 15]); }
/* One line per instruction and rounding mode: the hashes of the edge cases and of the
 * random cases, and the flags each raised. */
static void report(const char *name, const char *rm) {
    puts(name);
    putc(' ');
    puts(rm);
    puts(" edge ");
    put_hex(edge_hash);
    putc(' ');
    put_flags(edge_flags);
    puts(" random ");
    put_hex(hash);
    putc(' ');
    put_flags(flags_seen);
    putc('\n');
    total = (total ^ edge_hash ^ hash) * 0x100000001b3UL;
}
static void show(const char *what, u64 a, u64 b, u64 c, u64 r, u64 f) {
    puts(what);
    putc(' ');
    put_hex(a);
    putc(' ');
    put_hex(b);
    putc(' ');
    put_hex(c);
    puts(" -> ");
    put_hex(r);
    puts(" fflags ");
    put_hex(f);
    putc('\n');
}

static void sample(const char *what, u64 r, u64 f) {
    puts(what);
    puts(" -> ");
    put_hex(r);
    puts(" fflags ");
    put_flags(f);
    putc('\n');
}

/* xorshift64*, seeded */
static u64 rng_state = 0x9e3779b97f4a7c15UL;
static u64 next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dUL;
}

/* ------------------------------------------------------------------------- */
/* Operands. */

#define BOX(x) (0xffffffff00000000UL | (u32)(x))

static const u64 d_edge[] = {
    0x0000000000000000, 0x8000000000000000, /* ±0 */
    0x3ff0000000000000, 0xbff0000000000000, /* ±1 */
    0x3ff8000000000000, 0xc004000000000000, /* 1.5, -2.5 */
    0x7ff0000000000000, 0xfff0000000000000, /* ±inf */
    0x7ff8000000000000, 0xfff8000000000001, /* qNaN, -qNaN with payload */
    0x7ff0000000000001, 0x7ff4000000000000, /* sNaN */
    0x0000000000000001, 0x800fffffffffffff, /* min subnormal, -max subnormal */
    0x0010000000000000, 0x8010000000000001, /* min normal, -(min normal + ulp) */
    0x7fefffffffffffff, 0xffefffffffffffff, /* ±max finite */
    0x3ca0000000000000, 0x3cb0000000000000, /* 2^-53, 2^-52 (halfway sums with 1) */
    0x3fb999999999999a, 0x3fd5555555555555, /* 0.1, 1/3 */
    0x43e0000000000000, 0xc3e0000000000000, /* ±2^63 */
    0x43f0000000000000, 0x41e0000000000000, /* 2^64, 2^31 */
    0xc1e0000000200000, 0x41efffffffe00000, /* -2^31-1, 2^32-1 */
    0x3fe0000000000000, 0xbfe0000000000000, /* ±0.5 */
    0x4004000000000000, 0x3ff0000000000001, /* 2.5, 1+ulp */
    0x1ff0000000000000, 0x6000000000000000, /* 2^-512, 2^513 */
    0x000fffffffffffff, 0x0008000000000000, /* max subnormal, 2^-1023 */
};
#define D_EDGE (sizeof d_edge / sizeof d_edge[0])

static const u64 s_edge[] = {
    BOX(0x00000000), BOX(0x80000000), BOX(0x3f800000), BOX(0xbf800000),
    BOX(0x3fc00000), BOX(0xc0200000), BOX(0x7f800000), BOX(0xff800000),
    BOX(0x7fc00000), BOX(0xffc00001), BOX(0x7f800001), BOX(0x7fa00000),
    BOX(0x00000001), BOX(0x807fffff), BOX(0x00800000), BOX(0x80800001),
    BOX(0x7f7fffff), BOX(0xff7fffff), BOX(0x33800000), BOX(0x34000000),
    BOX(0x3dcccccd), BOX(0x3eaaaaab), BOX(0x5f000000), BOX(0xdf000000),
    BOX(0x5f800000), BOX(0x4f000000), BOX(0xcf000001), BOX(0x4f7fffff),
    BOX(0x3f000000), BOX(0xbf000000), BOX(0x40200000), BOX(0x3f800001),
    0x000000003f800000, /* 1.0, not NaN-boxed: reads as the canonical NaN */
    0x7ff0000000000000, 0xfffffffe3f800000, BOX(0x007fffff),
};
#define S_EDGE (sizeof s_edge / sizeof s_edge[0])

static const u64 int_edge[] = {
    0, 1, (u64)-1, 0x7fffffff, 0xffffffff80000000UL, 0xffffffff, 0x80000000, 0x7fffffffffffffffUL,
    0x8000000000000000UL, 0x20000000000001UL, 0x1000001, 0xffffffUL, 0x123456789abcdefUL, 0xfffffffffffff801UL,
    0x00000000ffffff81UL, 0x8000000000000001UL, 0xfedcba9876543210UL, 3, (u64)-3, 0x40000000000003ffUL,
};
#define INT_EDGE (sizeof int_edge / sizeof int_edge[0])

/* A random double: often near 1, sometimes tiny, huge, subnormal, special or raw bits. */
static u64 rand_d(void) {
    u64 r = next(), m = next() & 0xfffffffffffffUL, s = (r >> 63) << 63;
    switch (r & 7) {
    case 0: return next();
    case 1: case 2: case 3: return s | ((1023 - 40 + (r >> 8) % 80) << 52) | m;
    case 4: return s | (((r >> 8) % 80) << 52) | m;           /* tiny and subnormal */
    case 5: return s | ((2046 - (r >> 8) % 60) << 52) | m;    /* huge */
    case 6: return s | ((1023 + (r >> 8) % 64) << 52) | (m & ~0xfffUL); /* integers and halves */
    default: return d_edge[(r >> 8) % D_EDGE];
    }
}
static u64 rand_s(void) {
    u64 r = next(), m = next() & 0x7fffff, s = ((r >> 63) & 1) << 31;
    switch (r & 15) {
    case 0: return BOX(next());
    case 1: return next();                                      /* rarely properly boxed */
    case 2: case 3: case 4: case 5: return BOX(s | ((127 - 20 + (r >> 8) % 40) << 23) | m);
    case 6: case 7: return BOX(s | (((r >> 8) % 40) << 23) | m);
    case 8: case 9: return BOX(s | ((254 - (r >> 8) % 30) << 23) | m);
    case 10: case 11: return BOX(s | ((127 + (r >> 8) % 32) << 23) | (m & ~0x3fUL));
    default: return s_edge[(r >> 8) % S_EDGE];
    }
}
static u64 rand_int(void) {
    u64 r = next();
    switch (r & 3) {
    case 0: return next();
    case 1: return next() >> (r >> 8) % 64;
    case 2: return -(next() >> (r >> 8) % 64);
    default: return int_edge[(r >> 8) % INT_EDGE];
    }
}

/* ------------------------------------------------------------------------- */
/* The instructions, one function per instruction and rounding mode. Each takes raw
 * register bits and returns the destination's bits; the flags land in `fl`. */

static u64 fl;

#define RMS(X, name, insn) X(name, insn, rne) X(name, insn, rtz) X(name, insn, rdn) \
    X(name, insn, rup) X(name, insn, rmm) X(name, insn, dyn)
typedef u64 (*fn_t)(void);
#define TABLE(name) static const fn_t name##_rm[6] = { (fn_t)name##_rne, (fn_t)name##_rtz, \
    (fn_t)name##_rdn, (fn_t)name##_rup, (fn_t)name##_rmm, (fn_t)name##_dyn };
static const char *const rm_names[6] = { "rne", "rtz", "rdn", "rup", "rmm", "dyn" };

/* f = op(f, f) with rm */
#define FFF(name, insn, rm) static u64 name##_##rm(u64 a, u64 b) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n fmv.d.x ft1, %3\n csrw fflags, zero\n " insn " ft2, ft0, ft1, " #rm "\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); fl = f; return r; }
/* f = op(f, f, f) with rm */
#define FFFF(name, insn, rm) static u64 name##_##rm(u64 a, u64 b, u64 c) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n fmv.d.x ft1, %3\n fmv.d.x ft3, %4\n csrw fflags, zero\n " insn " ft2, ft0, ft1, ft3, " #rm "\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3"); fl = f; return r; }
/* f = op(f) with rm */
#define FF(name, insn, rm) static u64 name##_##rm(u64 a) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n csrw fflags, zero\n " insn " ft2, ft0, " #rm "\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a) : "ft0", "ft2"); fl = f; return r; }
/* x = op(f) with rm */
#define XF(name, insn, rm) static u64 name##_##rm(u64 a) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n csrw fflags, zero\n " insn " %0, ft0, " #rm "\n" \
    " csrr %1, fflags" : "=&r"(r), "=&r"(f) : "r"(a) : "ft0"); fl = f; return r; }
/* f = op(x) with rm */
#define FX(name, insn, rm) static u64 name##_##rm(u64 a) { u64 r, f; __asm__ volatile( \
    "csrw fflags, zero\n " insn " ft2, %2, " #rm "\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a) : "ft2"); fl = f; return r; }

#define ARITH(X) \
    X(fadd_s, "fadd.s") X(fsub_s, "fsub.s") X(fmul_s, "fmul.s") X(fdiv_s, "fdiv.s") \
    X(fadd_d, "fadd.d") X(fsub_d, "fsub.d") X(fmul_d, "fmul.d") X(fdiv_d, "fdiv.d")
#define FUSED(X) \
    X(fmadd_s, "fmadd.s") X(fmsub_s, "fmsub.s") X(fnmsub_s, "fnmsub.s") X(fnmadd_s, "fnmadd.s") \
    X(fmadd_d, "fmadd.d") X(fmsub_d, "fmsub.d") X(fnmsub_d, "fnmsub.d") X(fnmadd_d, "fnmadd.d")
#define UNARY(X) X(fsqrt_s, "fsqrt.s") X(fsqrt_d, "fsqrt.d") X(fcvt_s_d, "fcvt.s.d") X(fcvt_d_s, "fcvt.d.s")
#define TOINT(X) \
    X(fcvt_w_s, "fcvt.w.s") X(fcvt_wu_s, "fcvt.wu.s") X(fcvt_l_s, "fcvt.l.s") X(fcvt_lu_s, "fcvt.lu.s") \
    X(fcvt_w_d, "fcvt.w.d") X(fcvt_wu_d, "fcvt.wu.d") X(fcvt_l_d, "fcvt.l.d") X(fcvt_lu_d, "fcvt.lu.d")
#define FROMINT(X) \
    X(fcvt_s_w, "fcvt.s.w") X(fcvt_s_wu, "fcvt.s.wu") X(fcvt_s_l, "fcvt.s.l") X(fcvt_s_lu, "fcvt.s.lu") \
    X(fcvt_d_w, "fcvt.d.w") X(fcvt_d_wu, "fcvt.d.wu") X(fcvt_d_l, "fcvt.d.l") X(fcvt_d_lu, "fcvt.d.lu")

#define DEF_FFF(name, insn) RMS(FFF, name, insn) TABLE(name)
#define DEF_FFFF(name, insn) RMS(FFFF, name, insn) TABLE(name)
#define DEF_FF(name, insn) RMS(FF, name, insn) TABLE(name)
#define DEF_XF(name, insn) RMS(XF, name, insn) TABLE(name)
#define DEF_FX(name, insn) RMS(FX, name, insn) TABLE(name)
ARITH(DEF_FFF)
FUSED(DEF_FFFF)
UNARY(DEF_FF)
TOINT(DEF_XF)
FROMINT(DEF_FX)

/* Instructions without a rounding mode. */
#define NORM_FFF(name, insn) static u64 name(u64 a, u64 b) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n fmv.d.x ft1, %3\n csrw fflags, zero\n " insn " ft2, ft0, ft1\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); fl = f; return r; }
#define NORM_XFF(name, insn) static u64 name(u64 a, u64 b) { u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n fmv.d.x ft1, %3\n csrw fflags, zero\n " insn " %0, ft0, ft1\n" \
    " csrr %1, fflags" : "=&r"(r), "=&r"(f) : "r"(a), "r"(b) : "ft0", "ft1"); fl = f; return r; }
#define NORM_XF(name, insn) static u64 name(u64 a, u64 b) { (void)b; u64 r, f; __asm__ volatile( \
    "fmv.d.x ft0, %2\n csrw fflags, zero\n " insn " %0, ft0\n" \
    " csrr %1, fflags" : "=&r"(r), "=&r"(f) : "r"(a) : "ft0"); fl = f; return r; }
#define NORM_FX(name, insn) static u64 name(u64 a, u64 b) { (void)b; u64 r, f; __asm__ volatile( \
    "csrw fflags, zero\n " insn " ft2, %2\n" \
    " csrr %1, fflags\n fmv.x.d %0, ft2" : "=r"(r), "=r"(f) : "r"(a) : "ft2"); fl = f; return r; }

NORM_FFF(fsgnj_s, "fsgnj.s") NORM_FFF(fsgnjn_s, "fsgnjn.s") NORM_FFF(fsgnjx_s, "fsgnjx.s")
NORM_FFF(fsgnj_d, "fsgnj.d") NORM_FFF(fsgnjn_d, "fsgnjn.d") NORM_FFF(fsgnjx_d, "fsgnjx.d")
NORM_FFF(fmin_s, "fmin.s") NORM_FFF(fmax_s, "fmax.s") NORM_FFF(fmin_d, "fmin.d") NORM_FFF(fmax_d, "fmax.d")
NORM_XFF(feq_s, "feq.s") NORM_XFF(flt_s, "flt.s") NORM_XFF(fle_s, "fle.s")
NORM_XFF(feq_d, "feq.d") NORM_XFF(flt_d, "flt.d") NORM_XFF(fle_d, "fle.d")
NORM_XF(fclass_s, "fclass.s") NORM_XF(fclass_d, "fclass.d") NORM_XF(fmv_x_w, "fmv.x.w") NORM_XF(fmv_x_d, "fmv.x.d")
NORM_FX(fmv_w_x, "fmv.w.x") NORM_FX(fmv_d_x, "fmv.d.x")

static void set_frm(u64 rm) { __asm__ volatile("csrw frm, %0" :: "r"(rm)); }

/* ------------------------------------------------------------------------- */
/* Test drivers. */

#define RANDOM_CASES 400

struct op2 { const char *name; const fn_t *fn; int single; };
struct op1 { const char *name; const fn_t *fn; int source; }; /* source: 0 single, 1 double, 2 integer */

static void run_binary(const struct op2 *op) {
    const u64 *edge = op->single ? s_edge : d_edge;
    unsigned n = op->single ? S_EDGE : D_EDGE;
    for (int rm = 0; rm < 6; rm++) {
        set_frm(rm == 5 ? 3 : 0);  /* dyn: round up (the static modes ignore frm) */
        u64 (*f)(u64, u64) = (u64 (*)(u64, u64))op->fn[rm];
        begin();
        for (unsigned i = 0; i < n; i++)
            for (unsigned j = 0; j < n; j++) record(f(edge[i], edge[j]), fl);
        report_edge();
        begin();
        for (int k = 0; k < RANDOM_CASES; k++) {
            u64 a = op->single ? rand_s() : rand_d(), b = op->single ? rand_s() : rand_d();
            if ((k & 3) == 0) b = (b & ~0xffffffffUL) | (a & 0xffffff00UL);  /* close operands */
            record(f(a, b), fl);
        }
        report(op->name, rm_names[rm]);
    }
}

static const unsigned fused_pick[] = { 0, 1, 2, 3, 5, 6, 8, 10, 12, 14, 16, 18, 19, 20, 31 };
#define FUSED_PICK (sizeof fused_pick / sizeof fused_pick[0])

static void run_fused(const struct op2 *op) {
    const u64 *edge = op->single ? s_edge : d_edge;
    for (int rm = 0; rm < 6; rm++) {
        set_frm(rm == 5 ? 2 : 0);  /* dyn: round down */
        u64 (*f)(u64, u64, u64) = (u64 (*)(u64, u64, u64))op->fn[rm];
        u64 (*mul)(u64, u64) = (u64 (*)(u64, u64))(op->single ? fmul_s_rm : fmul_d_rm)[0];
        begin();
        for (unsigned i = 0; i < FUSED_PICK; i++)
            for (unsigned j = 0; j < FUSED_PICK; j++)
                for (unsigned k = 0; k < FUSED_PICK; k++)
                    record(f(edge[fused_pick[i]], edge[fused_pick[j]], edge[fused_pick[k]]), fl);
        report_edge();
        begin();
        for (int k = 0; k < RANDOM_CASES; k++) {
            u64 a = op->single ? rand_s() : rand_d(), b = op->single ? rand_s() : rand_d();
            u64 c = op->single ? rand_s() : rand_d();
            if (k & 1) {  /* c close to ±a·b: cancellation and halfway cases */
                c = mul(a, b) ^ (next() & 7);
                if (k & 2) c ^= op->single ? 0x80000000UL : 0x8000000000000000UL;
            }
            record(f(a, b, c), fl);
        }
        report(op->name, rm_names[rm]);
    }
}

static void run_unary(const struct op1 *op) {
    for (int rm = 0; rm < 6; rm++) {
        set_frm(rm == 5 ? 4 : 0);  /* dyn: round to nearest, ties to max magnitude */
        u64 (*f)(u64) = (u64 (*)(u64))op->fn[rm];
        begin();
        unsigned n = op->source == 0 ? S_EDGE : op->source == 1 ? D_EDGE : INT_EDGE;
        for (unsigned i = 0; i < n; i++) {
            u64 a = op->source == 0 ? s_edge[i] : op->source == 1 ? d_edge[i] : int_edge[i];
            record(f(a), fl);
        }
        report_edge();
        begin();
        for (int k = 0; k < RANDOM_CASES; k++) {
            u64 a = op->source == 0 ? rand_s() : op->source == 1 ? rand_d() : rand_int();
            record(f(a), fl);
        }
        report(op->name, rm_names[rm]);
    }
}

struct plain { const char *name; u64 (*fn)(u64, u64); int single; };

static void run_plain(const struct plain *op) {
    const u64 *edge = op->single ? s_edge : d_edge;
    unsigned n = op->single ? S_EDGE : D_EDGE;
    begin();
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++) record(op->fn(edge[i], edge[j]), fl);
    for (unsigned i = 0; i < INT_EDGE; i++) record(op->fn(int_edge[i], 0), fl);
    report_edge();
    begin();
    for (int k = 0; k < RANDOM_CASES; k++) {
        u64 a = op->single ? rand_s() : rand_d(), b = (k & 1) ? a ^ (next() & 0x8000000000000003UL) : rand_d();
        record(op->fn(a, b), fl);
    }
    report(op->name, "-");
}

/* ------------------------------------------------------------------------- */
/* CSRs, FS, traps, loads and stores. */

static u64 mstatus(void) { u64 v; __asm__ volatile("csrr %0, mstatus" : "=r"(v)); return v; }
static void show_fs(const char *when) {
    u64 m = mstatus(), s;
    __asm__ volatile("csrr %0, sstatus" : "=r"(s));
    puts(when);
    puts(": mstatus.FS=");
    put_u64((m >> 13) & 3);
    puts(" SD=");
    put_u64(m >> 63);
    puts(" sstatus.FS=");
    put_u64((s >> 13) & 3);
    puts(" SD=");
    put_u64(s >> 63);
    putc('\n');
}
static void set_fs(u64 fs) {
    __asm__ volatile("csrc mstatus, %0\n csrs mstatus, %1" :: "r"(3UL << 13), "r"(fs << 13));
}
static void show_trap(const char *what, u64 before) {
    puts(what);
    puts(": traps ");
    put_u64(trap_count - before);
    puts(" mcause ");
    put_hex(trap_cause);
    puts(" mtval ");
    put_hex(trap_value);
    putc('\n');
    trap_cause = trap_value = 0;
}

static void test_state(void) {
    show_fs("reset");
    u64 before = trap_count, v = 0;
    __asm__ volatile("fadd.d ft0, ft1, ft2" ::: "ft0");
    show_trap("fadd.d with FS=Off", before);
    before = trap_count;
    __asm__ volatile("li %0, 7\n csrr %0, fcsr" : "+r"(v));
    show_trap("csrr fcsr with FS=Off", before);
    before = trap_count;
    __asm__ volatile("c.fldsp ft0, 0(sp)" ::: "ft0");
    show_trap("c.fldsp with FS=Off", before);
    before = trap_count;
    __asm__ volatile("fmv.x.d %0, ft0" : "=r"(v));
    show_trap("fmv.x.d with FS=Off", before);

    set_fs(1);
    show_fs("FS=Initial");
    __asm__ volatile("fmv.x.d %0, ft0" : "=r"(v));
    show_fs("after fmv.x.d");
    __asm__ volatile("fmv.d.x ft0, zero");
    show_fs("after fmv.d.x");
    set_fs(2);
    show_fs("FS=Clean");
    __asm__ volatile("li t0, 0x3ff0000000000000\n fmv.d.x ft0, t0" ::: "t0", "ft0");
    set_fs(2);
    __asm__ volatile("feq.d %0, ft0, ft0" : "=r"(v));
    show_fs("after feq.d 1,1 from Clean");
    set_fs(2);
    __asm__ volatile("csrw fflags, zero");
    show_fs("after csrw fflags from Clean");
    set_fs(2);
    __asm__ volatile("csrr %0, frm" : "=r"(v));
    show_fs("after csrr frm from Clean");
    set_fs(2);
    __asm__ volatile("fadd.d ft0, ft0, ft0" ::: "ft0");
    show_fs("after fadd.d from Clean");
    u64 s = 0;
    __asm__ volatile("csrw sstatus, %1\n csrr %0, mstatus" : "=r"(s) : "r"(1UL << 13));
    puts("sstatus write FS=1: mstatus.FS=");
    put_u64((s >> 13) & 3);
    putc('\n');
    set_fs(3);

    /* fcsr, frm and fflags are views of one register. */
    u64 a, b, c;
    __asm__ volatile("csrw fcsr, %3\n csrr %0, frm\n csrr %1, fflags\n csrr %2, fcsr"
                     : "=&r"(a), "=&r"(b), "=&r"(c) : "r"(0xffffffffUL));
    puts("fcsr=~0: frm ");
    put_hex(a);
    puts(" fflags ");
    put_hex(b);
    puts(" fcsr ");
    put_hex(c);
    putc('\n');
    __asm__ volatile("csrwi frm, 2\n csrwi fflags, 0x15\n csrr %0, fcsr\n csrrci %1, fflags, 4\n csrrsi %2, frm, 1\n"
                     : "=&r"(a), "=&r"(b), "=&r"(c));
    puts("frm=2 fflags=0x15: fcsr ");
    put_hex(a);
    puts(" old fflags ");
    put_hex(b);
    puts(" old frm ");
    put_hex(c);
    __asm__ volatile("csrr %0, fcsr" : "=r"(a));
    puts(" fcsr ");
    put_hex(a);
    putc('\n');

    /* Reserved rounding modes: rm 5 and 6, and dynamic with frm 5, 6, 7. */
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 5, 0x01, ft0, ft1, ft2" ::: "ft0");  /* fadd.d rm=5 */
    show_trap("fadd.d rm=5", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 6, 0x00, ft0, ft1, ft2" ::: "ft0");  /* fadd.s rm=6 */
    show_trap("fadd.s rm=6", before);
    before = trap_count;
    __asm__ volatile(".insn r4 0x43, 5, 1, ft0, ft1, ft2, ft3" ::: "ft0");  /* fmadd.d rm=5 */
    show_trap("fmadd.d rm=5", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 6, 0x21, ft0, ft1, f0" ::: "ft0");  /* fcvt.d.s rm=6 */
    show_trap("fcvt.d.s rm=6", before);
    for (u64 m = 5; m <= 7; m++) {
        set_frm(m);
        before = trap_count;
        __asm__ volatile("fsqrt.d ft0, ft1, dyn" ::: "ft0");
        show_trap(m == 5 ? "fsqrt.d dyn frm=5" : m == 6 ? "fsqrt.d dyn frm=6" : "fsqrt.d dyn frm=7", before);
        before = trap_count;
        __asm__ volatile("fsgnj.d ft0, ft1, ft2\n fmin.s ft0, ft1, ft2\n feq.d t1, ft1, ft2" ::: "ft0", "t1");
        show_trap("rm-less instructions with frm reserved", before);
    }
    set_frm(0);
    /* Other reserved encodings: fmt H/Q, fsqrt with rs2 != 0, fcvt.s.d with rs2 2, fmv.x.w f3 2. */
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 0, 0x02, ft0, ft1, ft2" ::: "ft0");
    show_trap("fadd.h", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 0, 0x2d, ft0, ft1, f1" ::: "ft0");
    show_trap("fsqrt.d rs2=1", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 0, 0x20, ft0, ft1, f2" ::: "ft0");
    show_trap("fcvt.s.h", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 2, 0x70, t1, ft1, f0" ::: "t1");
    show_trap("fmv.x.w f3=2", before);
    before = trap_count;
    __asm__ volatile(".insn r 0x53, 0, 0x61, t1, ft1, f4" ::: "t1");
    show_trap("fcvt.?.d rs2=4", before);
    before = trap_count;
    __asm__ volatile(".insn i 0x07, 4, ft0, 0(sp)" ::: "ft0");
    show_trap("fp load f3=4", before);

    /* Debug triggers: tselect reads (and stays) 0 with no triggers selected. */
    before = trap_count;
    __asm__ volatile("csrr %0, tselect" : "=r"(a));
    __asm__ volatile("csrw tselect, zero\n csrr %0, tselect" : "=r"(b));
    puts("tselect ");
    put_hex(a);
    puts(" after writing 0: ");
    put_hex(b);
    putc('\n');
    show_trap("tselect", before);
}

static u64 memory_area[8] __attribute__((aligned(16)));

static void test_memory(void) {
    u64 r1, r2, r3, r4;
    memory_area[0] = 0x400921fb54442d18UL;
    memory_area[1] = 0x123456783f800000UL;
    register u64 *p __asm__("a0") = memory_area;
    /* flw NaN-boxes; fld is raw; fsw of an unboxed register stores its low half. */
    __asm__ volatile(
        "flw ft0, 8(a0)\n fmv.x.d %0, ft0\n"
        "flw ft1, 12(a0)\n fmv.x.d %1, ft1\n"
        "fld ft2, 0(a0)\n fmv.x.d %2, ft2\n"
        "fsw ft2, 16(a0)\n fsd ft0, 24(a0)\n lwu %3, 16(a0)\n"
        : "=&r"(r1), "=&r"(r2), "=&r"(r3), "=&r"(r4) : "r"(p) : "ft0", "ft1", "ft2", "memory");
    show("flw/flw/fld/fsw", r1, r2, r3, r4, memory_area[3]);
    /* The compressed forms: c.fld/c.fsd (f8-f15, x8-x15) and c.fldsp/c.fsdsp. */
    __asm__ volatile(
        "c.fld fs0, 0(a0)\n c.fsd fs0, 32(a0)\n fmv.x.d %0, fs0\n"
        "addi sp, sp, -32\n sd %4, 16(sp)\n c.fldsp ft5, 16(sp)\n c.fsdsp ft5, 8(sp)\n ld %1, 8(sp)\n"
        "fmv.x.d %2, ft5\n addi sp, sp, 32\n"
        "c.fld fa5, 8(a0)\n fmv.x.d %3, fa5\n"
        : "=&r"(r1), "=&r"(r2), "=&r"(r3), "=&r"(r4) : "r"(0x7ff4000000000001UL), "r"(p)
        : "fs0", "ft5", "fa5", "memory");
    show("c.fld/c.fsd/c.fldsp/c.fsdsp", r1, r2, r3, r4, memory_area[4]);
    /* Misaligned FP loads and stores succeed, as on QEMU. */
    __asm__ volatile("fld ft0, 3(a0)\n fsd ft0, 41(a0)\n fmv.x.d %0, ft0\n flw ft1, 6(a0)\n fmv.x.d %1, ft1"
                     : "=&r"(r1), "=&r"(r2) : "r"(p) : "ft0", "ft1", "memory");
    show("misaligned fld/fsd/flw", r1, r2, memory_area[5], memory_area[6], 0);
}

/* A few cases in full, so a difference shows what it is. */
static void samples(void) {
    u64 r;
    set_frm(0);
    r = fadd_d_rne(0x3ff0000000000000UL, 0x3ca0000000000000UL); sample("fadd.d rne 1+2^-53", r, fl);
    r = fadd_d_rmm(0x3ff0000000000000UL, 0x3ca0000000000000UL); sample("fadd.d rmm 1+2^-53", r, fl);
    r = fmul_d_rne(0x0010000000000000UL, 0x3fe0000000000000UL); sample("fmul.d rne minnormal*0.5", r, fl);
    r = fmul_d_rup(0x0010000000000001UL, 0x3fefffffffffffffUL); sample("fmul.d rup tiny-after-round", r, fl);
    r = fmul_d_rne(0x7fefffffffffffffUL, 0x4000000000000000UL); sample("fmul.d rne overflow", r, fl);
    r = fmul_d_rtz(0x7fefffffffffffffUL, 0x4000000000000000UL); sample("fmul.d rtz overflow", r, fl);
    r = fdiv_d_rne(0x3ff0000000000000UL, 0); sample("fdiv.d 1/0", r, fl);
    r = fdiv_d_rne(0, 0); sample("fdiv.d 0/0", r, fl);
    r = fsqrt_d_rne(0xbff0000000000000UL); sample("fsqrt.d -1", r, fl);
    r = fsqrt_s_rne(BOX(0x40000000)); sample("fsqrt.s 2", r, fl);
    r = fadd_s_rne(0x000000003f800000UL, BOX(0x3f800000)); sample("fadd.s unboxed+1", r, fl);
    r = fmadd_d_rne(0x7ff0000000000000UL, 0, 0x7ff8000000000000UL); sample("fmadd.d inf*0+qNaN", r, fl);
    r = fmadd_d_rdn(0x3ff0000000000000UL, 0, 0x8000000000000000UL); sample("fmadd.d rdn 1*0+-0", r, fl);
    r = fnmadd_d_rne(0x3ff0000000000000UL, 0, 0x8000000000000000UL); sample("fnmadd.d 1*0+-0", r, fl);
    r = fmin_d(0x8000000000000000UL, 0); sample("fmin.d -0,+0", r, fl);
    r = fmax_d(0x7ff0000000000001UL, 0x3ff0000000000000UL); sample("fmax.d sNaN,1", r, fl);
    r = fmax_s(0x7ff0000000000000UL, BOX(0x7fc00000)); sample("fmax.s unboxed,qNaN", r, fl);
    r = feq_d(0x7ff0000000000001UL, 0); sample("feq.d sNaN", r, fl);
    r = flt_d(0x7ff8000000000000UL, 0); sample("flt.d qNaN", r, fl);
    r = fcvt_w_d_rne(0x41dfffffffe00000UL); sample("fcvt.w.d 2^31-0.5", r, fl);
    r = fcvt_wu_d_rne(0xbfe0000000000000UL); sample("fcvt.wu.d -0.5", r, fl);
    r = fcvt_wu_d_rdn(0xbfe0000000000000UL); sample("fcvt.wu.d rdn -0.5", r, fl);
    r = fcvt_l_d_rne(0x7ff8000000000000UL); sample("fcvt.l.d NaN", r, fl);
    r = fcvt_lu_s_rne(BOX(0xff800000)); sample("fcvt.lu.s -inf", r, fl);
    r = fcvt_s_l_rmm(0x7fffffffffffffffUL); sample("fcvt.s.l rmm max", r, fl);
    r = fcvt_s_d_rne(0x36a0000000000000UL); sample("fcvt.s.d rne 2^-149", r, fl);
    r = fcvt_s_d_rne(0x7ff0000000000001UL); sample("fcvt.s.d sNaN", r, fl);
    r = fclass_s(0x3f800000UL, 0); sample("fclass.s unboxed", r, fl);
    r = fmv_x_w(0x12345678cafef00dUL, 0); sample("fmv.x.w", r, fl);
    r = fmv_w_x(0x12345678cafef00dUL, 0); sample("fmv.w.x", r, fl);
    r = fsgnjn_s(0x3f800000UL, BOX(0x3f800000)); sample("fsgnjn.s unboxed", r, fl);
}

#define OP2(name, single) { #name, name##_rm, single }
#define OP1(name, src) { #name, name##_rm, src }

static const struct op2 binary_ops[] = {
    OP2(fadd_s, 1), OP2(fsub_s, 1), OP2(fmul_s, 1), OP2(fdiv_s, 1),
    OP2(fadd_d, 0), OP2(fsub_d, 0), OP2(fmul_d, 0), OP2(fdiv_d, 0),
};
static const struct op2 fused_ops[] = {
    OP2(fmadd_s, 1), OP2(fmsub_s, 1), OP2(fnmsub_s, 1), OP2(fnmadd_s, 1),
    OP2(fmadd_d, 0), OP2(fmsub_d, 0), OP2(fnmsub_d, 0), OP2(fnmadd_d, 0),
};
static const struct op1 unary_ops[] = {
    OP1(fsqrt_s, 0), OP1(fsqrt_d, 1), OP1(fcvt_s_d, 1), OP1(fcvt_d_s, 0),
    OP1(fcvt_w_s, 0), OP1(fcvt_wu_s, 0), OP1(fcvt_l_s, 0), OP1(fcvt_lu_s, 0),
    OP1(fcvt_w_d, 1), OP1(fcvt_wu_d, 1), OP1(fcvt_l_d, 1), OP1(fcvt_lu_d, 1),
    OP1(fcvt_s_w, 2), OP1(fcvt_s_wu, 2), OP1(fcvt_s_l, 2), OP1(fcvt_s_lu, 2),
    OP1(fcvt_d_w, 2), OP1(fcvt_d_wu, 2), OP1(fcvt_d_l, 2), OP1(fcvt_d_lu, 2),
};
#define PLAIN(name, single) { #name, name, single }
static const struct plain plain_ops[] = {
    PLAIN(fsgnj_s, 1), PLAIN(fsgnjn_s, 1), PLAIN(fsgnjx_s, 1), PLAIN(fsgnj_d, 0), PLAIN(fsgnjn_d, 0), PLAIN(fsgnjx_d, 0),
    PLAIN(fmin_s, 1), PLAIN(fmax_s, 1), PLAIN(fmin_d, 0), PLAIN(fmax_d, 0),
    PLAIN(feq_s, 1), PLAIN(flt_s, 1), PLAIN(fle_s, 1), PLAIN(feq_d, 0), PLAIN(flt_d, 0), PLAIN(fle_d, 0),
    PLAIN(fclass_s, 1), PLAIN(fclass_d, 0), PLAIN(fmv_x_w, 1), PLAIN(fmv_x_d, 0), PLAIN(fmv_w_x, 0), PLAIN(fmv_d_x, 0),
};
#define COUNT(a) (sizeof a / sizeof a[0])

int main(u64 hartid) {
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    __asm__ volatile("csrw mtvec, %0" :: "r"(fp_trap));
    puts("fp: F and D extensions\n");
    test_state();
    test_memory();
    samples();
    for (unsigned i = 0; i < COUNT(binary_ops); i++) run_binary(&binary_ops[i]);
    for (unsigned i = 0; i < COUNT(fused_ops); i++) run_fused(&fused_ops[i]);
    for (unsigned i = 0; i < COUNT(unary_ops); i++) run_unary(&unary_ops[i]);
    for (unsigned i = 0; i < COUNT(plain_ops); i++) run_plain(&plain_ops[i]);
    puts("fp: traps ");
    put_u64(trap_count);
    puts(" total ");
    put_hex(total);
    puts("\nfp: done\n");
    pass();
}
