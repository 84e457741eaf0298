// Decode and execute: RV64I, M, A, Zicsr, Zifencei, Zihintpause and the
// privileged instructions. Compressed instructions are expanded first
// (Hart+Compressed.swift) and executed as their 32-bit forms.

extension Hart {
    @inline(__always) func rd(_ i: UInt32) -> Int { Int((i >> 7) & 31) }
    @inline(__always) func rs1(_ i: UInt32) -> UInt64 { x[Int((i >> 15) & 31)] }
    @inline(__always) func rs2(_ i: UInt32) -> UInt64 { x[Int((i >> 20) & 31)] }
    @inline(__always) func setRd(_ i: UInt32, _ v: UInt64) {
        let r = Int((i >> 7) & 31)
        if r != 0 { x[r] = v }
    }
    @inline(__always) static func immI(_ i: UInt32) -> UInt64 { UInt64(bitPattern: Int64(Int32(bitPattern: i) >> 20)) }
    @inline(__always) static func immS(_ i: UInt32) -> UInt64 {
        UInt64(bitPattern: Int64((Int32(bitPattern: i & 0xfe00_0000) >> 20) | Int32((i >> 7) & 0x1f)))
    }
    @inline(__always) static func immB(_ i: UInt32) -> UInt64 {
        let v = (Int32(bitPattern: i & 0x8000_0000) >> 19) | Int32((i & 0x80) << 4) | Int32((i >> 20) & 0x7e0)
            | Int32((i >> 7) & 0x1e)
        return UInt64(bitPattern: Int64(v))
    }
    @inline(__always) static func immU(_ i: UInt32) -> UInt64 { UInt64(bitPattern: Int64(Int32(bitPattern: i & 0xffff_f000))) }
    @inline(__always) static func immJ(_ i: UInt32) -> UInt64 {
        let v = (Int32(bitPattern: i & 0x8000_0000) >> 11) | Int32(i & 0xff000) | Int32((i >> 9) & 0x800)
            | Int32((i >> 20) & 0x7fe)
        return UInt64(bitPattern: Int64(v))
    }
    @inline(__always) static func sext32(_ v: UInt64) -> UInt64 { UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v))) }

    var illegal: Trap { Trap(cause: Trap.illegal, value: currentInstruction) }

    /// Executes one instruction (pc advances unless it traps).
    @inline(__always) func step() throws(Trap) {
        var inst = try fetch()
        var length: UInt64 = 4
        if inst & 3 != 3 {
            currentInstruction = UInt64(inst)
            let expanded = compressedTable[Int(inst & 0xffff)]
            guard expanded != 0 else { throw illegal }
            inst = expanded
            length = 2
        } else {
            currentInstruction = UInt64(inst)
        }
        var next = pc &+ length
        switch inst & 0x7f {
        case 0x37: setRd(inst, Self.immU(inst))  // LUI
        case 0x17: setRd(inst, pc &+ Self.immU(inst))  // AUIPC
        case 0x6f:  // JAL
            let target = pc &+ Self.immJ(inst)
            setRd(inst, next)
            next = target
        case 0x67:  // JALR
            guard (inst >> 12) & 7 == 0 else { throw illegal }
            let target = (rs1(inst) &+ Self.immI(inst)) & ~1
            setRd(inst, next)
            next = target
        case 0x63:  // branches
            let a = rs1(inst), b = rs2(inst)
            let taken: Bool
            switch (inst >> 12) & 7 {
            case 0: taken = a == b
            case 1: taken = a != b
            case 4: taken = Int64(bitPattern: a) < Int64(bitPattern: b)
            case 5: taken = Int64(bitPattern: a) >= Int64(bitPattern: b)
            case 6: taken = a < b
            case 7: taken = a >= b
            default: throw illegal
            }
            if taken { next = pc &+ Self.immB(inst) }
        case 0x03:  // loads
            let addr = rs1(inst) &+ Self.immI(inst)
            let v: UInt64
            switch (inst >> 12) & 7 {
            case 0: v = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: try load(addr, 1))))
            case 1: v = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: try load(addr, 2))))
            case 2: v = Self.sext32(try load(addr, 4))
            case 3: v = try load(addr, 8)
            case 4: v = try load(addr, 1)
            case 5: v = try load(addr, 2)
            case 6: v = try load(addr, 4)
            default: throw illegal
            }
            setRd(inst, v)
        case 0x23:  // stores
            let addr = rs1(inst) &+ Self.immS(inst)
            switch (inst >> 12) & 7 {
            case 0: try store(addr, 1, rs2(inst))
            case 1: try store(addr, 2, rs2(inst))
            case 2: try store(addr, 4, rs2(inst))
            case 3: try store(addr, 8, rs2(inst))
            default: throw illegal
            }
        case 0x13: try opImm(inst)
        case 0x1b: try opImm32(inst)
        case 0x33: try op(inst)
        case 0x3b: try op32(inst)
        case 0x0f:  // FENCE, FENCE.I (memory is sequentially consistent; no decoded-code cache to drop)
            guard (inst >> 12) & 7 <= 1 else { throw illegal }
        case 0x2f: try atomic(inst)
        case 0x73: try system(inst, &next)
        default: throw illegal
        }
        pc = next
    }

    private func opImm(_ i: UInt32) throws(Trap) {
        let a = rs1(i), imm = Self.immI(i)
        let v: UInt64
        switch (i >> 12) & 7 {
        case 0: v = a &+ imm
        case 2: v = Int64(bitPattern: a) < Int64(bitPattern: imm) ? 1 : 0
        case 3: v = a < imm ? 1 : 0
        case 4: v = a ^ imm
        case 6: v = a | imm
        case 7: v = a & imm
        case 1:
            guard i >> 26 == 0 else { throw illegal }
            v = a << (imm & 63)
        case 5:
            switch i >> 26 {
            case 0: v = a >> (imm & 63)
            case 0x10: v = UInt64(bitPattern: Int64(bitPattern: a) >> (imm & 63))
            default: throw illegal
            }
        default: throw illegal
        }
        setRd(i, v)
    }

    private func opImm32(_ i: UInt32) throws(Trap) {
        let a = UInt32(truncatingIfNeeded: rs1(i))
        let shamt = (i >> 20) & 31
        let v: UInt32
        switch (i >> 12) & 7 {
        case 0: v = a &+ UInt32(truncatingIfNeeded: Self.immI(i))
        case 1:
            guard i >> 25 == 0 else { throw illegal }
            v = a << shamt
        case 5:
            switch i >> 25 {
            case 0: v = a >> shamt
            case 0x20: v = UInt32(bitPattern: Int32(bitPattern: a) >> shamt)
            default: throw illegal
            }
        default: throw illegal
        }
        setRd(i, Self.sext32(UInt64(v)))
    }

    private func op(_ i: UInt32) throws(Trap) {
        let a = rs1(i), b = rs2(i)
        let f3 = (i >> 12) & 7
        let v: UInt64
        switch i >> 25 {
        case 0:
            switch f3 {
            case 0: v = a &+ b
            case 1: v = a << (b & 63)
            case 2: v = Int64(bitPattern: a) < Int64(bitPattern: b) ? 1 : 0
            case 3: v = a < b ? 1 : 0
            case 4: v = a ^ b
            case 5: v = a >> (b & 63)
            case 6: v = a | b
            default: v = a & b
            }
        case 0x20:
            switch f3 {
            case 0: v = a &- b
            case 5: v = UInt64(bitPattern: Int64(bitPattern: a) >> (b & 63))
            default: throw illegal
            }
        case 1:
            let sa = Int64(bitPattern: a), sb = Int64(bitPattern: b)
            switch f3 {
            case 0: v = a &* b
            case 1: v = UInt64(bitPattern: sa.multipliedFullWidth(by: sb).high)
            case 2:  // MULHSU
                let (high, _) = a.multipliedFullWidth(by: b)
                v = sa < 0 ? high &- b : high
            case 3: v = a.multipliedFullWidth(by: b).high
            case 4: v = b == 0 ? .max : (sa == .min && sb == -1 ? a : UInt64(bitPattern: sa / sb))
            case 5: v = b == 0 ? .max : a / b
            case 6: v = b == 0 ? a : (sa == .min && sb == -1 ? 0 : UInt64(bitPattern: sa % sb))
            default: v = b == 0 ? a : a % b
            }
        default: throw illegal
        }
        setRd(i, v)
    }

    private func op32(_ i: UInt32) throws(Trap) {
        let a = UInt32(truncatingIfNeeded: rs1(i)), b = UInt32(truncatingIfNeeded: rs2(i))
        let f3 = (i >> 12) & 7
        let v: UInt32
        switch i >> 25 {
        case 0:
            switch f3 {
            case 0: v = a &+ b
            case 1: v = a << (b & 31)
            case 5: v = a >> (b & 31)
            default: throw illegal
            }
        case 0x20:
            switch f3 {
            case 0: v = a &- b
            case 5: v = UInt32(bitPattern: Int32(bitPattern: a) >> (b & 31))
            default: throw illegal
            }
        case 1:
            let sa = Int32(bitPattern: a), sb = Int32(bitPattern: b)
            switch f3 {
            case 0: v = a &* b
            case 4: v = b == 0 ? .max : (sa == .min && sb == -1 ? a : UInt32(bitPattern: sa / sb))
            case 5: v = b == 0 ? .max : a / b
            case 6: v = b == 0 ? a : (sa == .min && sb == -1 ? 0 : UInt32(bitPattern: sa % sb))
            case 7: v = b == 0 ? a : a % b
            default: throw illegal
            }
        default: throw illegal
        }
        setRd(i, Self.sext32(UInt64(v)))
    }

    private func atomic(_ i: UInt32) throws(Trap) {
        let f3 = (i >> 12) & 7
        guard f3 == 2 || f3 == 3 else { throw illegal }
        let size = f3 == 2 ? 4 : 8
        let addr = rs1(i)
        let result: (UInt64) -> UInt64 = size == 4 ? { Self.sext32($0) } : { $0 }
        switch i >> 27 {
        case 0x02:  // LR
            guard (i >> 20) & 31 == 0 else { throw illegal }
            guard addr & UInt64(size - 1) == 0 else { throw Trap(cause: Trap.loadMisaligned, value: addr) }
            let v = try load(addr, size)
            reservationValid = true
            reservationAddress = addr
            reservationValue = v
            setRd(i, result(v))
        case 0x03:  // SC
            // As on QEMU, an SC whose address does not match the reservation fails
            // without touching memory: no alignment check, no translation, no fault.
            // A matching address is aligned, since the LR that set it was.
            var ok = false
            if reservationValid && reservationAddress == addr {
                let old = try amo(.compareAndSwap, addr, size, rs2(i), expected: reservationValue)
                let mask: UInt64 = size == 4 ? 0xffff_ffff : .max
                ok = old & mask == reservationValue & mask
            }
            reservationValid = false
            setRd(i, ok ? 0 : 1)
        default:
            let op: AtomicOp
            switch i >> 27 {
            case 0x01: op = .swap
            case 0x00: op = .add
            case 0x04: op = .xor
            case 0x0c: op = .and
            case 0x08: op = .or
            case 0x10: op = .min
            case 0x14: op = .max
            case 0x18: op = .minu
            case 0x1c: op = .maxu
            default: throw illegal
            }
            let old = try amo(op, addr, size, rs2(i))
            setRd(i, result(old))
        }
    }

    private func system(_ i: UInt32, _ next: inout UInt64) throws(Trap) {
        let f3 = (i >> 12) & 7
        if f3 == 0 {
            guard rd(i) == 0 else { throw illegal }
            switch i >> 20 {
            case 0x000:  // ECALL
                guard (i >> 15) & 31 == 0 else { throw illegal }
                let cause = privilege == .machine ? Trap.ecallM : privilege == .supervisor ? Trap.ecallS : Trap.ecallU
                throw Trap(cause: cause, value: 0)
            case 0x001:  // EBREAK (tval 0, which the spec allows and QEMU does)
                throw Trap(cause: Trap.breakpoint, value: 0)
            case 0x302:
                try mret()
                next = pc
            case 0x102:
                try sret()
                next = pc
            case 0x105:  // WFI
                if privilege == .user || (privilege == .supervisor && mstatus & Self.mstatusTW != 0) { throw illegal }
                if !hasWakeUpInterrupt {
                    pc = next
                    throw Trap(cause: Self.waitCause, value: 0)
                }
            default:
                if i >> 25 == 0x09 {  // SFENCE.VMA
                    if privilege == .user || (privilege == .supervisor && mstatus & Self.mstatusTVM != 0) { throw illegal }
                    flushTLB()
                } else {
                    throw illegal
                }
            }
            return
        }
        let csr = Int(i >> 20)
        let source = f3 & 4 != 0 ? UInt64((i >> 15) & 31) : rs1(i)
        // CSRRW always writes. CSRRS/CSRRC write only when the mask is non-zero: as on
        // QEMU, a zero value in a register other than x0 is no write either (no
        // read-only trap, no side effect), not just rs1 = x0 / uimm = 0.
        let writes = f3 & 3 == 1 || source != 0
        let old = try readCSR(csr, forWrite: writes)
        if writes {
            let new: UInt64
            switch f3 & 3 {
            case 1: new = source
            case 2: new = old | source
            default: new = old & ~source
            }
            try writeCSR(csr, new)
        }
        setRd(i, old)
    }
}
