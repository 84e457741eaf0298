import Cluster
import Coherence
import Foundation
import Platform
import Protocol
import RISCV

/// The part of one VM that lives on this node: the VCPUs placed here (harts), the
/// guest's view of memory through the VM's physical-to-machine map onto the node's
/// CoherenceAgent, and, on the VM's device node, its devices.
///
/// Guest RAM is cut into chunks of `placement.chunkPages` pages; chunk i is homed at
/// machine address `placement.chunks[i].frameBase` (VMPlacement). MMIO goes to the device that
/// owns the address: CLINT registers of a hart to that hart's node, everything else
/// to the device node. Remote writes are posted (sent, not waited for; the channel
/// keeps them in order); remote reads park the hart until the answer arrives.
/// Device interrupts for VCPUs elsewhere travel as `interrupt` messages.
///
/// Everything here runs on the node's execution thread.
public final class NodeVM: PhysicalMemory {
    public let vm: UInt32
    public let placement: VMPlacement
    public let config: MachineConfig
    public let node: Int
    public var isDeviceNode: Bool { Int(placement.deviceNode) == node }
    private let agent: CoherenceAgent
    private let ramBase = VirtBoard.ramBase
    private let ramSize: UInt64
    /// log2 of the chunk size in bytes.
    private let chunkShift: UInt64
    /// The pmap as this node caches it: the machine page of each guest page, in guest
    /// order. It starts as the placement's chunks (with first-touch placement: `noFrame`
    /// everywhere, filled in as the coordinator assigns pages) and changes as pages move
    /// (`switchPage`); the coordinator holds the authoritative copy.
    private var frames: [UInt64]
    /// A guest page with no frame yet (first touch): `machineAddress` gives this.
    public static let noFrame: UInt64 = .max
    /// First touch: local harts waiting for a page's frame, and pages asked for.
    private var touching: [UInt64: Set<Int>] = [:]
    private var touchAsked: Set<UInt64> = []
    /// First touch: the boot image, copied page by page into the frames this node is
    /// given as the pages are first touched.
    private var image: BootImage?
    /// Messages for the coordinator (first touches), drained by the node.
    public var toCoordinator: [Message] = []

    /// Sampled data misses of this VM's harts on this node (docs/memory.md, "Local and
    /// remote misses"): during a sampling slice every data access takes the slow path,
    /// and each line a slice touches counts once, as a miss of a cache that was cold
    /// when the slice began: local when the line's memory (home frame or replica) is on
    /// this node, remote otherwise.
    public struct MissSample: Sendable, Equatable {
        public var local: UInt64 = 0
        public var remote: UInt64 = 0
        /// Sampling slices run.
        public var slices: UInt64 = 0
    }
    public private(set) var misses = MissSample()
    private var sampling = false
    private var sampledLines: Set<UInt64> = []
    /// Machine page → guest page for pages no longer at their chunk's frame.
    private var movedIn: [UInt64: UInt64] = [:]
    /// Guest pages frozen for a move, with the ids of the local harts held on each.
    private var frozen: [UInt64: Set<Int>] = [:]
    /// Guest pages this node holds a read-only replica of, and the replica's frame
    /// here: reads and fetches use it; a write drops it first and goes to the page's
    /// home, which collapses the other replicas before granting it.
    private var replicas: [UInt64: UInt64] = [:]
    /// The global buffer cache (docs/memory.md): guest pages that map a frame of the
    /// node's buffer cache, read-only and shared with other VMs, instead of their own
    /// frame; reads and fetches use it, a write copies it into the page's own frame first.
    /// Pages of frames from other VMs that move by remapping (`PageLoans`) map the
    /// sender's frame here the same way.
    private var shared: [UInt64: UInt64] = [:]
    private let bufferCache: BufferCache?
    /// Whether this VM is all on this node (its VCPUs, its devices, every frame of its
    /// memory, placed up front), so that no other node ever needs its pmap to know
    /// about shared frames: only then may it map cached or lent frames.
    public let isWhollyLocal: Bool
    /// Whether this VM's disk reads may map cached frames: its devices are here, with a
    /// cache. A VM that spans nodes shares only pages homed here that no other node
    /// holds a line of, and the agent serves other nodes' reads of such a page from the
    /// cached frame (`CoherenceAgent.alias`).
    public let sharesBlocks: Bool
    /// The node's page loans, and this VM's guest pages lent now (write-protected: a
    /// write makes the borrowers copy first).
    private let loans: PageLoans?
    private var lent: Set<UInt64> = []
    /// Guest pages used so far (by a hart, a device, or a shared read), for the node's
    /// footprint figures (`guestPagesTouched`, `privateFramesTouched`).
    private var touched: [Bool]
    public private(set) var guestPagesTouched = 0
    /// (machine base, chunk index) sorted by base, for machine → guest lookups.
    private let chunksByBase: [(base: UInt64, index: Int)]
    /// The node of each VCPU, by hart id: where its CLINT registers and its interrupts
    /// go. It changes when a VCPU moves (`detach`, `attach`, `route`).
    public private(set) var vcpuNodes: [Int]
    private let epochNanos: UInt64
    private let clock: ClusterClock

    /// The harts on this node (the VM's VCPUs with `localIndex` positions).
    public private(set) var harts: [Hart] = []
    /// Local harts whose parked access or device read completed since the node last
    /// looked (hart ids); the node's scheduler makes them runnable.
    public var woken: [Int] = []
    /// Hart id → position in `harts`.
    private var localIndex: [Int: Int] = [:]
    /// Interrupt lines for VCPUs on their way here (routed here, state not yet in),
    /// applied in order when they arrive.
    private var earlyLines: [Int: [(InterruptLine, Bool)]] = [:]

    /// The local hart with id `id`.
    @inline(__always) public func hart(_ id: Int) -> Hart? { localIndex[id].map { harts[$0] } }

    /// This node's devices of the VM: the CLINT of the local harts, and on the device
    /// node everything else.
    private var devices: BoardDevices!

    /// Frames the VM's switch NICs sent (device node), for the node's switch.
    private final class FrameOutbox { var frames: [(nic: Int, frame: NetFrame)] = [] }
    private let frameOutbox = FrameOutbox()
    /// The uplinks of the VM's `user` NICs (device node).
    private let userNetworks: UserNetworks

    /// Messages this VM wants sent (drained by the node after every step).
    public var outgoing: [(to: Int, message: Message)] = []
    /// Console output not yet sent (device node).
    public var consoleOutput: [UInt8] = []
    /// How the guest ended (device node: the finisher).
    public private(set) var exit: MachineExit?

    private struct PendingRead {
        var id: UInt64
        var address: UInt64
        var size: Int
        var result: (BusStatus, UInt64)?
    }
    private var pendingReads: [Int: PendingRead] = [:]
    private var nextRequestID: UInt64 = 1

