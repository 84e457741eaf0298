/// Every message the cluster carries. Each case has one type code (MessageType) and
/// one payload layout (Message+Codec.swift); docs/protocol.md lists who sends what.
///
/// Machine addresses (`line`, `frame`) are machine-physical; guest addresses
/// (`guestPage`, MMIO `address`) are guest-physical in the VM named alongside.
public enum Message: Equatable, Sendable {
    // MARK: Session
    /// First message on every connection, from both ends: who I am, and a fresh
    /// nonce for the peer to prove the cluster secret against.
    case hello(Hello)
    /// HMAC-SHA256 over both nonces under the cluster secret (HandshakeStateMachine).
    case authenticate(mac: [UInt8])
    /// Coordinator to node: admitted, with the node id and memory slice it owns.
    case joinAccepted(JoinAccepted)
    /// Coordinator to node: not admitted (duplicate id, full cluster, ...).
    case joinRejected(reason: String)
    /// Liveness, every heartbeat interval, in both directions.
    case heartbeat(sequence: UInt64, sentAtNanos: UInt64)
    /// Orderly departure.
    case leave(reason: String)
    /// Round-trip probes (benchmarks, `disco nodes` latency column).
    case ping(sequence: UInt64, payload: [UInt8])
    case pong(sequence: UInt64, payload: [UInt8])
    /// A request failed or a peer misbehaved; sent before closing a connection.
    case error(code: ErrorCode, message: String)

    // MARK: Coherence (docs/coherence.md): requester ↔ home, home ↔ sharers/owner
    /// Requester to home: GetS, GetM or Upgrade for one line.
    case coherenceRequest(kind: CoherenceKind, line: UInt64)
    /// Home to requester: the line's bytes, shared or exclusive.
    case lineData(line: UInt64, exclusive: Bool, data: [UInt8])
    /// Home to requester: an Upgrade granted without data (the copy is still valid).
    case upgradeGrant(line: UInt64)
    /// Home to a sharer: drop your copy and acknowledge.
    case invalidate(line: UInt64)
    /// Sharer to home.
    case invalidateAck(line: UInt64)
    /// Home to the owner: send the line back (forwarded request); keep a shared copy if asked.
    case recall(line: UInt64, keepShared: Bool)
    /// Owner to home: the recalled line's current bytes.
    case recallReply(line: UInt64, data: [UInt8])
    /// Owner to home: eviction of a modified line (writeback).
    case writeback(line: UInt64, data: [UInt8])
    /// Sharer to home: eviction notice of a clean line.
    case evictShared(line: UInt64)
    /// Home to evicting node: the writeback or eviction notice is accounted for.
    case putAck(line: UInt64)

    // MARK: Remote devices and interrupts
    /// A VCPU's load or store to a device that lives on another node.
    case mmioRequest(MMIORequest)
    case mmioResponse(MMIOResponse)
    /// Raise or lower an interrupt-pending bit (mip bit number) of a VCPU.
    case interrupt(vm: UInt32, vcpu: UInt32, cause: UInt8, level: Bool)
    /// Inter-processor interrupt (a CLINT msip write aimed at a VCPU on another node).
    case ipi(vm: UInt32, vcpu: UInt32)
    /// Flush these guest pages (empty: everything) from the VM's TLBs on the receiver.
    case tlbShootdown(id: UInt64, vm: UInt32, pages: [UInt64])
    case tlbShootdownAck(id: UInt64)
    /// A cluster-wide time base sample (mtime ticks at 10 MHz) from the coordinator.
    case timeSync(mtime: UInt64, sentAtNanos: UInt64)
    /// Coordinator to the VCPU's node: move VCPU `vcpu` of `vm` to node `node`
    /// (docs/monitor.md, "VCPU migration").
    case vcpuMigrate(vm: UInt32, vcpu: UInt32, node: Int32)
    /// The VCPU's old node to every other node of the VM, once the VCPU stopped there:
    /// from now on its CLINT registers and interrupts are at `node`; answer `vcpuRouted`.
    case vcpuMoving(vm: UInt32, vcpu: UInt32, node: Int32)
    /// Answer to `vcpuMoving`: everything this node sent about the VCPU to its old node
    /// came before this.
    case vcpuRouted(vm: UInt32, vcpu: UInt32)
    /// Node to coordinator: the move of the VCPU to `node` ended (`ok`: it runs there;
    /// else why not, and it runs where it was).
    case vcpuMigrated(vm: UInt32, vcpu: UInt32, node: Int32, ok: Bool, detail: String)

