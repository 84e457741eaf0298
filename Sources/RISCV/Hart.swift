// PLACEHOLDER API — the hart implementation replaces this file. It pins the public
// surface that Platform/Node code is written against; keep these names.

/// Privilege modes.
public enum PrivilegeMode: UInt8, Sendable {
    case user = 0
    case supervisor = 1
    case machine = 3
}

/// Interrupt lines driven from outside the hart (bit numbers of mip).
public enum InterruptLine: Int, Sendable {
    case supervisorSoftware = 1
    case machineSoftware = 3
    case supervisorTimer = 5
    case machineTimer = 7
    case supervisorExternal = 9
    case machineExternal = 11
}

/// Why `Hart.run` returned.
public enum HartExit: Equatable, Sendable {
    /// The instruction budget is used up; call `run` again.
    case budgetExhausted
    /// The hart executed WFI and no interrupt is pending: do not run it until
    /// `hasWakeUpInterrupt` is true (or its timer deadline passes).
    case waitingForInterrupt
    /// A memory access answered `.retry`; run again when the data is there.
    case parked
}

/// One RV64IMAC hart (M/S/U, Sv39).
public final class Hart {
    /// mhartid.
    public let id: Int
    public unowned let memory: PhysicalMemory

    public var pc: UInt64 = 0
    public var privilege: PrivilegeMode = .machine
    private var x = [UInt64](repeating: 0, count: 32)
    public private(set) var instructionsRetired: UInt64 = 0

    public init(id: Int, memory: PhysicalMemory) {
        self.id = id
        self.memory = memory
    }

    /// Integer register `i` (x0 reads 0, writes to it are ignored).
    public subscript(register i: Int) -> UInt64 {
        get { i == 0 ? 0 : x[i] }
        set { if i != 0 { x[i] = newValue } }
    }

    /// Runs up to `budget` instructions (fewer if it traps into WFI or parks).
    public func run(budget: Int) -> HartExit {
        fatalError("hart not implemented")
    }

    /// Raises or lowers an externally driven bit of mip.
    public func setInterrupt(_ line: InterruptLine, _ asserted: Bool) {}

    /// True when an interrupt is pending and enabled in mie (WFI wakes on this
    /// regardless of the global enable bits).
    public var hasWakeUpInterrupt: Bool { false }

    /// The mtime value at which the Sstc supervisor timer (stimecmp) fires, if armed.
    public var supervisorTimerDeadline: UInt64? { nil }

    /// Forget cached host pointers for the guest-physical page (its access rights changed).
    public func dropDirectMappings(page: UInt64) {}

    /// Forget all cached host pointers and decoded code.
    public func dropAllDirectMappings() {}
}
