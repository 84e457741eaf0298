import Platform

/// The global buffer cache of one node, as pure bookkeeping (docs/memory.md, "The
/// global buffer cache"): which machine frame of the node's cache region holds which
/// read-only disk page, and which (VM, guest page) map each frame. A frame is given to a
/// block on its first read, shared by every later reader of the block, and freed when
/// its last sharer lets it go (a write copied the page out, another read replaced it,
/// the VM ended). A full cache shares nothing new (the read is copied as usual).
///
/// No I/O: the node fills and zeroes the frames; this only says which.
public struct BufferCacheIndex: Sendable, Equatable {
    /// One guest page of one VM mapping a cached frame.
    public struct Sharer: Hashable, Sendable, Comparable {
        public var vm: UInt32
        public var guestPage: UInt64
        public init(vm: UInt32, guestPage: UInt64) {
            self.vm = vm
            self.guestPage = guestPage
        }
        public static func < (a: Sharer, b: Sharer) -> Bool { (a.vm, a.guestPage) < (b.vm, b.guestPage) }
    }

    public struct Entry: Sendable, Equatable {
        public var frame: UInt64
        public var sharers: Set<Sharer>
        /// Filled: the frame holds the block (false between `share` answering `.fill`
        /// and `filled`).
        public var filled: Bool
    }

    /// What `share` decided.
    public enum Share: Equatable, Sendable {
        /// The block is cached in this frame; the sharer is recorded.
        case hit(frame: UInt64)
        /// The block was not cached: this frame is now its, the sharer recorded; the
        /// caller writes the block into it and calls `filled` (or `abandon`).
        case fill(frame: UInt64)
        /// No frame free: share nothing.
        case full
    }

    public let base: UInt64
    public let bytes: UInt64
    /// Free frames, the lowest last (handed out first).
    private var free: [UInt64]
    public private(set) var entries: [SharedBlock: Entry] = [:]
    private var blockOfFrame: [UInt64: SharedBlock] = [:]
    public private(set) var hits: UInt64 = 0
    public private(set) var fills: UInt64 = 0
    public private(set) var refusedFull: UInt64 = 0

    /// A cache of the frames [base, base + bytes) (whole pages).
    public init(base: UInt64, bytes: UInt64) {
        precondition(base % 4096 == 0 && bytes % 4096 == 0, "the cache region is whole pages")
        self.base = base
        self.bytes = bytes
        free = stride(from: base, to: base + bytes, by: 4096).reversed()
    }

    /// Frames holding a block (shared by at least one guest page).
    public var framesInUse: Int { entries.count }
    /// Guest pages mapping a cached frame, over every VM.
    public var mappings: Int { entries.values.reduce(0) { $0 + $1.sharers.count } }
    public var freeFrames: Int { free.count }

    /// Whether `frame` is one of the cache's frames.
    public func contains(frame: UInt64) -> Bool { frame >= base && frame - base < bytes }

    /// The block cached in `frame`, if any.
    public func block(inFrame frame: UInt64) -> SharedBlock? { blockOfFrame[frame] }

    /// `sharer` reads `block`: the frame that holds it (or will, once filled).
    public mutating func share(_ block: SharedBlock, with sharer: Sharer) -> Share {
        if var e = entries[block] {
            e.sharers.insert(sharer)
            entries[block] = e
            if e.filled { hits &+= 1 }
            return .hit(frame: e.frame)
        }
        guard let frame = free.popLast() else {
            refusedFull &+= 1
            return .full
        }
        entries[block] = Entry(frame: frame, sharers: [sharer], filled: false)
        blockOfFrame[frame] = block
        fills &+= 1
        return .fill(frame: frame)
    }

    /// The frame `share` gave for `block` now holds it.
    public mutating func filled(_ block: SharedBlock) { entries[block]?.filled = true }

    /// Filling `block`'s frame failed: the frame is free again, nobody shares it.
    public mutating func abandon(_ block: SharedBlock) {
        guard let e = entries.removeValue(forKey: block) else { return }
        blockOfFrame[e.frame] = nil
        free.append(e.frame)
    }

    /// `sharer` no longer maps `frame`; true when that freed the frame (no sharer left).
    @discardableResult
    public mutating func release(_ frame: UInt64, by sharer: Sharer) -> Bool {
        guard let block = blockOfFrame[frame], var e = entries[block], e.sharers.remove(sharer) != nil else { return false }
        if e.sharers.isEmpty {
            entries[block] = nil
            blockOfFrame[frame] = nil
            free.append(frame)
            return true
        }
        entries[block] = e
        return false
    }

    /// VM `vm` ended: every frame it shared loses it; the frames freed by that.
    public mutating func releaseAll(vm: UInt32) -> [UInt64] {
        var freed: [UInt64] = []
        for (block, var e) in entries {
            let mine = e.sharers.filter { $0.vm == vm }
            guard !mine.isEmpty else { continue }
            e.sharers.subtract(mine)
            if e.sharers.isEmpty {
                entries[block] = nil
                blockOfFrame[e.frame] = nil
                free.append(e.frame)
                freed.append(e.frame)
            } else {
                entries[block] = e
            }
        }
        return freed.sorted()
    }

    public static func == (a: BufferCacheIndex, b: BufferCacheIndex) -> Bool {
        a.base == b.base && a.bytes == b.bytes && a.free == b.free && a.entries == b.entries
    }
}

/// The node's buffer cache: the index, shared by the node's VMs (one thread).
public final class BufferCache {
    public var index: BufferCacheIndex
    /// Pages copied out of a shared frame because the guest wrote them.
    public var copiesOnWrite: UInt64 = 0
    public init(base: UInt64, bytes: UInt64) { index = BufferCacheIndex(base: base, bytes: bytes) }
}
