import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A qcow2 disk image (versions 2 and 3), read and written by disco itself so that a
/// VM's copy-on-write overlay is a file `qemu-img` reads, checks and converts.
///
/// The virtual disk is mapped in clusters through a two-level table (L1 → L2 → data
/// cluster); host clusters are accounted for by refcounts (refcount table → refcount
/// blocks). Clusters the image does not hold read from the backing file (a raw or
/// qcow2 image, opened read-only) or as zeros; a write to such a cluster allocates a
/// host cluster and fills the part the guest did not write from the backing file.
///
/// Metadata is cached and written back in an order that keeps the file consistent
/// for `qemu-img check` at every instant (see `writeBack()`): new data clusters
/// first, then refcounts, then L2 tables, then the L1 table, with `fdatasync`
/// between the steps. A crash between two steps can leave only leaked clusters
/// (a refcount with no reference). `flush()` writes the metadata back and syncs;
/// the guest's VIRTIO_BLK_T_FLUSH calls it, and `close()` does so once more.
///
/// Every offset read from the file is checked before use: against the file's
/// length, the cluster alignment, the reserved bits and the known metadata, so a
/// malformed image is refused at open or fails the single request with a
/// `DiskImageError` that names the problem. Refused as unsupported: compressed
/// clusters (the request), encryption, external data files, extended L2 entries,
/// unknown incompatible features, and writing images with internal snapshots, a
/// dirty (lazy refcounts) or corrupt mark.
public final class QCow2Image: DiskImage {
    let file: ImageFile
    var header: QCow2Header
    public let virtualSize: UInt64
    /// The backing image, opened read-only, if the image has one.
    public let backing: DiskImage?
    /// The backing file name as stored in the image, and the path it resolves to.
    public var backingName: String? { header.backingFile }
    public let backingPath: String?

    public var path: String { file.path }
    public var format: DiskFormat { .qcow2 }
    public var isReadOnly: Bool { file.readOnly }
    public var clusterSize: Int { Int(header.clusterSize) }
    public var version: Int { Int(header.version) }
    public var refcountBits: Int { 1 << Int(header.refcountOrder) }

    let clusterBits: UInt64
    let clusterMask: UInt64
    let l2Bits: UInt64
    /// Refcount entries per refcount block.
    let refcountsPerBlock: UInt64

    // MARK: Cached metadata (see QCow2Image+WriteBack.swift)

    /// The active L1 table, entries as stored (host byte order here).
    var l1: [UInt64]
    var dirtyL1: Set<Int> = []
    /// L2 tables by host offset.
    var l2Cache: [UInt64: Table] = [:]
    /// The refcount table; `refcountTableOffset`/`Clusters` in `header` say where it lives.
    var refcountTable: [UInt64]
    var dirtyRefcountTable: Set<Int> = []
    /// Set when the refcount table moved in memory and the header does not point at it yet:
    /// the old table's place, freed once the header switch is durable.
    var refcountTableMove: (offset: UInt64, clusters: UInt32)?
    /// Refcount blocks by host offset.
    var refcountBlocks: [UInt64: RefcountBlock] = [:]
    /// Host clusters known to hold metadata: the header, the L1 and refcount tables,
    /// refcount blocks and L2 tables. A data cluster may never be one of them.
    var metadataClusters: Set<UInt64> = []
    /// The search for a free cluster starts here.
    var freeClusterHint: UInt64 = 0
    var allocationsSinceWriteBack = 0

    /// A cluster-sized table of 8-byte big-endian entries (an L2 table), cached.
    final class Table {
        var entries: [UInt64]
        var dirty: Bool
        init(entries: [UInt64], dirty: Bool) { self.entries = entries; self.dirty = dirty }
    }

    /// Opening more than this many images in one backing chain is refused (it is a loop
    /// or a mistake).
    static let maxBackingDepth = 16

    /// Opens the qcow2 image at `path`. Read-write needs an image disco can keep
    /// consistent: no internal snapshots, no dirty or corrupt mark.
    public convenience init(path: String, readOnly: Bool) throws {
        try self.init(path: path, readOnly: readOnly, depth: 0, chain: [])
    }

