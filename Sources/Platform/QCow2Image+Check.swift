extension QCow2Image {
    /// What a walk of the image's tables found.
    public struct Report: Sendable, Equatable {
        /// Guest clusters with data in this image (not zero, not from the backing file).
        public var dataClusters = 0
        /// Guest clusters marked as reading zeros.
        public var zeroClusters = 0
        /// Guest clusters in the virtual disk.
        public var guestClusters = 0
        /// References that the refcounts do not account for, and other corruption: what
        /// `qemu-img check` calls errors.
        public var errors: [String] = []
        /// Clusters counted but not referenced (harmless, lost space).
        public var leaks: [String] = []
    }

    /// Walks the L1 and L2 tables and counts allocated clusters. With `refcounts`,
    /// also recounts every reference — header, tables, refcount blocks, L2 tables,
    /// data clusters — and compares the counts with the refcounts and the COPIED flags,
    /// as `qemu-img check` does (without repairing anything). Reads through the caches,
    /// so it sees what this instance would write back.
    public func report(refcounts: Bool) throws -> Report {
        var r = Report()
        r.guestClusters = Int((virtualSize + clusterMask) >> clusterBits)
        var references: [UInt64: UInt64] = [:]
        func reference(_ c: UInt64) { references[c, default: 0] += 1 }
        for c in clusters(of: 0, bytes: 1) { reference(c) }
        for c in clusters(of: header.l1TableOffset, bytes: UInt64(header.l1Size) * 8) { reference(c) }
        for c in clusters(of: header.refcountTableOffset, bytes: UInt64(header.refcountTableClusters) * header.clusterSize) {
            reference(c)
        }
        if refcounts && header.snapshotCount > 0 {
            r.errors.append("images with internal snapshots are not checked")
            return r
        }
        if refcounts {
            for (i, entry) in refcountTable.enumerated() where entry != 0 {
                _ = try refcountBlock(tableIndex: i)
                reference(entry >> clusterBits)
            }
        }
        var copiedFlags: [(what: String, cluster: UInt64, copied: Bool)] = []
        for (l1Index, entry) in l1.enumerated() where entry & QCow2Header.offsetMask != 0 {
            let tableOffset = entry & QCow2Header.offsetMask
            reference(tableOffset >> clusterBits)
            copiedFlags.append(("L2 table at \(tableOffset)", tableOffset >> clusterBits, entry & QCow2Header.copiedFlag != 0))
            guard let (table, _, _) = try l2Table(forGuestCluster: UInt64(l1Index) << l2Bits) else { continue }
            for (i, e) in table.entries.enumerated() {
                let guest = UInt64(l1Index) << l2Bits | UInt64(i)
                switch try classify(e, guestCluster: guest) {
                case .unallocated: break
                case .zero(let host, let copied):
                    r.zeroClusters += 1
                    if let host {
                        reference(host >> clusterBits)
                        copiedFlags.append(("zero cluster at \(host)", host >> clusterBits, copied))
                    }
                case .data(let host, let copied):
                    r.dataClusters += 1
                    reference(host >> clusterBits)
                    copiedFlags.append(("data cluster at \(host)", host >> clusterBits, copied))
                    if host + header.clusterSize > file.length {
                        r.errors.append("data cluster at \(host) extends past the end of the file (\(file.length) bytes)")
                    }
                }
            }
        }
        guard refcounts else { return r }

        var counted = Set(references.keys)
        for (i, entry) in refcountTable.enumerated() where entry != 0 {
            guard let block = try refcountBlock(tableIndex: i) else { continue }
            for j in 0..<block.count where block[j] != 0 { counted.insert(UInt64(i) * refcountsPerBlock + UInt64(j)) }
        }
        for c in counted.sorted() {
            let stored = try refcount(ofCluster: c), expected = references[c] ?? 0
            if stored < expected {
                r.errors.append("cluster \(c): refcount \(stored), referenced \(expected) times")
            } else if stored > expected {
                r.leaks.append("cluster \(c): refcount \(stored), referenced \(expected) times")
            }
        }
        for f in copiedFlags {
            let count = try refcount(ofCluster: f.cluster)
            if f.copied != (count == 1) {
                r.errors.append("\(f.what): COPIED flag \(f.copied ? "set" : "clear") with refcount \(count)")
            }
        }
        return r
    }
}