    // MARK: Monitor
    /// Coordinator to node: move, copy or fold back a page of a VM.
    case pageCommand(PageCommand)
    case pageCommandDone(id: UInt64, ok: Bool, detail: String)
    /// Page move, home to every other node of the VM: stop using guest page `guestPage`
    /// (drop fast paths, hold new accesses) and answer once no access of yours to it is
    /// still in flight.
    case pageFreeze(id: UInt64, vm: UInt32, guestPage: UInt64)
    /// Node to the moving page's home: frozen, nothing of mine in flight on that page.
    case pageFrozen(id: UInt64)
    /// Home to the move's target: the page's 4 KiB, to install at machine frame `frame`.
    case pageData(id: UInt64, vm: UInt32, guestPage: UInt64, frame: UInt64, data: [UInt8])
    /// Target to every other node of the VM: the page now lives at `frame` on `node`;
    /// switch the pmap and let held accesses go.
    case pageMoved(id: UInt64, vm: UInt32, guestPage: UInt64, node: Int32, frame: UInt64)
    /// Replication, home to a replica's node (frozen like for a move): the page's 4 KiB,
    /// to install at its machine frame `frame` as a read-only copy.
    case pageReplica(id: UInt64, vm: UInt32, guestPage: UInt64, frame: UInt64, data: [UInt8])
    /// Replication, home to the VM's other nodes: the page is replicated; let held
    /// accesses go (the pmap does not change).
    case pageThaw(id: UInt64, vm: UInt32, guestPage: UInt64)
    /// Collapse, home to each replica's node: drop your replica of the page (a write
    /// waits for it) and answer.
    case pageCollapse(id: UInt64, vm: UInt32, guestPage: UInt64)
    /// Replica's node to the home: the replica is gone.
    case pageCollapsed(id: UInt64)
    /// Home to coordinator: a write collapsed the page's replicas on `nodes`; their
    /// frames are zeroed and free.
    case pageReplicasDropped(vm: UInt32, guestPage: UInt64, nodes: [Int32])
    /// Node to coordinator: a VCPU or device of this node touched guest page
    /// `guestPage`, which has no frame yet (first-touch placement).
    case pageTouch(vm: UInt32, guestPage: UInt64)
    /// Coordinator to every node of the VM: guest page `guestPage` lives at `frame` on
    /// `node` (its first toucher, or another node when that one has no frame left).
    case pageAssigned(vm: UInt32, guestPage: UInt64, node: Int32, frame: UInt64)
    /// A VCPU's architectural state, for placing or moving it.
    case vcpuState(VCPUState)
    /// Node to node: an Ethernet frame on the virtual switch of subnet `subnet`, for the
    /// receiving node's NICs on that subnet (docs/monitor.md, "Virtual Ethernet"). The
    /// codec carries any length; the receiving switch drops a frame shorter than 14 or
    /// longer than 65553 bytes (MTU 65535) with a warning.
    case ethernetFrame(subnet: String, frame: [UInt8])
    /// Coordinator to every node with a NIC on subnet `subnet` (and to a node that just
    /// lost its last one): the nodes whose VMs have NICs on it now. Nodes connect to
    /// each other for it (the lower id dials) and flood the subnet's broadcasts and
    /// unknown unicasts to those nodes only.
    case subnetMembers(subnet: String, nodes: [NodeAddress])
    /// Bytes to or from a VM's console.
    case console(vm: UInt32, bytes: [UInt8])
    /// Client to coordinator: attach this connection to a VM's console (`vm` is its id
    /// or its name). Answered with `consoleAttached`; then the client gets the VM's
    /// `console` output and may send it `console` input, until `consoleDetach`.
    case consoleAttach(vm: String)
    /// Coordinator to client: the answer to `consoleAttach`: the VM's id, and on success
    /// its recent output (the coordinator's bounded backlog), else why not in `detail`.
    case consoleAttached(vm: UInt32, ok: Bool, detail: String, backlog: [UInt8])
    /// Client to coordinator: stop getting this VM's console (the VM runs on).
    case consoleDetach(vm: UInt32)
    /// Periodic counters from a node.
    case stats(StatsReport)
    /// Node to coordinator, every report interval: this node's accesses (sampled) to
    /// guest pages of `vm` homed on other nodes since its last report, the page
    /// policy's input.
    case pageAccesses(vm: UInt32, entries: [PageAccessCount])
    /// CLI or coordinator: create, stop or list VMs, list nodes.
    case vmRequest(id: UInt64, request: VMRequest)
    /// The answer to a vmRequest: `ok` and a human-readable or YAML body.
    case vmResponse(id: UInt64, ok: Bool, createdVM: UInt32?, body: String)
    /// Node to coordinator: a VM changed state (booted, stopped with a status, failed).
    case vmStatus(vm: UInt32, state: VMState, exit: VMExit?, detail: String)
    /// Coordinator to every node taking part in a VM: build and start it.
    case vmStart(VMPlacement)
    /// Coordinator to nodes: stop the VM and free what it holds.
    case vmStop(vm: UInt32, reason: String)
    /// Node to coordinator, in answer to `vmStop`: none of the VM's VCPUs, devices or
    /// parked accesses is left on this node, so nothing here touches its frames again.
    case vmDropped(vm: UInt32)
    /// Coordinator to a home node, once every node of the VM has dropped it: take every
    /// line of the VM's frames [base, base + bytes) back from other nodes and zero them.
    case scrubFrames(vm: UInt32, base: UInt64, bytes: UInt64)
    /// Home node to coordinator: those frames are home, zeroed, and free for reuse.
    case framesScrubbed(vm: UInt32, base: UInt64, bytes: UInt64)
}

