import Testing
@testable import RISCV

/// The F and D extensions: decoding, the CSRs and mstatus.FS, NaN-boxing and the
/// canonical NaN on the hart, and SoftFloat's arithmetic against the host's IEEE
/// round-to-nearest-even results. (All rounding modes and flags are compared with
/// QEMU by the fp guest, Tests/SystemTests/DifferentialTests.swift.)
@Suite struct FloatTests {
    func run(_ source: String, budget: Int = 1000) throws -> Hart {
        let (hart, memory) = try makeHart(source)
        _ = hart.run(budget: budget)
        withExtendedLifetime(memory) {}  // the hart holds its memory unowned
        return hart
    }

    /// Machine-mode trap handler that records mcause in s10 and mtval in s11 and skips
    /// the instruction (2 or 4 bytes).
    static let skippingHandler = """
        .align 2
        handler:
        csrr s10, mcause
        csrr s11, mtval
        csrr t6, mepc
        andi t5, s11, 3
        addi t6, t6, 2
        addi t5, t5, -3
        bnez t5, 1f
        addi t6, t6, 2
        1: csrw mepc, t6
        mret
        """

    // MARK: - Decoding

    @Test func floatEncodingsDecodeToTheirOperations() {
        let table = CompressedTable.shared
        func kind(_ word: UInt32) -> OpKind { DecodedOp(decoding: word, compressed: table).kind }
        #expect(kind(0x0085_2007) == .flw)      // flw f0, 8(a0)
        #expect(kind(0x0085_3007) == .fld)      // fld f0, 8(a0)
        #expect(kind(0x0005_2427) == .fsw)      // fsw f0, 8(a0)
        #expect(kind(0x0005_3427) == .fsd)      // fsd f0, 8(a0)
        #expect(kind(0x0085_4007) == .illegal)  // LOAD-FP with funct3 4 (no Q)
        #expect(kind(0x1a20_f043) == .fmadd)    // fmadd.d ft0, ft1, ft2, ft3
        #expect(kind(0x1a20_f047) == .fmsub)
        #expect(kind(0x1a20_f04b) == .fnmsub)
        #expect(kind(0x1a20_f04f) == .fnmadd)
        #expect(kind(0x1c20_f043) == .illegal)  // fmadd.h (fmt 2)
        #expect(kind(0x0220_f053) == .fp)       // fadd.d ft0, ft1, ft2
        // f0 is a register: the destination is not steered to the sink slot.
        let load = DecodedOp(decoding: 0x0085_3007, compressed: table)
        #expect(load.rd == 0 && load.rs1 == 10 && load.imm == 8)
        let store = DecodedOp(decoding: 0x0005_3427, compressed: table)
        #expect(store.rs2 == 0 && store.rs1 == 10 && store.imm == 8)
    }

    @Test func compressedFloatLoadsAndStoresExpandLikeTheAssembler() throws {
        // Each compressed form next to its 32-bit expansion, as the assembler encodes them.
        let forms = [("c.fld fs0, 8(a0)", "fld fs0, 8(a0)"), ("c.fsd fa5, 248(s1)", "fsd fa5, 248(s1)"),
                     ("c.fldsp f0, 504(sp)", "fld f0, 504(sp)"), ("c.fsdsp ft11, 0(sp)", "fsd ft11, 0(sp)"),
                     ("c.fldsp fs1, 8(sp)", "fld fs1, 8(sp)"), ("c.fsdsp f0, 136(sp)", "fsd f0, 136(sp)")]
        for (short, long) in forms {
            let bytes = try assemble("\(short)\n.option norvc\n\(long)")
            let half = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
            let word = UInt32(bytes[2]) | UInt32(bytes[3]) << 8 | UInt32(bytes[4]) << 16 | UInt32(bytes[5]) << 24
            #expect(half & 3 != 3, "\(short) assembled to a 32-bit instruction")
            #expect(Hart.expandCompressed(half) == word, "\(short)")
        }
    }

    // MARK: - State

    @Test func fpInstructionsAndCSRsTrapWhileFSIsOff() throws {
        let h = try run("""
            la t0, handler
            csrw mtvec, t0
            li s10, -1
            fadd.d ft0, ft1, ft2
            mv a0, s10
            mv a1, s11
            li s10, -1
            csrr a2, fflags
            mv a3, s10
            li s10, -1
            c.fldsp ft0, 0(sp)
            mv a4, s10
            mv a5, s11
            csrr a6, mstatus
            1: j 1b
            \(Self.skippingHandler)
            """)
        #expect(h[register: 10] == 2)
        #expect(h[register: 11] == 0x0220_f053)
        #expect(h[register: 13] == 2)
        #expect(h[register: 14] == 2)
        #expect(h[register: 15] == 0x2002)      // the compressed instruction's 16 bits
        #expect(h[register: 16] & (3 << 13) == 0)
    }

