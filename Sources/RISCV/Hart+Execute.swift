// The instructions blocks do not run in their handlers (Threaded.swift): loads and
// stores off the fast path, A, F and D (Hart+Float.swift), Zicsr, Zifencei, the
// privileged instructions and illegal encodings; and the M extension's division rules, which the handlers share.

extension Hart {
    @inline(__always) static func sext32(_ v: UInt64) -> UInt64 { UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v))) }
    @inline(__always) static func sext32(_ v: UInt32) -> UInt64 { UInt64(bitPattern: Int64(Int32(bitPattern: v))) }

    var illegal: Trap { Trap(cause: Trap.illegal, value: currentInstruction) }

    /// The instructions a block leaves to this function: loads and stores off the
    /// fast path, atomics, fences, system instructions and illegal encodings.
    /// `op` is at `self.pc` (its page at `base`) and `instructionsRetired` counts the
    /// instructions before it. On return `self.pc` is the next instruction; a trap
    /// leaves it at `op` (WFI that waits: after it, with WFI retired).
    @inline(never)
    func executeOutOfLine(_ op: DecodedOp, _ base: UInt64) throws(Trap) {
        let a = x[Int(op.rs1)], b = x[Int(op.rs2)]
        let d = Int(op.rd)
        let address = a &+ UInt64(bitPattern: Int64(op.imm))
        var next = base &+ UInt64(op.next)
        currentInstruction = UInt64(op.bits)
        // A superinstruction whose load left the fast path runs only its own
        // instruction; the branch after it starts the next block.
        switch op.kind.unfused {
        case .lb: x[d] = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: try loadSlowly(address, 1))))
        case .lh: x[d] = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: try loadSlowly(address, 2))))
        case .lw: x[d] = Self.sext32(try loadSlowly(address, 4))
        case .ld: x[d] = try loadSlowly(address, 8)
        case .lbu: x[d] = try loadSlowly(address, 1)
        case .lhu: x[d] = try loadSlowly(address, 2)
        case .lwu: x[d] = try loadSlowly(address, 4)
        case .sb: try storeSlowly(address, 1, b)
        case .sh: try storeSlowly(address, 2, b)
        case .sw: try storeSlowly(address, 4, b)
        case .sd: try storeSlowly(address, 8, b)
        case .illegal:
            throw illegal
        case .fence:
            break  // memory is sequentially consistent
        case .fenceI:
            codeEpoch &+= 1  // blocks are compared with memory again
        case .lrW, .lrD, .scW, .scD, .amoW, .amoD:
            try atomic(op, a, b)
        case .wfi:
            if privilege == .user || (privilege == .supervisor && mstatus & Self.mstatusTW != 0) { throw illegal }
            if !hasWakeUpInterrupt {
                self.pc = next  // WFI retires; the hart resumes after it
                instructionsRetired &+= 1
                throw Trap(cause: Self.waitCause, value: 0)
            }
        case .flw, .fld, .fsw, .fsd, .fmadd, .fmsub, .fnmsub, .fnmadd, .fp:
            try executeFloat(op, address)
        case .ecall, .ebreak, .mret, .sret, .sfenceVMA,
             .csrrw, .csrrs, .csrrc, .csrrwi, .csrrsi, .csrrci:
            try system(op, a, &next)
        default:
            preconditionFailure("\(op.kind) runs inline")
        }
        self.pc = next
    }

    // Division as the M extension defines it for a zero divisor and for overflow.
    @inline(__always) static func div(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let sa = Int64(bitPattern: a), sb = Int64(bitPattern: b)
        if b == 0 { return .max }
        if sa == .min && sb == -1 { return a }
        return UInt64(bitPattern: sa / sb)
    }
    @inline(__always) static func rem(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let sa = Int64(bitPattern: a), sb = Int64(bitPattern: b)
        if b == 0 { return a }
        if sa == .min && sb == -1 { return 0 }
        return UInt64(bitPattern: sa % sb)
    }
    @inline(__always) static func divw(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let sa = Int32(truncatingIfNeeded: a), sb = Int32(truncatingIfNeeded: b)
        if sb == 0 { return .max }
        if sa == .min && sb == -1 { return sext32(UInt32(bitPattern: sa)) }
        return sext32(UInt32(bitPattern: sa / sb))
    }
    @inline(__always) static func divuw(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let ua = UInt32(truncatingIfNeeded: a), ub = UInt32(truncatingIfNeeded: b)
        return ub == 0 ? .max : sext32(ua / ub)
    }
    @inline(__always) static func remw(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let sa = Int32(truncatingIfNeeded: a), sb = Int32(truncatingIfNeeded: b)
        if sb == 0 { return sext32(UInt32(bitPattern: sa)) }
        if sa == .min && sb == -1 { return 0 }
        return sext32(UInt32(bitPattern: sa % sb))
    }
    @inline(__always) static func remuw(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let ua = UInt32(truncatingIfNeeded: a), ub = UInt32(truncatingIfNeeded: b)
        return sext32(ub == 0 ? ua : ua % ub)
    }

    /// LR, SC and the AMOs. `a` is the address register, `b` the operand.
    private func atomic(_ op: DecodedOp, _ addr: UInt64, _ operand: UInt64) throws(Trap) {
        let size: Int
        switch op.kind {
        case .lrW, .scW, .amoW: size = 4
        default: size = 8
        }
        let d = Int(op.rd)
        switch op.kind {
        case .lrW, .lrD:
            guard addr & UInt64(size - 1) == 0 else { throw Trap(cause: Trap.loadMisaligned, value: addr) }
            let v = try load(addr, size)
            reservationValid = true
            reservationAddress = addr
            reservationValue = v
            x[d] = size == 4 ? Self.sext32(v) : v
        case .scW, .scD:
            // As on QEMU, an SC whose address does not match the reservation fails
            // without touching memory: no alignment check, no translation, no fault.
            // A matching address is aligned, since the LR that set it was.
            var ok = false
            if reservationValid && reservationAddress == addr {
                let old = try amo(.compareAndSwap, addr, size, operand, expected: reservationValue)
                let mask: UInt64 = size == 4 ? 0xffff_ffff : .max
                ok = old & mask == reservationValue & mask
            }
            reservationValid = false
            x[d] = ok ? 0 : 1
        default:
            let old = try amo(AtomicOp(rawValue: UInt8(op.imm))!, addr, size, operand)
            x[d] = size == 4 ? Self.sext32(old) : old
        }
    }

    /// ECALL, EBREAK, xRET, SFENCE.VMA and the CSR instructions (`pc`,
    /// `instructionsRetired` and `currentInstruction` are up to date).
    private func system(_ op: DecodedOp, _ a: UInt64, _ next: inout UInt64) throws(Trap) {
        switch op.kind {
        case .ecall:
            let cause = privilege == .machine ? Trap.ecallM : privilege == .supervisor ? Trap.ecallS : Trap.ecallU
            throw Trap(cause: cause, value: 0)
        case .ebreak:  // tval 0, which the spec allows and QEMU does
            throw Trap(cause: Trap.breakpoint, value: 0)
        case .mret:
            try mret()
            next = pc
        case .sret:
            try sret()
            next = pc
        case .sfenceVMA:
            if privilege == .user || (privilege == .supervisor && mstatus & Self.mstatusTVM != 0) { throw illegal }
            flushTLB()
        default:
            let csr = Int(op.imm)
            let immediateForm = op.kind == .csrrwi || op.kind == .csrrsi || op.kind == .csrrci
            let source = immediateForm ? UInt64(op.rs1) : a
            // CSRRW always writes. CSRRS/CSRRC write only when the mask is non-zero: as on
            // QEMU, a zero value in a register other than x0 is no write either (no
            // read-only trap, no side effect), not just rs1 = x0 / uimm = 0.
            let swap = op.kind == .csrrw || op.kind == .csrrwi
            let writes = swap || source != 0
            let old = try readCSR(csr, forWrite: writes)
            if writes {
                let new: UInt64
                switch op.kind {
                case .csrrw, .csrrwi: new = source
                case .csrrs, .csrrsi: new = old | source
                default: new = old & ~source
                }
                try writeCSR(csr, new)
            }
            x[Int(op.rd)] = old
        }
    }
}