    /// `lock: false` opens the image and its backing files without the advisory lock.
    init(path: String, readOnly: Bool, depth: Int = 0, chain: [(UInt64, UInt64)] = [], lock: Bool = true) throws {
        let file = try ImageFile(path: path, readOnly: readOnly, lock: lock)
        self.file = file
        func problem(_ p: QCow2Header.Problem) -> DiskImageError { DiskImageError(path, p.text) }

        // The header: first learn the cluster size, then parse the whole first cluster.
        var first = try file.read(at: 0, count: Int(min(file.length, 4096)))
        do {
            if first.count >= 24 {
                let bits = BigEndianReader(first).u32(20)
                if QCow2Header.clusterBitsRange.contains(bits), 1 << UInt64(bits) > UInt64(first.count) {
                    first = try file.read(at: 0, count: Int(min(file.length, 1 << UInt64(bits))))
                }
            }
            header = try QCow2Header.parse(first, fileLength: file.length)
        } catch let p as QCow2Header.Problem {
            throw problem(p)
        }
        virtualSize = header.size
        clusterBits = UInt64(header.clusterBits)
        clusterMask = header.clusterSize - 1
        l2Bits = clusterBits - 3
        refcountsPerBlock = (header.clusterSize * 8) >> UInt64(header.refcountOrder)

        if !readOnly {
            if header.incompatibleFeatures & QCow2Header.Incompatible.dirty != 0 {
                throw DiskImageError(path, "image is marked dirty (written with lazy refcounts and not closed cleanly): repair it with `qemu-img check -r all \(path)` first")
            }
            if header.incompatibleFeatures & QCow2Header.Incompatible.corrupt != 0 {
                throw DiskImageError(path, "image is marked corrupt: check and repair it with `qemu-img check -r all \(path)`; it can be opened read-only")
            }
            if header.snapshotCount > 0 {
                throw DiskImageError(path, "image has \(header.snapshotCount) internal snapshot(s): disco writes only images without them (use it read-only, or `qemu-img convert` it)")
            }
        }

        // The tables, already checked to lie inside the file.
        l1 = try Self.readEntries(file, at: header.l1TableOffset, count: Int(header.l1Size))
        refcountTable = try Self.readEntries(file, at: header.refcountTableOffset,
                                             count: Int(UInt64(header.refcountTableClusters) * header.clusterSize / 8))

        // The backing file, read-only, relative to this image's directory.
        guard let identity = file.identity() else { throw DiskImageError(path, "cannot stat the image") }
        if let name = header.backingFile {
            let resolved = try Self.resolveBacking(name, of: path)
            var st = stat()
            if stat(resolved, &st) == 0, (chain + [identity]).contains(where: { $0 == (UInt64(st.st_dev), UInt64(st.st_ino)) }) {
                throw DiskImageError(path, "backing file '\(name)' leads back to an image of the same chain (a loop)")
            }
            guard depth + 1 < Self.maxBackingDepth else {
                throw DiskImageError(path, "backing chain is longer than \(Self.maxBackingDepth) images (a loop?)")
            }
            let format: DiskFormat
            switch header.backingFormat {
            case nil: format = try DiskFormat.detect(path: resolved, lock: lock)
            case "raw"?: format = .raw
            case "qcow2"?: format = .qcow2
            case let other?:
                throw DiskImageError(path, "backing file format '\(other)' is not supported (raw and qcow2 are)")
            }
            do {
                switch format {
                case .raw:
                    backing = try RawDiskImage(path: resolved, readOnly: true, lock: lock)
                case .qcow2:
                    backing = try QCow2Image(path: resolved, readOnly: true, depth: depth + 1, chain: chain + [identity], lock: lock)
                }
            } catch let e as DiskImageError {
                throw DiskImageError(path, "backing file '\(name)': \(e.description)")
            }
            backingPath = resolved
        } else {
            backing = nil
            backingPath = nil
        }
        noteFixedMetadata()
        if !readOnly && header.autoclearFeatures != 0 {
            // Bits we do not maintain (e.g. persistent bitmaps) must be cleared before writing.
            try file.write(at: 88, UInt64(0).bigEndianBytes)
            try file.sync()
            header.autoclearFeatures = 0
        }
    }

