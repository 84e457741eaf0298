/// One refcount block: a cluster of refcount entries `1 << order` bits wide (order
/// 0...6). Entries of 8 bits or more are big-endian; narrower ones are packed from
/// the least significant bit of each byte, as the specification says.
final class RefcountBlock {
    var bytes: [UInt8]
    var dirty: Bool
    let order: UInt64

    init(bytes: [UInt8], order: UInt64, dirty: Bool) {
        self.bytes = bytes
        self.order = order
        self.dirty = dirty
    }

    var count: Int { (bytes.count * 8) >> Int(order) }
    var maxValue: UInt64 { order == 6 ? .max : (1 << (1 << order)) - 1 }

    subscript(index: Int) -> UInt64 {
        get {
            let bits = 1 << Int(order)
            if bits >= 8 {
                let n = bits / 8, start = index * n
                var v: UInt64 = 0
                for i in start..<(start + n) { v = v << 8 | UInt64(bytes[i]) }
                return v
            }
            let bit = index * bits
            return UInt64(bytes[bit / 8] >> UInt8(bit % 8)) & ((1 << UInt64(bits)) - 1)
        }
        set {
            let bits = 1 << Int(order)
            if bits >= 8 {
                let n = bits / 8, start = index * n
                for i in 0..<n { bytes[start + i] = UInt8(truncatingIfNeeded: newValue >> UInt64(8 * (n - 1 - i))) }
                return
            }
            let bit = index * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(bit % 8)
            bytes[bit / 8] = (bytes[bit / 8] & ~mask) | (UInt8(truncatingIfNeeded: newValue) << UInt8(bit % 8) & mask)
        }
    }
}

extension QCow2Image {
    /// Host offsets stop below 2^56 (bits 9...55 of a table entry).
    var maxClusters: UInt64 { 1 << (56 - clusterBits) }

    /// Records the clusters the header and tables occupy, so that no data cluster or
    /// allocation may land on them. Table entries that are malformed are left out
    /// here and refused when used.
    func noteFixedMetadata() {
        metadataClusters = [0]
        for c in clusters(of: header.l1TableOffset, bytes: UInt64(header.l1Size) * 8) { metadataClusters.insert(c) }
        for c in clusters(of: header.refcountTableOffset, bytes: UInt64(header.refcountTableClusters) * header.clusterSize) {
            metadataClusters.insert(c)
        }
        for entry in refcountTable where entry & QCow2Header.refcountTableReservedMask == 0 && entry != 0 && entry < file.length {
            metadataClusters.insert(entry >> clusterBits)
        }
        for entry in l1 where entry & QCow2Header.l1ReservedMask == 0 {
            let offset = entry & QCow2Header.offsetMask
            if offset != 0 && offset < file.length { metadataClusters.insert(offset >> clusterBits) }
        }
    }

    func clusters(of offset: UInt64, bytes: UInt64) -> Range<UInt64> {
        guard bytes > 0 else { return 0..<0 }
        return (offset >> clusterBits)..<((offset + bytes + clusterMask) >> clusterBits)
    }

    /// The header cluster, the L1 table and the refcount table (and its old place while
    /// a move is pending): what no table entry may point into.
    func isFixedMetadata(_ cluster: UInt64) -> Bool {
        if cluster == 0 { return true }
        if clusters(of: header.l1TableOffset, bytes: UInt64(header.l1Size) * 8).contains(cluster) { return true }
        if clusters(of: header.refcountTableOffset, bytes: UInt64(header.refcountTableClusters) * header.clusterSize).contains(cluster) {
            return true
        }
        if let old = refcountTableMove, clusters(of: old.offset, bytes: UInt64(old.clusters) * header.clusterSize).contains(cluster) {
            return true
        }
        return false
    }

    // MARK: - Reading refcounts

    /// The refcount block at refcount table index `index`, or nil if none is allocated.
    func refcountBlock(tableIndex index: Int) throws -> RefcountBlock? {
        guard index < refcountTable.count else { return nil }
        let entry = refcountTable[index]
        guard entry & QCow2Header.refcountTableReservedMask == 0 else {
            throw DiskImageError(path, "refcount table entry \(index) has reserved bits set (0x\(String(entry, radix: 16))): image corrupt")
        }
        if entry == 0 { return nil }
        if let block = refcountBlocks[entry] { return block }
        guard entry & clusterMask == 0 else {
            throw DiskImageError(path, "refcount block \(index) at unaligned offset \(entry): image corrupt")
        }
        guard !isFixedMetadata(entry >> clusterBits) else {
            throw DiskImageError(path, "refcount block \(index) at offset \(entry) overlaps the header, the L1 or the refcount table: image corrupt")
        }
        let bytes = try file.read(at: entry, count: clusterSize)
        trimCaches()
        let block = RefcountBlock(bytes: bytes, order: UInt64(header.refcountOrder), dirty: false)
        refcountBlocks[entry] = block
        return block
    }

    /// The refcount of host cluster `cluster` (0 where no refcount block covers it).
    func refcount(ofCluster cluster: UInt64) throws -> UInt64 {
        guard let block = try refcountBlock(tableIndex: Int(cluster / refcountsPerBlock)) else { return 0 }
        return block[Int(cluster % refcountsPerBlock)]
    }

    // MARK: - Allocation

