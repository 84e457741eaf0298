/// Hands out machine frames from one node's slice of machine memory
/// ([base, base + size)), page aligned: first fit from a list of free runs kept sorted
/// and merged, lowest addresses first.
///
/// A frame comes back only through `release`, which the coordinator calls when the
/// frame's home reports it scrubbed (`framesScrubbed`): every line taken back from
/// other nodes' caches and zeroed, after every node of the VM that used it dropped it.
public struct FrameAllocator: Sendable, Equatable {
    public let base: UInt64
    public let size: UInt64
    /// Free runs (start, bytes), sorted, never adjacent.
    public private(set) var free: [(start: UInt64, bytes: UInt64)]

    /// The top of the slice kept out of the allocator: the node's global buffer cache.
    public let withheld: UInt64

    public init(base: UInt64, size: UInt64, withheld: UInt64 = 0) {
        precondition(base % 4096 == 0 && size % 4096 == 0 && withheld % 4096 == 0 && withheld <= size, "a slice is whole pages")
        self.base = base
        self.size = size
        self.withheld = withheld
        self.free = size > withheld ? [(base, size - withheld)] : []
    }

    public static func == (a: FrameAllocator, b: FrameAllocator) -> Bool {
        a.base == b.base && a.size == b.size && a.withheld == b.withheld && a.free.elementsEqual(b.free) { $0 == $1 }
    }

    public var freeBytes: UInt64 { free.reduce(0) { $0 + $1.bytes } }

    /// The longest run that one `allocate` can hand out.
    public var largestRun: UInt64 { free.map(\.bytes).max() ?? 0 }

    /// `bytes` (rounded up to whole pages) of contiguous frames, or nil if no free run
    /// is that long; nothing is taken then.
    public mutating func allocate(_ bytes: UInt64) -> UInt64? {
        let rounded = (bytes + 4095) & ~4095
        guard rounded > 0, let i = free.firstIndex(where: { $0.bytes >= rounded }) else { return nil }
        let start = free[i].start
        if free[i].bytes == rounded {
            free.remove(at: i)
        } else {
            free[i] = (start + rounded, free[i].bytes - rounded)
        }
        return start
    }

    /// Gives back a run that `allocate` handed out. False (and nothing changes) if the
    /// run is outside the slice or overlaps free frames: a double or bogus release.
    @discardableResult
    public mutating func release(_ start: UInt64, _ bytes: UInt64) -> Bool {
        let rounded = (bytes + 4095) & ~4095
        guard start % 4096 == 0, rounded > 0, start >= base, start + rounded <= base + size - withheld else { return false }
        let i = free.firstIndex(where: { $0.start >= start }) ?? free.count
        if i > 0, free[i - 1].start + free[i - 1].bytes > start { return false }
        if i < free.count, start + rounded > free[i].start { return false }
        free.insert((start, rounded), at: i)
        // Merge with the neighbours.
        if i + 1 < free.count, free[i].start + free[i].bytes == free[i + 1].start {
            free[i].bytes += free[i + 1].bytes
            free.remove(at: i + 1)
        }
        if i > 0, free[i - 1].start + free[i - 1].bytes == free[i].start {
            free[i - 1].bytes += free[i].bytes
            free.remove(at: i)
        }
        return true
    }
}