    deinit { close() }

    public func close() {
        guard file.isOpen else { return }
        if !file.readOnly && !file.crashed {
            do {
                try flush()
            } catch {
                // Nobody is left to take the error: say what may be lost.
                FileHandle.standardError.write(Data("disco: \(error) (while closing: writes since the last flush may be lost)\n".utf8))
            }
        }
        file.close()
        backing?.close()
    }

    static func readEntries(_ file: ImageFile, at offset: UInt64, count: Int) throws -> [UInt64] {
        guard count > 0 else { return [] }
        let bytes = try file.read(at: offset, count: count * 8)
        return (0..<count).map { BigEndianReader(bytes).u64($0 * 8) }
    }

    /// Resolves a stored backing file name as QEMU does: absolute as is, relative to
    /// the directory of the image that names it.
    static func resolveBacking(_ name: String, of imagePath: String) throws -> String {
        if name.hasPrefix("json:") {
            throw DiskImageError(imagePath, "backing file '\(name.prefix(60))' is a JSON description, not a file name: disco reads only plain files")
        }
        if name.hasPrefix("/") { return name }
        let dir = (imagePath as NSString).deletingLastPathComponent
        return dir.isEmpty ? name : (dir as NSString).appendingPathComponent(name)
    }

    // MARK: - Mapping

    /// What a guest cluster maps to.
    enum Mapping: Equatable {
        /// Not in this image: read the backing file (or zeros).
        case unallocated
        /// Reads as zeros; `preallocated` is a host cluster reserved for it.
        case zero(preallocated: UInt64?, copied: Bool)
        /// Data in the host cluster at `offset`; `copied` says its refcount is one.
        case data(offset: UInt64, copied: Bool)
    }

    /// The L2 table covering guest cluster `guestCluster`, and the index in it; nil
    /// when the L1 entry is empty.
    func l2Table(forGuestCluster guestCluster: UInt64) throws -> (Table, Int, l1Index: Int)? {
        let l1Index = Int(guestCluster >> l2Bits)
        guard l1Index < l1.count else {
            throw DiskImageError(path, "guest cluster \(guestCluster) is beyond the L1 table")
        }
        let entry = l1[l1Index]
        guard entry & QCow2Header.l1ReservedMask == 0 else {
            throw DiskImageError(path, "L1 entry \(l1Index) has reserved bits set (0x\(String(entry, radix: 16))): image corrupt")
        }
        let offset = entry & QCow2Header.offsetMask
        if offset == 0 { return nil }
        let table = try loadTable(at: offset, what: "L2 table (L1 entry \(l1Index))")
        return (table, Int(guestCluster & ((1 << l2Bits) - 1)), l1Index)
    }

    func mapping(ofGuestCluster guestCluster: UInt64) throws -> Mapping {
        guard let (table, index, _) = try l2Table(forGuestCluster: guestCluster) else { return .unallocated }
        return try classify(table.entries[index], guestCluster: guestCluster)
    }

