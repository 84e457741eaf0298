import Protocol
import TestSupport

/// Random messages of every type, with edge values (0, max, empty, long) mixed in.
struct MessageGenerator {
    var rng: SeededGenerator

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func int<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        switch rng.next() % 8 {
        case 0: return 0
        case 1: return T.max
        case 2: return T.min
        default: return T.random(in: T.min...T.max, using: &rng)
        }
    }
    mutating func bool() -> Bool { rng.next() & 1 == 1 }
    mutating func bytes(max: Int = 300) -> [UInt8] {
        let n = rng.next() % 6 == 0 ? 0 : Int(rng.next() % UInt64(max + 1))
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
    mutating func string() -> String {
        let alphabet = Array("abcXYZ019 -_:/.\nλ€😀")
        let n = Int(rng.next() % 40)
        return String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
    }
    mutating func pick<E: CaseIterable>(_: E.Type) -> E {
        let all = Array(E.allCases)
        return all[Int(rng.next() % UInt64(all.count))]
    }

    mutating func message(of type: MessageType) -> Message {
        switch type {
        case .hello:
            return .hello(Hello(role: pick(PeerRole.self), nodeID: int(), nonce: (0..<32).map { _ in int() },
                                cpus: int(), memoryBytes: int(), name: string(), listenAddress: string()))
        case .authenticate: return .authenticate(mac: bytes(max: 64))
        case .joinAccepted:
            return .joinAccepted(JoinAccepted(nodeID: int(), memoryBase: int(), memoryBytes: int(), heartbeatMillis: int(), bufferCacheBytes: int()))
        case .joinRejected: return .joinRejected(reason: string())
        case .heartbeat: return .heartbeat(sequence: int(), sentAtNanos: int())
        case .leave: return .leave(reason: string())
        case .ping: return .ping(sequence: int(), payload: bytes())
        case .pong: return .pong(sequence: int(), payload: bytes())
        case .error: return .error(code: pick(ErrorCode.self), message: string())
        case .coherenceRequest: return .coherenceRequest(kind: pick(CoherenceKind.self), line: int())
        case .lineData: return .lineData(line: int(), exclusive: bool(), data: bytes(max: 4096))
        case .upgradeGrant: return .upgradeGrant(line: int())
        case .invalidate: return .invalidate(line: int())
        case .invalidateAck: return .invalidateAck(line: int())
        case .recall: return .recall(line: int(), keepShared: bool())
        case .recallReply: return .recallReply(line: int(), data: bytes(max: 4096))
        case .writeback: return .writeback(line: int(), data: bytes(max: 4096))
        case .evictShared: return .evictShared(line: int())
        case .putAck: return .putAck(line: int())
        case .mmioRequest:
            return .mmioRequest(MMIORequest(id: int(), vm: int(), vcpu: int(), address: int(),
                                            size: [1, 2, 4, 8][Int(rng.next() % 4)], isWrite: bool(), value: int()))
        case .mmioResponse: return .mmioResponse(MMIOResponse(id: int(), vm: int(), vcpu: int(), status: pick(MMIOResponse.Status.self), value: int()))
        case .interrupt: return .interrupt(vm: int(), vcpu: int(), cause: int(), level: bool())
        case .ipi: return .ipi(vm: int(), vcpu: int())
        case .tlbShootdown:
            return .tlbShootdown(id: int(), vm: int(), pages: (0..<Int(rng.next() % 20)).map { _ in int() })
        case .tlbShootdownAck: return .tlbShootdownAck(id: int())
        case .timeSync: return .timeSync(mtime: int(), sentAtNanos: int())
        case .pageCommand:
            return .pageCommand(PageCommand(id: int(), kind: pick(PageCommand.Kind.self), vm: int(), guestPage: int() & ~0xfff,
                                            targets: (0..<Int(rng.next() % 4)).map { _ in PageTarget(node: int(), frame: int() & ~0xfff) }))
        case .pageCommandDone: return .pageCommandDone(id: int(), ok: bool(), detail: string())
        case .pageFreeze: return .pageFreeze(id: int(), vm: int(), guestPage: int() & ~0xfff)
        case .pageFrozen: return .pageFrozen(id: int())
        case .pageData:
            return .pageData(id: int(), vm: int(), guestPage: int() & ~0xfff, frame: int() & ~0xfff,
                             data: (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case .pageMoved: return .pageMoved(id: int(), vm: int(), guestPage: int() & ~0xfff, node: int(), frame: int() & ~0xfff)
        case .pageReplica:
            return .pageReplica(id: int(), vm: int(), guestPage: int() & ~0xfff, frame: int() & ~0xfff,
                                data: (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case .pageThaw: return .pageThaw(id: int(), vm: int(), guestPage: int() & ~0xfff)
        case .pageCollapse: return .pageCollapse(id: int(), vm: int(), guestPage: int() & ~0xfff)
        case .pageCollapsed: return .pageCollapsed(id: int())
        case .pageReplicasDropped:
            return .pageReplicasDropped(vm: int(), guestPage: int() & ~0xfff, nodes: (0..<Int(rng.next() % 5)).map { _ in int() })
        case .pageTouch: return .pageTouch(vm: int(), guestPage: int() & ~0xfff)
        case .pageAssigned: return .pageAssigned(vm: int(), guestPage: int() & ~0xfff, node: int(), frame: int() & ~0xfff)
        case .vcpuState:
            return .vcpuState(VCPUState(vm: int(), vcpu: int(), pc: int(), privilege: [0, 1, 3][Int(rng.next() % 3)],
                                        registers: (0..<32).map { _ in int() },
                                        csrs: (0..<Int(rng.next() % 30)).map { _ in
                                            CSRValue(number: UInt16(rng.next() % 0x1000), value: int())
                                        },
                                        floatRegisters: (0..<32).map { _ in int() }, msip: bool(), mtimecmp: int()))
        case .vcpuMigrate: return .vcpuMigrate(vm: int(), vcpu: int(), node: int())
        case .vcpuMoving: return .vcpuMoving(vm: int(), vcpu: int(), node: int())
        case .vcpuRouted: return .vcpuRouted(vm: int(), vcpu: int())
        case .vcpuMigrated: return .vcpuMigrated(vm: int(), vcpu: int(), node: int(), ok: bool(), detail: string())
        case .ethernetFrame: return .ethernetFrame(subnet: string(), frame: bytes(max: 1514))
        case .subnetMembers:
            return .subnetMembers(subnet: string(), nodes: (0..<Int(rng.next() % 5)).map { _ in
                NodeAddress(nodeID: int(), listenAddress: string(), memoryBase: int(), memoryBytes: int())
            })
        case .console: return .console(vm: int(), bytes: bytes())
        case .consoleAttach: return .consoleAttach(vm: string())
        case .consoleAttached: return .consoleAttached(vm: int(), ok: rng.next() % 2 == 0, detail: string(), backlog: bytes())
        case .consoleDetach: return .consoleDetach(vm: int())
        case .stats:
            return .stats(StatsReport(nodeID: int(), uptimeNanos: int(),
                                      counters: (0..<Int(rng.next() % 10)).map { _ in Counter(name: string(), value: int()) }))
        case .pageAccesses:
            return .pageAccesses(vm: int(), entries: (0..<Int(rng.next() % 20)).map { _ in
                let a: UInt32 = int()
                return PageAccessCount(guestPage: int() & ~0xfff, accesses: a, writes: a / 2)
            })
        case .vmRequest:
            let request: VMRequest
            switch rng.next() % 8 {
            case 6: request = .migrateVCPU(vm: int(), vcpu: int(), node: int(), overcommit: bool())
            case 0: request = .create(spec: string())
            case 1: request = .stop(vm: int())
            case 2: request = .list
            case 3: request = .nodes
            case 4: request = .migrate(vm: int(), guestPage: int() & ~0xfff, node: int())
            case 5: request = .replicate(vm: int(), guestPage: int() & ~0xfff, nodes: (0..<Int(rng.next() % 4)).map { _ in int() })
            default: request = .stats
            }
            return .vmRequest(id: int(), request: request)
        case .vmResponse: return .vmResponse(id: int(), ok: bool(), createdVM: bool() ? int() : nil, body: string())
        case .vmStatus: return .vmStatus(vm: int(), state: pick(VMState.self), exit: exit(), detail: string())
        case .vmStart:
            let k = Int(rng.next() % 5)
            return .vmStart(VMPlacement(vm: int(), spec: string(), vcpuNodes: (0..<Int(rng.next() % 9)).map { _ in int() },
                                        deviceNode: int(), chunkPages: UInt32(1) << (rng.next() % 32),
                                        chunks: (0..<k).map { _ in MemoryChunk(node: int(), frameBase: int()) },
                                        nodes: (0..<Int(rng.next() % 5)).map { _ in
                                            NodeAddress(nodeID: int(), listenAddress: string(), memoryBase: int(), memoryBytes: int())
                                        },
                                        epochNanos: int(), lineSize: int(), firstTouch: k == 0 && bool()))
        case .vmStop: return .vmStop(vm: int(), reason: string())
        case .vmDropped: return .vmDropped(vm: int())
        case .scrubFrames: return .scrubFrames(vm: int(), base: int(UInt64.self) & ~0xfff, bytes: int(UInt64.self) & ~0xfff)
        case .framesScrubbed: return .framesScrubbed(vm: int(), base: int(UInt64.self) & ~0xfff, bytes: int(UInt64.self) & ~0xfff)
        }
    }

    mutating func exit() -> VMExit? {
        switch rng.next() % 5 {
        case 0: return nil
        case 1: return .pass
        case 2: return .fail(code: int())
        case 3: return .reset
        default: return .stopped
        }
    }

    mutating func message() -> Message { message(of: pick(MessageType.self)) }
}