    /// The first cluster at or after `start` with refcount 0 that is not known metadata.
    func findFreeCluster(from start: UInt64) throws -> UInt64 {
        var c = start
        while true {
            guard c < maxClusters else { throw DiskImageError(path, "image is full (host offsets reach 2^56)") }
            let index = Int(c / refcountsPerBlock)
            guard let block = try refcountBlock(tableIndex: index) else {
                if !metadataClusters.contains(c) { return c }
                c += 1
                continue
            }
            var i = Int(c % refcountsPerBlock)
            while i < block.count {
                let candidate = UInt64(index) * refcountsPerBlock + UInt64(i)
                if block[i] == 0 && !metadataClusters.contains(candidate) { return candidate }
                i += 1
            }
            c = UInt64(index + 1) * refcountsPerBlock
        }
    }

    /// Allocates one host cluster (refcount 1, in memory until written back) and
    /// returns its offset. A missing refcount block is created in the first free
    /// cluster of the range it covers, so that it counts itself.
    func allocateCluster() throws -> UInt64 {
        allocationsSinceWriteBack += 1
        while true {
            let c = try findFreeCluster(from: freeClusterHint)
            let index = Int(c / refcountsPerBlock)
            if index >= refcountTable.count {
                try growRefcountTable(toCover: index, from: c)
                continue
            }
            if let block = try refcountBlock(tableIndex: index) {
                block[Int(c % refcountsPerBlock)] = 1
                block.dirty = true
                freeClusterHint = c + 1
                return c << clusterBits
            }
            let block = RefcountBlock(bytes: [UInt8](repeating: 0, count: clusterSize),
                                      order: UInt64(header.refcountOrder), dirty: true)
            block[Int(c % refcountsPerBlock)] = 1
            refcountBlocks[c << clusterBits] = block
            refcountTable[index] = c << clusterBits
            dirtyRefcountTable.insert(index)
            metadataClusters.insert(c)
            freeClusterHint = c + 1
        }
    }

    /// Drops one reference to host cluster `cluster`.
    func freeCluster(_ cluster: UInt64) throws {
        guard let block = try refcountBlock(tableIndex: Int(cluster / refcountsPerBlock)) else { return }
        let i = Int(cluster % refcountsPerBlock)
        if block[i] > 0 {
            block[i] -= 1
            block.dirty = true
        }
        if block[i] == 0 {
            metadataClusters.remove(cluster)
            freeClusterHint = min(freeClusterHint, cluster)
        }
    }

    /// Moves the refcount table to a larger place past everything in use, so that it
    /// covers refcount table index `index`. The new table and the refcount blocks for
    /// its own clusters are allocated together; the header is switched over at the next
    /// write-back, and the old table freed after that.
    func growRefcountTable(toCover index: Int, from cluster: UInt64) throws {
        let rpb = refcountsPerBlock
        let perTableCluster = header.clusterSize / 8
        let fileClusters = (file.length + clusterMask) >> clusterBits
        // Everything at or past `start` is uncovered by the old table, hence free.
        let start = max(cluster, fileClusters, (metadataClusters.max() ?? 0) + 1,
                        UInt64(refcountTable.count) * rpb)
        var tableClusters = max(UInt64(header.refcountTableClusters) * 2, 1)
        var blocks: UInt64 = 1
        while true {
            let end = start + tableClusters + blocks
            let neededBlocks = (end - 1) / rpb - start / rpb + 1
            let neededEntries = max(UInt64(index), (end - 1) / rpb) + 1
            if neededBlocks > blocks { blocks = neededBlocks; continue }
            if neededEntries > tableClusters * perTableCluster {
                tableClusters = max(tableClusters * 2, (neededEntries + perTableCluster - 1) / perTableCluster)
                continue
            }
            break
        }
        guard tableClusters * header.clusterSize <= QCow2Header.maxRefcountTableBytes else {
            throw DiskImageError(path, "image is full: its refcount table would exceed \(QCow2Header.maxRefcountTableBytes >> 20) MiB")
        }
        guard start + tableClusters + blocks < maxClusters else { throw DiskImageError(path, "image is full (host offsets reach 2^56)") }

        var table = refcountTable + [UInt64](repeating: 0, count: Int(tableClusters * perTableCluster) - refcountTable.count)
        let firstBlock = start + tableClusters
        let firstIndex = start / rpb
        for b in 0..<blocks {
            let blockCluster = firstBlock + b
            table[Int(firstIndex + b)] = blockCluster << clusterBits
            refcountBlocks[blockCluster << clusterBits] = RefcountBlock(
                bytes: [UInt8](repeating: 0, count: clusterSize), order: UInt64(header.refcountOrder), dirty: true)
        }
        // A table that moved before and was never written back is simply abandoned.
        let abandoned: Range<UInt64>? = refcountTableMove == nil ? nil
            : clusters(of: header.refcountTableOffset, bytes: UInt64(header.refcountTableClusters) * header.clusterSize)
        if refcountTableMove == nil {
            refcountTableMove = (header.refcountTableOffset, header.refcountTableClusters)
        }
        refcountTable = table
        header.refcountTableOffset = start << clusterBits
        header.refcountTableClusters = UInt32(tableClusters)
        for c in start..<(firstBlock + blocks) {
            metadataClusters.insert(c)
            let block = try refcountBlock(tableIndex: Int(c / rpb))!
            block[Int(c % rpb)] = 1
            block.dirty = true
        }
        if let abandoned { for c in abandoned { try freeCluster(c) } }
    }
}