    func classify(_ entry: UInt64, guestCluster: UInt64) throws -> Mapping {
        let guestOffset = guestCluster << clusterBits
        if entry & QCow2Header.compressedFlag != 0 {
            throw DiskImageError(path, "compressed clusters are not supported (guest offset \(guestOffset)); decompress the image with `qemu-img convert -O qcow2`")
        }
        guard entry & QCow2Header.l2ReservedMask == 0 else {
            throw DiskImageError(path, "L2 entry for guest offset \(guestOffset) has reserved bits set (0x\(String(entry, radix: 16))): image corrupt")
        }
        let offset = entry & QCow2Header.offsetMask
        let copied = entry & QCow2Header.copiedFlag != 0
        if offset & clusterMask != 0 {
            throw DiskImageError(path, "L2 entry for guest offset \(guestOffset) points at unaligned host offset \(offset): image corrupt")
        }
        if offset != 0 && metadataClusters.contains(offset >> clusterBits) {
            throw DiskImageError(path, "guest offset \(guestOffset) maps onto image metadata at host offset \(offset): image corrupt")
        }
        if entry & QCow2Header.zeroFlag != 0 {
            guard header.version >= 3 else {
                throw DiskImageError(path, "L2 entry for guest offset \(guestOffset) has the zero flag, which version 2 images do not have: image corrupt")
            }
            return .zero(preallocated: offset == 0 ? nil : offset, copied: copied)
        }
        if offset == 0 {
            guard !copied else {
                throw DiskImageError(path, "L2 entry for guest offset \(guestOffset) is marked allocated at host offset 0: image corrupt")
            }
            return .unallocated
        }
        return .data(offset: offset, copied: copied)
    }

    /// A metadata table (L2 table or, with `Table` reused, anything of 8-byte entries)
    /// at `offset`, from the cache or the file.
    func loadTable(at offset: UInt64, what: String) throws -> Table {
        if let t = l2Cache[offset] { return t }
        guard offset & clusterMask == 0 else {
            throw DiskImageError(path, "\(what) at unaligned offset \(offset): image corrupt")
        }
        guard !isFixedMetadata(offset >> clusterBits) else {
            throw DiskImageError(path, "\(what) at offset \(offset) overlaps the header, the L1 or the refcount table: image corrupt")
        }
        let entries = try Self.readEntries(file, at: offset, count: Int(header.l2Entries))
        trimCaches()
        let t = Table(entries: entries, dirty: false)
        l2Cache[offset] = t
        return t
    }