/// One byte per message kind on the wire. Values are stable; new kinds get new codes.
public enum MessageType: UInt8, CaseIterable, Sendable {
    case hello = 0x01, authenticate = 0x02, joinAccepted = 0x03, joinRejected = 0x04
    case heartbeat = 0x05, leave = 0x06, ping = 0x07, pong = 0x08, error = 0x0F
    case coherenceRequest = 0x10, lineData = 0x11, upgradeGrant = 0x12, invalidate = 0x13
    case invalidateAck = 0x14, recall = 0x15, recallReply = 0x16, writeback = 0x17
    case evictShared = 0x18, putAck = 0x19
    case mmioRequest = 0x20, mmioResponse = 0x21, interrupt = 0x22, ipi = 0x23
    case tlbShootdown = 0x24, tlbShootdownAck = 0x25, timeSync = 0x26
    case vcpuMigrate = 0x27, vcpuMoving = 0x28, vcpuRouted = 0x29, vcpuMigrated = 0x2A
    case pageCommand = 0x30, pageCommandDone = 0x31, vcpuState = 0x32
    case pageFreeze = 0x33, pageFrozen = 0x34, pageData = 0x35, pageMoved = 0x36
    case pageReplica = 0x37, pageThaw = 0x38, pageCollapse = 0x39, pageCollapsed = 0x3A
    case pageReplicasDropped = 0x3B, pageTouch = 0x3C, pageAssigned = 0x3D
    case ethernetFrame = 0x40, console = 0x41, stats = 0x42, pageAccesses = 0x43
    case subnetMembers = 0x44
    case consoleAttach = 0x48, consoleAttached = 0x49, consoleDetach = 0x4A
    case vmRequest = 0x50, vmResponse = 0x51, vmStatus = 0x52, vmStart = 0x53, vmStop = 0x54
    case vmDropped = 0x55, scrubFrames = 0x56, framesScrubbed = 0x57
}