    public init(placement: VMPlacement, config: MachineConfig, node: Int, agent: CoherenceAgent, clock: ClusterClock,
                bufferCache: BufferCache? = nil, loans: PageLoans? = nil) throws {
        let chunkPages = UInt64(placement.chunkPages)
        guard chunkPages > 0, chunkPages & (chunkPages - 1) == 0,
              placement.firstTouch || UInt64(placement.chunks.count) * chunkPages * 4096 >= config.memoryBytes else {
            throw MachineError("VM \(placement.vm): the placement's memory chunks do not cover its \(config.memoryBytes >> 20) MiB")
        }
        guard placement.vcpuNodes.count == config.harts else {
            throw MachineError("VM \(placement.vm): placement names \(placement.vcpuNodes.count) VCPUs, spec has \(config.harts)")
        }
        self.vm = placement.vm
        self.placement = placement
        self.config = config
        self.node = node
        self.agent = agent
        self.ramSize = config.memoryBytes
        self.chunkShift = 12 + UInt64(chunkPages.trailingZeroBitCount)
        let pages = Int((config.memoryBytes + 4095) / 4096)
        let chunkPagesInt = Int(chunkPages)
        var frames = [UInt64](repeating: Self.noFrame, count: pages)
        if !placement.firstTouch {
            for i in 0..<pages { frames[i] = placement.chunks[i / chunkPagesInt].frameBase + UInt64(i % chunkPagesInt) * 4096 }
        }
        self.frames = frames
        self.touched = [Bool](repeating: false, count: pages)
        self.bufferCache = bufferCache
        self.loans = loans
        self.sharesBlocks = bufferCache != nil && Int(placement.deviceNode) == node
        self.isWhollyLocal = !placement.firstTouch && Int(placement.deviceNode) == node
            && placement.vcpuNodes.allSatisfy { Int($0) == node } && placement.chunks.allSatisfy { Int($0.node) == node }
        self.chunksByBase = placement.chunks.enumerated().map { (base: $0.element.frameBase, index: $0.offset) }.sorted { $0.base < $1.base }
        self.vcpuNodes = placement.vcpuNodes.map(Int.init)
        self.epochNanos = placement.epochNanos
        self.clock = clock

        let io = Int(placement.deviceNode) == node
        let users = try UserNetworks(config: io ? config : MachineConfig(harts: config.harts, memoryBytes: config.memoryBytes,
                                                                         bios: config.bios, kernel: nil, disks: [], bootargs: nil))
        userNetworks = users
        let sent = frameOutbox
        devices = try BoardDevices(config: config, io: io,
                                   clock: { [epochNanos] in clock.mtime(epochNanos: epochNanos) },
                                   clintSink: LocalSink(owner: self), plicSink: RoutingSink(owner: self),
                                   console: ConsoleBuffer(owner: self), dma: DMAView(owner: self), vm: placement.vm,
                                   transmit: { nic, frame in
                                       if !users.transmit(nic: nic, frame: frame.bytes) { sent.frames.append((nic, frame)) }
                                   })
        for (id, n) in vcpuNodes.enumerated() where n == node {
            localIndex[id] = harts.count
            let h = Hart(id: id, memory: self)
            h.slowPathCharge = Self.slowPathCharge
            harts.append(h)
        }
    }

