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
    /// The hart spins: it came back to the same instruction with every register as it
    /// was (a loop polling memory that has not changed, with or without the pause
    /// hint). Run it again once memory may have changed (another hart ran, a remote
    /// write or invalidation arrived, an interrupt is pending) or after a short while;
    /// running it sooner only burns host CPU.
    case spinning
}

/// A synchronous exception on its way to a trap handler (or a park).
struct Trap: Error {
    var cause: UInt64
    var value: UInt64

    static let instructionMisaligned: UInt64 = 0, instructionAccess: UInt64 = 1, illegal: UInt64 = 2
    static let breakpoint: UInt64 = 3, loadMisaligned: UInt64 = 4, loadAccess: UInt64 = 5
    static let storeMisaligned: UInt64 = 6, storeAccess: UInt64 = 7, ecallU: UInt64 = 8
    static let ecallS: UInt64 = 9, ecallM: UInt64 = 11, instructionPage: UInt64 = 12
    static let loadPage: UInt64 = 13, storePage: UInt64 = 15
    /// Not an exception: the memory said `.retry`; the instruction restarts later.
    static let park: UInt64 = .max
}

/// One RV64GC (IMAFDC, Zicsr, Zifencei) hart with M/S/U modes and Sv39 (privileged spec 1.12), as QEMU's
/// virt board CPU behaves. It reaches memory only through `PhysicalMemory`.
///
/// Integer registers live in an unsafe buffer; translations are cached in a
/// software TLB per access kind holding host page pointers (see Hart+MMU.swift).
public final class Hart {
    /// mhartid.
    public let id: Int
    /// The memory must outlive the hart (its owner, e.g. a `Machine`, holds both);
    /// `unowned(unsafe)` keeps reference counting out of every access.
    public unowned(unsafe) let memory: PhysicalMemory

    public var pc: UInt64 = 0
    public var privilege: PrivilegeMode = .machine {
        didSet { if privilege != oldValue { flushTLB() } }
    }
    /// x0...x31, then the sink slot 32 that decoded instructions write instead of x0;
    /// x[0] stays 0.
    let x: UnsafeMutablePointer<UInt64>
    static let sinkRegister: UInt8 = 32
    /// f0...f31 (singles NaN-boxed, Hart+Float.swift).
    let f: UnsafeMutablePointer<UInt64>
    /// fcsr's two fields: the accrued exception flags and the dynamic rounding mode.
    var fflags: UInt8 = 0
    var frm: UInt8 = 0
    public internal(set) var instructionsRetired: UInt64 = 0
    /// Spin detection (`HartExit.spinning`): the state at the last probe.
    let spinRegisters: UnsafeMutablePointer<UInt64>
    var spinPC: UInt64 = .max
    var spinPrivilege: PrivilegeMode = .machine
    var spinSATP: UInt64 = 0
    /// Whether `run` reports spinning (a runner that never parks a spinning hart can
    /// turn it off; the probe is per slice, so it costs next to nothing either way).
    public var detectsSpinning = true
    /// Budget an out-of-line instruction or an instruction fetched out of line (code on
    /// a page with no direct mapping) uses up beyond its own instruction: a runner that must look at its messages often (a cluster node) sets
    /// it so that a slice of slow instructions (remote lines, uncached code) ends about
    /// as soon in time as one of fast ones. Retired counts are unaffected.
    public var slowPathCharge = 0
    /// The bits of the instruction being executed (mtval for illegal instructions).
    var currentInstruction: UInt64 = 0

    // MARK: CSR state
    var mstatus: UInt64 = Hart.mstatusXLBits
    var medeleg: UInt64 = 0
    var mideleg: UInt64 = 0
    var mie: UInt64 = 0
    /// Software-writable and externally driven pending bits (STIP from Sstc is added on read).
    var mip: UInt64 = 0
    var mtvec: UInt64 = 0, stvec: UInt64 = 0
    var mscratch: UInt64 = 0, sscratch: UInt64 = 0
    var mepc: UInt64 = 0, sepc: UInt64 = 0
    var mcause: UInt64 = 0, scause: UInt64 = 0
    var mtval: UInt64 = 0, stval: UInt64 = 0
    var mcounteren: UInt64 = 0, scounteren: UInt64 = 0
    var mcountinhibit: UInt64 = 0
    var menvcfg: UInt64 = 0, senvcfg: UInt64 = 0
    var satp: UInt64 = 0
    var stimecmp: UInt64 = .max
    var pmpcfg = [UInt64](repeating: 0, count: 8)
    var pmpaddr = [UInt64](repeating: 0, count: 64)
    /// mcycle counts retired instructions plus this offset (writes move it).
    var cycleOffset: UInt64 = 0

