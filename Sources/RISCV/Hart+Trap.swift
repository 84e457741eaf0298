// Traps and interrupts (privileged spec 1.12 §3.1.6–3.1.9, §3.3.2, §4.1.1).

extension Hart {
    static let mstatusSIE: UInt64 = 1 << 1, mstatusMIE: UInt64 = 1 << 3
    static let mstatusSPIE: UInt64 = 1 << 5, mstatusMPIE: UInt64 = 1 << 7
    static let mstatusSPP: UInt64 = 1 << 8, mstatusMPPShift: UInt64 = 11, mstatusMPP: UInt64 = 3 << 11
    static let mstatusMPRV: UInt64 = 1 << 17, mstatusSUM: UInt64 = 1 << 18, mstatusMXR: UInt64 = 1 << 19
    static let mstatusTVM: UInt64 = 1 << 20, mstatusTW: UInt64 = 1 << 21, mstatusTSR: UInt64 = 1 << 22
    /// UXL = SXL = 2 (64-bit), read-only.
    static let mstatusXLBits: UInt64 = (2 << 32) | (2 << 34)
    static let menvcfgSTCE: UInt64 = 1 << 63

    /// Interrupts in the order the spec takes them: MEI, MSI, MTI, SEI, SSI, STI.
    static let interruptPriority: [UInt64] = [11, 3, 7, 9, 1, 5]

    /// The pending interrupts that would be taken now: enabled in mie, and at their
    /// level by the privilege and the global enable bits.
    var takeableInterrupts: UInt64 {
        let pending = effectiveMIP & mie
        guard pending != 0 else { return 0 }
        let machineEnabled = privilege != .machine || mstatus & Self.mstatusMIE != 0
        let supervisorEnabled = privilege == .user || (privilege == .supervisor && mstatus & Self.mstatusSIE != 0)
        var takeable: UInt64 = 0
        if machineEnabled { takeable |= pending & ~mideleg }
        if supervisorEnabled { takeable |= pending & mideleg }
        return takeable
    }

    /// Takes the highest-priority pending and enabled interrupt, if any.
    func takeInterruptIfEnabled() -> Bool {
        let takeable = takeableInterrupts
        guard takeable != 0 else { return false }
        for cause in Self.interruptPriority where takeable & (1 << cause) != 0 {
            takeTrap(cause: cause, value: 0, interrupt: true)
            return true
        }
        return false
    }

    /// Enters the trap handler for an exception or interrupt, in S-mode if delegated.
    func takeTrap(cause: UInt64, value: UInt64, interrupt: Bool) {
        reservationValid = false
        let delegated = privilege != .machine && (interrupt ? mideleg : medeleg) & (1 << cause) != 0
        let causeValue = interrupt ? (1 << 63) | cause : cause
        if delegated {
            sepc = pc
            scause = causeValue
            stval = value
            var s = mstatus
            s = s & Self.mstatusSIE != 0 ? s | Self.mstatusSPIE : s & ~Self.mstatusSPIE
            s &= ~Self.mstatusSIE
            s = privilege == .supervisor ? s | Self.mstatusSPP : s & ~Self.mstatusSPP
            mstatus = s
            pc = trapTarget(stvec, cause: cause, interrupt: interrupt)
            privilege = .supervisor
        } else {
            mepc = pc
            mcause = causeValue
            mtval = value
            var s = mstatus
            s = s & Self.mstatusMIE != 0 ? s | Self.mstatusMPIE : s & ~Self.mstatusMPIE
            s &= ~Self.mstatusMIE
            s = (s & ~Self.mstatusMPP) | (UInt64(privilege.rawValue) << Self.mstatusMPPShift)
            mstatus = s
            pc = trapTarget(mtvec, cause: cause, interrupt: interrupt)
            privilege = .machine
        }
        flushTLB()
    }

    private func trapTarget(_ tvec: UInt64, cause: UInt64, interrupt: Bool) -> UInt64 {
        let base = tvec & ~3
        return tvec & 3 == 1 && interrupt ? base &+ 4 &* cause : base
    }

    func mret() throws(Trap) {
        guard privilege == .machine else { throw Trap(cause: Trap.illegal, value: currentInstruction) }
        let mpp = (mstatus & Self.mstatusMPP) >> Self.mstatusMPPShift
        var s = mstatus
        s = s & Self.mstatusMPIE != 0 ? s | Self.mstatusMIE : s & ~Self.mstatusMIE
        s |= Self.mstatusMPIE
        s &= ~Self.mstatusMPP
        if mpp != 3 { s &= ~Self.mstatusMPRV }
        mstatus = s
        reservationValid = false
        pc = mepc
        privilege = PrivilegeMode(rawValue: UInt8(mpp)) ?? .user
        flushTLB()
    }

    func sret() throws(Trap) {
        guard privilege == .machine || (privilege == .supervisor && mstatus & Self.mstatusTSR == 0) else {
            throw Trap(cause: Trap.illegal, value: currentInstruction)
        }
        let spp = mstatus & Self.mstatusSPP != 0
        var s = mstatus
        s = s & Self.mstatusSPIE != 0 ? s | Self.mstatusSIE : s & ~Self.mstatusSIE
        s |= Self.mstatusSPIE
        s &= ~Self.mstatusSPP
        s &= ~Self.mstatusMPRV
        mstatus = s
        reservationValid = false
        pc = sepc
        privilege = spp ? .supervisor : .user
        flushTLB()
    }
}
