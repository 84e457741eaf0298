import Coherence
import Protocol
import RISCV
import TestSupport
import Testing
@testable import Node

/// Several CoherenceAgents wired by in-order per-pair queues, driven by random CPU
/// accesses and random message delivery, checked against one reference memory: every
/// access that completes must see exactly what a sequentially consistent memory holds
/// at that moment. Small caches force evictions and write-backs.
@Suite struct CoherenceAgentStressTests {
    struct Op: Equatable {
        enum Kind: Equatable { case read, write, amoAdd, cas }
        var kind: Kind
        var address: UInt64
        var size: Int
        var value: UInt64
        /// For a CAS: the value it expects (fixed when the op is made, so a retry is the same op).
        var expected: UInt64 = 0
    }

    final class World {
        var agents: [CoherenceAgent] = []
        /// In-flight messages per ordered pair (from, to), FIFO.
        var channels: [Int: [Message]] = [:]
        var reference: [UInt64: UInt8] = [:]
        var rng: SeededGenerator
        let nodes: Int
        /// The op each CPU (requester token) is trying, and what the agent's early
        /// completion of it must hand back.
        var inProgress: [UInt64: Op] = [:]
        var completedResult: [UInt64: UInt64] = [:]
        init(nodes: Int, seed: UInt64, cacheBytes: Int, lineSize: Int) throws {
            self.nodes = nodes
            rng = SeededGenerator(seed: seed)
            let slices = (0..<nodes).map {
                CoherenceAgent.Slice(node: $0, base: 0x1_0000_0000 + UInt64($0) * 0x1000_0000, size: 64 << 10)
            }
            agents = try (0..<nodes).map {
                try CoherenceAgent(node: $0, slices: slices, geometry: LineGeometry(lineSize: lineSize), cacheBytes: cacheBytes)
            }
        }

        /// Per node: host pointers a CPU's TLB would hold for home pages (read, write),
        /// dropped when the agent revokes the page.
        var direct: [Int: [UInt64: (read: UnsafeMutableRawPointer?, write: UnsafeMutableRawPointer?)]] = [:]

        func pump(_ n: Int) {
            let a = agents[n]
            for (page, _) in a.revoked { direct[n]?[page] = nil }
            a.revoked.removeAll()
            for (to, m) in a.outgoing { channels[n * 64 + to, default: []].append(m) }
            a.outgoing.removeAll()
            // Accesses the agent performed when their line arrived take effect now.
            for r in a.completed {
                guard let op = inProgress[r] else { Issue.record("completion for an idle CPU \(r)"); continue }
                completedResult[r] = apply(op)
            }
            a.completed.removeAll()
        }

        var inFlight: Int { channels.values.reduce(0) { $0 + $1.count } }

        /// Delivers the oldest message of one random non-empty channel.
        func deliverOne() -> Bool {
            let busy = channels.filter { !$0.value.isEmpty }.map(\.key).sorted()
            guard !busy.isEmpty else { return false }
            let key = busy[Int(rng.next() % UInt64(busy.count))]
            let m = channels[key]!.removeFirst()
            let from = key / 64, to = key % 64
            #expect(agents[to].receive(m, from: from), "rejected \(m.type) from \(from) to \(to)")
            pump(to)
            return true
        }

        func referenceRead(_ address: UInt64, _ size: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<size { v |= UInt64(reference[address + UInt64(i)] ?? 0) << (8 * UInt64(i)) }
            return v
        }
        func referenceWrite(_ address: UInt64, _ size: Int, _ value: UInt64) {
            for i in 0..<size { reference[address + UInt64(i)] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }

        /// Applies `op` to the reference memory at its moment in the global order;
        /// returns what the CPU must see (the loaded or old value).
        func apply(_ op: Op) -> UInt64 {
            let current = referenceRead(op.address, op.size)
            switch op.kind {
            case .read: break
            case .write: referenceWrite(op.address, op.size, op.value)
            case .amoAdd, .cas:
                let kind: AtomicOp = op.kind == .amoAdd ? .add : .compareAndSwap
                if let r = kind.apply(current: current, operand: op.value, expected: op.expected, size: op.size) {
                    referenceWrite(op.address, op.size, r)
                }
            }
            return current
        }

        /// Tries `op` for CPU `requester` on node `n`; true when it completed (and was checked).
        func attempt(_ op: Op, on n: Int, requester: UInt64) -> Bool {
            let a = agents[n]
            if inProgress[requester].map({ $0 != op }) ?? true { completedResult[requester] = nil }
            inProgress[requester] = op
            // The fast path: a plain load or store through a cached host pointer, as a
            // hart's TLB does for home pages the agent lets it touch directly.
            let page = op.address & ~4095
            if op.kind == .read || op.kind == .write, rng.next() % 2 == 0 {
                let write = op.kind == .write
                var entry = direct[n]?[page] ?? (nil, nil)
                if (write ? entry.write : entry.read) == nil, let p = a.directPage(page, write: write) {
                    if write { entry.write = p } else { entry.read = p }
                    direct[n, default: [:]][page] = entry
                }
                if let p = write ? entry.write : entry.read {
                    let at = p + Int(op.address - page)
                    let expected = apply(op)
                    if write {
                        CoherenceAgent.write(at, op.size, op.value)
                    } else {
                        let v = CoherenceAgent.read(at, op.size)
                        #expect(v == expected, "node \(n) direct read at 0x\(String(op.address, radix: 16)) got \(v), memory order says \(expected)")
                    }
                    inProgress[requester] = nil
                    return true
                }
            }
            var v: UInt64 = 0
            let status: BusStatus
            switch op.kind {
            case .read: status = a.load(op.address, size: op.size, requester: requester, value: &v)
            case .write: status = a.store(op.address, size: op.size, value: op.value, requester: requester)
            case .amoAdd: status = a.atomic(.add, op.address, size: op.size, operand: op.value, expected: 0, requester: requester, old: &v)
            case .cas: status = a.atomic(.compareAndSwap, op.address, size: op.size, operand: op.value, expected: op.expected,
                                         requester: requester, old: &v)
            }
            pump(n)
            guard status == .ok else { return false }
            let expected = completedResult.removeValue(forKey: requester) ?? apply(op)
            if op.kind != .write {
                #expect(v == expected, "node \(n) \(op.kind) at 0x\(String(op.address, radix: 16)) got \(v), memory order says \(expected)")
            }
            inProgress[requester] = nil
            return true
        }
    }

