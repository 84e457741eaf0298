import Cluster
import Coherence
import Foundation
import Protocol
import RISCV

/// One node's view of machine memory: the frames homed here (plain local memory plus
/// the directory for them) and the remote access cache for lines homed elsewhere.
/// It joins the two pure state machines to memory and to protocol messages, and does
/// no I/O itself: messages to send pile up in `outgoing`, CPUs whose parked access was
/// performed in `completed`, pages whose fast-path mappings must go in `revoked`. The
/// node's execution thread drains them after every call.
///
/// CPU accesses are naturally aligned, 1 to 8 bytes, so they never straddle a line.
/// An access that cannot complete yet answers `.retry`: the CPU parks and re-executes
/// the instruction once the agent has performed the access for it (`completed`).
public final class CoherenceAgent {
    public struct Slice: Sendable, Equatable {
        public var node: NodeID
        public var base: UInt64
        public var size: UInt64
        public init(node: NodeID, base: UInt64, size: UInt64) {
            self.node = node
            self.base = base
            self.size = size
        }
    }

    public let node: NodeID
    public let geometry: LineGeometry
    public private(set) var slices: [Slice]
    public let localBase: UInt64
    public let localSize: UInt64
    private let local: UnsafeMutableRawPointer
    private var directory: DirectoryStateMachine
    private var cache: CacheStateMachine
    /// Home lines with a request of the home's own CPUs in the directory.
    private var localPending: Set<LineAddress> = []
    private var directives: [DirectoryStateMachine.Directive] = []
    private var cacheDirectives: [CacheStateMachine.Directive] = []

    public var outgoing: [(to: NodeID, message: Message)] = []
    public var revoked: [(page: UInt64, keepRead: Bool)] = []

    /// Counters for stats and benchmarks.
    public private(set) var remoteMisses: UInt64 = 0
    public private(set) var linesReceived: UInt64 = 0
    public private(set) var linesSent: UInt64 = 0
    /// Protocol messages rejected as malformed or misdirected (a node that lies).
    public private(set) var rejectedMessages: UInt64 = 0

    public enum AgentError: Error, CustomStringConvertible {
        case noSlice(NodeID)
        case mapFailed(String)
        public var description: String {
            switch self {
            case .noSlice(let n): return "node \(n) has no memory slice"
            case .mapFailed(let why): return "cannot map the node's machine memory: \(why)"
            }
        }
    }