// MARK: - Payload types

public enum PeerRole: UInt8, Sendable, CaseIterable {
    case coordinator = 1, node = 2, client = 3
}

public struct Hello: Equatable, Sendable {
    public static let nonceSize = 32
    public var role: PeerRole
    /// The node's id, or -1 when it asks the coordinator to assign one.
    public var nodeID: Int32
    public var nonce: [UInt8]
    public var cpus: UInt16
    public var memoryBytes: UInt64
    /// A human name (host name, process id) for logs.
    public var name: String
    /// Where this peer accepts connections from other nodes ("tcp:127.0.0.1:7000",
    /// "unix:/path"); empty if it accepts none.
    public var listenAddress: String

    public init(role: PeerRole, nodeID: Int32, nonce: [UInt8], cpus: UInt16 = 0, memoryBytes: UInt64 = 0,
                name: String = "", listenAddress: String = "") {
        self.role = role
        self.nodeID = nodeID
        self.nonce = nonce
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.name = name
        self.listenAddress = listenAddress
    }
}

public struct JoinAccepted: Equatable, Sendable {
    public var nodeID: Int32
    public var memoryBase: UInt64
    public var memoryBytes: UInt64
    public var heartbeatMillis: UInt32
    /// The top `bufferCacheBytes` of the slice (page multiple, at most `memoryBytes`) are
    /// the node's global buffer cache: the coordinator places no VM there.
    public var bufferCacheBytes: UInt64
    public init(nodeID: Int32, memoryBase: UInt64, memoryBytes: UInt64, heartbeatMillis: UInt32, bufferCacheBytes: UInt64 = 0) {
        self.nodeID = nodeID
        self.memoryBase = memoryBase
        self.memoryBytes = memoryBytes
        self.heartbeatMillis = heartbeatMillis
        self.bufferCacheBytes = bufferCacheBytes
    }
}

public enum ErrorCode: UInt16, Sendable, CaseIterable {
    case malformedFrame = 1, authenticationFailed = 2, versionMismatch = 3
    case unexpectedMessage = 4, notFound = 5, invalidRequest = 6, internalError = 7, shuttingDown = 8
}

/// The three coherence requests (Coherence.CoherenceRequest has the same codes).
public enum CoherenceKind: UInt8, Sendable, CaseIterable {
    case getShared = 0, getModified = 1, upgrade = 2
}

public struct MMIORequest: Equatable, Sendable {
    public var id: UInt64
    public var vm: UInt32
    public var vcpu: UInt32
    public var address: UInt64
    /// 1, 2, 4 or 8 bytes.
    public var size: UInt8
    public var isWrite: Bool
    /// The stored value for a write; 0 for a read.
    public var value: UInt64
    public init(id: UInt64, vm: UInt32, vcpu: UInt32, address: UInt64, size: UInt8, isWrite: Bool, value: UInt64) {
        self.id = id
        self.vm = vm
        self.vcpu = vcpu
        self.address = address
        self.size = size
        self.isWrite = isWrite
        self.value = value
    }
}

/// The answer to an MMIO read. It names the VM and VCPU of the request, so a node
/// running several VMs hands it to the one VCPU that asked (ids are per VM).
public struct MMIOResponse: Equatable, Sendable {
    public enum Status: UInt8, Sendable, CaseIterable { case ok = 0, accessFault = 1 }
    public var id: UInt64
    public var vm: UInt32
    public var vcpu: UInt32
    public var status: Status
    /// The loaded value for a read.
    public var value: UInt64
    public init(id: UInt64, vm: UInt32, vcpu: UInt32, status: Status, value: UInt64) {
        self.id = id
        self.vm = vm
        self.vcpu = vcpu
        self.status = status
        self.value = value
    }
}

