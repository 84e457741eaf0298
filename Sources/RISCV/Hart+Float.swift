// The F and D extensions: f0-f31, fcsr, mstatus.FS, and the instructions, which
// run out of line (a block returns to `run` before each one, as for a load off the
// fast path) so that the integer handlers carry no floating-point state or checks.
// The arithmetic is SoftFloat.swift's.

extension Hart {
    static let mstatusFS: UInt64 = 3 << 13
    static let mstatusSD: UInt64 = 1 << 63

    /// mstatus as read: SD summarizes FS = Dirty (XS and VS are always 0).
    var mstatusWithSD: UInt64 {
        mstatus & Self.mstatusFS == Self.mstatusFS ? mstatus | Self.mstatusSD : mstatus
    }

    /// FP state was written: FS becomes Dirty.
    @inline(__always) func markFloatDirty() { mstatus |= Self.mstatusFS }

    /// fcsr: frm in bits 7:5, fflags in 4:0.
    var fcsr: UInt64 { UInt64(frm) << 5 | UInt64(fflags) }

    /// FP instructions and the FP CSRs are illegal while mstatus.FS is Off.
    @inline(__always) func requireFloat() throws(Trap) {
        if mstatus & Self.mstatusFS == 0 { throw illegal }
    }

    /// A single from a register: the low half if it is NaN-boxed (upper 32 bits all
    /// ones), else the canonical NaN.
    @inline(__always) static func unboxed(_ v: UInt64) -> UInt64 {
        v >> 32 == 0xffff_ffff ? v & 0xffff_ffff : FPFormat.single.canonicalNaN
    }

    @inline(__always) static func boxed(_ single: UInt64) -> UInt64 { 0xffff_ffff_0000_0000 | single }

    /// The rounding mode of an instruction's rm field (7: frm); reserved modes, and
    /// dynamic rounding with a reserved frm, are illegal.
    func rounding(_ bits: UInt32) throws(Trap) -> FPRounding {
        var rm = UInt8((bits >> 12) & 7)
        if rm == 7 { rm = frm }
        guard let mode = FPRounding(rawValue: rm) else { throw illegal }
        return mode
    }

    /// FLW, FLD, FSW, FSD (and their compressed forms), the fused multiply-adds and
    /// OP-FP. `address` is rs1 + imm for the loads and stores.
    func executeFloat(_ op: DecodedOp, _ address: UInt64) throws(Trap) {
        try requireFloat()
        switch op.kind {
        case .flw:
            let v = try loadSlowly(address, 4)
            f[Int(op.rd)] = Self.boxed(v)
            markFloatDirty()
        case .fld:
            f[Int(op.rd)] = try loadSlowly(address, 8)
            markFloatDirty()
        case .fsw:
            try storeSlowly(address, 4, f[Int(op.rs2)] & 0xffff_ffff)
        case .fsd:
            try storeSlowly(address, 8, f[Int(op.rs2)])
        case .fmadd, .fmsub, .fnmsub, .fnmadd:
            try fusedMultiplyAdd(op)
        default:
            try operateFloat(op.bits)
        }
    }

    private func fusedMultiplyAdd(_ op: DecodedOp) throws(Trap) {
        let i = op.bits
        let fmt = (i >> 25) & 3
        guard fmt <= 1 else { throw illegal }
        let double = fmt == 1
        let format: FPFormat = double ? .double : .single
        var arithmetic = SoftFloat(try rounding(i))
        func operand(_ r: UInt32) -> UInt64 { double ? f[Int(r)] : Self.unboxed(f[Int(r)]) }
        let result = arithmetic.fusedMultiplyAdd(
            operand((i >> 15) & 31), operand((i >> 20) & 31), operand(i >> 27), format,
            negateProduct: op.kind == .fnmsub || op.kind == .fnmadd,
            negateAddend: op.kind == .fmsub || op.kind == .fnmadd)
        f[Int((i >> 7) & 31)] = double ? result : Self.boxed(result)
        fflags |= arithmetic.flags
        markFloatDirty()
    }

