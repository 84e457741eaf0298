import Cluster
import Testing
import TestSupport
@testable import Coherence

/// A whole machine of directories and caches wired by in-order per-pair channels,
/// driven by random CPU reads and writes and random message delivery, checked at
/// every step against a reference memory: single writer or many readers, and every
/// read sees the last write (which is what sequential consistency needs of the
/// memory system). Evictions are forced by tiny caches.
struct CoherenceSimulation {
    enum Delivery {
        case toDirectory(DirectoryStateMachine.Event)
        case toCache(CacheStateMachine.Event)
    }

    struct CPU {
        var node: NodeID
        var op: (line: LineAddress, write: Bool, value: UInt64)?
        var parked = false
    }

    let nodes: Int
    let lines: [LineAddress]
    var directories: [DirectoryStateMachine]
    var caches: [CacheStateMachine]
    var memory: [[LineAddress: [UInt8]]]
    var channels: [[[Delivery]]]
    var cpus: [CPU]
    var reference: [LineAddress: UInt64] = [:]
    var rng: SeededGenerator
    var completed = 0
    var nextValue: UInt64 = 1

    init(nodes: Int, cpusPerNode: Int, lineCount: Int, cacheLines: Int, seed: UInt64) {
        self.nodes = nodes
        let geometry = LineGeometry(lineSize: 8)
        lines = (0..<lineCount).map { LineAddress($0 * 8) }
        directories = (0..<nodes).map { DirectoryStateMachine(home: $0, geometry: geometry) }
        caches = (0..<nodes).map { _ in CacheStateMachine(geometry: geometry, capacityBytes: cacheLines * 8) }
        memory = Array(repeating: [:], count: nodes)
        for line in lines { memory[Int(line / 8) % nodes][line] = [UInt8](repeating: 0, count: 8) }
        channels = Array(repeating: Array(repeating: [], count: nodes), count: nodes)
        cpus = (0..<(nodes * cpusPerNode)).map { CPU(node: $0 % nodes) }
        rng = SeededGenerator(seed: seed)
        for line in lines { reference[line] = 0 }
    }

    func home(_ line: LineAddress) -> NodeID { Int(line / 8) % nodes }
    func bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    func value(_ b: [UInt8]) -> UInt64 { b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }

    // MARK: - Steps

    /// One random step: a CPU acts or a message is delivered. Returns false if nothing could happen.
    mutating func step(issueNewOps: Bool) -> Bool {
        var candidates: [Int] = []  // cpu index, or -(1 + channel index)
        for (i, cpu) in cpus.enumerated() where !cpu.parked && (cpu.op != nil || issueNewOps) { candidates.append(i) }
        for s in 0..<nodes { for d in 0..<nodes where !channels[s][d].isEmpty { candidates.append(-(1 + s * nodes + d)) } }
        guard !candidates.isEmpty else { return false }
        let pick = candidates[Int(rng.next() % UInt64(candidates.count))]
        if pick >= 0 { cpuStep(pick) } else { deliver(-pick - 1) }
        checkInvariants()
        return true
    }

    mutating func cpuStep(_ i: Int) {
        if cpus[i].op == nil {
            let line = lines[Int(rng.next() % UInt64(lines.count))]
            let write = rng.next() % 3 == 0
            cpus[i].op = (line, write, write ? nextValue : 0)
            if write { nextValue += 1 }
        }
        let op = cpus[i].op!
        let node = cpus[i].node
        let h = home(op.line)
        if h == node {
            let rights = directories[h].localRights(op.line)
            if op.write ? rights.write : rights.read {
                if op.write { memory[h][op.line] = bytes(op.value) }
                perform(i, op, data: memory[h][op.line]!)
                return
            }
            cpus[i].parked = true
            run(directories[h].handle(.request(op.write ? .getModified : .getShared, line: op.line, from: h)), at: h)
            return
        }
        let out = caches[node].handle(.access(line: op.line, home: h, write: op.write))
        if out.first == .hit(line: op.line) {
            if op.write { caches[node].write(op.line, at: 0, bytes: bytes(op.value)) }
            perform(i, op, data: caches[node].data(of: op.line)!)
        } else {
            cpus[i].parked = true
        }
        run(out, at: node)
    }

    /// Records a completed access (a write has already stored its value).
    mutating func perform(_ i: Int, _ op: (line: LineAddress, write: Bool, value: UInt64), data: [UInt8]) {
        if op.write {
            reference[op.line] = op.value
        } else {
            #expect(value(data) == reference[op.line], "read of \(op.line) by cpu \(i) saw a stale value")
        }
        cpus[i].op = nil
        completed += 1
    }

    mutating func deliver(_ channel: Int) {
        let (s, d) = (channel / nodes, channel % nodes)
        let message = channels[s][d].removeFirst()
        switch message {
        case .toDirectory(let e): run(directories[d].handle(e), at: d)
        case .toCache(let e): run(caches[d].handle(e), at: d)
        }
    }