    // MARK: LR/SC
    var reservationValid = false
    var reservationAddress: UInt64 = 0
    var reservationValue: UInt64 = 0

    // MARK: TLB
    let tlb: UnsafeMutablePointer<TLBEntry>
    /// The loads' and stores' inline view of the read and write TLBs (Hart+MMU.swift),
    /// inside the threaded handlers' context (Threaded.swift).
    let fastTLB: UnsafeMutablePointer<FastTLBEntry>
    let threadContext: UnsafeMutableRawPointer

    // MARK: Blocks (Hart+Blocks.swift)
    /// The virtual address of the page pc runs in (the cursor), its bytes, its block
    /// map and its guest-physical page (.max: no cursor).
    var codeBase: UInt64 = 0
    var codeHost: UnsafeRawPointer
    var codeMap: BlockMap
    var codePage: UInt64 = .max
    /// Advanced whenever code may have changed behind the hart's back; a block from an
    /// older epoch is compared with memory before it runs.
    var codeEpoch: UInt64 = 1
    /// Block maps by guest-physical page.
    var decodedPages: [UInt64: BlockMap] = [:]
    /// Pages with blocks kept before all are dropped and decoded again.
    var decodedPageLimit = 512
    /// The blocks, 16-byte aligned.
    let blockArena: UnsafeMutableRawPointer
    static let blockArenaBytes = 8 << 20
    var blockArenaBytes: Int { Self.blockArenaBytes }
    var blockArenaUsed = 0
    /// The one-instruction block for code run without a block (Hart+Blocks.swift).
    let scratch: UnsafeMutablePointer<BlockHeader>
    /// The first instructions of a block longer than the budget left (Hart+Blocks.swift).
    let truncation: UnsafeMutablePointer<BlockEntry>
    /// Where a block is decoded before it goes into the arena.
    let decodeBuffer: UnsafeMutablePointer<DecodedOp>
    /// Instructions decoded into blocks (first use or after their code changed).
    public internal(set) var decodedInstructions: UInt64 = 0

