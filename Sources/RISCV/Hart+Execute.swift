// Execute pre-decoded instructions (DecodedOp.swift): RV64I, M, A, Zicsr,
// Zifencei, Zihintpause and the privileged instructions. Compressed instructions
// were decoded to the operations of their 32-bit forms.

extension Hart {
    @inline(__always) static func sext32(_ v: UInt64) -> UInt64 { UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v))) }
    @inline(__always) static func sext32(_ v: UInt32) -> UInt64 { UInt64(bitPattern: Int64(Int32(bitPattern: v))) }

    var illegal: Trap { Trap(cause: Trap.illegal, value: currentInstruction) }

    /// Runs the block whose instructions start at `ops` and whose page starts at
    /// virtual address `base`, and returns where it stopped:
    /// - at its `.blockEnd` entry, or after a jump or taken branch, with `pc` set to
    ///   the next instruction;
    /// - at an instruction the block cannot finish inline (`outOfLine` set, `pc`
    ///   unchanged): a load or store off the fast path, or one of the instructions
    ///   `executeOutOfLine` performs. Nothing of it has happened yet.
    /// Registers are read through the decoded numbers; a destination of x0 was steered
    /// to the sink slot at decode time. Nothing here throws.
    @inline(__always)
    func interpret(_ ops: UnsafeMutablePointer<DecodedOp>, _ base: UInt64,
                   _ pc: inout UInt64, _ outOfLine: inout Bool) -> UnsafeMutablePointer<DecodedOp> {
        var p = ops
        while true {
            let op = p.pointee
            let a = x[Int(op.rs1)], b = x[Int(op.rs2)]
            let d = Int(op.rd)
            let imm = UInt64(bitPattern: Int64(op.imm))
            switch op.kind {
            case .lui: x[d] = imm
            case .auipc: x[d] = base &+ imm  // imm: the offset from the page base
            case .jal:
                x[d] = base &+ UInt64(op.next)
                pc = base &+ imm
                return p + 1
            case .jalr:
                let target = (a &+ imm) & ~1
                x[d] = base &+ UInt64(op.next)
                pc = target
                return p + 1
            case .beq:
                if a == b {
                    pc = base &+ imm
                    return p + 1
                }
            case .bne:
                if a != b {
                    pc = base &+ imm
                    return p + 1
                }
            case .blt:
                if Int64(bitPattern: a) < Int64(bitPattern: b) {
                    pc = base &+ imm
                    return p + 1
                }
            case .bge:
                if Int64(bitPattern: a) >= Int64(bitPattern: b) {
                    pc = base &+ imm
                    return p + 1
                }
            case .bltu:
                if a < b {
                    pc = base &+ imm
                    return p + 1
                }
            case .bgeu:
                if a >= b {
                    pc = base &+ imm
                    return p + 1
                }
            case .lb:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.load(as: Int8.self)))
            case .lh:
                guard let h = directAddress(a &+ imm, 2, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int16.self)))
            case .lw:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
            case .ld:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
            case .lbu:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
            case .lhu:
                guard let h = directAddress(a &+ imm, 2, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.loadUnaligned(as: UInt16.self))
            case .lwu:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.loadUnaligned(as: UInt32.self))
            case .sb:
                guard let h = directAddress(a &+ imm, 1, .write) else { outOfLine = true; return p }
                h.storeBytes(of: UInt8(truncatingIfNeeded: b), as: UInt8.self)
            case .sh:
                guard let h = directAddress(a &+ imm, 2, .write) else { outOfLine = true; return p }
                h.storeBytes(of: UInt16(truncatingIfNeeded: b), toByteOffset: 0, as: UInt16.self)
            case .sw:
                guard let h = directAddress(a &+ imm, 4, .write) else { outOfLine = true; return p }
                h.storeBytes(of: UInt32(truncatingIfNeeded: b), toByteOffset: 0, as: UInt32.self)
            case .sd:
                guard let h = directAddress(a &+ imm, 8, .write) else { outOfLine = true; return p }
                h.storeBytes(of: b, toByteOffset: 0, as: UInt64.self)
            case .addi: x[d] = a &+ imm
            case .slti: x[d] = Int64(bitPattern: a) < Int64(op.imm) ? 1 : 0
            case .sltiu: x[d] = a < imm ? 1 : 0
            case .xori: x[d] = a ^ imm
            case .ori: x[d] = a | imm
            case .andi: x[d] = a & imm
            case .slli: x[d] = a &<< imm
            case .srli: x[d] = a &>> imm
            case .srai: x[d] = UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(op.imm))
            case .addiw: x[d] = Self.sext32(a &+ imm)
            case .slliw: x[d] = Self.sext32(UInt32(truncatingIfNeeded: a) &<< UInt32(op.imm))
            case .srliw: x[d] = Self.sext32(UInt32(truncatingIfNeeded: a) &>> UInt32(op.imm))
            case .sraiw: x[d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: a) &>> op.imm))
            case .add: x[d] = a &+ b
            case .sub: x[d] = a &- b
            case .sll: x[d] = a &<< b
            case .slt: x[d] = Int64(bitPattern: a) < Int64(bitPattern: b) ? 1 : 0
            case .sltu: x[d] = a < b ? 1 : 0
            case .xor: x[d] = a ^ b
            case .srl: x[d] = a &>> b
            case .sra: x[d] = UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(bitPattern: b))
            case .or: x[d] = a | b
            case .and: x[d] = a & b
            case .mul: x[d] = a &* b
            case .mulh: x[d] = UInt64(bitPattern: Int64(bitPattern: a).multipliedFullWidth(by: Int64(bitPattern: b)).high)
            case .mulhsu:
                let high = a.multipliedFullWidth(by: b).high
                x[d] = Int64(bitPattern: a) < 0 ? high &- b : high
            case .mulhu: x[d] = a.multipliedFullWidth(by: b).high
            case .div: x[d] = Self.div(a, b)
            case .divu: x[d] = b == 0 ? .max : a / b
            case .rem: x[d] = Self.rem(a, b)
            case .remu: x[d] = b == 0 ? a : a % b
            case .mulw: x[d] = Self.sext32(UInt32(truncatingIfNeeded: a) &* UInt32(truncatingIfNeeded: b))
            case .divw: x[d] = Self.divw(a, b)
            case .divuw: x[d] = Self.divuw(a, b)
            case .remw: x[d] = Self.remw(a, b)
            case .remuw: x[d] = Self.remuw(a, b)
            case .addw: x[d] = Self.sext32(a &+ b)
            case .subw: x[d] = Self.sext32(a &- b)
            case .sllw: x[d] = Self.sext32(UInt32(truncatingIfNeeded: a) &<< UInt32(truncatingIfNeeded: b))
            case .srlw: x[d] = Self.sext32(UInt32(truncatingIfNeeded: a) &>> UInt32(truncatingIfNeeded: b))
            case .sraw: x[d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: a) &>> Int32(truncatingIfNeeded: b)))
            case .illegal, .fence, .fenceI, .lrW, .lrD, .scW, .scD, .amoW, .amoD,
                 .ecall, .ebreak, .mret, .sret, .wfi, .sfenceVMA,
                 .csrrw, .csrrs, .csrrc, .csrrwi, .csrrsi, .csrrci:
                outOfLine = true
                return p
            case .blockEnd:
                pc = base &+ UInt64(op.offset)
                return p
            // Superinstructions: the entry after this one is the branch, run here.
            case .addiBeq:
                x[d] = a &+ imm
                let br = p[1]
                if x[Int(br.rs1)] == x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .addiBne:
                x[d] = a &+ imm
                let br = p[1]
                if x[Int(br.rs1)] != x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .addiBlt:
                x[d] = a &+ imm
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) < Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .addiBge:
                x[d] = a &+ imm
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) >= Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .addiBltu:
                x[d] = a &+ imm
                let br = p[1]
                if x[Int(br.rs1)] < x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .addiBgeu:
                x[d] = a &+ imm
                let br = p[1]
                if x[Int(br.rs1)] >= x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBeq:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if x[Int(br.rs1)] == x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBne:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if x[Int(br.rs1)] != x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBlt:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) < Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBge:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) >= Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBltu:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if x[Int(br.rs1)] < x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lwBgeu:
                guard let h = directAddress(a &+ imm, 4, .read) else { outOfLine = true; return p }
                x[d] = UInt64(bitPattern: Int64(h.loadUnaligned(as: Int32.self)))
                let br = p[1]
                if x[Int(br.rs1)] >= x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBeq:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if x[Int(br.rs1)] == x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBne:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if x[Int(br.rs1)] != x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBlt:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) < Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBge:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) >= Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBltu:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if x[Int(br.rs1)] < x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .ldBgeu:
                guard let h = directAddress(a &+ imm, 8, .read) else { outOfLine = true; return p }
                x[d] = h.loadUnaligned(as: UInt64.self)
                let br = p[1]
                if x[Int(br.rs1)] >= x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBeq:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if x[Int(br.rs1)] == x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBne:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if x[Int(br.rs1)] != x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBlt:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) < Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBge:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if Int64(bitPattern: x[Int(br.rs1)]) >= Int64(bitPattern: x[Int(br.rs2)]) {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBltu:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if x[Int(br.rs1)] < x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            case .lbuBgeu:
                guard let h = directAddress(a &+ imm, 1, .read) else { outOfLine = true; return p }
                x[d] = UInt64(h.load(as: UInt8.self))
                let br = p[1]
                if x[Int(br.rs1)] >= x[Int(br.rs2)] {
                    pc = base &+ UInt64(bitPattern: Int64(br.imm))
                    return p + 2
                }
                p += 1
            }
            p += 1
        }
    }

    /// The instructions a block leaves to this function: loads and stores off the
    /// inline fast path, atomics, fences, system instructions and illegal encodings.
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
