/// Writing cached metadata back, in the order that keeps the image consistent.
///
/// A guest write to an unallocated cluster writes the new data cluster at once and
/// changes only cached metadata: a refcount (and maybe a new refcount block or a
/// moved refcount table), an L2 entry (and maybe a new L2 table and an L1 entry).
/// `writeBack()` then writes, with a barrier (`fdatasync`) wherever a later step
/// points at what an earlier one wrote:
///
/// 1. refcount blocks; then refcount table entries for new blocks — or, when the
///    table moved, the whole new table, then the header's table pointer (one
///    12-byte write), then the freed old table's refcounts;
/// 2. L2 tables (their entries point at data and tables counted in step 1);
/// 3. L1 entries (they point at L2 tables written in step 2).
///
/// So a crash (a killed process, or a lost page cache) at any point leaves every
/// reference counted: at worst a cluster is counted and not yet referenced, which
/// `qemu-img check` reports as a leak, not an error. Writes of single entries are
/// 8 bytes and aligned, so a torn table write leaves each entry old or new.
extension QCow2Image {
    /// Bytes of metadata cached at most (clean tables beyond it are dropped).
    static let maxCacheBytes = 32 << 20

    var maxCachedTables: Int { max(16, Self.maxCacheBytes / clusterSize) }
    /// Allocations between two write-backs: each dirties at most a refcount block, an L2
    /// table and an L1 entry, so this bounds dirty metadata in memory.
    var maxAllocationsBetweenWriteBacks: Int { max(4, maxCachedTables / 4) }

    /// Drops clean cached tables once the cache is over its size.
    func trimCaches() {
        guard l2Cache.count + refcountBlocks.count >= maxCachedTables else { return }
        l2Cache = l2Cache.filter { $0.value.dirty }
        refcountBlocks = refcountBlocks.filter { $0.value.dirty }
    }

    /// Syncs if anything was written since the last sync: what comes next may point at it.
    func barrier() throws {
        if file.writesSinceSync > 0 { try file.sync() }
    }

    /// Writes every dirty table back (see the type's comment for the order). Not a sync:
    /// `flush()` adds the final one.
    func writeBack() throws {
        allocationsSinceWriteBack = 0
        try writeDirtyRefcountBlocks()
        if let old = refcountTableMove {
            var table = [UInt8]()
            table.reserveCapacity(refcountTable.count * 8)
            for e in refcountTable { table += e.bigEndianBytes }
            try file.write(at: header.refcountTableOffset, table)
            try barrier()
            var pointer = header.refcountTableOffset.bigEndianBytes
            pointer += (0..<4).map { UInt8(truncatingIfNeeded: header.refcountTableClusters >> (24 - 8 * UInt32($0))) }
            try file.write(at: 48, pointer)
            try barrier()
            refcountTableMove = nil
            dirtyRefcountTable.removeAll()
            for c in clusters(of: old.offset, bytes: UInt64(old.clusters) * header.clusterSize) { try freeCluster(c) }
            try writeDirtyRefcountBlocks()
        } else if !dirtyRefcountTable.isEmpty {
            try barrier()
            for index in dirtyRefcountTable.sorted() {
                try file.write(at: header.refcountTableOffset + 8 * UInt64(index), refcountTable[index].bigEndianBytes)
                dirtyRefcountTable.remove(index)
            }
        }

        let dirtyTables = l2Cache.filter { $0.value.dirty }.sorted { $0.key < $1.key }
        if !dirtyTables.isEmpty {
            try barrier()
            for (offset, table) in dirtyTables {
                var bytes = [UInt8]()
                bytes.reserveCapacity(clusterSize)
                for e in table.entries { bytes += e.bigEndianBytes }
                try file.write(at: offset, bytes)
                table.dirty = false
            }
        }

        if !dirtyL1.isEmpty {
            try barrier()
            for index in dirtyL1.sorted() {
                try file.write(at: header.l1TableOffset + 8 * UInt64(index), l1[index].bigEndianBytes)
                dirtyL1.remove(index)
            }
        }
        trimCaches()
    }

    private func writeDirtyRefcountBlocks() throws {
        for (offset, block) in refcountBlocks.sorted(by: { $0.key < $1.key }) where block.dirty {
            try file.write(at: offset, block.bytes)
            block.dirty = false
        }
    }
}
