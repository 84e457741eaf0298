/// A hart's architectural state as values, for moving a VCPU to another node: what the
/// guest can see (pc, privilege, x and f registers, every CSR it can read or that
/// shapes what it sees), nothing of the interpreter's caches. The CSRs are named by
/// their numbers and carried raw (no WARL masking on the way back in: they were legal
/// when they were saved); `pmpcfg` entries use 0x3a0 + i for all eight stored words.
public struct HartState: Equatable, Sendable {
    public var pc: UInt64
    public var privilege: UInt8
    /// x0...x31.
    public var registers: [UInt64]
    /// f0...f31 (raw bits).
    public var floatRegisters: [UInt64]
    /// (CSR number, value).
    public var csrs: [(number: UInt16, value: UInt64)]

    public init(pc: UInt64, privilege: UInt8, registers: [UInt64], floatRegisters: [UInt64],
                csrs: [(number: UInt16, value: UInt64)]) {
        self.pc = pc
        self.privilege = privilege
        self.registers = registers
        self.floatRegisters = floatRegisters
        self.csrs = csrs
    }

    public static func == (a: HartState, b: HartState) -> Bool {
        a.pc == b.pc && a.privilege == b.privilege && a.registers == b.registers && a.floatRegisters == b.floatRegisters
            && a.csrs.map(\.number) == b.csrs.map(\.number) && a.csrs.map(\.value) == b.csrs.map(\.value)
    }
}

extension Hart {
    /// The hart's state now (between slices). An LR reservation is not part of it: a
    /// moved hart's next SC fails, which the ISA allows at any time.
    public var state: HartState {
        var csrs: [(number: UInt16, value: UInt64)] = [
            (0x003, fcsr), (0x105, stvec), (0x106, scounteren), (0x10a, senvcfg), (0x140, sscratch),
            (0x141, sepc), (0x142, scause), (0x143, stval), (0x14d, stimecmp), (0x180, satp),
            (0x300, mstatus), (0x302, medeleg), (0x303, mideleg), (0x304, mie), (0x305, mtvec),
            (0x306, mcounteren), (0x30a, menvcfg), (0x320, mcountinhibit), (0x340, mscratch),
            (0x341, mepc), (0x342, mcause), (0x343, mtval), (0x344, mip),
            (0xb00, cycle), (0xb02, instructionsRetired),
        ]
        for (i, v) in pmpcfg.enumerated() { csrs.append((UInt16(0x3a0 + i), v)) }
        for (i, v) in pmpaddr.enumerated() { csrs.append((UInt16(0x3b0 + i), v)) }
        return HartState(pc: pc, privilege: privilege.rawValue,
                         registers: (0..<32).map { self[register: $0] },
                         floatRegisters: (0..<32).map { f[$0] }, csrs: csrs)
    }

    /// Puts `state` into this hart (fresh, or between slices): its TLBs and decoded
    /// blocks start empty. Throws on a state that cannot be this hart's (wrong
    /// register counts, an unknown privilege or CSR number).
    public func restore(_ state: HartState) throws(StateError) {
        guard state.registers.count == 32, state.floatRegisters.count == 32 else {
            throw StateError("a hart state has 32 x and 32 f registers, not \(state.registers.count) and \(state.floatRegisters.count)")
        }
        guard let mode = PrivilegeMode(rawValue: state.privilege) else {
            throw StateError("privilege \(state.privilege) is not U (0), S (1) or M (3)")
        }
        var cycleValue: UInt64?
        for (number, value) in state.csrs {
            switch number {
            case 0x003:
                fflags = UInt8(value & 0x1f)
                frm = UInt8((value >> 5) & 7)
            case 0x105: stvec = value
            case 0x106: scounteren = value
            case 0x10a: senvcfg = value
            case 0x140: sscratch = value
            case 0x141: sepc = value
            case 0x142: scause = value
            case 0x143: stval = value
            case 0x14d: stimecmp = value
            case 0x180: satp = value
            case 0x300: mstatus = value
            case 0x302: medeleg = value
            case 0x303: mideleg = value
            case 0x304: mie = value
            case 0x305: mtvec = value
            case 0x306: mcounteren = value
            case 0x30a: menvcfg = value
            case 0x320: mcountinhibit = value
            case 0x340: mscratch = value
            case 0x341: mepc = value
            case 0x342: mcause = value
            case 0x343: mtval = value
            case 0x344: mip = value
            case 0xb00: cycleValue = value
            case 0xb02: instructionsRetired = value
            case 0x3a0..<0x3a8: pmpcfg[Int(number) - 0x3a0] = value
            case 0x3b0..<0x3f0: pmpaddr[Int(number) - 0x3b0] = value
            default: throw StateError("CSR 0x\(String(number, radix: 16)) is not part of a hart's state")
            }
        }
        if let cycleValue { cycleOffset = cycleValue &- instructionsRetired }
        pc = state.pc
        for i in 1..<32 { x[i] = state.registers[i] }
        for i in 0..<32 { f[i] = state.floatRegisters[i] }
        privilege = mode
        reservationValid = false
        spinPC = .max
        finishParkedInstructionFirst = false
        dropAllDirectMappings()
        updateSupervisorTimer()
    }

    public struct StateError: Error, CustomStringConvertible, Equatable {
        public var description: String
        init(_ d: String) { description = d }
    }
}