public struct PageCommand: Equatable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// Move the page's only copy to the one target (its new frame there).
        case migrate = 1
        /// Add a read-only replica on each target (at its frame there).
        case replicate = 2
        /// Drop the replicas again (a write to a replicated page).
        case collapse = 3
    }
    public var id: UInt64
    public var kind: Kind
    public var vm: UInt32
    public var guestPage: UInt64
    /// Where the page (migrate) or its replicas (replicate) go.
    public var targets: [PageTarget]
    public init(id: UInt64, kind: Kind, vm: UInt32, guestPage: UInt64, targets: [PageTarget]) {
        self.id = id
        self.kind = kind
        self.vm = vm
        self.guestPage = guestPage
        self.targets = targets
    }
}

/// A node and a machine frame there, for a page's copy.
public struct PageTarget: Equatable, Sendable {
    public var node: Int32
    public var frame: UInt64
    public init(node: Int32, frame: UInt64) {
        self.node = node
        self.frame = frame
    }
}

public struct VCPUState: Equatable, Sendable {
    public var vm: UInt32
    public var vcpu: UInt32
    public var pc: UInt64
    /// 0 user, 1 supervisor, 3 machine.
    public var privilege: UInt8
    /// x0...x31 (x0 is carried as written, always 0).
    public var registers: [UInt64]
    /// (CSR number, value) pairs.
    public var csrs: [CSRValue]
    /// f0...f31 (raw bits).
    public var floatRegisters: [UInt64]
    /// The VCPU's CLINT registers: its msip bit and its mtimecmp.
    public var msip: Bool
    public var mtimecmp: UInt64
    public init(vm: UInt32, vcpu: UInt32, pc: UInt64, privilege: UInt8, registers: [UInt64], csrs: [CSRValue],
                floatRegisters: [UInt64] = Array(repeating: 0, count: 32), msip: Bool = false, mtimecmp: UInt64 = .max) {
        self.vm = vm
        self.vcpu = vcpu
        self.pc = pc
        self.privilege = privilege
        self.registers = registers
        self.csrs = csrs
        self.floatRegisters = floatRegisters
        self.msip = msip
        self.mtimecmp = mtimecmp
    }
}

public struct CSRValue: Equatable, Sendable {
    public var number: UInt16
    public var value: UInt64
    public init(number: UInt16, value: UInt64) {
        self.number = number
        self.value = value
    }
}

public struct StatsReport: Equatable, Sendable {
    public var nodeID: Int32
    public var uptimeNanos: UInt64
    /// Named counters ("instructions", "remote_misses", "lines_in", ...).
    public var counters: [Counter]
    public init(nodeID: Int32, uptimeNanos: UInt64, counters: [Counter]) {
        self.nodeID = nodeID
        self.uptimeNanos = uptimeNanos
        self.counters = counters
    }
}

/// One guest page's remote accesses by the reporting node (`writes` of them stores or AMOs).
public struct PageAccessCount: Equatable, Sendable {
    public var guestPage: UInt64
    public var accesses: UInt32
    public var writes: UInt32
    public init(guestPage: UInt64, accesses: UInt32, writes: UInt32) {
        self.guestPage = guestPage
        self.accesses = accesses
        self.writes = writes
    }
}

public struct Counter: Equatable, Sendable {
    public var name: String
    public var value: Int64
    public init(name: String, value: Int64) {
        self.name = name
        self.value = value
    }
}

public enum VMRequest: Equatable, Sendable {
    /// A VM spec, as YAML (the format `disco check-spec` validates).
    case create(spec: String)
    case stop(vm: UInt32)
    case list
    case nodes
    case stats
    /// Move guest page `guestPage` of `vm` to node `node` (the monitor's migration,
    /// by hand: tests, experiments). Answered when the move is done or failed.
    case migrate(vm: UInt32, guestPage: UInt64, node: Int32)
    /// Give guest page `guestPage` of `vm` read-only replicas on `nodes` (the monitor's
    /// replication, by hand). Answered when the replicas are in place or refused.
    case replicate(vm: UInt32, guestPage: UInt64, nodes: [Int32])
    /// Move VCPU `vcpu` of `vm` to node `node`, one of the VM's nodes; `overcommit`: even
    /// when that node has no free CPU. Answered when the VCPU runs there, or refused.
    case migrateVCPU(vm: UInt32, vcpu: UInt32, node: Int32, overcommit: Bool)
}

