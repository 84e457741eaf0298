import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension QCow2Image {
    /// What a new image looks like.
    public struct CreateOptions: Sendable {
        /// Virtual size in bytes (rounded up to 512); nil takes the backing file's.
        public var size: UInt64?
        /// The backing file name to store: absolute, or relative to the new image's
        /// directory (as QEMU resolves it).
        public var backing: String?
        /// The backing file's format; nil detects it from the file.
        public var backingFormat: DiskFormat?
        /// log2 of the cluster size: 9 (512 B) ... 21 (2 MiB); QEMU's default is 16.
        public var clusterBits: UInt32 = 16
        /// log2 of the refcount width in bits: 0 ... 6; QEMU's default is 4 (16 bits).
        public var refcountOrder: UInt32 = 4

        public init(size: UInt64? = nil, backing: String? = nil, backingFormat: DiskFormat? = nil,
                    clusterBits: UInt32 = 16, refcountOrder: UInt32 = 4) {
            self.size = size
            self.backing = backing
            self.backingFormat = backingFormat
            self.clusterBits = clusterBits
            self.refcountOrder = refcountOrder
        }
    }

    /// Creates an empty version 3 qcow2 image (an overlay when `options.backing` is
    /// set) laid out as `qemu-img create` does: the header, the refcount table, the
    /// refcount blocks, the L1 table. An existing file is never overwritten. The new
    /// image is synced, and so is its directory, before this returns.
    public static func create(path: String, options: CreateOptions) throws {
        guard QCow2Header.clusterBitsRange.contains(options.clusterBits) else {
            throw DiskImageError(path, "cluster size must be a power of two from 512 B to 2 MiB")
        }
        guard options.refcountOrder <= 6 else { throw DiskImageError(path, "refcount order must be 0...6") }
        var backingFormat: DiskFormat?
        var size = options.size
        if let name = options.backing {
            guard !name.isEmpty, name.utf8.count <= Int(QCow2Header.maxBackingNameLength) else {
                throw DiskImageError(path, "backing file name must be 1...\(QCow2Header.maxBackingNameLength) bytes")
            }
            let resolved = try resolveBacking(name, of: path)
            guard FileManager.default.fileExists(atPath: resolved) else {
                let dir = (path as NSString).deletingLastPathComponent
                throw DiskImageError(path, "backing file '\(name)' not found at '\(resolved)': a relative backing name is taken relative to the overlay's directory (\(dir.isEmpty ? "." : dir)), as QEMU does")
            }
            let base = try DiskImages.open(path: resolved, format: options.backingFormat, readOnly: true)
            defer { base.close() }
            backingFormat = base.format
            if size == nil { size = base.virtualSize }
        }
        guard var bytes = size else { throw DiskImageError(path, "give a size or a backing file") }
        bytes = (bytes + 511) / 512 * 512
        guard bytes > 0 else { throw DiskImageError(path, "size must be above zero") }
        guard bytes <= 1 << 61 else { throw DiskImageError(path, "size \(bytes) is too large") }

        let bits = UInt64(options.clusterBits)
        let cluster = UInt64(1) << bits
        let l1Size = QCow2Header.l1EntriesNeeded(size: bytes, clusterBits: options.clusterBits)
        guard l1Size * 8 <= QCow2Header.maxL1Bytes else {
            throw DiskImageError(path, "size \(bytes) needs an L1 table above \(QCow2Header.maxL1Bytes >> 20) MiB: use larger clusters")
        }
        let l1Clusters = max(1, (l1Size * 8 + cluster - 1) / cluster)
        let refcountsPerBlock = (cluster * 8) >> UInt64(options.refcountOrder)
        // Header, refcount table, refcount blocks, L1: grow the table and blocks until they cover it all.
        var tableClusters: UInt64 = 1, blocks: UInt64 = 1
        while true {
            let total = 1 + tableClusters + blocks + l1Clusters
            let neededBlocks = (total + refcountsPerBlock - 1) / refcountsPerBlock
            let neededTable = (neededBlocks * 8 + cluster - 1) / cluster
            if neededBlocks == blocks && neededTable == tableClusters { break }
            blocks = max(blocks, neededBlocks)
            tableClusters = max(tableClusters, neededTable)
        }
        let total = 1 + tableClusters + blocks + l1Clusters

        var header = QCow2Header(version: 3, backingFileOffset: 0, backingFileSize: 0, clusterBits: options.clusterBits,
                                 size: bytes, cryptMethod: 0, l1Size: UInt32(l1Size),
                                 l1TableOffset: (1 + tableClusters + blocks) << bits,
                                 refcountTableOffset: cluster, refcountTableClusters: UInt32(tableClusters),
                                 snapshotCount: 0, snapshotsOffset: 0)
        header.refcountOrder = options.refcountOrder
        header.headerLength = 112
        if let name = options.backing, let format = backingFormat {
            header.backingFormat = format.rawValue
            header.backingFile = name
            header.backingFileOffset = QCow2Header.backingNameOffset(headerLength: 112, backingFormat: format.rawValue)
            header.backingFileSize = UInt32(name.utf8.count)
            guard header.backingFileOffset + UInt64(header.backingFileSize) <= cluster else {
                throw DiskImageError(path, "backing file name does not fit in the first cluster (\(cluster) bytes)")
            }
        }

        var image = header.serialized()
        var table = [UInt8](repeating: 0, count: Int(tableClusters * cluster))
        for b in 0..<blocks {
            let entry = ((1 + tableClusters + b) << bits).bigEndianBytes
            table.replaceSubrange(Int(b * 8)..<Int(b * 8 + 8), with: entry)
        }
        image += table
        for b in 0..<blocks {
            let block = RefcountBlock(bytes: [UInt8](repeating: 0, count: Int(cluster)), order: UInt64(options.refcountOrder), dirty: false)
            for i in 0..<refcountsPerBlock where b * refcountsPerBlock + i < total { block[Int(i)] = 1 }
            image += block.bytes
        }
        image += [UInt8](repeating: 0, count: Int(l1Clusters * cluster))

        let file = try ImageFile(path: path, readOnly: false, create: true)
        do {
            try file.write(at: 0, image)
            try file.sync()
            file.close()
            let dir = (path as NSString).deletingLastPathComponent
            let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { _ = fsync(dfd); Glibc.close(dfd) }
        } catch {
            file.close()
            unlink(path)
            throw error
        }
    }
}