    /// Writes the boot image into the frames homed here and points the local harts at
    /// the entry. Every node of the VM does this for its own frames; with first-touch
    /// placement each page is written when this node is given its frame.
    public func boot() throws {
        let image = try BootImage(config: config, ramBase: ramBase)
        if placement.firstTouch {
            self.image = image
            image.start(harts)
            return
        }
        for chunk in image.chunks {
            var offset = 0
            while offset < chunk.bytes.count {
                let gpa = chunk.address + UInt64(offset)
                let inPage = min(chunk.bytes.count - offset, 4096 - Int(gpa & 0xfff))
                guard let m = machineAddress(gpa) else {
                    throw MachineError("image at 0x\(String(gpa, radix: 16)) is outside the VM's RAM")
                }
                if agent.home(of: m) == node {
                    chunk.bytes.withUnsafeBytes { raw in
                        _ = agent.initialize(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + inPage]), at: m)
                    }
                }
                offset += inPage
            }
        }
        image.start(harts)
    }

    // MARK: - Address translation

    /// The token naming a VCPU of this VM to the node's coherence agent.
    @inline(__always) public func requester(_ hart: Int) -> UInt64 { UInt64(vm) << 32 | UInt64(hart) }

    /// Only the board's devices, not RAM (a store to RAM starts no DMA).
    public func isDevicePage(_ pageAddress: UInt64) -> Bool { pageAddress &- ramBase >= ramSize }

    /// The guest-physical address that machine address `m` backs in this VM, or nil
    /// (falls back to a linear search of the pmap: for reports, not the access path).
    public func guestPhysical(ofMachine m: UInt64) -> UInt64? {
        let page = m & ~0xfff
        if let g = guestPage(ofMachinePage: page) { return g | (m & 0xfff) }
        guard let i = frames.firstIndex(of: page) else { return nil }
        return ramBase + UInt64(i) << 12 | (m & 0xfff)
    }

    /// A parked access of a local hart completed in the agent: it re-executes that
    /// instruction first, before looking at interrupts.
    public func accessCompleted(requester: UInt64) {
        let id = Int(requester & 0xffff_ffff)
        guard requester >> 32 == UInt64(vm), let i = localIndex[id] else { return }
        harts[i].finishParkedInstructionFirst = true
        woken.append(id)
    }

    /// Runs local hart `hart` for up to `budget` instructions, keeping its parked
    /// accesses tied to the instruction that parked (docs/architecture.md, "Parked
    /// accesses"):
    /// - accesses not yet performed are forgotten first (`forgetWaiting`): the hart
    ///   asks again if it re-executes the instruction, and nothing is performed for an
    ///   instruction it left (woken by a page move, it may take an interrupt first);
    /// - if the agent holds an access it performed for the hart, the hart re-executes
    ///   that instruction alone, before it looks at interrupts. `accessCompleted` says
    ///   so when the access completes, but the re-execution can be held on the way (its
    ///   fetch or page walk reaches a page being moved) and woken by the move instead;
    ///   without this it could take an interrupt first and run the handler with the
    ///   access done in memory but not in the program;
    /// - once that instruction is over (retired or trapped), what it did not pick up is
    ///   forgotten (`forgetPerformed`) and reported in `unusedPerformed`.
    public func run(_ hart: Hart, budget: Int) -> HartExit {
        let r = requester(hart.id)
        guard agent.hasParkedAccess(requester: r) else { return hart.run(budget: budget) }
        agent.forgetWaiting(requester: r)
        guard agent.hasPerformedAccess(requester: r) else { return hart.run(budget: budget) }
        hart.finishParkedInstructionFirst = true
        let pc = hart.pc
        let first = hart.run(budget: 1)
        if first == .parked { return first }  // still on it: a fetch or walk parked anew
        let unused = agent.forgetPerformed(requester: r)
        if !unused.isEmpty { unusedPerformed.append((hart.id, pc, unused)) }
        guard first == .budgetExhausted, budget > 1 else { return first }
        return hart.run(budget: budget - 1)
    }

    /// Performed accesses a re-executed instruction did not use (`run`), for the
    /// node's log: the hart, the instruction's pc, the accesses.
    public var unusedPerformed: [(hart: Int, pc: UInt64, unused: [CoherenceAgent.Unused])] = []

    /// The machine address of guest-physical `gpa`, if it is RAM.
    @inline(__always) public func machineAddress(_ gpa: UInt64) -> UInt64? {
        let offset = gpa &- ramBase
        guard offset < ramSize else { return nil }
        return frames[Int(offset >> 12)] | (offset & 0xfff)
    }

    /// The guest-physical page mapped to machine page `page`, if this VM maps it.
    public func guestPage(ofMachinePage page: UInt64) -> UInt64? {
        if !movedIn.isEmpty, let g = movedIn[page] { return g }
        guard let g = chunkGuestPage(ofMachinePage: page), frames[Int((g - ramBase) >> 12)] == page else { return nil }
        return g
    }

    /// The guest page whose chunk frame is machine page `page` (where it started).
    private func chunkGuestPage(ofMachinePage page: UInt64) -> UInt64? {
        // The last chunk starting at or below `page`.
        var lo = 0, hi = chunksByBase.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunksByBase[mid].base <= page { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let chunk = chunksByBase[lo - 1]
        let within = page - chunk.base
        guard within >> chunkShift == 0 else { return nil }
        let offset = UInt64(chunk.index) << chunkShift + within
        return offset < ramSize ? ramBase + offset : nil
    }

    /// Coherence took rights on a machine page away: drop the harts' fast paths to it.
    public func revoke(machinePage: UInt64) {
        guard let gpa = guestPage(ofMachinePage: machinePage) else { return }
        for h in harts { h.dropDirectMappings(page: gpa) }
    }

    // MARK: - Miss sampling

    /// Starts a sampling slice for local hart `index`: its data fast paths go, and until
    /// `endSample` none is handed out, so every data access is seen.
    public func beginSample(_ id: Int) {
        sampling = true
        sampledLines.removeAll(keepingCapacity: true)
        misses.slices &+= 1
        hart(id)?.dropAllDirectMappings()
        // Every data access of a sampling slice is slow on purpose: uncharged, it runs
        // as many instructions as any slice, so the lines it sees are a fair sample.
        hart(id)?.slowPathCharge = 0
    }

    public func endSample(_ id: Int) {
        sampling = false
        hart(id)?.dropAllDirectMappings()
        hart(id)?.slowPathCharge = Self.slowPathCharge
    }

    /// A data access to machine address `m` in a sampling slice.
    @inline(__always) private func sample(_ m: UInt64) {
        guard sampling, sampledLines.insert(m >> 7).inserted else { return }
        if agent.home(of: m) == node { misses.local &+= 1 } else { misses.remote &+= 1 }
    }

    // MARK: - First touch

    /// An access to a page with no frame yet: the hart waits for the coordinator's
    /// `pageAssigned` (asked for once per page).
    private func touch(_ gpa: UInt64, hart: Int?) -> BusStatus {
        let page = gpa & ~0xfff
        if let hart { touching[page, default: []].insert(hart) }
        if touchAsked.insert(page).inserted { toCoordinator.append(.pageTouch(vm: vm, guestPage: page)) }
        return .retry
    }

    /// Whether guest page `gpa` has a frame (always, but for untouched pages under
    /// first-touch placement).
    public func hasFrame(_ gpa: UInt64) -> Bool { machineAddress(gpa & ~0xfff).map { $0 != Self.noFrame } ?? false }

    /// The coordinator gave guest page `gpa` frame `frame` on `node`: this node maps it
    /// there, unless it already maps the page (a move or an earlier assignment told it
    /// first). The node given the frame fills it from the boot image and says so to
    /// the coordinator, which only then tells the VM's other nodes (so none of them can
    /// ask for a line of the frame before it holds the image). The harts that waited
    /// for the page go, in either case.
    public func assign(_ gpa: UInt64, node home: Int, frame: UInt64) {
        let page = gpa & ~0xfff
        let offset = page &- ramBase
        guard offset < ramSize else { return }
        if frames[Int(offset >> 12)] == Self.noFrame {
            frames[Int(offset >> 12)] = frame
            movedIn[frame] = page
            if home == node {
                if let image {
                    for chunk in image.chunks where chunk.address < page + 4096 && chunk.address + UInt64(chunk.bytes.count) > page {
                        let from = max(chunk.address, page), to = min(chunk.address + UInt64(chunk.bytes.count), page + 4096)
                        chunk.bytes.withUnsafeBytes { raw in
                            _ = agent.initialize(UnsafeRawBufferPointer(rebasing: raw[Int(from - chunk.address)..<Int(to - chunk.address)]),
                                                 at: frame + (from - page))
                        }
                    }
                }
                toCoordinator.append(.pageAssigned(vm: vm, guestPage: page, node: Int32(home), frame: frame))
            }
        }
        touchAsked.remove(page)
        if let held = touching.removeValue(forKey: page) {
            for hart in held.sorted() where localIndex[hart] != nil { woken.append(hart) }
        }
    }

    // MARK: - Pages that move (PageMoveStateMachine)

    /// The machine page guest page `gpa` is mapped to now, if it is RAM.
    public func frame(ofGuestPage gpa: UInt64) -> UInt64? { machineAddress(gpa & ~0xfff) }

    /// Whether guest page `gpa` is frozen for a move.
    public func isFrozen(_ gpa: UInt64) -> Bool { !frozen.isEmpty && frozen[gpa & ~0xfff] != nil }

    /// Holds every new access to guest page `gpa` until `switchPage`: the harts' fast
    /// paths to it go, and their slow-path accesses wait.
    public func freeze(_ gpa: UInt64) {
        let page = gpa & ~0xfff
        guard machineAddress(page) != nil, frozen[page] == nil else { return }
        // A moved or replicated page is the page's own frame: a shared one is copied in first.
        if !shared.isEmpty, shared[page] != nil { copyOnWrite(page) }
        if !lent.isEmpty, lent.contains(page) { endLoan(page) }
        frozen[page] = []
        for h in harts { h.dropDirectMappings(page: page) }
    }

    /// Maps guest page `gpa` to machine page `frame` and lets the accesses held on it go.
    public func switchPage(_ gpa: UInt64, to frame: UInt64) {
        let page = gpa & ~0xfff
        guard let old = machineAddress(page) else { return }
        movedIn[old] = nil
        frames[Int((page - ramBase) >> 12)] = frame
        if chunkGuestPage(ofMachinePage: frame) != page { movedIn[frame] = page }
        agent.rebasePerformed(vm: vm, from: old, to: frame)
        for h in harts { h.dropDirectMappings(page: page) }
        release(page)
    }

    /// Lets the accesses held on frozen guest page `page` go (they re-execute).
    private func release(_ page: UInt64) {
        if let held = frozen.removeValue(forKey: page) {
            for hart in held.sorted() where localIndex[hart] != nil { woken.append(hart) }
        }
    }

    /// A replication ended without changing this node's mapping: held accesses go.
    public func thaw(_ gpa: UInt64) { release(gpa & ~0xfff) }

    // MARK: - Replicas

    /// The frame of this node's replica of guest page `gpa`, if it holds one.
    public func replicaFrame(ofGuestPage gpa: UInt64) -> UInt64? { replicas.isEmpty ? nil : replicas[gpa & ~0xfff] }

    public var replicaCount: Int { replicas.count }

    /// Reads of guest page `gpa` go to this node's read-only copy at `frame` (written
    /// already) from now on; held accesses go.
    public func installReplica(_ gpa: UInt64, frame: UInt64) {
        let page = gpa & ~0xfff
        guard machineAddress(page) != nil else { return }
        replicas[page] = frame
        for h in harts { h.dropDirectMappings(page: page) }
        release(page)
    }

    /// Drops this node's replica of guest page `gpa`, if any: no hart can read it after
    /// this returns, and its frame is zeroed (the coordinator frees it once the home
    /// reports the collapse). Returns the frame.
    @discardableResult
    public func dropReplica(_ gpa: UInt64) -> UInt64? {
        let page = gpa & ~0xfff
        guard let frame = replicas.removeValue(forKey: page) else { return nil }
        for h in harts { h.dropDirectMappings(page: page) }
        agent.zero(frame, 4096)
        droppedReplicas &+= 1
        return frame
    }

    /// Replicas this node dropped (its own writes and the homes' collapses).
    public private(set) var droppedReplicas: UInt64 = 0

    /// The machine address a read of guest-physical `gpa` (RAM, mapped at `m`) of
    /// `size` bytes by `requester` uses: the local replica if there is one, unless the
    /// read was already performed on `m` before the replica came (it is picked up there).
    @inline(__always) private func readAddress(_ gpa: UInt64, _ m: UInt64, _ size: Int, _ requester: UInt64) -> UInt64 {
        if !shared.isEmpty, let f = shared[gpa & ~0xfff] { return f | (gpa & 0xfff) }
        guard !replicas.isEmpty, let r = replicas[gpa & ~0xfff],
              !agent.hasPerformedAccess(.load, requester: requester, address: m, size: size) else { return m }
        return r | (gpa & 0xfff)
    }

    /// A write to guest-physical `gpa`: the local replica of its page goes first.
    @inline(__always) private func prepareWrite(_ gpa: UInt64) {
        if !replicas.isEmpty, replicas[gpa & ~0xfff] != nil { dropReplica(gpa) }
        if !shared.isEmpty, shared[gpa & ~0xfff] != nil { copyOnWrite(gpa) }
        if !lent.isEmpty, lent.contains(gpa & ~0xfff) { endLoan(gpa & ~0xfff) }
    }

    /// An access to a frozen page: an access already performed is picked up; anything
    /// else waits for the move (the hart parks until `switchPage`).
    /// Only the same access (kind and operands) may be picked up: any other would be
    /// performed on the old frame.
    @inline(__always) private func heldByMove(_ access: @autoclosure () -> CoherenceAgent.Access,
                                              _ address: UInt64, _ m: UInt64, _ size: Int, _ hart: Int) -> Bool {
        guard !frozen.isEmpty, frozen[address & ~0xfff] != nil else { return false }
        if agent.hasPerformedAccess(access(), requester: requester(hart), address: m, size: size) { return false }
        frozen[address & ~0xfff]!.insert(hart)
        return true
    }

    // MARK: - The global buffer cache

    @inline(__always) private func markTouched(_ gpa: UInt64) {
        let i = Int((gpa &- ramBase) >> 12)
        if !touched[i] {
            touched[i] = true
            guestPagesTouched += 1
        }
    }

    /// Guest pages that map a frame of the buffer cache now.
    public var sharedPages: Int { shared.count }

    /// Guest pages used whose own frame holds data: touched and not mapping a cached frame.
    public var privateFramesTouched: Int { guestPagesTouched - shared.count }

    /// The cached frame guest page `gpa` maps, if it maps one.
    public func sharedFrame(ofGuestPage gpa: UInt64) -> UInt64? { shared.isEmpty ? nil : shared[gpa & ~0xfff] }

    /// A disk read of `block` into the whole guest page at `gpa`: maps the page to the
    /// node's cached frame of the block (filling a free one first with `fill` if none
    /// holds it), read-only and copy-on-write. False when this VM or page does not
    /// qualify or the cache is full (the device copies the bytes in instead).
    func shareBlock(_ block: SharedBlock, at gpa: UInt64, fill: (UnsafeMutableRawBufferPointer) throws -> Void) -> Bool {
        // A page that has no frame yet (first touch) gets one first, as the DMA would.
        var deadline: Date?
        guard sharesBlocks, gpa & 0xfff == 0, waitForFrame(gpa, deadline: &deadline) else { return false }
        // The page's own frame must be here: a write copies the cached bytes into it.
        guard let cache = bufferCache, let m = machineAddress(gpa), m != Self.noFrame,
              agent.home(of: m) == node,
              !isFrozen(gpa), replicas.isEmpty || replicas[gpa] == nil, !agent.isGated(m) else { return false }
        let me = BufferCacheIndex.Sharer(vm: vm, guestPage: gpa)
        if let current = shared[gpa], cache.index.block(inFrame: current) == block { return true }
        // Another node holding a line of the page would keep reading its old bytes.
        guard isWhollyLocal || agent.isHomeOnly(m) else { return false }
        if let current = shared[gpa] {
            // Replaced whole by the read: nothing of the old page needs copying.
            shared[gpa] = nil
            agent.unalias(m)
            releaseShared(current, of: gpa, copied: false)
        }
        if !lent.isEmpty, lent.contains(gpa) { endLoan(gpa) }
        let frame: UInt64
        switch cache.index.share(block, with: me) {
        case .full:
            return false
        case .hit(let f):
            frame = f
        case .fill(let f):
            var bytes = [UInt8](repeating: 0, count: 4096)
            do {
                try bytes.withUnsafeMutableBytes { try fill($0) }
            } catch {
                cache.index.abandon(block)
                return false
            }
            guard bytes.withUnsafeBytes({ agent.initialize($0, at: f) }) else {
                cache.index.abandon(block)
                return false
            }
            cache.index.filled(block)
            frame = f
        }
        shared[gpa] = frame
        if !isWhollyLocal { agent.alias(m, to: frame) }
        markTouched(gpa)
        for h in harts { h.dropDirectMappings(page: gpa) }
        return true
    }

    /// A write to guest page `gpa`, which maps a cached frame: the page's bytes are
    /// copied into its own frame, which it maps again (read and write) from now on; the
    /// cache forgets this sharer (and frees the frame if it was the last).
    private func copyOnWrite(_ gpa: UInt64) {
        let page = gpa & ~0xfff
        guard let f = shared.removeValue(forKey: page), let m = machineAddress(page), let bytes = agent.readPage(f) else { return }
        bytes.withUnsafeBytes { _ = agent.initialize($0, at: m) }
        agent.unalias(m)
        for h in harts { h.dropDirectMappings(page: page) }
        releaseShared(f, of: page, copied: true)
    }

    /// Guest page `page` no longer maps shared frame `f` (a cached or a lent one).
    private func releaseShared(_ f: UInt64, of page: UInt64, copied: Bool) {
        let me = BufferCacheIndex.Sharer(vm: vm, guestPage: page)
        if let cache = bufferCache, cache.index.contains(frame: f) {
            if copied { cache.copiesOnWrite &+= 1 }
            if cache.index.release(f, by: me) { agent.zero(f, 4096) }
        } else if let loans {
            if copied { loans.copiesOnWrite &+= 1 }
            loans.index.giveBack(f, by: me)
        }
    }

    /// Guest pages of the VM.
    public var pageCount: Int { touched.count }

    /// Page `index` of the VM, for the identical-page scanner: its guest address and own
    /// frame, if it may be merged now (used, mapping no cached frame, not frozen, gated
    /// or replicated, and the VM may share at all).
    func pageForContentScan(_ index: Int) -> (gpa: UInt64, frame: UInt64)? {
        guard sharesBlocks, isWhollyLocal, index >= 0, index < touched.count, touched[index] else { return nil }
        let gpa = ramBase + UInt64(index) << 12
        guard shared[gpa] == nil, frozen[gpa] == nil, replicas[gpa] == nil, !lent.contains(gpa), let m = machineAddress(gpa), m != Self.noFrame,
              !agent.isGated(m) else { return nil }
        return (gpa, m)
    }

    /// Guest page `gpa` (whose own frame holds the same bytes as `frame`) maps the cached
    /// `frame` from now on, read-only (the index has recorded the sharer).
    func mapShared(_ gpa: UInt64, frame: UInt64) {
        shared[gpa] = frame
        for h in harts { h.dropDirectMappings(page: gpa) }
    }

    /// The VM ends on this node: its guest pages let go of the cached frames; frames
    /// nobody shares any more are zeroed and free.
    public func releaseSharedPages() {
        // Borrowers copy what this VM lent while its frames are still its own.
        for page in lent.sorted() { endLoan(page) }
        guard !shared.isEmpty else { return }
        for h in harts { h.dropAllDirectMappings() }
        for page in shared.keys { if let m = machineAddress(page) { agent.unalias(m) } }
        shared.removeAll()
        if let cache = bufferCache { for f in cache.index.releaseAll(vm: vm) { agent.zero(f, 4096) } }
        loans?.index.giveBackAll(vm: vm)
    }

    // MARK: - Pages of frames that move by remapping (PageLoans)

    /// Guest pages of this VM lent now.
    public var lentPages: Int { lent.count }

    /// NIC `nic` sends the whole guest page at `gpa` in a frame: lends its own frame
    /// (write-protected from now on) and returns it, or nil when the page cannot be lent
    /// (the VM is not wholly here, the NIC is a user NIC, the page maps a shared frame or
    /// is frozen, replicated or gated): the NIC copies it.
    func lendPage(at gpa: UInt64, nic: Int) -> UInt64? {
        guard isWhollyLocal, let loans, gpa & 0xfff == 0, subnet(ofNIC: nic) != nil, let m = machineAddress(gpa), m != Self.noFrame,
              shared.isEmpty || shared[gpa] == nil, !isFrozen(gpa), replicas.isEmpty || replicas[gpa] == nil, !agent.isGated(m),
              agent.home(of: m) == node else { return nil }
        if lent.insert(gpa).inserted {
            loans.index.lend(m, by: .init(vm: vm, guestPage: gpa))
            for h in harts { h.dropDirectMappings(page: gpa) }
        }
        loans.pagesLent &+= 1
        return m
    }

    /// Maps lent frame `token` into the whole guest page at `gpa`, read-only and
    /// copy-on-write, in place of a copy of it; false when the page cannot map it.
    func mapLentPage(_ token: UInt64, at gpa: UInt64) -> Bool {
        guard isWhollyLocal, let loans, gpa & 0xfff == 0, let own = machineAddress(gpa), own != Self.noFrame, own != token,
              agent.home(of: own) == node, !isFrozen(gpa), replicas.isEmpty || replicas[gpa] == nil, !agent.isGated(own), loans.index.isLent(token) else { return false }
        // The frame replaces the whole page: what it mapped or lent before needs no copy here.
        if !lent.isEmpty, lent.contains(gpa) { endLoan(gpa) }
        if let current = shared.removeValue(forKey: gpa) { releaseShared(current, of: gpa, copied: false) }
        guard loans.index.borrow(token, by: .init(vm: vm, guestPage: gpa)) else { return false }
        shared[gpa] = token
        loans.pagesRemapped &+= 1
        markTouched(gpa)
        for h in harts { h.dropDirectMappings(page: gpa) }
        return true
    }

    /// This VM's page `page` is about to change (a write, a move, the VM's end): frames
    /// not switched yet take its bytes as they are, and every borrower copies it first.
    private func endLoan(_ page: UInt64) {
        guard lent.remove(page) != nil, let loans, let m = machineAddress(page) else { return }
        let waiting = frameOutbox.frames.indices.filter { frameOutbox.frames[$0].frame.lent.contains { $0.token == m } }
        if !waiting.isEmpty, let bytes = agent.readPage(m) {
            for i in waiting { frameOutbox.frames[i].frame.fill(m, with: bytes) }
        }
        for b in loans.index.end(m) { loans.vm(b.vm)?.loanEnded(b.guestPage) }
    }

    /// Another node wants to write machine page `m`: if it is this VM's page mapping a
    /// cached frame, the page gets its own copy first (true).
    func aliasWritten(_ m: UInt64) -> Bool {
        guard !shared.isEmpty, let gpa = guestPage(ofMachinePage: m), shared[gpa] != nil else { return false }
        copyOnWrite(gpa)
        return true
    }

    /// A loan involving guest page `gpa` ended: a borrowed page copies the lent frame
    /// into its own (the lender will write it); a lent page nobody borrowed is the
    /// VM's alone again.
    func loanEnded(_ gpa: UInt64) {
        if lent.remove(gpa) != nil { return }
        if !shared.isEmpty, let f = shared[gpa], !(bufferCache?.index.contains(frame: f) ?? false) { copyOnWrite(gpa) }
    }

    // MARK: - PhysicalMemory

    public func directPage(_ pageAddress: UInt64, for access: AccessType) -> UnsafeMutableRawPointer? {
        guard let m = machineAddress(pageAddress), m != Self.noFrame, !isFrozen(pageAddress) else { return nil }
        if sampling && access != .execute { return nil }
        markTouched(pageAddress)
        if !shared.isEmpty, let f = shared[pageAddress & ~0xfff] {
            if access != .write { return agent.directPage(f, write: false) }
            copyOnWrite(pageAddress)
        }
        if access == .write, !lent.isEmpty, lent.contains(pageAddress & ~0xfff) { endLoan(pageAddress & ~0xfff) }
        if !replicas.isEmpty, let r = replicas[pageAddress & ~0xfff] {
            // An access parked on the page's own frame (performed before the replica
            // came, or still on its way) must be picked up through the slow path: a
            // hart reading the replica directly would leave a performed load behind,
            // and a later load of the same address through the agent (once the replica
            // collapsed) would be handed that old value.
            guard access != .write, !agent.hasParked(onPage: m) else { return nil }
            return agent.directPage(r, write: false)
        }
        return agent.directPage(m, write: access == .write)
    }

    public func load(_ address: UInt64, size: Int, hart: Int, value: inout UInt64) -> BusStatus {
        if let m = machineAddress(address) {
            if heldByMove(.load, address, m, size, hart) { return .retry }
            if m == Self.noFrame { return touch(address, hart: hart) }
            markTouched(address)
            let a = readAddress(address, m, size, requester(hart))
            if sampling { sample(a) }
            return agent.load(a, size: size, requester: requester(hart), value: &value)
        }
        let owner = mmioOwner(address)
        if owner == node {
            guard let (device, offset) = localDevice(address) else { return .accessFault }
            value = device.read(offset: offset, size: size)
            return .ok
        }
        return remoteRead(owner, address, size, hart, &value)
    }

    public func store(_ address: UInt64, size: Int, value: UInt64, hart: Int) -> BusStatus {
        if let m = machineAddress(address) {
            if heldByMove(.store(value), address, m, size, hart) { return .retry }
            if m == Self.noFrame { return touch(address, hart: hart) }
            markTouched(address)
            prepareWrite(address)
            if sampling { sample(m) }
            return agent.store(m, size: size, value: value, requester: requester(hart))
        }
        let owner = mmioOwner(address)
        if owner == node {
            guard let (device, offset) = localDevice(address) else { return .accessFault }
            device.write(offset: offset, size: size, value: value)
            return .ok
        }
        // Posted: the device node applies writes in the order this node sent them.
        outgoing.append((owner, .mmioRequest(MMIORequest(id: 0, vm: vm, vcpu: UInt32(hart), address: address,
                                                          size: UInt8(size), isWrite: true, value: value))))
        return .ok
    }

    public func atomic(_ op: AtomicOp, _ address: UInt64, size: Int, operand: UInt64, expected: UInt64,
                       hart: Int, old: inout UInt64) -> BusStatus {
        if let m = machineAddress(address) {
            if heldByMove(.atomic(op, operand: operand, expected: expected), address, m, size, hart) { return .retry }
            if m == Self.noFrame { return touch(address, hart: hart) }
            markTouched(address)
            prepareWrite(address)
            if sampling { sample(m) }
            return agent.atomic(op, m, size: size, operand: operand, expected: expected, requester: requester(hart), old: &old)
        }
        // On a device an AMO is a read followed by a write of the result, as on QEMU.
        let status = load(address, size: size, hart: hart, value: &old)
        guard status == .ok else { return status }
        if let result = op.apply(current: old, operand: operand, expected: expected, size: size) {
            _ = store(address, size: size, value: result, hart: hart)
        }
        return .ok
    }

    public func currentTime() -> UInt64 { clock.mtime(epochNanos: epochNanos) }

    // MARK: - Devices

    /// The node whose device answers `address`: a hart's CLINT registers live with the
    /// hart, everything else with the device node.
    private func mmioOwner(_ address: UInt64) -> Int {
        let offset = address &- VirtBoard.clint
        if offset < VirtBoard.clintSize {
            let hart: Int
            if offset < 0x4000 { hart = Int(offset / 4) }
            else if offset >= 0x4000 && offset < 0xbff8 { hart = Int((offset - 0x4000) / 8) }
            else { return node }  // mtime: the cluster time base is everywhere
            return hart < vcpuNodes.count ? vcpuNodes[hart] : node
        }
        return Int(placement.deviceNode)
    }

    private func localDevice(_ address: UInt64) -> (MMIODevice, UInt64)? { devices.device(at: address) }

    private func remoteRead(_ owner: Int, _ address: UInt64, _ size: Int, _ hart: Int, _ value: inout UInt64) -> BusStatus {
        if let p = pendingReads[hart], p.address == address, p.size == size {
            guard let (status, v) = p.result else { return .retry }
            pendingReads[hart] = nil
            value = v
            return status
        }
        let id = nextRequestID
        nextRequestID += 1
        pendingReads[hart] = PendingRead(id: id, address: address, size: size, result: nil)
        outgoing.append((owner, .mmioRequest(MMIORequest(id: id, vm: vm, vcpu: UInt32(hart), address: address,
                                                          size: UInt8(size), isWrite: false, value: 0))))
        return .retry
    }

    // MARK: - VCPU migration

    /// Why local VCPU `id` cannot leave between these slices (an access of it is in
    /// flight or half done), or nil if it can.
    public func busyReason(_ id: Int) -> String? {
        guard let h = hart(id) else { return "VCPU \(id) is not on node \(node)" }
        if pendingReads[id] != nil { return "a device read is in flight" }
        if h.finishParkedInstructionFirst { return "a parked access has not been finished" }
        // An access the agent performed for it and it has not picked up would be done
        // again on the new node; one still parked would be performed here after it left.
        if agent.hasParkedAccess(requester: requester(id)) { return "an access of it is parked in the coherence agent" }
        if touching.values.contains(where: { $0.contains(id) }) { return "it waits for a page's first frame" }
        if frozen.values.contains(where: { $0.contains(id) }) { return "it waits for a page being moved" }
        return nil
    }

    /// Takes local VCPU `id` out of this node for node `to`: its architectural state and
    /// its CLINT registers, which this node forgets (from now on its CLINT registers and
    /// interrupts are `to`'s). Nil if it is not here or busy (`busyReason`).
    public func detach(_ id: Int, to: Int) -> VCPUState? {
        guard busyReason(id) == nil, let i = localIndex[id], to != node, id < vcpuNodes.count else { return nil }
        let h = harts[i]
        let st = h.state
        let (msip, mtimecmp) = devices.clint.registers(ofHart: id)
        harts.remove(at: i)
        localIndex = Dictionary(uniqueKeysWithValues: harts.enumerated().map { ($0.element.id, $0.offset) })
        woken.removeAll { $0 == id }
        vcpuNodes[id] = to
        // This node's copy of its registers no longer drives anything.
        devices.clint.setRegisters(ofHart: id, msip: false, mtimecmp: .max)
        return VCPUState(vm: vm, vcpu: UInt32(id), pc: st.pc, privilege: st.privilege, registers: st.registers,
                         csrs: st.csrs.map { CSRValue(number: $0.number, value: $0.value) },
                         floatRegisters: st.floatRegisters, msip: msip, mtimecmp: mtimecmp)
    }

    /// What a slow instruction (out of line: through the coherence agent, a device, a
    /// CSR) or a slow block lookup (uncached or remote code) costs of a slice's budget:
    /// about its time in fast instructions, so that a slice of them does not keep the
    /// node from its messages for milliseconds (a quiet slice of 100,000 instructions
    /// on remote code took 20 ms).
    static let slowPathCharge = 32

    /// Installs a VCPU that moved here (empty TLBs and decoded blocks), with its CLINT
    /// registers: its mtimecmp, and its msip also set if a hart here set it while it was
    /// on the way. Lines raised or lowered for it meanwhile are applied after its state.
    /// Returns the new hart.
    public func attach(_ st: VCPUState) throws -> Hart {
        let id = Int(st.vcpu)
        guard st.vm == vm, id < vcpuNodes.count else { throw MachineError("VM \(vm) has no VCPU \(st.vcpu)") }
        guard localIndex[id] == nil else { throw MachineError("VCPU \(id) of VM \(vm) is on node \(node) already") }
        let h = Hart(id: id, memory: self)
        h.slowPathCharge = Self.slowPathCharge
        do {
            try h.restore(HartState(pc: st.pc, privilege: st.privilege, registers: st.registers,
                                    floatRegisters: st.floatRegisters, csrs: st.csrs.map { ($0.number, $0.value) }))
        } catch { throw MachineError("VCPU \(id) of VM \(vm): \(error)") }
        localIndex[id] = harts.count
        harts.append(h)
        vcpuNodes[id] = node
        let here = devices.clint.registers(ofHart: id)
        devices.clint.setRegisters(ofHart: id, msip: st.msip || here.msip, mtimecmp: st.mtimecmp)
        for (line, level) in earlyLines.removeValue(forKey: id) ?? [] { h.setInterrupt(line, level) }
        return h
    }

    /// VCPU `id` runs on node `to` from now on (this node neither had it nor gets it,
    /// or gets it: its interrupts wait here for it).
    public func route(_ id: Int, to: Int) {
        guard id < vcpuNodes.count, localIndex[id] == nil else { return }
        vcpuNodes[id] = to
    }

    // MARK: - Messages for this VM

    /// Handles a VM message from node `from`; false if it does not belong here.
    @discardableResult
    public func receive(_ message: Message, from: Int) -> Bool {
        switch message {
        case .mmioRequest(let r):
            guard mmioOwner(r.address) == node, r.address < VirtBoard.ramBase else { return false }
            let result: UInt64
            let status: MMIOResponse.Status
            if let (device, offset) = localDevice(r.address) {
                if r.isWrite {
                    device.write(offset: offset, size: Int(r.size), value: r.value)
                    result = 0
                } else {
                    result = device.read(offset: offset, size: Int(r.size))
                }
                status = .ok
            } else {
                result = 0
                status = .accessFault
            }
            if !r.isWrite {
                outgoing.append((from, .mmioResponse(MMIOResponse(id: r.id, vm: r.vm, vcpu: r.vcpu, status: status, value: result))))
            }
            return true
        case .mmioResponse(let r):
            let hart = Int(r.vcpu)
            guard r.vm == vm, let pending = pendingReads[hart], pending.id == r.id, pending.result == nil,
                  let i = localIndex[hart] else { return false }
            pendingReads[hart]?.result = (r.status == .ok ? .ok : .accessFault, r.value)
            harts[i].finishParkedInstructionFirst = true
            woken.append(hart)
            return true
        case .interrupt(_, let vcpu, let cause, let level):
            guard let line = InterruptLine(rawValue: Int(cause)) else { return false }
            if let i = localIndex[Int(vcpu)] {
                harts[i].setInterrupt(line, level)
                return true
            }
            // A VCPU routed here whose state is still on the way: kept for it.
            guard Int(vcpu) < vcpuNodes.count, vcpuNodes[Int(vcpu)] == node else { return false }
            earlyLines[Int(vcpu), default: []].append((line, level))
            return true
        case .console(_, let bytes):
            guard let uart = devices.uart else { return false }
            uart.enqueueInput(bytes)
            return true
        default:
            return false
        }
    }

    /// Polls devices with time-driven state (timers, UART receive, user-network uplinks)
    /// once per turn.
    public func pollDevices() {
        devices.poll()
        if !userNetworks.isEmpty { userNetworks.poll(nics: devices.nics) }
    }

    // MARK: - Network

    /// The VM's NICs (device node; NIC i is `nics[i]`).
    public var nics: [VirtioNet] { devices.nics }

    /// The subnet NIC `i` is on, nil for a user NIC.
    public func subnet(ofNIC i: Int) -> String? {
        guard i < config.nics.count, case .switch(let name) = config.nics[i].backend else { return nil }
        return name
    }

    /// The frames the VM's switch NICs sent since the last call, oldest first.
    public func takeFrames() -> [(nic: Int, frame: NetFrame)] {
        guard !frameOutbox.frames.isEmpty else { return [] }
        defer { frameOutbox.frames.removeAll(keepingCapacity: true) }
        return frameOutbox.frames
    }

    /// The earliest time (mtime ticks) a local timer needs attention, if any.
    public var nextDeadline: UInt64? { devices.nextDeadline(harts: harts) }

    /// The earliest time (mtime ticks) a timer of a local hart that `counts` accepts (by
    /// hart id) needs attention, if any.
    public func nextDeadline(counting counts: (Int) -> Bool) -> UInt64? {
        devices.nextDeadline(harts: harts, counting: counts)
    }

    /// Checks the finisher after a hart ran (device node).
    public func checkFinisher() {
        if exit == nil { exit = devices.takeExit() }
    }

    // MARK: - DMA

    /// Waits for coherence traffic while a device's DMA waits for a line: set by the
    /// node; handles coherence messages only (nothing that could reach a device) and
    /// returns false when the wait should be abandoned.
    public var waitForCoherence: (() -> Bool)?

    /// The DMA engine's requester token (no hart has this id).
    private var dmaRequester: UInt64 { UInt64(vm) << 32 | 0xffff_ffff }

    /// Waits (handling coherence and page-move messages only) until RAM page `gpa` has a
    /// frame and is not frozen for a move; false if it is not RAM or the wait is abandoned
    /// (10 s after the first wait of the caller's `deadline`).
    private func waitForFrame(_ gpa: UInt64, deadline: inout Date?) -> Bool {
        guard machineAddress(gpa) != nil else { return false }
        while isFrozen(gpa) || !hasFrame(gpa) {
            if !hasFrame(gpa) { _ = touch(gpa, hart: nil) }
            guard keepWaiting(&deadline) else { return false }
        }
        return true
    }

    /// Waits once for coherence traffic, unless `deadline` (set on the first wait) passed.
    private func keepWaiting(_ deadline: inout Date?) -> Bool {
        let now = Date()
        if deadline == nil { deadline = now.addingTimeInterval(10) }
        guard now < deadline!, let wait = waitForCoherence else { return false }
        return wait()
    }

    /// One DMA access through the coherence agent, waiting (without running harts or
    /// devices) until the line is here.
    private func dmaAccess(_ gpa: UInt64, size: Int, write: Bool, value: UInt64) -> UInt64? {
        var deadline: Date?  // read from the clock only when something must be waited for
        while true {
            // A page frozen for a move, or with no frame yet: wait for it (the pump
            // handles moves and assignments).
            guard waitForFrame(gpa, deadline: &deadline) else { return nil }
            let m = machineAddress(gpa)!
            var v: UInt64 = 0
            markTouched(gpa)
            if write { prepareWrite(gpa) }
            let status = write ? agent.store(m, size: size, value: value, requester: dmaRequester)
                               : agent.load(readAddress(gpa, m, size, dmaRequester), size: size, requester: dmaRequester, value: &v)
            switch status {
            case .ok: return v
            case .accessFault: return nil
            case .retry:
                guard keepWaiting(&deadline) else { return nil }
            }
        }
    }

    /// Splits a byte range into naturally aligned accesses of up to 8 bytes.
    private func dmaChunks(_ address: UInt64, _ count: Int, _ body: (UInt64, Int, Int) -> Bool) -> Bool {
        var offset = 0
        while offset < count {
            let a = address + UInt64(offset)
            var size = 8
            while size > 1 && (a & UInt64(size - 1) != 0 || count - offset < size) { size /= 2 }
            guard body(a, size, offset) else { return false }
            offset += size
        }
        return true
    }

    fileprivate func dmaCopyIn(_ bytes: UnsafeRawBufferPointer, at address: UInt64) -> Bool {
        dmaChunks(address, bytes.count) { a, size, offset in
            var v: UInt64 = 0
            for i in 0..<size { v |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
            return dmaAccess(a, size: size, write: true, value: v) != nil
        }
    }

    fileprivate func dmaCopyOut(at address: UInt64, count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let ok = dmaChunks(address, count) { a, size, offset in
            guard let v = dmaAccess(a, size: size, write: false, value: 0) else { return false }
            for i in 0..<size { out[offset + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * i)) }
            return true
        }
        return ok ? out : nil
    }

    /// The VM's memory as its virtio devices see it: coherent with every node.
    private final class DMAView: BlockSharingMemory, PageLendingMemory {
        unowned let owner: NodeVM
        init(owner: NodeVM) { self.owner = owner }
        func copyIn(_ bytes: UnsafeRawBufferPointer, at address: UInt64) -> Bool { owner.dmaCopyIn(bytes, at: address) }
        func copyOut(at address: UInt64, count: Int) -> [UInt8]? { owner.dmaCopyOut(at: address, count: count) }
        func shareBlock(_ block: SharedBlock, at address: UInt64, fill: (UnsafeMutableRawBufferPointer) throws -> Void) -> Bool {
            owner.shareBlock(block, at: address, fill: fill)
        }
        func lendPage(at address: UInt64, nic: Int) -> UInt64? { owner.lendPage(at: address, nic: nic) }
        func mapLentPage(_ token: UInt64, at address: UInt64) -> Bool { owner.mapLentPage(token, at: address) }
        func lentPageBytes(_ token: UInt64) -> [UInt8]? { owner.agent.readPage(token) }
    }

    // MARK: - Interrupt sinks

    /// CLINT lines: a node's CLINT only drives the harts placed on that node.
    private final class LocalSink: InterruptSink {
        unowned let owner: NodeVM
        init(owner: NodeVM) { self.owner = owner }
        func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool) {
            guard let i = owner.localIndex[hart] else { return }
            owner.harts[i].setInterrupt(line, asserted)
        }
    }

    /// PLIC lines: local harts directly, others by message.
    private final class RoutingSink: InterruptSink {
        unowned let owner: NodeVM
        init(owner: NodeVM) { self.owner = owner }
        func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool) {
            if let i = owner.localIndex[hart] {
                owner.harts[i].setInterrupt(line, asserted)
            } else if hart < owner.vcpuNodes.count, owner.vcpuNodes[hart] == owner.node {
                // Moving here, its state not yet in: kept for it.
                owner.earlyLines[hart, default: []].append((line, asserted))
            } else if hart < owner.vcpuNodes.count {
                owner.outgoing.append((owner.vcpuNodes[hart], .interrupt(vm: owner.vm, vcpu: UInt32(hart),
                                                                         cause: UInt8(line.rawValue), level: asserted)))
            }
        }
    }

    private final class ConsoleBuffer: ConsoleSink {
        unowned let owner: NodeVM
        init(owner: NodeVM) { self.owner = owner }
        func write(_ bytes: UnsafeRawBufferPointer) { owner.consoleOutput.append(contentsOf: bytes) }
    }
}

