import Cluster

/// Where a VM's VCPUs run and where its memory lives, and which VMs a node
/// failure takes down (Cellular Disco's fault containment: only the VMs that used
/// the failed node). Pure logic over membership, testable without sockets.
public struct PlacementPolicy: Sendable {
    public enum Strategy: String, Sendable, CaseIterable {
        /// A VM kept together: on one node if one has free CPUs and memory for all of
        /// it, else on as few nodes as have free CPUs for its VCPUs (most free first);
        /// memory interleaved over those nodes. Only an overcommitted cluster spreads
        /// the rest round-robin.
        case compact
        /// VCPU i on the i-th node in turn; memory interleaved in chunks over those nodes.
        case roundRobin = "round-robin"
        /// Everything on the node with the most free CPUs (no remote memory at all).
        case packed
    }

    public struct NodeCapacity: Sendable, Equatable {
        public var id: NodeID
        public var cpus: Int
        public var freeMemoryBytes: UInt64
        public init(id: NodeID, cpus: Int, freeMemoryBytes: UInt64) {
            self.id = id
            self.cpus = cpus
            self.freeMemoryBytes = freeMemoryBytes
        }
    }

    public struct Placement: Sendable, Equatable {
        /// Node of each VCPU, by VCPU index.
        public var vcpuNodes: [NodeID]
        /// The home node of each chunk of guest memory, in guest order.
        public var chunks: [NodeID]
        /// The size of every chunk but the last, which holds what is left.
        public var chunkBytes: UInt64
        /// The VM's memory size.
        public var totalBytes: UInt64

        /// Bytes of chunk `i`.
        public func bytes(ofChunk i: Int) -> UInt64 {
            i == chunks.count - 1 ? totalBytes - UInt64(i) * chunkBytes : chunkBytes
        }

        /// Bytes of guest memory homed on each node.
        public var memoryBytes: [NodeID: UInt64] {
            var out: [NodeID: UInt64] = [:]
            for (i, n) in chunks.enumerated() { out[n, default: 0] += bytes(ofChunk: i) }
            return out
        }

        /// Every node the VM depends on.
        public var nodes: Set<NodeID> { Set(vcpuNodes).union(chunks) }
    }

    public struct PlacementError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public var strategy: Strategy
    /// Memory is spread in chunks of this size (a power of two, at least a page).
    public var chunkBytes: UInt64

    public init(strategy: Strategy = .compact, chunkBytes: UInt64 = 2 << 20) {
        precondition(chunkBytes >= 4096 && chunkBytes & (chunkBytes - 1) == 0, "chunks are a power of two of pages")
        self.strategy = strategy
        self.chunkBytes = chunkBytes
    }

    /// The finest chunk size for `memoryBytes` that keeps a placement to at most
    /// `maxChunks` chunks (so that it fits one `vmStart` message).
    public static func chunkBytes(for memoryBytes: UInt64, maxChunks: UInt64 = 4096) -> UInt64 {
        var chunk: UInt64 = 4096
        while (memoryBytes + chunk - 1) / chunk > maxChunks { chunk <<= 1 }
        return chunk
    }