    /// The OP-FP major opcode (0x53).
    private func operateFloat(_ i: UInt32) throws(Trap) {
        let rd = Int((i >> 7) & 31), rs1 = Int((i >> 15) & 31), rs2Field = (i >> 20) & 31
        let rs2 = Int(rs2Field)
        let f3 = (i >> 12) & 7, f7 = i >> 25
        guard f7 & 3 <= 1 else { throw illegal }  // H and Q are not implemented
        let double = f7 & 1 == 1
        let format: FPFormat = double ? .double : .single
        func operand(_ r: Int) -> UInt64 { double ? f[r] : Self.unboxed(f[r]) }
        var flagsRaised: UInt8 = 0
        var floatResult: UInt64?
        var integerResult: UInt64?

        switch f7 >> 2 {
        case 0x00, 0x01, 0x02, 0x03:  // FADD, FSUB, FMUL, FDIV
            var arithmetic = SoftFloat(try rounding(i))
            let a = operand(rs1), b = operand(rs2)
            switch f7 >> 2 {
            case 0x00: floatResult = arithmetic.add(a, b, format)
            case 0x01: floatResult = arithmetic.add(a, b ^ format.signBit, format)
            case 0x02: floatResult = arithmetic.multiply(a, b, format)
            default: floatResult = arithmetic.divide(a, b, format)
            }
            flagsRaised = arithmetic.flags
        case 0x0b:  // FSQRT
            guard rs2 == 0 else { throw illegal }
            var arithmetic = SoftFloat(try rounding(i))
            floatResult = arithmetic.squareRoot(operand(rs1), format)
            flagsRaised = arithmetic.flags
        case 0x04:  // FSGNJ, FSGNJN, FSGNJX
            let a = operand(rs1), b = operand(rs2), sign = format.signBit
            switch f3 {
            case 0: floatResult = (a & ~sign) | (b & sign)
            case 1: floatResult = (a & ~sign) | (~b & sign)
            case 2: floatResult = a ^ (b & sign)
            default: throw illegal
            }
        case 0x05:  // FMIN, FMAX
            guard f3 <= 1 else { throw illegal }
            var arithmetic = SoftFloat(.nearestEven)
            floatResult = arithmetic.minMax(operand(rs1), operand(rs2), format, maximum: f3 == 1)
            flagsRaised = arithmetic.flags
        case 0x08:  // FCVT.S.D (fmt S, rs2 1), FCVT.D.S (fmt D, rs2 0)
            guard rs2 == (double ? 0 : 1) else { throw illegal }
            var arithmetic = SoftFloat(try rounding(i))
            floatResult = double
                ? arithmetic.convert(Self.unboxed(f[rs1]), from: .single, to: .double)
                : arithmetic.convert(f[rs1], from: .double, to: .single)
            flagsRaised = arithmetic.flags
        case 0x14:  // FLE, FLT, FEQ
            let comparison: SoftFloat.Comparison
            switch f3 {
            case 0: comparison = .lessOrEqual
            case 1: comparison = .less
            case 2: comparison = .equal
            default: throw illegal
            }
            var arithmetic = SoftFloat(.nearestEven)
            integerResult = arithmetic.compare(operand(rs1), operand(rs2), format, comparison) ? 1 : 0
            flagsRaised = arithmetic.flags
        case 0x18:  // FCVT.W/WU/L/LU from S or D
            guard rs2 <= 3 else { throw illegal }
            var arithmetic = SoftFloat(try rounding(i))
            integerResult = arithmetic.toInteger(operand(rs1), format, signed: rs2 & 1 == 0, bits: rs2 < 2 ? 32 : 64)
            flagsRaised = arithmetic.flags
        case 0x1a:  // FCVT.S/D from W/WU/L/LU
            guard rs2 <= 3 else { throw illegal }
            var arithmetic = SoftFloat(try rounding(i))
            let v = x[rs1]
            let value: UInt64, signed = rs2 & 1 == 0
            if rs2 < 2 {
                value = signed ? Self.sext32(v) : v & 0xffff_ffff
            } else {
                value = v
            }
            let negative = signed && Int64(bitPattern: value) < 0
            floatResult = arithmetic.fromInteger(magnitude: negative ? 0 &- value : value, negative: negative, format)
            flagsRaised = arithmetic.flags
        case 0x1c:  // FMV.X.W / FMV.X.D (f3 0), FCLASS (f3 1)
            guard rs2 == 0 else { throw illegal }
            switch f3 {
            case 0: integerResult = double ? f[rs1] : Self.sext32(f[rs1])
            case 1: integerResult = SoftFloat.classify(operand(rs1), format)
            default: throw illegal
            }
        case 0x1e:  // FMV.W.X / FMV.D.X
            guard rs2 == 0, f3 == 0 else { throw illegal }
            floatResult = double ? x[rs1] : x[rs1] & 0xffff_ffff
        default:
            throw illegal
        }

        if let r = floatResult {
            f[rd] = double ? r : Self.boxed(r)
            markFloatDirty()
        }
        if let r = integerResult, rd != 0 { x[rd] = r }
        if flagsRaised != 0 {
            fflags |= flagsRaised
            markFloatDirty()
        }
    }
}