    @Test(arguments: [(2, UInt64(1)), (3, 2), (4, 3), (4, 4)])
    func randomAccessesMatchAReferenceMemory(nodes: Int, seed: UInt64) throws {
        let lineSize = 128
        let world = try World(nodes: nodes, seed: seed, cacheBytes: 6 * lineSize, lineSize: lineSize)
        // 20 hot lines spread over every node's slice.
        let lines: [UInt64] = (0..<20).map { i in
            0x1_0000_0000 + UInt64(i % nodes) * 0x1000_0000 + UInt64(i / nodes) * UInt64(lineSize) * 3
        }
        let cpusPerNode = 2
        var pending: [[Op?]] = Array(repeating: Array(repeating: nil, count: cpusPerNode), count: nodes)
        var completed = 0
        let target = 6000
        var steps = 0
        while completed < target {
            steps += 1
            #expect(steps < 2_000_000, "no progress: \(completed) accesses completed")
            if steps >= 2_000_000 { return }
            if world.rng.next() % 3 == 0, world.deliverOne() { continue }
            let n = Int(world.rng.next() % UInt64(nodes)), c = Int(world.rng.next() % UInt64(cpusPerNode))
            let requester = UInt64(n * 16 + c)
            // A parked CPU stays parked until the agent reports its access performed.
            if pending[n][c] != nil && world.completedResult[requester] == nil {
                let everyoneParked = (0..<nodes).allSatisfy { m in
                    (0..<cpusPerNode).allSatisfy { pending[m][$0] != nil && world.completedResult[UInt64(m * 16 + $0)] == nil }
                }
                if everyoneParked && world.inFlight == 0 {
                    Issue.record("every CPU waits and no message is in flight: a lost wake-up")
                    return
                }
                continue
            }
            let op = pending[n][c] ?? {
                let size = [1, 2, 4, 8][Int(world.rng.next() % 4)]
                let line = lines[Int(world.rng.next() % UInt64(lines.count))]
                let offset = (world.rng.next() % UInt64(lineSize / size)) * UInt64(size)
                let kinds: [Op.Kind] = size >= 4 ? [.read, .read, .write, .amoAdd, .cas] : [.read, .read, .write]
                let address = line + offset
                // A CAS that succeeds about half the time.
                let now = world.referenceRead(address, size)
                return Op(kind: kinds[Int(world.rng.next() % UInt64(kinds.count))], address: address, size: size,
                          value: world.rng.next(), expected: world.rng.next() & 1 == 0 ? now : now &+ 1)
            }()
            let wasCompleted = world.completedResult[requester] != nil
            if world.attempt(op, on: n, requester: requester) {
                pending[n][c] = nil
                completed += 1
            } else {
                #expect(!wasCompleted, "a completed access did not go through on re-execution")
                pending[n][c] = op
            }
        }
        // Drain, then every node reads every line and sees the reference.
        while world.deliverOne() {}
        for n in 0..<nodes {
            for line in lines {
                var tries = 0
                while !world.attempt(Op(kind: .read, address: line, size: 8, value: 0), on: n, requester: 1000) {
                    while world.deliverOne() {}
                    tries += 1
                    if tries > 10 { Issue.record("node \(n) cannot read \(line)"); return }
                }
            }
        }
        let totalMisses = world.agents.reduce(0) { $0 + $1.remoteMisses }
        #expect(totalMisses > 100, "the test should exercise remote misses")
        #expect(world.agents.allSatisfy { $0.rejectedMessages == 0 })
    }

    @Test func liesAreRejectedAndChangeNothing() throws {
        let slices = [CoherenceAgent.Slice(node: 0, base: 0x1_0000_0000, size: 64 << 10),
                      CoherenceAgent.Slice(node: 1, base: 0x1_1000_0000, size: 64 << 10)]
        let a = try CoherenceAgent(node: 0, slices: slices)
        // Data for a line homed here, from a node that is not its home; a short line; a
        // request for a line homed elsewhere; an unaligned line; a non-coherence message.
        #expect(!a.receive(.lineData(line: 0x1_0000_0000, exclusive: true, data: [UInt8](repeating: 1, count: 128)), from: 1))
        #expect(!a.receive(.lineData(line: 0x1_1000_0000, exclusive: true, data: [1, 2, 3]), from: 1))
        #expect(!a.receive(.coherenceRequest(kind: .getModified, line: 0x1_1000_0000), from: 1))
        #expect(!a.receive(.coherenceRequest(kind: .getModified, line: 0x1_0000_0004), from: 1))
        #expect(!a.receive(.heartbeat(sequence: 1, sentAtNanos: 1), from: 1))
        #expect(a.rejectedMessages == 5)
        #expect(a.outgoing.isEmpty)
        var v: UInt64 = 0
        #expect(a.load(0x1_0000_0000, size: 8, requester: 0, value: &v) == .ok && v == 0)
        #expect(a.load(0x2_0000_0000, size: 8, requester: 0, value: &v) == .accessFault)
    }
}