    public init(node: NodeID, slices: [Slice], geometry: LineGeometry = LineGeometry(),
                cacheBytes: Int = 1 << 20) throws {
        guard let mine = slices.first(where: { $0.node == node }) else { throw AgentError.noSlice(node) }
        guard let p = mmap(nil, Int(mine.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else {
            throw AgentError.mapFailed(String(cString: strerror(errno)))
        }
        self.node = node
        self.geometry = geometry
        self.slices = slices.sorted { $0.base < $1.base }
        self.localBase = mine.base
        self.localSize = mine.size
        self.local = p
        self.directory = DirectoryStateMachine(home: node, geometry: geometry)
        self.cache = CacheStateMachine(geometry: geometry, capacityBytes: cacheBytes)
    }

    deinit { munmap(local, Int(localSize)) }

    /// Adds the slices of nodes this agent did not know (learned when a VM spanning
    /// them starts). A known node's slice never changes.
    public func learn(_ more: [Slice]) {
        for s in more where !slices.contains(where: { $0.node == s.node }) { slices.append(s) }
        slices.sort { $0.base < $1.base }
    }

    /// The home node of a machine address, or nil if no node owns it.
    @inline(__always) public func home(of address: UInt64) -> NodeID? {
        if address &- localBase < localSize { return node }
        for s in slices where address &- s.base < s.size { return s.node }
        return nil
    }

    @inline(__always) private func isLocal(_ address: UInt64) -> Bool { address &- localBase < localSize }

    /// The directory's miss counters (per page, per requesting node).
    public var missCounts: [UInt64: [NodeID: UInt64]] { directory.missCounts }
    /// The requests the home served, by how many messages serving them took.
    public var served: DirectoryStateMachine.Served { directory.served }

    // MARK: - Host access to home memory (loaders, before the VM runs)

    /// Copies `bytes` into home memory at machine address `address` (which must be
    /// homed here). Only for building a VM: no CPU or remote cache holds its lines yet.
    public func initialize(_ bytes: UnsafeRawBufferPointer, at address: UInt64) -> Bool {
        guard isLocal(address), UInt64(bytes.count) <= localSize - (address - localBase) else { return false }
        if let b = bytes.baseAddress, bytes.count > 0 { (local + Int(address - localBase)).copyMemory(from: b, byteCount: bytes.count) }
        return true
    }

    // MARK: - Frames of a stopped VM

    /// Forgets every parked access of VM `vm`'s requesters (its harts and its DMA
    /// engine): the VM is gone, and an access performed later could write frames that
    /// another VM has been given meanwhile.
    public func forgetParked(vm: UInt32) {
        parked = parked.filter { $0.key >> 32 != UInt64(vm) }
        completed.removeAll { $0 >> 32 == UInt64(vm) }
        streams = streams.filter { $0.key >> 32 != UInt64(vm) }
    }

    /// Starts taking back every line of home frames [base, base + bytes) that another
    /// node holds (the directory recalls or invalidates them as for a home CPU's
    /// write). Returns the lines to wait for (`isHome`), or nil if the range is not
    /// home memory of this node.
    public func beginScrub(_ base: UInt64, _ bytes: UInt64) -> [LineAddress]? {
        guard base % 4096 == 0, bytes % 4096 == 0, isLocal(base), bytes <= localSize - (base - localBase) else { return nil }
        let lines = directory.trackedLines(in: base, bytes)
        for line in lines { _ = acquireLocal(line, write: true, touch: false) }
        if !retryLines.isEmpty { settle() }
        return lines
    }

    /// Whether the home's CPUs could write `line` now: no other node holds a copy.
    public func isHome(_ line: LineAddress) -> Bool { directory.localRights(line).write }

    /// Starts taking back the lines of home page `page` that another node holds
    /// written (Modified): they come home and stay there read-only, as for a home CPU's
    /// read; read-only copies elsewhere stay. Returns the lines to wait for
    /// (`isHomeReadable`), or nil if the page is not home memory of this node.
    public func beginDowngrade(_ page: UInt64) -> [LineAddress]? {
        guard page % 4096 == 0, isLocal(page), localSize - (page - localBase) >= 4096 else { return nil }
        let lines = directory.trackedLines(in: page, 4096).filter { !directory.localRights($0).read }
        for line in lines { _ = acquireLocal(line, write: false, touch: false) }
        if !retryLines.isEmpty { settle() }
        return lines
    }

    /// Whether the home's CPUs could read `line` now: no other node holds it written.
    public func isHomeReadable(_ line: LineAddress) -> Bool { directory.localRights(line).read }

    /// Zeroes home frames [base, base + bytes) (whole pages; the kernel gives zero pages
    /// back on the next touch). Only for frames whose lines are all home.
    public func zero(_ base: UInt64, _ bytes: UInt64) {
        guard base % 4096 == 0, bytes % 4096 == 0, isLocal(base), bytes <= localSize - (base - localBase) else { return }
        let p = local + Int(base - localBase)
        if madvise(p, Int(bytes), MADV_DONTNEED) != 0 { p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(bytes)) }
    }

    // MARK: - Remote accesses (the page policy's input)

    public struct AccessCount: Sendable, Equatable {
        public var accesses: UInt32 = 0
        public var writes: UInt32 = 0
        mutating func add(write: Bool, weight: UInt32) {
            accesses &+= weight
            if write { writes &+= weight }
        }
    }
    static let accessSampling: UInt64 = 16
    /// What one remote miss (a request sent to the home) counts for the page policy.
    static let missWeight: UInt32 = 256
    private var accessSample: UInt64 = 0
    private var remoteAccessCounts: [UInt64: AccessCount] = [:]

    /// Home pages this node's own CPUs or DMA used while other nodes held lines of
    /// them, since the last call (true: wrote). Home accesses take host pointers and
    /// never miss, so this is what the page policy learns of the home's own use: a read
    /// is seen when a fast path to the page is handed out (`directPage`) or a line has to
    /// come back, a write when a line must be taken from other nodes first.
    private var homeTouches: [UInt64: Bool] = [:]

    public func takeHomeTouches() -> [UInt64: Bool] {
        defer { homeTouches.removeAll(keepingCapacity: true) }
        return homeTouches
    }

    private func touchHome(_ page: UInt64, write: Bool) {
        if write { homeTouches[page] = true } else if homeTouches[page] == nil { homeTouches[page] = false }
    }

    /// This node's CPU and DMA accesses to lines homed elsewhere since the last call,
    /// per machine page, and restarts the count: sampled (one access in 16 counts 16),
    /// and each miss that sent a request to the home counts `missWeight` more, about
    /// what it costs in accesses that hit.
    public func takeRemoteAccessCounts() -> [UInt64: AccessCount] {
        defer { remoteAccessCounts.removeAll(keepingCapacity: true) }
        return remoteAccessCounts
    }

    // MARK: - Pages that move

    /// Whether an access of VM `vm` (a hart or its DMA engine) parked on a line of
    /// machine page `page` is still waiting to be performed. A node freezing a page
    /// for a move answers only once this is false: every request it will ever make
    /// for the old frame has then been sent.
    public func hasWaitingAccess(vm: UInt32, page: UInt64) -> Bool {
        guard !parked.isEmpty else { return false }
        return allParked.contains { $0.0 >> 32 == UInt64(vm) && $0.2.result == nil && LineGeometry.page(of: $0.2.line) == page }
    }

    /// Whether `requester` has an access that was performed and not yet picked up. Its
    /// CPU must re-execute the parked instruction before anything else (no interrupt
    /// first): an interrupt handler would run with the access already done in memory,
    /// and an instruction resumed later on another CPU would do it a second time.
    public func hasPerformedAccess(requester: UInt64) -> Bool {
        guard !parked.isEmpty, let list = parked[requester] else { return false }
        return list.contains { $0.result != nil }
    }

    /// Whether any CPU has an access parked on machine page `page`, performed or not.
    public func hasParked(onPage page: UInt64) -> Bool {
        guard !parked.isEmpty else { return false }
        for list in parked.values { for p in list where LineGeometry.page(of: p.line) == page { return true } }
        return false
    }

    /// The machine address and kind of `requester`'s first access still waiting for its
    /// line (for the guest profile: which line a parked VCPU waits for), or nil.
    public func waitingAccess(requester: UInt64) -> (address: UInt64, write: Bool, localHome: Bool)? {
        guard !parked.isEmpty, let p = parked[requester]?.first(where: { $0.result == nil }) else { return nil }
        return (p.address, p.access != .load, isLocal(p.address))
    }

    /// Whether `requester` has any access parked here, performed or not.
    public func hasParkedAccess(requester: UInt64) -> Bool { !parked.isEmpty && parked[requester] != nil }

    /// Forgets `requester`'s parked accesses that were not performed: its CPU is about
    /// to run again (woken by something else than their lines), and whatever it runs
    /// first must not find one of them performed behind its back. Re-executing the
    /// parked instruction asks again (a request still in flight is not repeated); an
    /// interrupt taken first leaves nothing here to be performed later as a write the
    /// program no longer does.
    public func forgetWaiting(requester: UInt64) {
        guard !parked.isEmpty, let list = parked[requester] else { return }
        let kept = list.filter { $0.result != nil }
        parked[requester] = kept.isEmpty ? nil : kept
    }

    /// A performed access its CPU did not pick up when it re-executed the parked
    /// instruction (`forgetPerformed`).
    public struct Unused: Sendable, Equatable, CustomStringConvertible {
        public var address: UInt64
        public var size: Int
        public var access: Access
        public var description: String {
            let what = switch access {
            case .load: "load"
            case .store: "store"
            case .atomic(let op, _, _): "\(op) AMO"
            }
            return "\(what) of \(size) at 0x\(String(address, radix: 16))"
        }
    }
    /// Performed accesses dropped by `forgetPerformed`: loads, and writes (stores, AMOs).
    public private(set) var unusedLoads: UInt64 = 0
    public private(set) var unusedWrites: UInt64 = 0

    /// Forgets every access still parked for `requester` after its CPU re-executed the
    /// parked instruction and went past it (retired it or trapped), and returns the
    /// performed ones it did not use. They belong to an instruction that is over: kept,
    /// a later access of the same address, size and kind would be handed the old result
    /// (a load its stale value; an AMO, such as the A/D update of a page walk that on
    /// re-execution found the bits set, would not be done at all).
    @discardableResult
    public func forgetPerformed(requester: UInt64) -> [Unused] {
        guard !parked.isEmpty, let list = parked.removeValue(forKey: requester) else { return [] }
        let unused = list.filter { $0.result != nil }.map { Unused(address: $0.address, size: $0.size, access: $0.access) }
        for u in unused { if u.access == .load { unusedLoads &+= 1 } else { unusedWrites &+= 1 } }
        return unused
    }

    /// Whether `requester` has an access at `address` of `size` bytes that was
    /// performed and not yet picked up: it must be picked up even while the page is
    /// frozen, or the instruction would perform it a second time.
    public func hasPerformedAccess(_ access: Access, requester: UInt64, address: UInt64, size: Int) -> Bool {
        guard !parked.isEmpty, let list = parked[requester] else { return false }
        return list.contains { $0.address == address && $0.size == size && $0.access == access && $0.result != nil }
    }

    /// A page of VM `vm` moved from machine page `from` to `to`: accesses performed on
    /// the old frame and not yet picked up are found at the new address.
    public func rebasePerformed(vm: UInt32, from: UInt64, to: UInt64) {
        guard !parked.isEmpty else { return }
        for (r, list) in parked where r >> 32 == UInt64(vm) {
            parked[r] = list.map { p in
                guard p.result != nil, LineGeometry.page(of: p.address) == from else { return p }
                var q = p
                q.address = to + (p.address - from)
                q.line = geometry.line(of: q.address)
                return q
            }
        }
    }

    /// The 4 KiB of home page `page` (all its lines must be home), or nil if it is not
    /// home memory of this node.
    public func readPage(_ page: UInt64) -> [UInt8]? {
        guard page % 4096 == 0, isLocal(page), localSize - (page - localBase) >= 4096 else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: local + Int(page - localBase), count: 4096))
    }

    /// Forgets the miss counters of home page `page` (its guest page moved away).
    public func forgetCounts(page: UInt64) { directory.forgetCounts(page: page) }

    // MARK: - Home pages read from a buffer-cache frame

    /// Home pages of a VM that spans nodes whose guest page maps a frame of this node's
    /// buffer cache (docs/memory.md, "The global buffer cache"): the page's own frame
    /// holds nothing yet, so another node's read of one of its lines is served from the
    /// cached frame, and another node's write first has the page copied into its own
    /// frame by its VM (`aliasWritten`, the copy on write). No other node knows.
    private var aliases: [UInt64: UInt64] = [:]
    /// Another node wants to write aliased page `page`: its VM copies the cached frame
    /// into the page's own and calls `unalias` (set by the node).
    public var aliasWritten: ((UInt64) -> Void)?

    /// Whether no other node holds any line of home page `page`.
    public func isHomeOnly(_ page: UInt64) -> Bool {
        guard page % 4096 == 0, isLocal(page) else { return false }
        return stride(from: page, to: page + 4096, by: geometry.lineSize).allSatisfy { isHome($0) }
    }

    /// Other nodes' reads of home page `page` come from local frame `frame` from now on.
    /// The caller made sure that no other node holds a line of `page` (`isHomeOnly`).
    public func alias(_ page: UInt64, to frame: UInt64) {
        precondition(page % 4096 == 0 && frame % 4096 == 0 && isLocal(page) && isLocal(frame), "an alias is of local pages")
        aliases[page] = frame
    }

    /// Reads of home page `page` come from its own frame again.
    public func unalias(_ page: UInt64) {
        if !aliases.isEmpty { aliases[page & ~0xfff] = nil }
    }

    public var aliasCount: Int { aliases.count }
    /// Lines of aliased pages sent to other nodes (read from the cached frame).
    public private(set) var aliasedLinesSent: UInt64 = 0
    /// Aliased pages copied into their own frame because another node wrote them.
    public private(set) var aliasesWritten: UInt64 = 0

    /// Another node asks to write a line of aliased `page`: the VM copies it first; a page
    /// that no VM claims is copied here, so the write never lands on an empty frame.
    private func writeAliased(_ page: UInt64) {
        aliasesWritten &+= 1
        aliasWritten?(page)
        if let frame = aliases.removeValue(forKey: page) {
            (local + Int(page - localBase)).copyMemory(from: local + Int(frame - localBase), byteCount: 4096)
        }
    }

    // MARK: - Replicated pages: writes wait

    /// Home pages with read-only replicas on other nodes. No write to them is granted —
    /// not to this node's CPUs or DMA, not to a remote request — until `ungate`: a
    /// write first collapses the replicas (the shell sees the page in `writesWanted`).
    /// Reads go on as usual.
    private var gated: Set<UInt64> = []
    /// Remote write requests (getModified, upgrade) for lines of gated pages, in the
    /// order they came; handed to the directory by `ungate`.
    private var heldRequests: [(message: Message, from: NodeID, line: LineAddress)] = []
    /// Gated pages some write waits for, in the order they were first wanted.
    public private(set) var writesWanted: [UInt64] = []

    public func isGated(_ page: UInt64) -> Bool { !gated.isEmpty && gated.contains(page & ~0xfff) }

    /// Stops granting writes on home page `page` (its lines must all be home, as after a
    /// freeze and recall): the home's CPUs lose their writable fast paths to it.
    public func gate(_ page: UInt64) {
        guard isLocal(page), gated.insert(page & ~0xfff).inserted else { return }
        revoked.append((page & ~0xfff, true))
    }

    /// Grants writes on home page `page` again: the held remote requests go to the
    /// directory in the order they came, the parked local writes ask again.
    public func ungate(_ page: UInt64) {
        let page = page & ~0xfff
        guard gated.remove(page) != nil else { return }
        writesWanted.removeAll { $0 == page }
        revoked.append((page, true))
        let held = heldRequests.filter { LineGeometry.page(of: $0.line) == page }
        heldRequests.removeAll { LineGeometry.page(of: $0.line) == page }
        for h in held { _ = absorb(h.message, from: h.from) }
        for (_, _, p) in allParkedInOrder where p.result == nil && LineGeometry.page(of: p.line) == page && isLocal(p.line) {
            retryLines.append(p.line)
        }
        settle()
    }

    /// Takes the pages writes wait for (the shell starts their collapses).
    public func takeWritesWanted() -> [UInt64] {
        defer { writesWanted.removeAll(keepingCapacity: true) }
        return writesWanted
    }

    private func wantWrite(_ page: UInt64) {
        if !writesWanted.contains(page) { writesWanted.append(page) }
    }

    // MARK: - CPU accesses

    /// A host pointer to a whole home page if the home's CPUs may access every line
    /// of it right now (`write`: for writing too); nil otherwise (remote, or lines out).
    public func directPage(_ page: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        guard isLocal(page), localSize - (page - localBase) >= 4096 else { return nil }
        if write, isGated(page) { return nil }
        // A parked access on the page must complete (and be consumed) through the slow
        // path, or the CPU could perform it twice.
        if !parked.isEmpty {
            for list in parked.values { for p in list where LineGeometry.page(of: p.line) == page { return nil } }
        }
        let r = directory.pageRights(page)
        if !(write ? r.write : r.read) { return nil }
        if !r.write { touchHome(page, write: false) }
        return local + Int(page - localBase)
    }

    /// One CPU access, as the agent keeps it while its line is on the way.
    public enum Access: Equatable, Sendable {
        case load
        case store(UInt64)
        case atomic(AtomicOp, operand: UInt64, expected: UInt64)
    }

    /// A parked access. It is performed the moment its line arrives (or the directory
    /// grants the home's CPUs the line), before any later message can take the line
    /// away again; the CPU picks up the result when it re-executes the instruction.
    /// Without this, a contended line could be granted and recalled over and over
    /// without the waiting CPU ever using it.
    private struct Parked {
        var line: LineAddress
        var address: UInt64
        var size: Int
        var access: Access
        var result: UInt64?
    }
    /// Parked accesses per requester. Usually one; an instruction re-executed after its
    /// data access completed may first fetch or walk page tables and park on those,
    /// and the completed data access must survive that until it is consumed.
    private var parked: [UInt64: [Parked]] = [:]
    private static let maxParkedPerRequester = 8
    /// Performed accesses dropped before their CPU picked them up (a CPU with more
    /// than `maxParkedPerRequester` performed and unconsumed: never seen; counted so a
    /// run would show it).
    public private(set) var droppedPerformed = 0

    private func park(_ requester: UInt64, _ p: Parked) {
        var list = parked[requester] ?? []
        if let i = list.firstIndex(where: { $0.address == p.address && $0.size == p.size && $0.access == p.access }) {
            list[i] = p
        } else {
            list.append(p)
            if list.count > Self.maxParkedPerRequester {
                // A path the CPU left long ago. Drop the oldest access that was not
                // performed (if the CPU comes back to it, it asks again); a performed one
                // must be picked up, or an AMO would be done twice.
                if let i = list.firstIndex(where: { $0.result == nil }) {
                    list.remove(at: i)
                } else {
                    list.removeFirst()
                    droppedPerformed &+= 1
                }
            }
        }
        parked[requester] = list
    }

    private var allParked: some Sequence<(UInt64, Int, Parked)> {
        parked.lazy.flatMap { (r, list) in list.enumerated().map { (r, $0.offset, $0.element) } }
    }

    /// The parked accesses in requester order: accesses parked on one line are
    /// performed in an order that does not depend on the dictionary's hash seed, so a
    /// run can be replayed exactly.
    private var allParkedInOrder: [(UInt64, Int, Parked)] {
        Array(allParked).sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// Requesters (CPU tokens) whose parked access was just performed: they should
    /// re-execute the parked instruction before anything else (no interrupt first).
    public var completed: [UInt64] = []

    public func load(_ address: UInt64, size: Int, requester: UInt64, value: inout UInt64) -> BusStatus {
        access(.load, address, size, requester, &value)
    }

    public func store(_ address: UInt64, size: Int, value: UInt64, requester: UInt64) -> BusStatus {
        var ignored: UInt64 = 0
        return access(.store(value), address, size, requester, &ignored)
    }

    public func atomic(_ op: AtomicOp, _ address: UInt64, size: Int, operand: UInt64, expected: UInt64,
                       requester: UInt64, old: inout UInt64) -> BusStatus {
        access(.atomic(op, operand: operand, expected: expected), address, size, requester, &old)
    }

    private func access(_ access: Access, _ address: UInt64, _ size: Int, _ requester: UInt64,
                        _ value: inout UInt64) -> BusStatus {
        if !parked.isEmpty, var list = parked[requester],
           let i = list.firstIndex(where: { $0.address == address && $0.size == size && $0.access == access }) {
            if let r = list[i].result {
                list.remove(at: i)
                parked[requester] = list.isEmpty ? nil : list
                value = r
                return .ok
            }
            // Parked but not done yet: asking again is harmless (a request in flight is
            // not repeated), and the access may go now if the line came some other way.
            list.remove(at: i)
            parked[requester] = list.isEmpty ? nil : list
        }
        let line = geometry.line(of: address)
        let write = access != .load
        defer { if !retryLines.isEmpty { settle() } }
        if isLocal(address) {
            if !acquireLocal(line, write: write) {
                park(requester, Parked(line: line, address: address, size: size, access: access, result: nil))
                return .retry
            }
            value = perform(access, local + Int(address - localBase), size)
            return .ok
        }
        // The page policy's input: one remote access in `accessSampling` is counted, for
        // that many (the slow path stays cheap).
        accessSample &+= 1
        if accessSample & (Self.accessSampling - 1) == 0 {
            remoteAccessCounts[address & ~0xfff, default: AccessCount()].add(write: write, weight: UInt32(Self.accessSampling))
        }
        // A hit in the remote cache: performed in place, no directives to carry out.
        if let v = cache.withHit(line, write: write, { perform(access, $0 + Int(address - line), size) }) {
            value = v
            return .ok
        }
        guard let home = home(of: address) else { return .accessFault }
        let p = Parked(line: line, address: address, size: size, access: access, result: nil)
        // A read that goes on with a stream of writes (the next page of a loop that reads
        // and writes each word) asks for the line writable: its store comes next.
        let stream = streams[requester] ?? Stream()
        let rights = write || (stream.writes && line == stream.prefetchedThrough &+ UInt64(geometry.lineSize))
        guard acquireRemote(line, home: home, write: rights), let v = performParked(p, homeMayWrite: true) else {
            park(requester, p)
            streams[requester] = prefetchAfterMiss(line, home: home, write: rights, stream: stream)
            return .retry
        }
        value = v
        return .ok
    }

    // MARK: - Sequential prefetch

    /// A miss at most this many lines after the last one starts a stream.
    static let streamWindow = 4

    /// One CPU's (or device's) stream: each requester has its own, so two harts of a
    /// node streaming through their own partitions do not break each other's.
    struct Stream {
        var lastMissLine: LineAddress = .max
        /// The last line asked for ahead of the stream: a miss on the line after it goes
        /// on with the stream (the next page's first line included).
        var prefetchedThrough: LineAddress = .max
        /// Whether the stream's lines were asked for writable.
        var writes = false
    }
    private var streams: [UInt64: Stream] = [:]
    public private(set) var prefetches: UInt64 = 0

    /// A miss on `line` shortly after one on a line before it (a stream through remote
    /// memory), or just past the lines asked for ahead of the stream: ask for the rest
    /// of the page too, with the same rights, so their round trips overlap. A stream
    /// starts only within `streamWindow` lines of the last miss, so scattered misses
    /// rarely start one; once going, each page costs the stream one miss (on its first
    /// line). With 4 lines ahead instead of the rest of the page, one hart streamed
    /// 35,000 lines a second; with the rest of the page 76,000-88,000 (112,000-120,000
    /// once a run of arriving lines woke the hart once, NodeRuntime.process), and Linux on 2
    /// nodes reached init no slower (docs/architecture.md). Only within the page: the page is not
    /// frozen for a move (the access that missed got past the freeze), and a request for
    /// another page could reach that page's old frame after this node said it was
    /// drained.
    private func prefetchAfterMiss(_ line: LineAddress, home: NodeID, write: Bool, stream: Stream) -> Stream {
        let size = UInt64(geometry.lineSize)
        var stream = stream
        // Sequential: just after the last miss, or just past lines prefetched for it.
        let ahead = line &- stream.lastMissLine
        guard (ahead >= size && ahead <= size * UInt64(Self.streamWindow + 1)) || line == stream.prefetchedThrough &+ size else {
            stream.lastMissLine = line
            return stream
        }
        let page = LineGeometry.page(of: line)
        var next = line + size
        while LineGeometry.page(of: next) == page {
            // A write stream upgrades the lines it holds read-only too (read ahead of it,
            // then written word by word: one upgrade round trip each, one after another).
            let state = cache.state(of: next)
            if state == nil || (write && state == .shared) {
                _ = acquireRemote(next, home: home, write: write, prefetch: true)
                prefetches &+= 1
            }
            stream.prefetchedThrough = next
            next += size
        }
        stream.writes = write
        stream.lastMissLine = line
        return stream
    }

    @inline(__always)
    private func perform(_ access: Access, _ p: UnsafeMutableRawPointer, _ size: Int) -> UInt64 {
        switch access {
        case .load:
            return Self.read(p, size)
        case .store(let v):
            Self.write(p, size, v)
            return 0
        case .atomic(let op, let operand, let expected):
            let current = Self.read(p, size)
            if let result = op.apply(current: current, operand: operand, expected: expected, size: size) {
                Self.write(p, size, result)
            }
            return current
        }
    }

    /// Performs the parked access `p` if the rights held on its line allow it now, and
    /// returns the loaded (or old) value; nil if it must wait. For a home line the caller
    /// knows the rights (the home may read it; `homeMayWrite`: write it too); for a
    /// cached line the cache's state decides and `homeMayWrite` is ignored.
    private func performParked(_ p: Parked, homeMayWrite: Bool) -> UInt64? {
        let write = p.access != .load
        if isLocal(p.line) {
            guard homeMayWrite || !write else { return nil }
            return perform(p.access, local + Int(p.address - localBase), p.size)
        }
        guard let state = cache.state(of: p.line), state == .modified || (!write && state == .shared) else { return nil }
        return write ? cache.withMutableData(of: p.line) { perform(p.access, $0 + Int(p.address - p.line), p.size) }
                     : cache.withData(of: p.line) { Self.read($0 + Int(p.address - p.line), p.size) }
    }

    /// The line just became usable (local grant, data or upgrade grant): perform the
    /// accesses parked on it now. For a home line the directory serialized the home's
    /// request at this point of its directive list, so the grant (`exclusive` or not)
    /// says what the home may do, not the directory's state after the whole list.
    private func completeParked(on line: LineAddress, exclusive: Bool = true) {
        for (requester, index, p) in allParkedInOrder where p.line == line && p.result == nil {
            // A read grant to the home leaves remote sharers in place: only loads may go.
            guard let result = performParked(p, homeMayWrite: exclusive) else { continue }
            parked[requester]?[index].result = result
            completed.append(requester)
        }
        if allParked.contains(where: { $0.2.line == line && $0.2.result == nil }) { retryLines.append(line) }
    }

    /// Lines with parked accesses the last grant could not serve (a write behind a read
    /// grant, a line evicted meanwhile): asked for again once the current directives
    /// are carried out.
    private var retryLines: [LineAddress] = []

    /// Asks again for what parked accesses still need, and performs those that can go
    /// now. Every parked access thus ends up completed; a CPU waits only for its own.
    ///
    /// Each pass retries every line queued so far; a line a retry queues again waits for
    /// the next pass. The bound on passes only guards against a line that requeues itself
    /// every time (honest traffic never does): what it leaves stays queued for the next
    /// call. No line is ever dropped, however many are queued.
    private func settle() {
        var passes = 0
        while !retryLines.isEmpty, passes < 64 {
            passes += 1
            let lines = retryLines
            retryLines = []
            for line in lines { retry(line) }
        }
    }

    private func retry(_ line: LineAddress) {
        for (requester, index, p) in allParkedInOrder where p.line == line && p.result == nil {
            let write = p.access != .load
            // Asking may itself complete the access (a grant right away).
            let granted = if isLocal(line) { acquireLocal(line, write: write) }
                          else if let home = home(of: line) { acquireRemote(line, home: home, write: write) }
                          else { false }
            guard granted, parked[requester]?[index].result == nil,
                  let result = performParked(p, homeMayWrite: true) else { continue }
            parked[requester]?[index].result = result
            completed.append(requester)
        }
    }

    /// Whether the home's CPUs may access `line` now; if not, asks the directory (once).
    /// `touch`: a CPU or DMA access (the page policy hears of it), not a scrub or recall.
    private func acquireLocal(_ line: LineAddress, write: Bool, touch: Bool = true) -> Bool {
        if write, touch, isGated(line) {
            wantWrite(LineGeometry.page(of: line))
            return false
        }
        let r = directory.localRights(line)
        if write ? r.write : r.read { return true }
        if touch { touchHome(LineGeometry.page(of: line), write: write) }
        guard !localPending.contains(line) else { return false }
        localPending.insert(line)
        directives.removeAll(keepingCapacity: true)
        directory.handle(.request(write ? .getModified : .getShared, line: line, from: node), into: &directives)
        carryOut()
        let now = directory.localRights(line)
        return write ? now.write : now.read
    }

    /// `prefetch`: asked for ahead of a stream, not by an access (not counted as a miss).
    private func acquireRemote(_ line: LineAddress, home: NodeID, write: Bool, prefetch: Bool = false) -> Bool {
        cacheDirectives.removeAll(keepingCapacity: true)
        cache.handle(.access(line: line, home: home, write: write), into: &cacheDirectives)
        var hit = false
        for d in cacheDirectives {
            switch d {
            case .hit: hit = true
            case .miss: if !prefetch { remoteMisses &+= 1 }
            case .send(.request, _, _) where !prefetch:
                // A miss that needs a message costs hundreds of hits: the page policy
                // weighs it so (an access that hits counts one, sampled).
                remoteAccessCounts[LineGeometry.page(of: line), default: AccessCount()].add(write: write, weight: Self.missWeight)
            default: break
            }
        }
        carryOutCache()
        return hit
    }

    // MARK: - Messages from other nodes

    /// Handles one coherence message from `from`. Returns false (and counts it) if the
    /// message is not a coherence message or is malformed or misdirected.
    @discardableResult
    public func receive(_ message: Message, from: NodeID) -> Bool {
        guard absorb(message, from: from) else { return false }
        settle()
        return true
    }

    /// `receive` without the settling afterwards: carries the message's directives
    /// out but leaves lines that need a retry in `retryLines`. Internal so tests can
    /// pile up more such lines than one call ever makes in honest traffic (one line
    /// per message, settled right after it).
    func absorb(_ message: Message, from: NodeID) -> Bool {
        directives.removeAll(keepingCapacity: true)
        cacheDirectives.removeAll(keepingCapacity: true)
        switch message {
        // To the directory: this node must be the line's home.
        case .coherenceRequest(let kind, let line):
            guard checkHome(line) else { return reject() }
            if kind != .getShared, !aliases.isEmpty, aliases[LineGeometry.page(of: line)] != nil {
                writeAliased(LineGeometry.page(of: line))
            }
            if kind != .getShared, isGated(line) {
                heldRequests.append((message, from, line))
                wantWrite(LineGeometry.page(of: line))
                return true
            }
            let request: CoherenceRequest = kind == .getShared ? .getShared : kind == .getModified ? .getModified : .upgrade
            directory.handle(.request(request, line: line, from: from), into: &directives)
        case .invalidateAck(let line):
            guard checkHome(line) else { return reject() }
            directory.handle(.invalidateAck(line: line, from: from), into: &directives)
        case .recallReply(let line, let data):
            guard checkHome(line), data.count == geometry.lineSize else { return reject() }
            directory.handle(.recallReply(line: line, from: from, data: data), into: &directives)
        case .writeback(let line, let data):
            guard checkHome(line), data.count == geometry.lineSize else { return reject() }
            directory.handle(.putModified(line: line, from: from, data: data), into: &directives)
        case .evictShared(let line):
            guard checkHome(line) else { return reject() }
            directory.handle(.putShared(line: line, from: from), into: &directives)
        // To the cache: the sender must be the line's home.
        case .lineData(let line, let exclusive, let data):
            guard checkRemote(line, from), data.count == geometry.lineSize else { return reject() }
            linesReceived &+= 1
            cache.handle(.data(line: line, exclusive: exclusive, data: data), into: &cacheDirectives)
        case .upgradeGrant(let line):
            guard checkRemote(line, from) else { return reject() }
            cache.handle(.grant(line: line), into: &cacheDirectives)
        case .invalidate(let line):
            guard checkRemote(line, from) else { return reject() }
            cache.handle(.invalidate(line: line, from: from), into: &cacheDirectives)
        case .recall(let line, let keepShared):
            guard checkRemote(line, from) else { return reject() }
            cache.handle(.recall(line: line, keepShared: keepShared), into: &cacheDirectives)
        case .putAck(let line):
            guard checkRemote(line, from) else { return reject() }
            cache.handle(.putAck(line: line), into: &cacheDirectives)
        default:
            return reject()
        }
        carryOut()
        carryOutCache()
        return true
    }

    private func reject() -> Bool {
        rejectedMessages &+= 1
        return false
    }

    private func checkHome(_ line: LineAddress) -> Bool {
        line == geometry.line(of: line) && isLocal(line)
    }

    private func checkRemote(_ line: LineAddress, _ from: NodeID) -> Bool {
        line == geometry.line(of: line) && !isLocal(line) && home(of: line) == from
    }

    // MARK: - Carrying out directives

    private func carryOut() {
        for d in directives {
            switch d {
            case .sendData(let line, let to, let exclusive):
                linesSent &+= 1
                var source = line
                if !aliases.isEmpty, let frame = aliases[LineGeometry.page(of: line)] {
                    source = frame | (line & 0xfff)
                    aliasedLinesSent &+= 1
                }
                let data = [UInt8](UnsafeRawBufferPointer(start: local + Int(source - localBase), count: geometry.lineSize))
                outgoing.append((to, .lineData(line: line, exclusive: exclusive, data: data)))
            case .sendGrant(let line, let to):
                outgoing.append((to, .upgradeGrant(line: line)))
            case .sendInvalidate(let line, let to):
                outgoing.append((to, .invalidate(line: line)))
            case .sendRecall(let line, let to, let keepShared):
                outgoing.append((to, .recall(line: line, keepShared: keepShared)))
            case .sendPutAck(let line, let to):
                outgoing.append((to, .putAck(line: line)))
            case .writeMemory(let line, let data):
                data.withUnsafeBytes { (local + Int(line - localBase)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            case .localGrant(let line, let exclusive):
                localPending.remove(line)
                completeParked(on: line, exclusive: exclusive)
            case .revokeLocal(let line, let keepRead):
                revoked.append((LineGeometry.page(of: line), keepRead))
            }
        }
        directives.removeAll(keepingCapacity: true)
    }

    private func carryOutCache() {
        for d in cacheDirectives {
            switch d {
            case .hit, .miss:
                break
            case .send(let m, let line, let to):
                switch m {
                case .request(let kind):
                    let k: CoherenceKind = kind == .getShared ? .getShared : kind == .getModified ? .getModified : .upgrade
                    outgoing.append((to, .coherenceRequest(kind: k, line: line)))
                case .invalidateAck: outgoing.append((to, .invalidateAck(line: line)))
                case .recallReply(let data): outgoing.append((to, .recallReply(line: line, data: data)))
                case .putShared: outgoing.append((to, .evictShared(line: line)))
                case .putModified(let data): outgoing.append((to, .writeback(line: line, data: data)))
                }
            case .wake(let line):
                completeParked(on: line)
            case .lost(let line):
                revoked.append((LineGeometry.page(of: line), false))
            case .downgraded(let line):
                revoked.append((LineGeometry.page(of: line), true))
            }
        }
        cacheDirectives.removeAll(keepingCapacity: true)
    }

    // MARK: - Raw access

    @inline(__always) static func read(_ p: UnsafeRawPointer, _ size: Int) -> UInt64 {
        switch size {
        case 1: return UInt64(p.load(as: UInt8.self))
        case 2: return UInt64(p.loadUnaligned(as: UInt16.self))
        case 4: return UInt64(p.loadUnaligned(as: UInt32.self))
        default: return p.loadUnaligned(as: UInt64.self)
        }
    }

    @inline(__always) static func write(_ p: UnsafeMutableRawPointer, _ size: Int, _ value: UInt64) {
        switch size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value), toByteOffset: 0, as: UInt16.self)
        case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value), toByteOffset: 0, as: UInt32.self)
        default: p.storeBytes(of: value, toByteOffset: 0, as: UInt64.self)
        }
    }
}