    @Test func fsTracksWritesAndSDSummarizesIt() throws {
        let h = try run("""
            li t0, 0x2000
            csrs mstatus, t0           # FS = Initial
            csrr a0, mstatus
            fmv.x.d t1, ft0            # reads only
            csrr a1, mstatus
            fmv.d.x ft0, zero          # writes an FP register
            csrr a2, mstatus
            csrr a3, sstatus
            li t0, 0x6000
            csrc mstatus, t0
            li t0, 0x4000
            csrs mstatus, t0           # FS = Clean
            csrwi fflags, 0            # writes fcsr
            csrr a4, mstatus
            csrr a5, misa
            1: j 1b
            """)
        #expect(h[register: 10] >> 13 & 3 == 1 && h[register: 10] >> 63 == 0)
        #expect(h[register: 11] >> 13 & 3 == 1)
        #expect(h[register: 12] >> 13 & 3 == 3 && h[register: 12] >> 63 == 1)
        #expect(h[register: 13] >> 13 & 3 == 3 && h[register: 13] >> 63 == 1)
        #expect(h[register: 14] >> 13 & 3 == 3)
        #expect(h[register: 15] & 0x28 == 0x28)  // F and D
    }

    @Test func fcsrFrmAndFflagsAreOneRegister() throws {
        let h = try run("""
            li t0, 0x2000
            csrs mstatus, t0
            li t0, 0x1ff
            csrw fcsr, t0
            csrr a0, frm
            csrr a1, fflags
            csrr a2, fcsr              # bit 8 is not part of fcsr
            csrwi frm, 2
            csrrci a3, fflags, 0x10    # old flags, clears NV
            csrr a4, fcsr
            1: j 1b
            """)
        #expect(h[register: 10] == 7)
        #expect(h[register: 11] == 0x1f)
        #expect(h[register: 12] == 0xff)
        #expect(h[register: 13] == 0x1f)
        #expect(h[register: 14] == 0x4f)
    }

    @Test func reservedRoundingModesAreIllegal() throws {
        let h = try run("""
            la t0, handler
            csrw mtvec, t0
            li t0, 0x2000
            csrs mstatus, t0
            li s10, 0
            .insn r 0x53, 5, 0x01, ft0, ft1, ft2   # fadd.d, rm 5
            mv a0, s10
            mv a1, s11
            li s10, 0
            .insn r 0x53, 6, 0x00, ft0, ft1, ft2   # fadd.s, rm 6
            mv a2, s10
            li s10, 0
            csrwi frm, 7
            fadd.d ft0, ft1, ft2, dyn               # dynamic with frm 7
            mv a3, s10
            li s10, 0
            fsgnj.d ft0, ft1, ft2                   # no rounding mode: fine
            mv a4, s10
            li s10, 0
            csrwi frm, 1
            fadd.d ft0, ft1, ft2, dyn               # dynamic with frm 1
            mv a5, s10
            1: j 1b
            \(Self.skippingHandler)
            """)
        #expect(h[register: 10] == 2)
        #expect(h[register: 11] == 0x0220_d053)
        #expect(h[register: 12] == 2)
        #expect(h[register: 13] == 2)
        #expect(h[register: 14] == 0)
        #expect(h[register: 15] == 0)
    }

    @Test func singlesAreNaNBoxedAndNaNsAreCanonical() throws {
        let (h, mem) = try makeHart("""
            li t0, 0x2000
            csrs mstatus, t0
            la a0, data
            flw ft0, 0(a0)             # 1.0f, boxed on load
            fmv.x.d a1, ft0
            fld ft1, 0(a0)             # the same word with the next: not a boxed single
            fadd.s ft2, ft1, ft0       # the unboxed operand reads as the canonical NaN
            fmv.x.d a2, ft2
            fclass.s a3, ft1           # quiet NaN
            fsgnjn.s ft3, ft1, ft0     # sign injection into the canonical NaN
            fmv.x.d a4, ft3
            fcvt.d.w ft4, zero
            fdiv.d ft5, ft4, ft4       # 0/0
            fmv.x.d a5, ft5
            csrr a6, fflags
            li t1, 0x7ff4000000000001  # a signalling NaN with a payload
            fmv.d.x ft6, t1
            fmin.d ft7, ft6, ft1       # ft1 is a double (a normal number)
            fmv.x.d a7, ft7            # the other operand
            fsw ft1, 8(a0)             # stores the low half as is
            1: j 1b
            .align 3
            data: .word 0x3f800000, 0x12345678, 0, 0
            """)
        _ = h.run(budget: 1000)
        #expect(h[register: 11] == 0xffff_ffff_3f80_0000)
        #expect(h[register: 12] == 0xffff_ffff_7fc0_0000)
        #expect(h[register: 13] == 1 << 9)
        #expect(h[register: 14] == 0xffff_ffff_ffc0_0000)
        #expect(h[register: 15] == 0x7ff8_0000_0000_0000)
        #expect(h[register: 16] == 0x10)
        #expect(h[register: 17] == 0x1234_5678_3f80_0000)
        #expect(h[floatRegister: 7] == 0x1234_5678_3f80_0000)
        let data = UInt64(h[register: 10]) + 8
        #expect(mem.read32(data) == 0x3f80_0000)
    }

