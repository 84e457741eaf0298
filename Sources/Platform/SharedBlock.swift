/// One page of a read-only disk file, named so that every VM reading it names it the
/// same way: the file's device and inode (not its path, which two VMs may spell
/// differently) and the byte offset of the page in the file. The key of the global
/// buffer cache (docs/memory.md, "The global buffer cache").
public struct SharedBlock: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public var offset: UInt64

    public init(device: UInt64, inode: UInt64, offset: UInt64) {
        self.device = device
        self.inode = inode
        self.offset = offset
    }

    public var description: String { "\(device):\(inode)@\(offset)" }
}

/// Guest memory that can take a whole page of a disk read by mapping a machine page
/// shared with other VMs, copy-on-write, instead of copying the bytes in.
public protocol BlockSharingMemory: DMAMemory {
    /// Maps page-aligned guest-physical `address` to the machine page that holds
    /// `block`, read-only and copy-on-write; `fill` reads the block's 4096 bytes when no
    /// page holds it yet. False when the page cannot be shared (the VM or the page does
    /// not qualify, the cache is full, `fill` failed): the caller copies the bytes in.
    func shareBlock(_ block: SharedBlock, at address: UInt64,
                    fill: (UnsafeMutableRawBufferPointer) throws -> Void) -> Bool
}