    mutating func wake(_ line: LineAddress, at node: NodeID) {
        for i in cpus.indices where cpus[i].node == node && cpus[i].op?.line == line { cpus[i].parked = false }
    }

    mutating func run(_ directives: [DirectoryStateMachine.Directive], at h: NodeID) {
        for d in directives {
            switch d {
            case .sendData(let line, let to, let exclusive):
                channels[h][to].append(.toCache(.data(line: line, exclusive: exclusive, data: memory[h][line]!)))
            case .sendGrant(let line, let to): channels[h][to].append(.toCache(.grant(line: line)))
            case .sendInvalidate(let line, let to): channels[h][to].append(.toCache(.invalidate(line: line, from: h)))
            case .sendRecall(let line, let to, let keep): channels[h][to].append(.toCache(.recall(line: line, keepShared: keep)))
            case .sendPutAck(let line, let to): channels[h][to].append(.toCache(.putAck(line: line)))
            case .writeMemory(let line, let data): memory[h][line] = data
            case .localGrant(let line, _): wake(line, at: h)
            case .revokeLocal: break  // rights are read live from the directory here
            }
        }
    }

    mutating func run(_ directives: [CacheStateMachine.Directive], at node: NodeID) {
        for d in directives {
            switch d {
            case .send(let message, let line, let to):
                let event: DirectoryStateMachine.Event
                switch message {
                case .request(let kind): event = .request(kind, line: line, from: node)
                case .invalidateAck: event = .invalidateAck(line: line, from: node)
                case .recallReply(let data): event = .recallReply(line: line, from: node, data: data)
                case .putShared: event = .putShared(line: line, from: node)
                case .putModified(let data): event = .putModified(line: line, from: node, data: data)
                }
                channels[node][to].append(.toDirectory(event))
            case .wake(let line): wake(line, at: node)
            case .hit, .miss, .lost, .downgraded: break
            }
        }
    }

    // MARK: - Invariants

    func checkInvariants() {
        for line in lines {
            let h = home(line)
            var writers = 0, readers = 0
            for n in 0..<nodes where n != h {
                switch caches[n].state(of: line) {
                case .modified?:
                    writers += 1
                    #expect(value(caches[n].data(of: line)!) == reference[line])
                case .shared?:
                    readers += 1
                    #expect(value(caches[n].data(of: line)!) == reference[line], "stale shared copy of \(line) at \(n)")
                default: break
                }
            }
            let rights = directories[h].localRights(line)
            if rights.write { writers += 1 }
            if rights.read && !rights.write {
                readers += 1
                #expect(value(memory[h][line]!) == reference[line], "home \(h) may read stale memory of \(line)")
            }
            #expect(writers <= 1, "two writers of \(line)")
            #expect(writers == 0 || readers == 0, "a writer and readers of \(line) at once")
        }
    }

    var quiescent: Bool {
        channels.allSatisfy { $0.allSatisfy(\.isEmpty) } && cpus.allSatisfy { $0.op == nil }
    }
}

@Suite struct CoherenceSimulationTests {
    /// The directory's per-page answers (a TLB refill's `pageRights`, a page move's
    /// `trackedLines(in:)`) agree with its per-line state.
    static func checkPageSummaries(_ directories: [DirectoryStateMachine], seed: UInt64) {
        for d in directories {
            var read = true, write = true
            for line in stride(from: UInt64(0), to: 4096, by: 8) {
                let r = d.localRights(line)
                read = read && r.read
                write = write && r.write
            }
            let page = d.pageRights(0)
            #expect(page.read == read && (!read || page.write == write), "seed \(seed): pageRights \(page) vs lines \((read, write))")
            #expect(d.trackedLines(in: 0, 4096) == d.trackedLines.sorted(), "seed \(seed)")
            #expect(d.trackedLines(in: 4096, 4096).isEmpty)
        }
    }

    @Test(arguments: [(2, 1), (3, 2), (4, 2)])
    func randomTrafficKeepsMemoryCoherent(nodes: Int, cpusPerNode: Int) {
        for seed in UInt64(1)...40 {
            var sim = CoherenceSimulation(nodes: nodes, cpusPerNode: cpusPerNode, lineCount: 6, cacheLines: 2,
                                          seed: seed &* 7919 &+ UInt64(nodes))
            for i in 0..<3000 {
                _ = sim.step(issueNewOps: true)
                if i % 50 == 0 { Self.checkPageSummaries(sim.directories, seed: seed) }
            }
            // Drain: finish every outstanding access, deliver every message.
            var steps = 0
            while !sim.quiescent && steps < 200_000 {
                _ = sim.step(issueNewOps: false)
                steps += 1
            }
            #expect(sim.quiescent, "seed \(seed): did not settle (deadlock or livelock)")
            #expect(sim.completed > 300, "seed \(seed): only \(sim.completed) accesses completed")
            for d in sim.directories {
                for line in d.trackedLines {
                    if case .busy = d.state(of: line) { Issue.record("seed \(seed): line \(line) still busy") }
                    #expect(d.queuedCount(of: line) == 0)
                }
            }
        }
    }
}
