// The payload layout of every message: fields in declaration order, integers
// little-endian, byte strings and strings as u32 length + bytes, arrays as u32 count +
// elements. docs/protocol.md is the same table in prose.

extension Message {
    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .authenticate: return .authenticate
        case .joinAccepted: return .joinAccepted
        case .joinRejected: return .joinRejected
        case .heartbeat: return .heartbeat
        case .leave: return .leave
        case .ping: return .ping
        case .pong: return .pong
        case .error: return .error
        case .coherenceRequest: return .coherenceRequest
        case .lineData: return .lineData
        case .upgradeGrant: return .upgradeGrant
        case .invalidate: return .invalidate
        case .invalidateAck: return .invalidateAck
        case .recall: return .recall
        case .recallReply: return .recallReply
        case .writeback: return .writeback
        case .evictShared: return .evictShared
        case .putAck: return .putAck
        case .mmioRequest: return .mmioRequest
        case .mmioResponse: return .mmioResponse
        case .interrupt: return .interrupt
        case .ipi: return .ipi
        case .tlbShootdown: return .tlbShootdown
        case .tlbShootdownAck: return .tlbShootdownAck
        case .timeSync: return .timeSync
        case .vcpuMigrate: return .vcpuMigrate
        case .vcpuMoving: return .vcpuMoving
        case .vcpuRouted: return .vcpuRouted
        case .vcpuMigrated: return .vcpuMigrated
        case .pageCommand: return .pageCommand
        case .pageCommandDone: return .pageCommandDone
        case .pageFreeze: return .pageFreeze
        case .pageFrozen: return .pageFrozen
        case .pageData: return .pageData
        case .pageMoved: return .pageMoved
        case .pageReplica: return .pageReplica
        case .pageThaw: return .pageThaw
        case .pageCollapse: return .pageCollapse
        case .pageCollapsed: return .pageCollapsed
        case .pageReplicasDropped: return .pageReplicasDropped
        case .pageTouch: return .pageTouch
        case .pageAssigned: return .pageAssigned
        case .vcpuState: return .vcpuState
        case .ethernetFrame: return .ethernetFrame
        case .subnetMembers: return .subnetMembers
        case .console: return .console
        case .consoleAttach: return .consoleAttach
        case .consoleAttached: return .consoleAttached
        case .consoleDetach: return .consoleDetach
        case .stats: return .stats
        case .pageAccesses: return .pageAccesses
        case .vmRequest: return .vmRequest
        case .vmResponse: return .vmResponse
        case .vmStatus: return .vmStatus
        case .vmStart: return .vmStart
        case .vmStop: return .vmStop
        case .vmDropped: return .vmDropped
        case .scrubFrames: return .scrubFrames
        case .framesScrubbed: return .framesScrubbed
        }
    }

    /// A message of the coherence protocol (docs/coherence.md).
    /// The node-to-node messages of a page move, replication or collapse (a device's DMA
    /// may wait on one).
    public var isPageMove: Bool {
        switch self {
        case .pageFreeze, .pageFrozen, .pageData, .pageMoved, .pageReplica, .pageThaw, .pageCollapse, .pageCollapsed:
            return true
        default: return false
        }
    }

    public var isCoherence: Bool {
        switch self {
        case .coherenceRequest, .lineData, .upgradeGrant, .invalidate, .invalidateAck, .recall, .recallReply,
             .writeback, .evictShared, .putAck:
            return true
        default:
            return false
        }
    }

    // MARK: - Encoding

    /// Appends this message as one frame (header and payload) to `out`.
    public func encodeFrame(into out: inout WireWriter) {
        let start = out.bytes.count
        out.put(FrameHeader.magic)
        out.put(FrameHeader.version)
        out.put(type.rawValue)
        out.put(UInt32(0))
        encodePayload(into: &out)
        out.patch(UInt32(out.bytes.count - start - FrameHeader.size), at: start + 4)
    }

    /// This message as one frame.
    public func frame() -> [UInt8] {
        var w = WireWriter()
        encodeFrame(into: &w)
        return w.bytes
    }

    func encodePayload(into w: inout WireWriter) {
        switch self {
        case .hello(let h):
            w.put(h.role.rawValue)
            w.put(h.nodeID)
            w.put(raw: h.nonce)
            w.put(h.cpus)
            w.put(h.memoryBytes)
            w.put(h.name)
            w.put(h.listenAddress)
        case .authenticate(let mac):
            w.put(bytes: mac)
        case .joinAccepted(let j):
            w.put(j.nodeID)
            w.put(j.memoryBase)
            w.put(j.memoryBytes)
            w.put(j.heartbeatMillis)
            w.put(j.bufferCacheBytes)
        case .joinRejected(let reason), .leave(let reason):
            w.put(reason)
        case .heartbeat(let seq, let at):
            w.put(seq)
            w.put(at)
        case .ping(let seq, let payload), .pong(let seq, let payload):
            w.put(seq)
            w.put(bytes: payload)
        case .error(let code, let message):
            w.put(code.rawValue)
            w.put(message)
        case .coherenceRequest(let kind, let line):
            w.put(kind.rawValue)
            w.put(line)
        case .lineData(let line, let exclusive, let data):
            w.put(line)
            w.put(exclusive)
            w.put(bytes: data)
        case .upgradeGrant(let line), .invalidate(let line), .invalidateAck(let line),
             .evictShared(let line), .putAck(let line):
            w.put(line)
        case .recall(let line, let keepShared):
            w.put(line)
            w.put(keepShared)
        case .recallReply(let line, let data), .writeback(let line, let data):
            w.put(line)
            w.put(bytes: data)
        case .mmioRequest(let r):
            w.put(r.id)
            w.put(r.vm)
            w.put(r.vcpu)
            w.put(r.address)
            w.put(r.size)
            w.put(r.isWrite)
            w.put(r.value)
        case .mmioResponse(let r):
            w.put(r.id)
            w.put(r.vm)
            w.put(r.vcpu)
            w.put(r.status.rawValue)
            w.put(r.value)
        case .interrupt(let vm, let vcpu, let cause, let level):
            w.put(vm)
            w.put(vcpu)
            w.put(cause)
            w.put(level)
        case .ipi(let vm, let vcpu):
            w.put(vm)
            w.put(vcpu)
        case .tlbShootdown(let id, let vm, let pages):
            w.put(id)
            w.put(vm)
            w.put(UInt32(pages.count))
            for p in pages { w.put(p) }
        case .tlbShootdownAck(let id):
            w.put(id)
        case .timeSync(let mtime, let at):
            w.put(mtime)
            w.put(at)
        case .vcpuMigrate(let vm, let vcpu, let node), .vcpuMoving(let vm, let vcpu, let node):
            w.put(vm)
            w.put(vcpu)
            w.put(node)
        case .vcpuRouted(let vm, let vcpu):
            w.put(vm)
            w.put(vcpu)
        case .vcpuMigrated(let vm, let vcpu, let node, let ok, let detail):
            w.put(vm)
            w.put(vcpu)
            w.put(node)
            w.put(ok)
            w.put(detail)
        case .pageCommand(let c):
            w.put(c.id)
            w.put(c.kind.rawValue)
            w.put(c.vm)
            w.put(c.guestPage)
            w.put(UInt32(c.targets.count))
            for t in c.targets {
                w.put(t.node)
                w.put(t.frame)
            }
        case .pageCommandDone(let id, let ok, let detail):
            w.put(id)
            w.put(ok)
            w.put(detail)
        case .pageFreeze(let id, let vm, let page):
            w.put(id)
            w.put(vm)
            w.put(page)
        case .pageFrozen(let id):
            w.put(id)
        case .pageData(let id, let vm, let page, let frame, let data), .pageReplica(let id, let vm, let page, let frame, let data):
            w.put(id)
            w.put(vm)
            w.put(page)
            w.put(frame)
            w.put(bytes: data)
        case .pageMoved(let id, let vm, let page, let node, let frame):
            w.put(id)
            w.put(vm)
            w.put(page)
            w.put(node)
            w.put(frame)
        case .pageThaw(let id, let vm, let page), .pageCollapse(let id, let vm, let page):
            w.put(id)
            w.put(vm)
            w.put(page)
        case .pageCollapsed(let id):
            w.put(id)
        case .pageReplicasDropped(let vm, let page, let nodes):
            w.put(vm)
            w.put(page)
            w.put(UInt32(nodes.count))
            for n in nodes { w.put(n) }
        case .pageTouch(let vm, let page):
            w.put(vm)
            w.put(page)
        case .pageAssigned(let vm, let page, let node, let frame):
            w.put(vm)
            w.put(page)
            w.put(node)
            w.put(frame)
        case .vcpuState(let s):
            w.put(s.vm)
            w.put(s.vcpu)
            w.put(s.pc)
            w.put(s.privilege)
            w.put(UInt32(s.registers.count))
            for r in s.registers { w.put(r) }
            w.put(UInt32(s.csrs.count))
            for c in s.csrs {
                w.put(c.number)
                w.put(c.value)
            }
            w.put(UInt32(s.floatRegisters.count))
            for r in s.floatRegisters { w.put(r) }
            w.put(s.msip)
            w.put(s.mtimecmp)
        case .ethernetFrame(let subnet, let frame):
            w.put(subnet)
            w.put(bytes: frame)
        case .subnetMembers(let subnet, let nodes):
            w.put(subnet)
            w.put(UInt32(nodes.count))
            for n in nodes {
                w.put(n.nodeID)
                w.put(n.listenAddress)
                w.put(n.memoryBase)
                w.put(n.memoryBytes)
            }
        case .console(let vm, let bytes):
            w.put(vm)
            w.put(bytes: bytes)
        case .consoleAttach(let vm):
            w.put(vm)
        case .consoleAttached(let vm, let ok, let detail, let backlog):
            w.put(vm)
            w.put(ok)
            w.put(detail)
            w.put(bytes: backlog)
        case .consoleDetach(let vm):
            w.put(vm)
        case .stats(let s):
            w.put(s.nodeID)
            w.put(s.uptimeNanos)
            w.put(UInt32(s.counters.count))
            for c in s.counters {
                w.put(c.name)
                w.put(c.value)
            }
        case .pageAccesses(let vm, let entries):
            w.put(vm)
            w.put(UInt32(entries.count))
            for e in entries {
                w.put(e.guestPage)
                w.put(e.accesses)
                w.put(e.writes)
            }
        case .vmRequest(let id, let request):
            w.put(id)
            switch request {
            case .create(let spec):
                w.put(UInt8(1))
                w.put(spec)
            case .stop(let vm):
                w.put(UInt8(2))
                w.put(vm)
            case .list: w.put(UInt8(3))
            case .nodes: w.put(UInt8(4))
            case .stats: w.put(UInt8(5))
            case .migrate(let vm, let page, let node):
                w.put(UInt8(6))
                w.put(vm)
                w.put(page)
                w.put(node)
            case .replicate(let vm, let page, let nodes):
                w.put(UInt8(7))
                w.put(vm)
                w.put(page)
                w.put(UInt32(nodes.count))
                for n in nodes { w.put(n) }
            case .migrateVCPU(let vm, let vcpu, let node, let overcommit):
                w.put(UInt8(8))
                w.put(vm)
                w.put(vcpu)
                w.put(node)
                w.put(overcommit)
            }
        case .vmResponse(let id, let ok, let createdVM, let body):
            w.put(id)
            w.put(ok)
            w.put(createdVM != nil)
            w.put(createdVM ?? 0)
            w.put(body)
        case .vmStatus(let vm, let state, let exit, let detail):
            w.put(vm)
            w.put(state.rawValue)
            switch exit {
            case nil: w.put(UInt8(0)); w.put(UInt32(0))
            case .pass?: w.put(UInt8(1)); w.put(UInt32(0))
            case .fail(let code)?: w.put(UInt8(2)); w.put(code)
            case .reset?: w.put(UInt8(3)); w.put(UInt32(0))
            case .stopped?: w.put(UInt8(4)); w.put(UInt32(0))
            }
            w.put(detail)
        case .vmStart(let p):
            w.put(p.vm)
            w.put(p.spec)
            w.put(UInt32(p.vcpuNodes.count))
            for n in p.vcpuNodes { w.put(n) }
            w.put(p.deviceNode)
            w.put(p.chunkPages)
            w.put(UInt32(p.chunks.count))
            for c in p.chunks {
                w.put(c.node)
                w.put(c.frameBase)
            }
            w.put(UInt32(p.nodes.count))
            for n in p.nodes {
                w.put(n.nodeID)
                w.put(n.listenAddress)
                w.put(n.memoryBase)
                w.put(n.memoryBytes)
            }
            w.put(p.epochNanos)
            w.put(p.lineSize)
            w.put(p.firstTouch)
        case .vmStop(let vm, let reason):
            w.put(vm)
            w.put(reason)
        case .vmDropped(let vm):
            w.put(vm)
        case .scrubFrames(let vm, let base, let bytes), .framesScrubbed(let vm, let base, let bytes):
            w.put(vm)
            w.put(base)
            w.put(bytes)
        }
    }

    // MARK: - Decoding

    /// Decodes one complete frame (header and payload) from `bytes`.
    public static func decodeFrame(_ bytes: [UInt8], payloadLimit: Int = FrameHeader.defaultPayloadLimit)
        throws(WireError) -> Message
    {
        let result = bytes.withUnsafeBytes { (buf) -> Result<Message, WireError> in
            do throws(WireError) {
                let header = try FrameHeader.parse(buf, payloadLimit: payloadLimit)
                guard buf.count - FrameHeader.size >= header.length else { throw .truncated(field: "payload") }
                guard buf.count - FrameHeader.size == header.length else {
                    throw .trailingBytes(buf.count - FrameHeader.size - header.length)
                }
                return .success(try decode(header.type, payload: UnsafeRawBufferPointer(rebasing: buf[FrameHeader.size...])))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decodes the payload of a message of type `type`; the payload must be consumed exactly.
    public static func decode(_ type: MessageType, payload: UnsafeRawBufferPointer) throws(WireError) -> Message {
        var r = WireReader(payload)
        let m = try decodeFields(type, &r)
        try r.finish()
        return m
    }

    private static func enumValue<E: RawRepresentable>(_ e: E.Type, _ raw: E.RawValue, _ field: String)
        throws(WireError) -> E
    {
        guard let v = E(rawValue: raw) else { throw .invalidValue(field: field) }
        return v
    }

    private static func decodeFields(_ type: MessageType, _ r: inout WireReader) throws(WireError) -> Message {
        switch type {
        case .hello:
            let role = try enumValue(PeerRole.self, try r.u8("role"), "role")
            let id = try r.int(Int32.self, "nodeID")
            let nonce = try r.raw(Hello.nonceSize, "nonce")
            return .hello(Hello(role: role, nodeID: id, nonce: nonce, cpus: try r.u16("cpus"),
                                memoryBytes: try r.u64("memoryBytes"), name: try r.string("name"),
                                listenAddress: try r.string("listenAddress")))
        case .authenticate:
            return .authenticate(mac: try r.bytes("mac"))
        case .joinAccepted:
            return .joinAccepted(JoinAccepted(nodeID: try r.int(Int32.self, "nodeID"), memoryBase: try r.u64("memoryBase"),
                                              memoryBytes: try r.u64("memoryBytes"),
                                              heartbeatMillis: try r.u32("heartbeatMillis"),
                                              bufferCacheBytes: try r.u64("bufferCacheBytes")))
        case .joinRejected: return .joinRejected(reason: try r.string("reason"))
        case .leave: return .leave(reason: try r.string("reason"))
        case .heartbeat: return .heartbeat(sequence: try r.u64("sequence"), sentAtNanos: try r.u64("sentAtNanos"))
        case .ping: return .ping(sequence: try r.u64("sequence"), payload: try r.bytes("payload"))
        case .pong: return .pong(sequence: try r.u64("sequence"), payload: try r.bytes("payload"))
        case .error:
            let code = try enumValue(ErrorCode.self, try r.u16("code"), "code")
            return .error(code: code, message: try r.string("message"))
        case .coherenceRequest:
            let kind = try enumValue(CoherenceKind.self, try r.u8("kind"), "kind")
            return .coherenceRequest(kind: kind, line: try r.u64("line"))
        case .lineData:
            return .lineData(line: try r.u64("line"), exclusive: try r.bool("exclusive"), data: try r.bytes("data"))
        case .upgradeGrant: return .upgradeGrant(line: try r.u64("line"))
        case .invalidate: return .invalidate(line: try r.u64("line"))
        case .invalidateAck: return .invalidateAck(line: try r.u64("line"))
        case .recall: return .recall(line: try r.u64("line"), keepShared: try r.bool("keepShared"))
        case .recallReply: return .recallReply(line: try r.u64("line"), data: try r.bytes("data"))
        case .writeback: return .writeback(line: try r.u64("line"), data: try r.bytes("data"))
        case .evictShared: return .evictShared(line: try r.u64("line"))
        case .putAck: return .putAck(line: try r.u64("line"))
        case .mmioRequest:
            let id = try r.u64("id"), vm = try r.u32("vm"), vcpu = try r.u32("vcpu"), address = try r.u64("address")
            let size = try r.u8("size")
            guard size == 1 || size == 2 || size == 4 || size == 8 else { throw .invalidValue(field: "size") }
            return .mmioRequest(MMIORequest(id: id, vm: vm, vcpu: vcpu, address: address, size: size,
                                            isWrite: try r.bool("isWrite"), value: try r.u64("value")))
        case .mmioResponse:
            let id = try r.u64("id"), vm = try r.u32("vm"), vcpu = try r.u32("vcpu")
            let status = try enumValue(MMIOResponse.Status.self, try r.u8("status"), "status")
            return .mmioResponse(MMIOResponse(id: id, vm: vm, vcpu: vcpu, status: status, value: try r.u64("value")))
        case .interrupt:
            return .interrupt(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"), cause: try r.u8("cause"),
                              level: try r.bool("level"))
        case .ipi: return .ipi(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"))
        case .tlbShootdown:
            let id = try r.u64("id"), vm = try r.u32("vm")
            let n = try r.count("pages", minimumElementSize: 8)
            var pages: [UInt64] = []
            pages.reserveCapacity(n)
            for _ in 0..<n { pages.append(try r.u64("pages")) }
            return .tlbShootdown(id: id, vm: vm, pages: pages)
        case .tlbShootdownAck: return .tlbShootdownAck(id: try r.u64("id"))
        case .timeSync: return .timeSync(mtime: try r.u64("mtime"), sentAtNanos: try r.u64("sentAtNanos"))
        case .vcpuMigrate:
            return .vcpuMigrate(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"), node: try r.int(Int32.self, "node"))
        case .vcpuMoving:
            return .vcpuMoving(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"), node: try r.int(Int32.self, "node"))
        case .vcpuRouted: return .vcpuRouted(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"))
        case .vcpuMigrated:
            return .vcpuMigrated(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"), node: try r.int(Int32.self, "node"),
                                 ok: try r.bool("ok"), detail: try r.string("detail"))
        case .pageCommand:
            let id = try r.u64("id")
            let kind = try enumValue(PageCommand.Kind.self, try r.u8("kind"), "kind")
            let vm = try r.u32("vm"), page = try r.u64("guestPage")
            let n = try r.count("targets", minimumElementSize: 12)
            var targets: [PageTarget] = []
            targets.reserveCapacity(n)
            for _ in 0..<n {
                let node = try r.int(Int32.self, "targets"), frame = try r.u64("targets")
                guard frame % 4096 == 0 else { throw .invalidValue(field: "targets") }
                targets.append(PageTarget(node: node, frame: frame))
            }
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            return .pageCommand(PageCommand(id: id, kind: kind, vm: vm, guestPage: page, targets: targets))
        case .pageCommandDone:
            return .pageCommandDone(id: try r.u64("id"), ok: try r.bool("ok"), detail: try r.string("detail"))
        case .pageFreeze:
            let id = try r.u64("id"), vm = try r.u32("vm"), page = try r.u64("guestPage")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            return .pageFreeze(id: id, vm: vm, guestPage: page)
        case .pageFrozen:
            return .pageFrozen(id: try r.u64("id"))
        case .pageData, .pageReplica:
            let id = try r.u64("id"), vm = try r.u32("vm"), page = try r.u64("guestPage"), frame = try r.u64("frame")
            let data = try r.bytes("data")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            guard frame % 4096 == 0 else { throw .invalidValue(field: "frame") }
            guard data.count == 4096 else { throw .invalidValue(field: "data") }
            return type == .pageData ? .pageData(id: id, vm: vm, guestPage: page, frame: frame, data: data)
                                     : .pageReplica(id: id, vm: vm, guestPage: page, frame: frame, data: data)
        case .pageMoved:
            let id = try r.u64("id"), vm = try r.u32("vm"), page = try r.u64("guestPage")
            let node = try r.int(Int32.self, "node"), frame = try r.u64("frame")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            guard frame % 4096 == 0 else { throw .invalidValue(field: "frame") }
            return .pageMoved(id: id, vm: vm, guestPage: page, node: node, frame: frame)
        case .pageThaw, .pageCollapse:
            let id = try r.u64("id"), vm = try r.u32("vm"), page = try r.u64("guestPage")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            return type == .pageThaw ? .pageThaw(id: id, vm: vm, guestPage: page) : .pageCollapse(id: id, vm: vm, guestPage: page)
        case .pageCollapsed:
            return .pageCollapsed(id: try r.u64("id"))
        case .pageReplicasDropped:
            let vm = try r.u32("vm"), page = try r.u64("guestPage")
            let n = try r.count("nodes", minimumElementSize: 4)
            var nodes: [Int32] = []
            nodes.reserveCapacity(n)
            for _ in 0..<n { nodes.append(try r.int(Int32.self, "nodes")) }
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            return .pageReplicasDropped(vm: vm, guestPage: page, nodes: nodes)
        case .pageTouch:
            let vm = try r.u32("vm"), page = try r.u64("guestPage")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            return .pageTouch(vm: vm, guestPage: page)
        case .pageAssigned:
            let vm = try r.u32("vm"), page = try r.u64("guestPage"), node = try r.int(Int32.self, "node"), frame = try r.u64("frame")
            guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
            guard frame % 4096 == 0 else { throw .invalidValue(field: "frame") }
            return .pageAssigned(vm: vm, guestPage: page, node: node, frame: frame)
        case .vcpuState:
            let vm = try r.u32("vm"), vcpu = try r.u32("vcpu"), pc = try r.u64("pc"), privilege = try r.u8("privilege")
            guard privilege == 0 || privilege == 1 || privilege == 3 else { throw .invalidValue(field: "privilege") }
            let nr = try r.count("registers", minimumElementSize: 8)
            guard nr == 32 else { throw .invalidValue(field: "registers") }
            var regs: [UInt64] = []
            regs.reserveCapacity(32)
            for _ in 0..<nr { regs.append(try r.u64("registers")) }
            let nc = try r.count("csrs", minimumElementSize: 10)
            var csrs: [CSRValue] = []
            csrs.reserveCapacity(nc)
            for _ in 0..<nc {
                let number = try r.u16("csrs")
                guard number < 0x1000 else { throw .invalidValue(field: "csrs") }
                csrs.append(CSRValue(number: number, value: try r.u64("csrs")))
            }
            let nf = try r.count("floatRegisters", minimumElementSize: 8)
            guard nf == 32 else { throw .invalidValue(field: "floatRegisters") }
            var fregs: [UInt64] = []
            fregs.reserveCapacity(32)
            for _ in 0..<nf { fregs.append(try r.u64("floatRegisters")) }
            let msip = try r.bool("msip"), mtimecmp = try r.u64("mtimecmp")
            return .vcpuState(VCPUState(vm: vm, vcpu: vcpu, pc: pc, privilege: privilege, registers: regs, csrs: csrs,
                                        floatRegisters: fregs, msip: msip, mtimecmp: mtimecmp))
        case .ethernetFrame:
            return .ethernetFrame(subnet: try r.string("subnet"), frame: try r.bytes("frame"))
        case .subnetMembers:
            let subnet = try r.string("subnet")
            var nodes: [NodeAddress] = []
            for _ in 0..<(try r.count("nodes", minimumElementSize: 24)) {
                nodes.append(NodeAddress(nodeID: try r.int(Int32.self, "nodes"), listenAddress: try r.string("nodes"),
                                         memoryBase: try r.u64("nodes"), memoryBytes: try r.u64("nodes")))
            }
            return .subnetMembers(subnet: subnet, nodes: nodes)
        case .console: return .console(vm: try r.u32("vm"), bytes: try r.bytes("bytes"))
        case .consoleAttach: return .consoleAttach(vm: try r.string("vm"))
        case .consoleAttached:
            return .consoleAttached(vm: try r.u32("vm"), ok: try r.bool("ok"), detail: try r.string("detail"),
                                    backlog: try r.bytes("backlog"))
        case .consoleDetach: return .consoleDetach(vm: try r.u32("vm"))
        case .stats:
            let node = try r.int(Int32.self, "nodeID"), uptime = try r.u64("uptimeNanos")
            let n = try r.count("counters", minimumElementSize: 12)
            var counters: [Counter] = []
            counters.reserveCapacity(n)
            for _ in 0..<n { counters.append(Counter(name: try r.string("counters"), value: try r.i64("counters"))) }
            return .stats(StatsReport(nodeID: node, uptimeNanos: uptime, counters: counters))
        case .pageAccesses:
            let vm = try r.u32("vm")
            let n = try r.count("entries", minimumElementSize: 16)
            var entries: [PageAccessCount] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let page = try r.u64("entries"), accesses = try r.u32("entries"), writes = try r.u32("entries")
                guard page % 4096 == 0, writes <= accesses else { throw .invalidValue(field: "entries") }
                entries.append(PageAccessCount(guestPage: page, accesses: accesses, writes: writes))
            }
            return .pageAccesses(vm: vm, entries: entries)
        case .vmRequest:
            let id = try r.u64("id")
            let request: VMRequest
            switch try r.u8("request") {
            case 1: request = .create(spec: try r.string("spec"))
            case 2: request = .stop(vm: try r.u32("vm"))
            case 3: request = .list
            case 4: request = .nodes
            case 5: request = .stats
            case 6:
                let vm = try r.u32("vm"), page = try r.u64("guestPage"), node = try r.int(Int32.self, "node")
                guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
                request = .migrate(vm: vm, guestPage: page, node: node)
            case 7:
                let vm = try r.u32("vm"), page = try r.u64("guestPage")
                let n = try r.count("nodes", minimumElementSize: 4)
                var nodes: [Int32] = []
                nodes.reserveCapacity(n)
                for _ in 0..<n { nodes.append(try r.int(Int32.self, "nodes")) }
                guard page % 4096 == 0 else { throw .invalidValue(field: "guestPage") }
                request = .replicate(vm: vm, guestPage: page, nodes: nodes)
            case 8:
                request = .migrateVCPU(vm: try r.u32("vm"), vcpu: try r.u32("vcpu"), node: try r.int(Int32.self, "node"),
                                       overcommit: try r.bool("overcommit"))
            default: throw .invalidValue(field: "request")
            }
            return .vmRequest(id: id, request: request)
        case .vmResponse:
            let id = try r.u64("id"), ok = try r.bool("ok"), hasVM = try r.bool("createdVM"), vm = try r.u32("createdVM")
            guard hasVM || vm == 0 else { throw .invalidValue(field: "createdVM") }
            return .vmResponse(id: id, ok: ok, createdVM: hasVM ? vm : nil, body: try r.string("body"))
        case .vmStatus:
            let vm = try r.u32("vm")
            let state = try enumValue(VMState.self, try r.u8("state"), "state")
            let kind = try r.u8("exit"), code = try r.u32("exit")
            let exit: VMExit?
            switch kind {
            case 0: exit = nil
            case 1: exit = .pass
            case 2: exit = .fail(code: code)
            case 3: exit = .reset
            case 4: exit = .stopped
            default: throw .invalidValue(field: "exit")
            }
            guard kind == 2 || code == 0 else { throw .invalidValue(field: "exit") }
            return .vmStatus(vm: vm, state: state, exit: exit, detail: try r.string("detail"))
        case .vmStart:
            let vm = try r.u32("vm"), spec = try r.string("spec")
            var vcpuNodes: [Int32] = []
            for _ in 0..<(try r.count("vcpuNodes", minimumElementSize: 4)) { vcpuNodes.append(try r.int(Int32.self, "vcpuNodes")) }
            let deviceNode = try r.int(Int32.self, "deviceNode")
            let chunkPages = try r.u32("chunkPages")
            guard chunkPages != 0, chunkPages & (chunkPages - 1) == 0 else { throw .invalidValue(field: "chunkPages") }
            var chunks: [MemoryChunk] = []
            for _ in 0..<(try r.count("chunks", minimumElementSize: 12)) {
                chunks.append(MemoryChunk(node: try r.int(Int32.self, "chunks"), frameBase: try r.u64("chunks")))
            }
            var nodes: [NodeAddress] = []
            for _ in 0..<(try r.count("nodes", minimumElementSize: 24)) {
                nodes.append(NodeAddress(nodeID: try r.int(Int32.self, "nodes"), listenAddress: try r.string("nodes"),
                                         memoryBase: try r.u64("nodes"), memoryBytes: try r.u64("nodes")))
            }
            let epoch = try r.u64("epochNanos"), lineSize = try r.u32("lineSize"), firstTouch = try r.bool("firstTouch")
            guard !firstTouch || chunks.isEmpty else { throw .invalidValue(field: "chunks") }
            return .vmStart(VMPlacement(vm: vm, spec: spec, vcpuNodes: vcpuNodes, deviceNode: deviceNode,
                                        chunkPages: chunkPages, chunks: chunks, nodes: nodes,
                                        epochNanos: epoch, lineSize: lineSize, firstTouch: firstTouch))
        case .vmStop:
            return .vmStop(vm: try r.u32("vm"), reason: try r.string("reason"))
        case .vmDropped:
            return .vmDropped(vm: try r.u32("vm"))
        case .scrubFrames, .framesScrubbed:
            let vm = try r.u32("vm"), base = try r.u64("base"), bytes = try r.u64("bytes")
            guard base % 4096 == 0, bytes % 4096 == 0 else { throw .invalidValue(field: "base") }
            return type == .scrubFrames ? .scrubFrames(vm: vm, base: base, bytes: bytes)
                                        : .framesScrubbed(vm: vm, base: base, bytes: bytes)
        }
    }
}
