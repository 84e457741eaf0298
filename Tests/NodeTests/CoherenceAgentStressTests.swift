import Coherence
import Protocol
import RISCV
import Testing
@testable import Node

/// Several CoherenceAgents wired by in-order per-pair queues, driven by random CPU
/// accesses and random message delivery, checked against one reference memory: every
/// access that completes must see exactly what a sequentially consistent memory holds
/// at that moment. Small caches force evictions and write-backs.
@Suite struct CoherenceAgentStressTests {
    struct Op {
        enum Kind { case read, write, amoAdd, cas }
        var kind: Kind
        var address: UInt64
        var size: Int
        var value: UInt64
    }

    final class World {
        var agents: [CoherenceAgent] = []
        /// In-flight messages per ordered pair (from, to), FIFO.
        var channels: [Int: [Message]] = [:]
        var reference: [UInt64: UInt8] = [:]
        var rng: SeededGenerator
        let nodes: Int
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

        func pump(_ n: Int) {
            let a = agents[n]
            for (to, m) in a.outgoing { channels[n * 64 + to, default: []].append(m) }
            a.outgoing.removeAll()
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

        /// Tries `op` on node `n`; true when it completed (and was checked).
        func attempt(_ op: Op, on n: Int) -> Bool {
            let a = agents[n]
            defer { pump(n) }
            switch op.kind {
            case .read:
                var v: UInt64 = 0
                let s = a.load(op.address, size: op.size, value: &v)
                guard s == .ok else { return false }
                #expect(v == referenceRead(op.address, op.size), "node \(n) read \(v) at \(op.address), memory holds \(referenceRead(op.address, op.size))")
            case .write:
                guard a.store(op.address, size: op.size, value: op.value) == .ok else { return false }
                referenceWrite(op.address, op.size, op.value)
            case .amoAdd, .cas:
                var old: UInt64 = 0
                let expected = referenceRead(op.address, op.size)  // a CAS that should succeed half the time
                let want = rng.next() & 1 == 0 ? expected : expected &+ 1
                let kind: AtomicOp = op.kind == .amoAdd ? .add : .compareAndSwap
                guard a.atomic(kind, op.address, size: op.size, operand: op.value, expected: want, old: &old) == .ok else { return false }
                #expect(old == referenceRead(op.address, op.size), "AMO old value")
                if let r = kind.apply(current: old, operand: op.value, expected: want, size: op.size) {
                    referenceWrite(op.address, op.size, r)
                }
            }
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
            let op = pending[n][c] ?? {
                let size = [1, 2, 4, 8][Int(world.rng.next() % 4)]
                let line = lines[Int(world.rng.next() % UInt64(lines.count))]
                let offset = (world.rng.next() % UInt64(lineSize / size)) * UInt64(size)
                let kinds: [Op.Kind] = size >= 4 ? [.read, .read, .write, .amoAdd, .cas] : [.read, .read, .write]
                return Op(kind: kinds[Int(world.rng.next() % UInt64(kinds.count))], address: line + offset, size: size,
                          value: world.rng.next())
            }()
            if world.attempt(op, on: n) {
                pending[n][c] = nil
                completed += 1
            } else {
                pending[n][c] = op
                if world.inFlight == 0 {
                    // A retry with nothing in flight would wait forever.
                    Issue.record("node \(n) is waiting for \(op.address) but no message is in flight")
                    return
                }
            }
        }
        // Drain, then every node reads every line and sees the reference.
        while world.deliverOne() {}
        for n in 0..<nodes {
            for line in lines {
                var tries = 0
                while !world.attempt(Op(kind: .read, address: line, size: 8, value: 0), on: n) {
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
        #expect(a.load(0x1_0000_0000, size: 8, value: &v) == .ok && v == 0)
        #expect(a.load(0x2_0000_0000, size: 8, value: &v) == .accessFault)
    }
}
