import Coherence
import Protocol
import RISCV
import Testing
@testable import Node

/// Two agents and in-order channels between them.
final class AgentPair {
    static let base0: UInt64 = 0x1_0000_0000
    static let base1: UInt64 = 0x1_1000_0000
    let agents: [CoherenceAgent]
    var channels: [[Message]] = [[], []]  // index: receiving node
    var completed: [Set<UInt64>] = [[], []]
    init() throws {
        let slices = [CoherenceAgent.Slice(node: 0, base: Self.base0, size: 64 << 10),
                      CoherenceAgent.Slice(node: 1, base: Self.base1, size: 64 << 10)]
        agents = try (0..<2).map { try CoherenceAgent(node: $0, slices: slices) }
    }
    func collect() {
        for (n, a) in agents.enumerated() {
            for (to, m) in a.outgoing { channels[to].append(m) }
            a.outgoing.removeAll()
            completed[n].formUnion(a.completed)
            a.completed.removeAll()
            a.revoked.removeAll()
        }
    }
    /// A CPU access as the CPU does it: asked, and if it parks, asked again once
    /// everything in flight was delivered (its line is then there, the access done).
    /// Whether it completed.
    func complete(_ access: () -> BusStatus) -> Bool {
        if access() == .ok { return true }
        drain()
        return access() == .ok
    }

    /// Delivers everything in flight, in order, until nothing is.
    func drain() {
        collect()
        while let to = channels.indices.first(where: { !channels[$0].isEmpty }) {
            let m = channels[to].removeFirst()
            #expect(agents[to].receive(m, from: 1 - to), "rejected \(m.type)")
            collect()
        }
    }
}
