/// Hands out machine frames from one node's slice of machine memory
/// ([base, base + size)), page aligned, lowest addresses first.
///
/// Frames are not given back yet: a frame a stopped VM used may still have lines in
/// other nodes' remote caches and holds the old guest's data, so reusing it needs the
/// home to recall and scrub its lines first (the NUMA-memory work does that).
public struct FrameAllocator: Sendable, Equatable {
    public let base: UInt64
    public let size: UInt64
    public private(set) var next: UInt64

    public init(base: UInt64, size: UInt64) {
        precondition(base % 4096 == 0 && size % 4096 == 0, "a slice is whole pages")
        self.base = base
        self.size = size
        self.next = base
    }

    public var freeBytes: UInt64 { base + size - next }

    /// `bytes` (rounded up to whole pages) of contiguous frames, or nil if the slice
    /// has no room; nothing is taken then.
    public mutating func allocate(_ bytes: UInt64) -> UInt64? {
        let rounded = (bytes + 4095) & ~4095
        guard rounded <= freeBytes else { return nil }
        defer { next += rounded }
        return next
    }
}