/// How a guest ended, as the device node saw it (QEMU's test finisher, or a stop).
public enum VMExit: Equatable, Sendable {
    /// The finisher's pass / power-off (0x5555).
    case pass
    /// The finisher's fail (0x3333) with the guest's code.
    case fail(code: UInt32)
    /// The finisher's reset (0x7777).
    case reset
    /// Stopped from outside (a request, the coordinator stopping).
    case stopped
}

/// One run of guest memory: `MemoryChunk`s cover guest RAM in order, each
/// `VMPlacement.chunkPages` pages, homed on `node` at machine address `frameBase`.
public struct MemoryChunk: Equatable, Sendable {
    public var node: Int32
    public var frameBase: UInt64
    public init(node: Int32, frameBase: UInt64) {
        self.node = node
        self.frameBase = frameBase
    }
}

/// Where a VM runs: its VCPUs, its devices and its memory, and how to reach the
/// nodes involved. Guest page `p` lives in chunk `p / chunkPages` at machine address
/// `chunks[p / chunkPages].frameBase + (p % chunkPages) * 4096` (until it moves), or,
/// with `firstTouch`, wherever the coordinator assigns it when it is first touched.
public struct VMPlacement: Equatable, Sendable {
    public var vm: UInt32
    /// The VM spec as YAML (what `disco check-spec` validates).
    public var spec: String
    /// The node of each VCPU, by hart id.
    public var vcpuNodes: [Int32]
    /// The node holding the VM's devices (UART, PLIC, virtio, finisher).
    public var deviceNode: Int32
    /// Pages per memory chunk (a power of two).
    public var chunkPages: UInt32
    /// Guest RAM in order, `chunkPages` pages each.
    public var chunks: [MemoryChunk]
    /// Every node named above.
    public var nodes: [NodeAddress]
    /// The origin of the VM's mtime, in the cluster time base (nanoseconds).
    public var epochNanos: UInt64
    /// Coherence line size in bytes.
    public var lineSize: UInt32
    /// First-touch placement: no page has a frame yet (`chunks` is empty); the first
    /// node to touch one asks the coordinator (`pageTouch`), which gives it a frame and
    /// tells every node (`pageAssigned`).
    public var firstTouch: Bool

    public init(vm: UInt32, spec: String, vcpuNodes: [Int32], deviceNode: Int32, chunkPages: UInt32,
                chunks: [MemoryChunk], nodes: [NodeAddress], epochNanos: UInt64, lineSize: UInt32, firstTouch: Bool = false) {
        self.firstTouch = firstTouch
        self.vm = vm
        self.spec = spec
        self.vcpuNodes = vcpuNodes
        self.deviceNode = deviceNode
        self.chunkPages = chunkPages
        self.chunks = chunks
        self.nodes = nodes
        self.epochNanos = epochNanos
        self.lineSize = lineSize
    }
}

public struct NodeAddress: Equatable, Sendable {
    public var nodeID: Int32
    /// Where the node accepts connections from its peers.
    public var listenAddress: String
    /// The node's slice of machine memory.
    public var memoryBase: UInt64
    public var memoryBytes: UInt64
    public init(nodeID: Int32, listenAddress: String, memoryBase: UInt64, memoryBytes: UInt64) {
        self.nodeID = nodeID
        self.listenAddress = listenAddress
        self.memoryBase = memoryBase
        self.memoryBytes = memoryBytes
    }
}

public enum VMState: UInt8, Sendable, CaseIterable {
    case starting = 1, running = 2, stopped = 3, failed = 4
}