    @Test func triggerCSRsReadAsNoTriggers() throws {
        let h = try run("""
            csrr a0, tselect
            li t0, 1
            csrw tselect, t0
            csrr a1, tselect
            csrr a2, tdata1
            csrr a3, 0x7a4             # tinfo
            li a4, 1
            1: j 1b
            """)
        #expect(h[register: 14] == 1)  // reached: no trap
        #expect(h[register: 10] == 0 && h[register: 11] == 0 && h[register: 12] == 0)
        #expect(h[register: 13] == 1)
    }

    // MARK: - SoftFloat against the host (round to nearest, ties to even)

    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_f491_4f6c_dd1d
        }
        /// Doubles spread over all magnitudes, with many near 1, tiny and huge.
        mutating func double() -> UInt64 {
            let r = next(), m = next() & 0xf_ffff_ffff_ffff, s = (r >> 63) << 63
            switch r & 3 {
            case 0: return next()
            case 1: return s | ((1023 - 30 + (r >> 8) % 60) << 52) | m
            case 2: return s | (((r >> 8) % 60) << 52) | m
            default: return s | ((2046 - (r >> 8) % 60) << 52) | m
            }
        }
        mutating func single() -> UInt64 {
            let r = next(), m = next() & 0x7f_ffff, s = (r >> 63) << 31
            switch r & 3 {
            case 0: return next() & 0xffff_ffff
            case 1: return s | ((127 - 20 + (r >> 8) % 40) << 23) | m
            case 2: return s | (((r >> 8) % 30) << 23) | m
            default: return s | ((254 - (r >> 8) % 30) << 23) | m
            }
        }
    }

    func expectSame(_ ours: UInt64, _ host: Double, _ what: String) {
        if host.isNaN {
            #expect(ours == FPFormat.double.canonicalNaN, "\(what)")
        } else {
            #expect(ours == host.bitPattern, "\(what): \(String(ours, radix: 16)) vs \(String(host.bitPattern, radix: 16))")
        }
    }

    func expectSame(_ ours: UInt64, _ host: Float, _ what: String) {
        if host.isNaN {
            #expect(ours == FPFormat.single.canonicalNaN, "\(what)")
        } else {
            #expect(ours == UInt64(host.bitPattern), "\(what): \(String(ours, radix: 16)) vs \(String(host.bitPattern, radix: 16))")
        }
    }

    @Test func doubleArithmeticMatchesTheHost() {
        var g = Generator(state: 0x1234_5678_9abc_def1)
        for _ in 0..<20000 {
            let a = g.double(), b = g.double(), c = g.double()
            let x = Double(bitPattern: a), y = Double(bitPattern: b), z = Double(bitPattern: c)
            var s = SoftFloat(.nearestEven)
            let what = "\(String(a, radix: 16)) \(String(b, radix: 16)) \(String(c, radix: 16))"
            expectSame(s.add(a, b, .double), x + y, "add \(what)")
            expectSame(s.add(a, b ^ (1 << 63), .double), x - y, "sub \(what)")
            expectSame(s.multiply(a, b, .double), x * y, "mul \(what)")
            expectSame(s.divide(a, b, .double), x / y, "div \(what)")
            expectSame(s.squareRoot(a, .double), x.squareRoot(), "sqrt \(what)")
            expectSame(s.fusedMultiplyAdd(a, b, c, .double, negateProduct: false, negateAddend: false),
                       z.addingProduct(x, y), "fma \(what)")
            // A cancelling addend: minus the rounded product.
            let p = (x * y).bitPattern ^ (1 << 63)
            expectSame(s.fusedMultiplyAdd(a, b, p, .double, negateProduct: false, negateAddend: false),
                       Double(bitPattern: p).addingProduct(x, y), "fma cancel \(what)")
            expectSame(s.convert(a, from: .double, to: .single), Float(x), "narrow \(what)")
        }
    }

    @Test func singleArithmeticMatchesTheHost() {
        var g = Generator(state: 0x0fed_cba9_8765_4321)
        for _ in 0..<20000 {
            let a = g.single(), b = g.single(), c = g.single()
            let x = Float(bitPattern: UInt32(a)), y = Float(bitPattern: UInt32(b)), z = Float(bitPattern: UInt32(c))
            var s = SoftFloat(.nearestEven)
            let what = "\(String(a, radix: 16)) \(String(b, radix: 16)) \(String(c, radix: 16))"
            expectSame(s.add(a, b, .single), x + y, "add \(what)")
            expectSame(s.multiply(a, b, .single), x * y, "mul \(what)")
            expectSame(s.divide(a, b, .single), x / y, "div \(what)")
            expectSame(s.squareRoot(a, .single), x.squareRoot(), "sqrt \(what)")
            expectSame(s.fusedMultiplyAdd(a, b, c, .single, negateProduct: false, negateAddend: false),
                       z.addingProduct(x, y), "fma \(what)")
            let wide = s.convert(a, from: .single, to: .double)
            expectSame(wide, Double(x), "widen \(what)")
        }
    }

    @Test func integerConversionsSaturateAndRound() {
        var s = SoftFloat(.nearestEven)
        let d = { (v: Double) in v.bitPattern }
        #expect(s.toInteger(d(2.5), .double, signed: true, bits: 64) == 2)
        #expect(s.toInteger(d(3.5), .double, signed: true, bits: 64) == 4)
        #expect(s.toInteger(d(-2147483648.4), .double, signed: true, bits: 32) == 0xffff_ffff_8000_0000)
        #expect(s.flags == FPFlag.inexact)
        s = SoftFloat(.nearestEven)
        #expect(s.toInteger(d(2147483647.5), .double, signed: true, bits: 32) == 0x7fff_ffff)
        #expect(s.flags == FPFlag.invalid)  // out of range: NV alone
        s = SoftFloat(.nearestEven)
        #expect(s.toInteger(FPFormat.double.canonicalNaN, .double, signed: true, bits: 64) == UInt64(Int64.max))
        #expect(s.toInteger(d(-1), .double, signed: false, bits: 64) == 0)
        #expect(s.toInteger(d(4294967296), .double, signed: false, bits: 32) == .max)  // 2^32-1, sign-extended
        #expect(s.toInteger(d(-9223372036854775808), .double, signed: true, bits: 64) == 1 << 63)
        s = SoftFloat(.nearestMaxMagnitude)
        #expect(s.toInteger(d(-2.5), .double, signed: true, bits: 64) == UInt64(bitPattern: -3))
        s = SoftFloat(.down)
        #expect(s.toInteger(d(-0.25), .double, signed: false, bits: 64) == 0)
        #expect(s.flags == FPFlag.invalid)
        s = SoftFloat(.towardZero)
        #expect(s.toInteger(d(-0.75), .double, signed: false, bits: 64) == 0)
        #expect(s.flags == FPFlag.inexact)
        s = SoftFloat(.up)
        #expect(s.fromInteger(magnitude: (1 << 53) + 1, negative: false, .double) == d(9007199254740994))
        #expect(s.fromInteger(magnitude: (1 << 53) + 1, negative: true, .double) == d(-9007199254740992))
    }

    @Test func underflowIsDetectedAfterRounding() {
        // (1 - 2^-54) · 2^-1022 is tiny before rounding; rounded to 53 bits with an
        // unbounded exponent (ties to even) it is 2^-1022, the smallest normal: not tiny
        // after rounding, so only NX (RISC-V's rule, as on QEMU).
        let justBelow: UInt64 = (1 << 63) - (1 << 9)  // (2 - 2^-53) / 2 over 2^62
        var s = SoftFloat(.nearestEven)
        #expect(s.roundPack(false, -1023, justBelow, .double) == 0x0010_0000_0000_0000)
        #expect(s.flags == FPFlag.inexact)
        s = SoftFloat(.towardZero)
        #expect(s.roundPack(false, -1023, justBelow, .double) == 0x000f_ffff_ffff_ffff)
        #expect(s.flags == FPFlag.inexact | FPFlag.underflow)
        // Above the smallest normal before rounding: never tiny.
        s = SoftFloat(.up)
        #expect(s.multiply(0x0010_0000_0000_0001, 0x3fef_ffff_ffff_ffff, .double) == 0x0010_0000_0000_0001)
        #expect(s.flags == FPFlag.inexact)
        s = SoftFloat(.nearestEven)
        #expect(s.multiply(0x0010_0000_0000_0000, 0x3fe0_0000_0000_0000, .double) == 0x0008_0000_0000_0000)
        #expect(s.flags == 0)  // an exact subnormal raises nothing
    }
}