    // MARK: - Reads

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(offset, buffer.count)
        guard file.isOpen else { throw DiskImageError(path, "image is closed") }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let inCluster = Int(position & clusterMask)
            let n = min(buffer.count - done, clusterSize - inCluster)
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
            switch try mapping(ofGuestCluster: position >> clusterBits) {
            case .data(let host, _):
                try file.read(at: host + UInt64(inCluster), into: part)
            case .zero:
                part.initializeMemory(as: UInt8.self, repeating: 0)
            case .unallocated:
                try readBacking(at: position, into: part)
            }
            done += n
        }
    }

    /// Every cluster of the range unallocated here: the backing file's page, if that is a
    /// read-only file page itself (a range past the backing file's end reads zeros, not
    /// its bytes: never shared).
    public func sharedSource(at offset: UInt64, count: Int) throws -> SharedBlock? {
        try checkRange(offset, count)
        guard let backing, count > 0, offset + UInt64(count) <= backing.virtualSize else { return nil }
        var cluster = offset >> clusterBits
        while cluster << clusterBits < offset + UInt64(count) {
            guard try mapping(ofGuestCluster: cluster) == .unallocated else { return nil }
            cluster += 1
        }
        return try backing.sharedSource(at: offset, count: count)
    }

    /// The backing file's bytes at `position`; zeros where it has none.
    func readBacking(at position: UInt64, into part: UnsafeMutableRawBufferPointer) throws {
        part.initializeMemory(as: UInt8.self, repeating: 0)
        guard let backing, position < backing.virtualSize else { return }
        let n = Int(min(UInt64(part.count), backing.virtualSize - position))
        try backing.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: part[0..<n]))
    }

    // MARK: - Writes

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        guard !file.readOnly else { throw DiskImageError(path, "image is read-only") }
        try checkRange(offset, buffer.count)
        guard file.isOpen else { throw DiskImageError(path, "image is closed") }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let inCluster = Int(position & clusterMask)
            let n = min(buffer.count - done, clusterSize - inCluster)
            try writeInCluster(position >> clusterBits, at: inCluster,
                               UnsafeRawBufferPointer(rebasing: buffer[done..<(done + n)]))
            done += n
        }
        if allocationsSinceWriteBack >= maxAllocationsBetweenWriteBacks { try writeBack() }
    }

    private func writeInCluster(_ guestCluster: UInt64, at inCluster: Int, _ data: UnsafeRawBufferPointer) throws {
        let mapping = try mapping(ofGuestCluster: guestCluster)
        switch mapping {
        case .data(let host, let copied):
            try checkExclusive(host, copied: copied, guestCluster: guestCluster)
            try file.write(at: host + UInt64(inCluster), from: data)
            return
        case .zero(let host?, let copied):
            // A preallocated zero cluster: fill it in place, then drop the zero flag.
            try checkExclusive(host, copied: copied, guestCluster: guestCluster)
            var cluster = [UInt8](repeating: 0, count: clusterSize)
            cluster.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: inCluster).copyMemory(from: data.baseAddress!, byteCount: data.count) }
            try file.write(at: host, cluster)
            try setL2Entry(guestCluster, host | QCow2Header.copiedFlag)
            return
        case .zero(nil, _), .unallocated:
            break
        }
        // Copy on write: a new host cluster holding the backing data (or zeros) around the guest's bytes.
        var cluster = [UInt8](repeating: 0, count: clusterSize)
        if mapping == .unallocated && data.count < clusterSize {
            try cluster.withUnsafeMutableBytes { try readBacking(at: guestCluster << clusterBits, into: $0) }
        }
        cluster.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: inCluster).copyMemory(from: data.baseAddress!, byteCount: data.count) }
        let host = try allocateCluster()
        do {
            try file.write(at: host, cluster)
            try setL2Entry(guestCluster, host | QCow2Header.copiedFlag)
        } catch {
            try? freeCluster(host >> clusterBits)
            throw error
        }
    }

    /// A data cluster written in place must lie inside the file and be ours alone
    /// (metadata was excluded by `classify`).
    private func checkExclusive(_ host: UInt64, copied: Bool, guestCluster: UInt64) throws {
        guard host + header.clusterSize <= file.length else {
            throw DiskImageError(path, "guest offset \(guestCluster << clusterBits) maps to host offset \(host), past the end of the file (\(file.length) bytes): image truncated or corrupt")
        }
        if !copied {
            let count = try refcount(ofCluster: host >> clusterBits)
            guard count == 1 else {
                throw DiskImageError(path, "guest cluster at \(guestCluster << clusterBits) uses host cluster \(host) with refcount \(count): writing shared clusters is not supported")
            }
        }
    }

    /// Points guest cluster `guestCluster` at `entry`, allocating its L2 table if needed.
    func setL2Entry(_ guestCluster: UInt64, _ entry: UInt64) throws {
        if let (table, index, l1Index) = try l2Table(forGuestCluster: guestCluster) {
            if l1[l1Index] & QCow2Header.copiedFlag == 0 {
                let tableOffset = l1[l1Index] & QCow2Header.offsetMask
                let count = try refcount(ofCluster: tableOffset >> clusterBits)
                guard count == 1 else {
                    throw DiskImageError(path, "L2 table at \(tableOffset) is shared (refcount \(count)): writing shared tables is not supported")
                }
            }
            table.entries[index] = entry
            table.dirty = true
            l2Cache[l1[l1Index] & QCow2Header.offsetMask] = table  // back in, should a refcount lookup have trimmed it
            return
        }
        let l1Index = Int(guestCluster >> l2Bits)
        let tableOffset = try allocateCluster()
        metadataClusters.insert(tableOffset >> clusterBits)
        let table = Table(entries: [UInt64](repeating: 0, count: Int(header.l2Entries)), dirty: true)
        table.entries[Int(guestCluster & ((1 << l2Bits) - 1))] = entry
        l2Cache[tableOffset] = table
        l1[l1Index] = tableOffset | QCow2Header.copiedFlag
        dirtyL1.insert(l1Index)
    }

    public func flush() throws {
        guard !file.readOnly else { return }
        guard file.isOpen else { throw DiskImageError(path, "image is closed") }
        try writeBack()
        try file.sync()
    }
}