    /// Places a VM of `vcpus` VCPUs and `memoryBytes` of memory on `nodes` (alive ones),
    /// given how many VCPUs each node already runs. `memoryOn`: all memory on that node
    /// (the VCPUs placed as the strategy says).
    public func place(vcpus: Int, memoryBytes: UInt64, on nodes: [NodeCapacity],
                      load: [NodeID: Int] = [:], memoryOn: NodeID? = nil) throws -> Placement {
        if let home = memoryOn {
            guard let target = nodes.first(where: { $0.id == home }) else {
                throw PlacementError(description: "node \(home) is not a live node")
            }
            guard target.freeMemoryBytes >= memoryBytes else {
                throw PlacementError(description: "node \(home) has no \(memoryBytes >> 20) MiB free")
            }
            // The VCPUs as if the VM needed only a page; then every chunk on `home`.
            var p = try place(vcpus: vcpus, memoryBytes: 4096, on: nodes, load: load)
            p.chunks = Array(repeating: home, count: Int((memoryBytes + chunkBytes - 1) / chunkBytes))
            p.totalBytes = memoryBytes
            return p
        }
        guard !nodes.isEmpty else { throw PlacementError(description: "no nodes are alive") }
        guard vcpus >= 1 else { throw PlacementError(description: "a VM needs at least one VCPU") }
        guard memoryBytes >= 4096 else { throw PlacementError(description: "a VM needs at least one page of memory") }
        let ordered = nodes.sorted { ($0.id) < ($1.id) }
        switch strategy {
        case .packed:
            let best = ordered.max { a, b in
                (a.cpus - load[a.id, default: 0], b.id) < (b.cpus - load[b.id, default: 0], a.id)
            }!
            guard best.freeMemoryBytes >= memoryBytes else {
                throw PlacementError(description: "no node has \(memoryBytes >> 20) MiB free")
            }
            let count = Int((memoryBytes + chunkBytes - 1) / chunkBytes)
            return Placement(vcpuNodes: Array(repeating: best.id, count: vcpus), chunks: Array(repeating: best.id, count: count),
                             chunkBytes: chunkBytes, totalBytes: memoryBytes)
        case .compact:
            let freeCPUs = ordered.map { (node: $0, free: max(0, $0.cpus - load[$0.id, default: 0])) }
            let mostFreeFirst = freeCPUs.sorted { ($0.free, $1.node.id) > ($1.free, $0.node.id) }
            if let whole = mostFreeFirst.first(where: { $0.free >= vcpus && $0.node.freeMemoryBytes >= memoryBytes }) {
                let count = Int((memoryBytes + chunkBytes - 1) / chunkBytes)
                return Placement(vcpuNodes: Array(repeating: whole.node.id, count: vcpus),
                                 chunks: Array(repeating: whole.node.id, count: count), chunkBytes: chunkBytes, totalBytes: memoryBytes)
            }
            var vcpuNodes: [NodeID] = []
            for (node, free) in mostFreeFirst where free > 0 && vcpuNodes.count < vcpus {
                vcpuNodes += Array(repeating: node.id, count: min(free, vcpus - vcpuNodes.count))
            }
            // Overcommitted: the VCPUs left go round-robin from the least loaded node.
            let start = ordered.indices.min { load[ordered[$0].id, default: 0] < load[ordered[$1].id, default: 0] }!
            var next = start
            while vcpuNodes.count < vcpus {
                vcpuNodes.append(ordered[next % ordered.count].id)
                next += 1
            }
            return try interleave(memoryBytes, over: Array(Set(vcpuNodes)).sorted(), vcpuNodes: vcpuNodes, nodes: ordered)
        case .roundRobin:
            // Start from the least loaded node so VMs spread over the cluster.
            let start = ordered.indices.min { load[ordered[$0].id, default: 0] < load[ordered[$1].id, default: 0] }!
            let vcpuNodes = (0..<vcpus).map { ordered[(start + $0) % ordered.count].id }
            return try interleave(memoryBytes, over: Array(Set(vcpuNodes)).sorted(), vcpuNodes: vcpuNodes, nodes: ordered)
        }
    }

    /// Memory in chunks over `hosts` in turn, skipping hosts that are full.
    private func interleave(_ memoryBytes: UInt64, over hosts: [NodeID], vcpuNodes: [NodeID],
                            nodes ordered: [NodeCapacity]) throws -> Placement {
        var free = Dictionary(uniqueKeysWithValues: ordered.map { ($0.id, $0.freeMemoryBytes) })
        var chunks: [NodeID] = []
        var left = memoryBytes
        var i = 0
        var stalled = 0
        while left > 0 {
            let node = hosts[i % hosts.count]
            let chunk = min(chunkBytes, left)
            if free[node, default: 0] >= chunk {
                free[node]! -= chunk
                chunks.append(node)
                left -= chunk
                stalled = 0
            } else {
                stalled += 1
                if stalled >= hosts.count {
                    throw PlacementError(description: "not enough free memory on the VCPUs' nodes for \(memoryBytes >> 20) MiB")
                }
            }
            i += 1
        }
        return Placement(vcpuNodes: vcpuNodes, chunks: chunks, chunkBytes: chunkBytes, totalBytes: memoryBytes)
    }

    /// The VMs that depended on `node` (VCPUs or memory there).
    public static func affected<VM: Hashable>(by node: NodeID, placements: [VM: Placement]) -> Set<VM> {
        Set(placements.compactMap { $0.value.nodes.contains(node) ? $0.key : nil })
    }
}