    public init(id: Int, memory: PhysicalMemory) {
        self.id = id
        self.memory = memory
        compressedTable = CompressedTable.shared
        x = .allocate(capacity: 33)
        x.initialize(repeating: 0, count: 33)
        spinRegisters = .allocate(capacity: 64)
        spinRegisters.initialize(repeating: 0, count: 64)
        f = .allocate(capacity: 32)
        f.initialize(repeating: 0, count: 32)
        tlb = .allocate(capacity: 3 * Hart.tlbSize)
        tlb.initialize(repeating: TLBEntry(), count: 3 * Hart.tlbSize)
        threadContext = .allocate(
            byteCount: Threaded.fastTLBOffset + 2 * Hart.tlbSize * MemoryLayout<FastTLBEntry>.stride, alignment: 64)
        threadContext.initializeMemory(as: UInt8.self, repeating: 0, count: Threaded.fastTLBOffset)
        threadContext.storeBytes(of: tlb + Int(AccessType.execute.rawValue) * Hart.tlbSize, toByteOffset: Threaded.fetchTLB,
                                 as: UnsafeMutablePointer<TLBEntry>.self)
        threadContext.storeBytes(of: Threaded.otherPage, toByteOffset: Threaded.otherPageHandler, as: Threaded.CrossPage.self)
        fastTLB = (threadContext + Threaded.fastTLBOffset).bindMemory(to: FastTLBEntry.self, capacity: 2 * Hart.tlbSize)
        fastTLB.initialize(repeating: FastTLBEntry(), count: 2 * Hart.tlbSize)
        codeHost = Hart.emptyCodeBytes
        codeMap = Hart.emptyBlockMap
        blockArena = .allocate(byteCount: Hart.blockArenaBytes, alignment: 16)
        let empty = BlockEntry(run: ThreadedOp(DecodedOp(), after: 0), op: DecodedOp())
        let scratchBytes = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<BlockHeader>.stride + 2 * MemoryLayout<BlockEntry>.stride, alignment: 16)
        scratch = scratchBytes.bindMemory(to: BlockHeader.self, capacity: 1)
        scratch.initialize(to: BlockHeader(epoch: 0, count: 1))
        (scratchBytes + MemoryLayout<BlockHeader>.stride).bindMemory(to: BlockEntry.self, capacity: 2)
            .initialize(repeating: empty, count: 2)
        truncation = .allocate(capacity: Hart.maxBlockLength + 1)
        truncation.initialize(repeating: empty, count: Hart.maxBlockLength + 1)
        decodeBuffer = .allocate(capacity: Hart.maxBlockLength + 1)
        decodeBuffer.initialize(repeating: DecodedOp(), count: Hart.maxBlockLength + 1)
    }

    deinit {
        releaseDecodedPages()
        x.deallocate()
        spinRegisters.deallocate()
        f.deallocate()
        tlb.deallocate()
        threadContext.deallocate()
        blockArena.deallocate()
        UnsafeMutableRawPointer(scratch).deallocate()
        truncation.deallocate()
        decodeBuffer.deallocate()
    }

    /// Integer register `i` (x0 reads 0, writes to it are ignored).
    public subscript(register i: Int) -> UInt64 {
        get { i == 0 ? 0 : x[i] }
        set { if i != 0 { x[i] = newValue } }
    }

    /// FP register `i` (its raw 64 bits).
    public subscript(floatRegister i: Int) -> UInt64 {
        get { f[i] }
        set { f[i] = newValue }
    }

    /// Raises or lowers an externally driven bit of mip.
    public func setInterrupt(_ line: InterruptLine, _ asserted: Bool) {
        let bit: UInt64 = 1 << UInt64(line.rawValue)
        if asserted { mip |= bit } else { mip &= ~bit }
    }

    /// With Sstc enabled, STIP as of the last `updateSupervisorTimer()` (run entry,
    /// stimecmp/menvcfg writes): reading the clock per instruction would cost more
    /// than the interpreter, and a slice is well under a timer tick's resolution.
    var sstcPending = false

    func updateSupervisorTimer() {
        sstcPending = menvcfg & Hart.menvcfgSTCE != 0 && memory.currentTime() >= stimecmp
    }

    /// mip as the guest sees it: with Sstc enabled, STIP follows time ≥ stimecmp.
    @inline(__always) var effectiveMIP: UInt64 {
        guard menvcfg & Hart.menvcfgSTCE != 0 else { return mip }
        return (mip & ~(1 << 5)) | (sstcPending ? 1 << 5 : 0)
    }

    /// True when an interrupt is pending and enabled in mie (WFI wakes on this
    /// regardless of the global enable bits).
    public var hasWakeUpInterrupt: Bool {
        updateSupervisorTimer()
        return effectiveMIP & mie != 0
    }

    /// True when a pending interrupt would be taken now (enabled in mie and by the
    /// privilege's global enable, as `takeInterruptIfEnabled` decides). A hart that
    /// spins with interrupts masked (a lock taken with interrupts off, OpenSBI waiting
    /// for `hart_start` with an IPI already pending) has a wake-up interrupt but no
    /// takeable one: the interrupt cannot change what it polls.
    /// The Sstc timer is read afresh: a fired stimecmp is no longer a deadline the node
    /// wakes for, so the last slice's view of it would hide it until the next probe.
    public var hasTakeableInterrupt: Bool {
        updateSupervisorTimer()
        return takeableInterrupts != 0
    }

    /// The mtime value at which the Sstc supervisor timer (stimecmp) fires, if armed and
    /// not yet fired (a fired timer is a pending interrupt, no longer a deadline, as the
    /// CLINT does not count an asserted timer).
    public var supervisorTimerDeadline: UInt64? {
        guard menvcfg & Hart.menvcfgSTCE != 0 && mie & (1 << 5) != 0 && stimecmp != .max else { return nil }
        return memory.currentTime() >= stimecmp ? nil : stimecmp
    }

    /// Forget cached host pointers for the guest-physical page (its access rights changed).
    public func dropDirectMappings(page: UInt64) {
        for i in 0..<(3 * Hart.tlbSize) where tlb[i].physicalPage == page & ~0xfff {
            tlb[i] = TLBEntry()
            if i < 2 * Hart.tlbSize { fastTLB[i] = FastTLBEntry() }
        }
        if codePage == page & ~0xfff { invalidateCodeCursor() }
        // Someone else may now write the page: only blocks on it need comparing again.
        if decodedPages[page & ~0xfff] != nil { codeEpoch &+= 1 }
    }

    /// Forget all cached host pointers.
    public func dropAllDirectMappings() {
        flushTLB()
        codeEpoch &+= 1
    }

    /// Set by the memory's owner when a parked instruction's access has completed
    /// elsewhere with a side effect (a remote device read): the next `run` executes
    /// that instruction before it looks at pending interrupts, so the result is
    /// consumed exactly once.
    public var finishParkedInstructionFirst = false

    /// The expansions of all compressed encodings (CompressedTable), held here so the
    /// hot loop reads it without a lazy-initialisation check.
    let compressedTable: UnsafePointer<UInt32>

    // MARK: - Running

    /// Runs up to `budget` instructions (fewer if it waits for an interrupt or parks).
    public func run(budget: Int) -> HartExit {
        var remaining = budget
        updateSupervisorTimer()
        codeEpoch &+= 1  // other harts, devices and loaders wrote between slices
        if finishParkedInstructionFirst && remaining > 0 {
            finishParkedInstructionFirst = false
            let exit = runParkedInstruction()
            if exit != .budgetExhausted { return exit }
            remaining &-= 1
        }
        return runBlocks(budget: remaining, interrupts: true)
    }

    /// Whether the hart is back at `pc` in the state of the last snapshot (every
    /// integer and FP register, privilege and address space): since then it ran and changed
    /// nothing it can see, so until memory changes it would go on doing the same.
    /// Otherwise, with `snapshot`, this becomes the snapshot. A slice takes one, at its
    /// first block boundary, and compares at every boundary at that pc: a loop's
    /// boundaries are the heads of its blocks (a chain ends before a block that does
    /// not fit; an out-of-line load ends it at the load), and it comes round to them.
    @inline(never)
    private func spins(at pc: UInt64, snapshot: Bool) -> Bool {
        // (A loop whose boundaries are more than `spinSnapshotAge` apart is not caught.)
        if pc == spinPC, privilege == spinPrivilege, satp == spinSATP {
            var same = true
            for r in 1..<32 where spinRegisters[r] != x[r] { same = false; break }
            if same { for r in 0..<32 where spinRegisters[32 + r] != f[r] { same = false; break } }
            if same { return true }
        }
        guard snapshot else { return false }
        spinPC = pc
        spinPrivilege = privilege
        spinSATP = satp
        (spinRegisters + 1).update(from: x + 1, count: 31)
        (spinRegisters + 32).update(from: f, count: 32)
        return false
    }

    /// Block boundaries after which a spin snapshot whose pc did not come round is replaced.
    static let spinSnapshotAge = 4

    /// The parked instruction, before any interrupt (kept out of line so that the hot
    /// loop in `run` stays the only inlined copy of the interpreter).
    @inline(never)
    private func runParkedInstruction() -> HartExit {
        runBlocks(budget: 1, interrupts: false)
    }

    /// The interpreter: block after block until the budget is used up.
    ///
    /// A block runs in its threaded handlers (Threaded.swift), which go straight on
    /// to the next block while it is in the same page, current and within the budget.
    /// Pending interrupts are looked at when the handlers return, before the next
    /// block: within a slice only CSR writes, xRET, traps, WFI and device accesses
    /// change them, which all run out of line (the handlers return before them), so
    /// this is before each instruction at which an interrupt can have become pending
    /// and enabled.
    ///
    /// For the slice, pc and the budget left live in locals (host registers), and
    /// instructions retired are added to `instructionsRetired` from the budget used;
    /// `self.pc` and `instructionsRetired` are brought up to date before anything that
    /// reads them (out-of-line instructions, interrupts, traps, the slow lookup) and on
    /// return.
    @inline(__always)
    private func runBlocks(budget: Int, interrupts: Bool) -> HartExit {
        var remaining = budget
        var pc = self.pc
        // instructionsRetired lacks the instructions run since `remaining` was this.
        var counted = budget
        // Spin probes: at each block boundary after something ran, compared with the
        // snapshot at the snapshot's pc; a new snapshot at the first boundary and
        // whenever the snapshot's pc has not come round within a few boundaries.
        let detect = interrupts && detectsSpinning
        var sinceSnapshot = Self.spinSnapshotAge
        slice: while remaining > 0 {
            if interrupts, mie != 0, effectiveMIP & mie != 0 {
                self.pc = pc
                if takeInterruptIfEnabled() { pc = self.pc }  // the handler's first block runs in this slice
            }
            if detect, remaining != budget {
                if pc == spinPC || sinceSnapshot >= Self.spinSnapshotAge {
                    let snapshot = sinceSnapshot >= Self.spinSnapshotAge
                    if snapshot { sinceSnapshot = 0 }
                    if spins(at: pc, snapshot: snapshot) {
                        self.pc = pc
                        instructionsRetired &+= UInt64(truncatingIfNeeded: counted &- remaining)
                        return .spinning
                    }
                }
                sinceSnapshot &+= 1
            }
            do {
                // The block at pc: in the cursor's page, of the current code epoch.
                var block: UnsafeMutablePointer<BlockHeader>
                let offset = pc &- codeBase
                if offset < 4096, case let b = codeMap[Int(truncatingIfNeeded: offset &>> 1)], b.pointee.epoch == codeEpoch {
                    block = b
                } else {
                    self.pc = pc
                    block = try blockSlowly()
                    if block == scratch {
                        // Code with no direct page (remote, uncached): fetched out of
                        // line. The instruction still runs, whatever the charge.
                        let charge = min(slowPathCharge, remaining &- 1)
                        remaining &-= charge
                        counted &-= charge
                    }
                }
                // Run it, and the blocks it chains to (Threaded.swift).
                var first = Self.entries(of: block)
                var count = block.pointee.count
                if count > remaining {
                    first = truncated(block, remaining)
                    count = remaining
                }
                let base = pc & ~0xfff
                let context = threadContext
                context.storeBytes(of: codeMap, toByteOffset: Threaded.blockMap, as: BlockMap.self)
                context.storeBytes(of: codeEpoch, toByteOffset: Threaded.epoch, as: UInt64.self)
                let chain = min(remaining, Threaded.chainBudget)  // ≥ count: chainBudget ≥ maxBlockLength
                let stop = first.pointee.run.handler(UnsafeMutableRawPointer(first), x, context, base, chain &- count)
                remaining &-= chain &- context.load(fromByteOffset: Threaded.exitBudget, as: Int.self)
                pc = context.load(fromByteOffset: Threaded.exitPC, as: UInt64.self)
                let exitBase = context.load(fromByteOffset: Threaded.exitBase, as: UInt64.self)
                if exitBase != base { invalidateCodeCursor() }  // the chain went on in another page
                if pc == Threaded.outOfLine {
                    let op = stop.assumingMemoryBound(to: BlockEntry.self).pointee.op
                    self.pc = exitBase &+ UInt64(op.offset)
                    instructionsRetired &+= UInt64(truncatingIfNeeded: counted &- remaining)
                    counted = remaining
                    try executeOutOfLine(op, exitBase)
                    instructionsRetired &+= 1
                    remaining &-= 1 &+ slowPathCharge
                    counted = remaining
                    pc = self.pc
                }
            } catch {
                // self.pc is the instruction that stopped (after WFI: the next one); with
                // what ran since `counted` added, instructionsRetired counts what retired
                // before it.
                instructionsRetired &+= UInt64(truncatingIfNeeded: counted &- remaining)
                if error.cause == Trap.park { return .parked }
                if error.cause == Hart.waitCause { return .waitingForInterrupt }
                takeTrap(cause: error.cause, value: error.value, interrupt: false)
                pc = self.pc
                remaining &-= 1  // the trap uses up budget, so a faulting loop still ends
                counted = remaining
            }
        }
        self.pc = pc
        instructionsRetired &+= UInt64(truncatingIfNeeded: counted &- remaining)
        return .budgetExhausted
    }

    /// Thrown by WFI after it retired, when nothing can wake the hart yet.
    static let waitCause: UInt64 = .max - 1
}
