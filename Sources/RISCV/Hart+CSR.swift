// Control and status registers (Zicsr, Zicntr, the machine and supervisor CSRs,
// Sstc). A CSR the hart does not implement raises illegal-instruction, as firmware
// expects when it probes.

extension Hart {
    /// RV64 A C D F I M S U.
    static let misa: UInt64 = (2 << 62) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18)
        | (1 << 20)
    static let mstatusWritable: UInt64 = mstatusSIE | mstatusMIE | mstatusSPIE | mstatusMPIE | mstatusSPP | mstatusMPP
        | mstatusMPRV | mstatusSUM | mstatusMXR | mstatusTVM | mstatusTW | mstatusTSR | mstatusFS
    /// The mstatus bits sstatus shows; of them SIE, SPIE, SPP, FS, SUM and MXR are writable.
    static let sstatusMask: UInt64 = mstatusSIE | mstatusSPIE | mstatusSPP | mstatusFS | mstatusSUM | mstatusMXR | (3 << 32)
        | mstatusSD
    static let supervisorInterrupts: UInt64 = (1 << 1) | (1 << 5) | (1 << 9)
    static let allInterrupts: UInt64 = 0xaaa
    /// Exceptions whose medeleg bit is writable: QEMU's set without the hypervisor
    /// ones, so it includes ecall from M (11), which never delegates anyway.
    static let delegableExceptions: UInt64 = 0xbbff

    var cycle: UInt64 { instructionsRetired &+ cycleOffset }

    /// Reads a CSR, checking privilege and (if it will be written) that it is writable.
    func readCSR(_ csr: Int, forWrite: Bool) throws(Trap) -> UInt64 {
        let required = (csr >> 8) & 3
        if Int(privilege.rawValue) < required { throw illegal }
        if forWrite && csr >> 10 == 3 { throw illegal }
        switch csr {
        // The floating-point CSRs, illegal while mstatus.FS is Off.
        case 0x001:
            try requireFloat()
            return UInt64(fflags)
        case 0x002:
            try requireFloat()
            return UInt64(frm)
        case 0x003:
            try requireFloat()
            return fcsr
        // Unprivileged counters, gated by mcounteren/scounteren.
        case 0xc00...0xc1f:
            let bit: UInt64 = 1 << UInt64(csr - 0xc00)
            if privilege != .machine && mcounteren & bit == 0 { throw illegal }
            if privilege == .user && scounteren & bit == 0 { throw illegal }
            switch csr {
            case 0xc00: return cycle
            case 0xc01: return memory.currentTime()
            case 0xc02: return instructionsRetired
            default: return 0
            }
        // Supervisor.
        case 0x100: return mstatusWithSD & Self.sstatusMask
        case 0x104: return mie & mideleg
        case 0x105: return stvec
        case 0x106: return scounteren
        case 0x10a: return senvcfg
        case 0x140: return sscratch
        case 0x141: return sepc
        case 0x142: return scause
        case 0x143: return stval
        case 0x144: return effectiveMIP & mideleg
        case 0x14d:
            try checkStimecmpAccess()
            return stimecmp
        case 0x180:
            if privilege == .supervisor && mstatus & Self.mstatusTVM != 0 { throw illegal }
            return satp
        // Machine information.
        case 0xf11, 0xf12, 0xf13, 0xf15: return 0
        case 0xf14: return UInt64(id)
        // Machine trap setup and handling.
        case 0x300: return mstatusWithSD
        case 0x301: return Self.misa
        case 0x302: return medeleg
        case 0x303: return mideleg
        case 0x304: return mie
        case 0x305: return mtvec
        case 0x306: return mcounteren
        case 0x30a: return menvcfg
        case 0x320: return mcountinhibit
        case 0x323...0x33f: return 0  // mhpmevent3..31
        case 0x340: return mscratch
        case 0x341: return mepc
        case 0x342: return mcause
        case 0x343: return mtval
        case 0x344: return effectiveMIP
        case 0x3a0...0x3ae where csr & 1 == 0: return pmpcfg[(csr - 0x3a0) / 2]
        case 0x3b0...0x3ef: return pmpaddr[csr - 0x3b0]
        // Debug triggers: the trigger module exists but has no triggers. tselect
        // holds only 0; tdata1 reads type 0 ("no trigger at this index") and tdata2/3
        // read 0, all ignoring writes; tinfo says only type 0 is supported.
        case 0x7a0, 0x7a1, 0x7a2, 0x7a3: return 0
        case 0x7a4: return 1
        case 0xb00: return cycle
        case 0xb02: return instructionsRetired
        case 0xb03...0xb1f: return 0  // mhpmcounter3..31
        default: throw illegal
        }
    }

    func writeCSR(_ csr: Int, _ value: UInt64) throws(Trap) {
        switch csr {
        case 0x001:
            fflags = UInt8(value & 0x1f)
            markFloatDirty()
        case 0x002:
            frm = UInt8(value & 7)  // reserved modes are kept: dynamic rounding then traps
            markFloatDirty()
        case 0x003:
            fflags = UInt8(value & 0x1f)
            frm = UInt8((value >> 5) & 7)
            markFloatDirty()
        case 0x100:
            let writable = Self.sstatusMask & ~(3 << 32) & ~Self.mstatusSD
            setMstatus((mstatus & ~writable) | (value & writable))
        case 0x104: mie = (mie & ~mideleg) | (value & mideleg)
        case 0x105: if value & 3 < 2 { stvec = value }  // reserved modes: the write is ignored, as on QEMU
        case 0x106: scounteren = value  // QEMU keeps all 64 bits; only 0...31 gate counters
        case 0x10a: senvcfg = value & 1
        case 0x140: sscratch = value
        case 0x141: sepc = value & ~1
        case 0x142: scause = value
        case 0x143: stval = value
        case 0x144: mip = (mip & ~(mideleg & 2)) | (value & mideleg & 2)  // only SSIP is writable via sip
        case 0x14d:
            try checkStimecmpAccess()
            stimecmp = value
            updateSupervisorTimer()
        case 0x180:
            if privilege == .supervisor && mstatus & Self.mstatusTVM != 0 { throw illegal }
            let mode = value >> 60
            if mode == 0 || mode == 8 {  // Bare or Sv39; other modes leave satp unchanged
                satp = value & ((0xf << 60) | (0xffff << 44) | ((1 << 44) - 1))
                if mode == 0 { satp = 0 }
                flushTLB()
            }
        case 0x300: setMstatus((mstatus & ~Self.mstatusWritable) | (value & Self.mstatusWritable))
        case 0x301: break  // misa is read-only here
        case 0x302: medeleg = value & Self.delegableExceptions
        case 0x303: mideleg = value & Self.supervisorInterrupts
        case 0x304: mie = value & Self.allInterrupts
        case 0x305: if value & 3 < 2 { mtvec = value }
        case 0x306: mcounteren = value
        case 0x30a:
            menvcfg = value & (Self.menvcfgSTCE | 1)
            updateSupervisorTimer()
        case 0x320: mcountinhibit = value & 0xffff_fffd
        case 0x323...0x33f: break
        case 0x340: mscratch = value
        case 0x341: mepc = value & ~1
        case 0x342: mcause = value
        case 0x343: mtval = value
        case 0x344:
            // SSIP, STIP (unless Sstc drives it) and SEIP are writable by M-mode.
            var writable: UInt64 = (1 << 1) | (1 << 9)
            if menvcfg & Self.menvcfgSTCE == 0 { writable |= 1 << 5 }
            mip = (mip & ~writable) | (value & writable)
        case 0x3a0...0x3ae where csr & 1 == 0: pmpcfg[(csr - 0x3a0) / 2] = value
        case 0x3b0...0x3ef: pmpaddr[csr - 0x3b0] = value & ((1 << 54) - 1)
        case 0x7a0...0x7a4: break  // no triggers (see readCSR)
        case 0xb00: cycleOffset = value &- instructionsRetired
        case 0xb02: instructionsRetired = value &- 1  // the CSR instruction itself retires after the write
        case 0xb03...0xb1f: break
        default: throw illegal
        }
    }

    private func checkStimecmpAccess() throws(Trap) {
        guard privilege != .machine else { return }
        if mcounteren & 2 == 0 || menvcfg & Self.menvcfgSTCE == 0 { throw illegal }
    }

    private func setMstatus(_ value: UInt64) {
        var v = value
        if (v & Self.mstatusMPP) >> Self.mstatusMPPShift == 2 { v &= ~Self.mstatusMPP }  // WARL: 2 is reserved
        mstatus = v | Self.mstatusXLBits
        flushTLB()
    }
}
