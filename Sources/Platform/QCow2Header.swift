/// The header of a qcow2 image (QEMU's docs/interop/qcow2.txt), versions 2 and 3:
/// the fixed fields, the header extensions disco understands and the backing file
/// name, parsed from the image's first cluster and checked against the file's length
/// and the format's limits before anything else in the file is read.
///
/// All numbers in qcow2 are big-endian. Field offsets below are the specification's.
struct QCow2Header: Equatable {
    var version: UInt32
    var backingFileOffset: UInt64
    var backingFileSize: UInt32
    var clusterBits: UInt32
    var size: UInt64
    var cryptMethod: UInt32
    var l1Size: UInt32
    var l1TableOffset: UInt64
    var refcountTableOffset: UInt64
    var refcountTableClusters: UInt32
    var snapshotCount: UInt32
    var snapshotsOffset: UInt64
    var incompatibleFeatures: UInt64 = 0
    var compatibleFeatures: UInt64 = 0
    var autoclearFeatures: UInt64 = 0
    var refcountOrder: UInt32 = 4
    var headerLength: UInt32 = 72
    /// From the "backing file format name" extension, if present.
    var backingFormat: String?
    /// The backing file name as stored (relative names are relative to the image's directory).
    var backingFile: String?
    /// Names from the feature name table extension, for error messages: (type, bit) → name.
    var featureNames: [UInt16: String] = [:]

    // MARK: - Limits and bits

    static let magic: UInt32 = 0x5146_49fb
    /// QEMU opens clusters of 512 B ... 2 MiB.
    static let clusterBitsRange: ClosedRange<UInt32> = 9...21
    /// QEMU's implementation limits on the L1 and refcount tables.
    static let maxL1Bytes: UInt64 = 32 << 20
    static let maxRefcountTableBytes: UInt64 = 8 << 20
    static let maxBackingNameLength: UInt32 = 1023
    /// Host offsets in L1/L2/refcount table entries are bits 9...55.
    static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
    static let copiedFlag: UInt64 = 1 << 63
    static let compressedFlag: UInt64 = 1 << 62
    static let zeroFlag: UInt64 = 1
    static let l1ReservedMask: UInt64 = 0x7f00_0000_0000_01ff
    static let l2ReservedMask: UInt64 = 0x3f00_0000_0000_01fe
    static let refcountTableReservedMask: UInt64 = 0x0000_0000_0000_01ff

    enum Incompatible {
        static let dirty: UInt64 = 1 << 0
        static let corrupt: UInt64 = 1 << 1
        static let externalData: UInt64 = 1 << 2
        static let compressionType: UInt64 = 1 << 3
        static let extendedL2: UInt64 = 1 << 4
    }

    enum Extension {
        static let end: UInt32 = 0
        static let backingFormat: UInt32 = 0xe279_2aca
        static let featureNames: UInt32 = 0x6803_f857
        static let bitmaps: UInt32 = 0x2385_2875
        static let encryption: UInt32 = 0x0537_be77
        static let externalDataFile: UInt32 = 0x4441_5441
    }

    var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    /// 8-byte entries per L2 table (one cluster).
    var l2Entries: UInt64 { clusterSize / 8 }
    /// The L1 entries a disk of `size` bytes needs.
    static func l1EntriesNeeded(size: UInt64, clusterBits: UInt32) -> UInt64 {
        let bytesPerL1Entry = UInt64(1) << (2 * UInt64(clusterBits) - 3)
        return size / bytesPerL1Entry + (size % bytesPerL1Entry == 0 ? 0 : 1)
    }

    /// A problem found in a header, in words for the user.
    struct Problem: Error {
        var text: String
        /// True when the image is valid but uses something disco does not implement.
        var unsupported = false
        init(_ text: String, unsupported: Bool = false) { self.text = text; self.unsupported = unsupported }
    }

    // MARK: - Parsing

    /// The number of leading bytes `parse` needs to learn the cluster size.
    static let minimumBytes = 72

    /// Parses the header from the first bytes of the image (at least its first cluster,
    /// or the whole file if it is shorter) and checks every table location against
    /// `fileLength`.
    static func parse(_ bytes: [UInt8], fileLength: UInt64) throws -> QCow2Header {
        guard bytes.count >= minimumBytes else {
            throw Problem("header truncated: the file has \(fileLength) bytes, a qcow2 header needs at least \(minimumBytes)")
        }
        let r = BigEndianReader(bytes)
        guard r.u32(0) == magic else { throw Problem("not a qcow2 image (bad magic)") }
        var h = QCow2Header(version: r.u32(4), backingFileOffset: r.u64(8), backingFileSize: r.u32(16),
                            clusterBits: r.u32(20), size: r.u64(24), cryptMethod: r.u32(32), l1Size: r.u32(36),
                            l1TableOffset: r.u64(40), refcountTableOffset: r.u64(48), refcountTableClusters: r.u32(56),
                            snapshotCount: r.u32(60), snapshotsOffset: r.u64(64))
        guard h.version == 2 || h.version == 3 else {
            throw Problem("qcow2 version \(h.version) is not supported (versions 2 and 3 are)", unsupported: true)
        }
        guard clusterBitsRange.contains(h.clusterBits) else {
            throw Problem("cluster_bits \(h.clusterBits) is out of range (\(clusterBitsRange.lowerBound)...\(clusterBitsRange.upperBound): 512 B to 2 MiB clusters)")
        }
        let cluster = h.clusterSize
        guard UInt64(bytes.count) >= min(cluster, fileLength) else {
            throw Problem("header truncated: \(bytes.count) bytes given, the first cluster has \(min(cluster, fileLength))")
        }
        if h.version == 3 {
            guard bytes.count >= 104 else {
                throw Problem("header truncated: the file has \(fileLength) bytes, a version 3 header needs at least 104")
            }
            h.incompatibleFeatures = r.u64(72)
            h.compatibleFeatures = r.u64(80)
            h.autoclearFeatures = r.u64(88)
            h.refcountOrder = r.u32(96)
            h.headerLength = r.u32(100)
            guard h.headerLength >= 104, h.headerLength % 8 == 0, UInt64(h.headerLength) <= min(cluster, UInt64(bytes.count)) else {
                throw Problem("header_length \(h.headerLength) is invalid (at least 104, a multiple of 8, inside the first cluster and the file)")
            }
            guard h.refcountOrder <= 6 else { throw Problem("refcount_order \(h.refcountOrder) is invalid (at most 6)") }
        }
        guard h.cryptMethod == 0 else {
            throw Problem("encrypted images are not supported (crypt_method \(h.cryptMethod))", unsupported: true)
        }
        try h.parseExtensions(bytes, limit: Int(min(cluster, UInt64(bytes.count))))
        try h.checkFeatures()
        try h.parseBackingName(bytes, fileLength: fileLength)
        try h.checkTables(fileLength: fileLength)
        return h
    }

    private mutating func parseExtensions(_ bytes: [UInt8], limit: Int) throws {
        let r = BigEndianReader(bytes)
        var at = Int(headerLength)
        var seen = Set<UInt32>()
        while at + 8 <= limit {
            let type = r.u32(at), length = Int(r.u32(at + 4))
            if type == Extension.end { return }
            let data = at + 8
            guard length <= limit - data else {
                throw Problem("header extension 0x\(String(type, radix: 16)) at offset \(at) (\(length) bytes) runs past the first cluster")
            }
            guard seen.insert(type).inserted else {
                throw Problem("header extension 0x\(String(type, radix: 16)) appears twice")
            }
            switch type {
            case Extension.backingFormat:
                backingFormat = String(decoding: bytes[data..<data + length], as: UTF8.self)
            case Extension.featureNames:
                var e = data
                while e + 48 <= data + length {
                    let name = bytes[(e + 2)..<(e + 48)].prefix { $0 != 0 }
                    featureNames[UInt16(bytes[e]) << 8 | UInt16(bytes[e + 1])] = String(decoding: name, as: UTF8.self)
                    e += 48
                }
            default:
                break  // bitmaps, encryption and data file headers go with feature bits checked elsewhere
            }
            at = data + (length + 7) / 8 * 8
        }
        // Running into the cluster's end without an end marker is tolerated: the area is zero-padded in practice.
    }

    private func checkFeatures() throws {
        let known = Incompatible.dirty | Incompatible.corrupt | Incompatible.externalData
            | Incompatible.compressionType | Incompatible.extendedL2
        let unknown = incompatibleFeatures & ~known
        if unknown != 0 {
            let bit = UInt16(unknown.trailingZeroBitCount)
            let name = featureNames[bit].map { " ('\($0)')" } ?? ""
            throw Problem("unknown incompatible feature bit \(bit)\(name): this image needs a newer reader", unsupported: true)
        }
        if incompatibleFeatures & Incompatible.externalData != 0 {
            throw Problem("images with an external data file are not supported", unsupported: true)
        }
        if incompatibleFeatures & Incompatible.extendedL2 != 0 {
            throw Problem("images with extended L2 entries (subclusters) are not supported", unsupported: true)
        }
    }

    private mutating func parseBackingName(_ bytes: [UInt8], fileLength: UInt64) throws {
        guard backingFileOffset != 0 else { return }
        guard backingFileSize >= 1, backingFileSize <= Self.maxBackingNameLength else {
            throw Problem("backing file name length \(backingFileSize) is invalid (1...\(Self.maxBackingNameLength))")
        }
        let end = backingFileOffset.addingReportingOverflow(UInt64(backingFileSize))
        guard !end.overflow, end.partialValue <= min(clusterSize, UInt64(bytes.count)) else {
            throw Problem("backing file name (offset \(backingFileOffset), \(backingFileSize) bytes) lies outside the first cluster")
        }
        let name = bytes[Int(backingFileOffset)..<Int(end.partialValue)]
        guard !name.contains(0) else { throw Problem("backing file name contains a NUL byte") }
        backingFile = String(decoding: name, as: UTF8.self)
    }

    private func checkTables(fileLength: UInt64) throws {
        let cluster = clusterSize
        // The virtual size must be addressable by the L1 table, which must fit QEMU's limit.
        guard size <= (1 << 61) else { throw Problem("virtual size \(size) is too large") }
        let needed = Self.l1EntriesNeeded(size: size, clusterBits: clusterBits)
        guard UInt64(l1Size) * 8 <= Self.maxL1Bytes else {
            throw Problem("L1 table of \(l1Size) entries exceeds the \(Self.maxL1Bytes >> 20) MiB limit")
        }
        guard UInt64(l1Size) >= needed else {
            throw Problem("L1 table has \(l1Size) entries, too few for the virtual size \(size) (needs \(needed))")
        }
        try Self.checkArea("L1 table", offset: l1TableOffset, bytes: UInt64(l1Size) * 8, cluster: cluster,
                           fileLength: fileLength, allowEmpty: true)
        guard refcountTableClusters >= 1 else { throw Problem("refcount table has no clusters") }
        let refBytes = UInt64(refcountTableClusters) * cluster
        guard refBytes <= Self.maxRefcountTableBytes else {
            throw Problem("refcount table of \(refcountTableClusters) clusters exceeds the \(Self.maxRefcountTableBytes >> 20) MiB limit")
        }
        try Self.checkArea("refcount table", offset: refcountTableOffset, bytes: refBytes, cluster: cluster,
                           fileLength: fileLength, allowEmpty: false)
        if snapshotCount > 0 {
            guard snapshotsOffset != 0, snapshotsOffset % cluster == 0, snapshotsOffset < fileLength else {
                throw Problem("snapshot table offset \(snapshotsOffset) is invalid")
            }
        }
    }

    /// A cluster-aligned table of `bytes` bytes at `offset`, inside the file and not on the header.
    static func checkArea(_ what: String, offset: UInt64, bytes: UInt64, cluster: UInt64, fileLength: UInt64,
                          allowEmpty: Bool) throws {
        if bytes == 0 && allowEmpty { return }
        guard offset % cluster == 0 else { throw Problem("\(what) offset \(offset) is not aligned to a cluster") }
        guard offset != 0 else { throw Problem("\(what) overlaps the header (offset 0)") }
        let end = offset.addingReportingOverflow(bytes)
        guard !end.overflow, end.partialValue <= fileLength else {
            throw Problem("\(what) (\(bytes) bytes at offset \(offset)) extends past the end of the file (\(fileLength) bytes): image truncated or corrupt")
        }
    }

    // MARK: - Writing

    /// The first cluster of a new image: a version 3 header (112 bytes, zlib compression
    /// type), the backing format extension, the end marker and the backing file name.
    func serialized() -> [UInt8] {
        var w = BigEndianWriter(count: Int(clusterSize))
        w.put32(0, Self.magic)
        w.put32(4, version)
        w.put64(8, backingFileOffset)
        w.put32(16, backingFileSize)
        w.put32(20, clusterBits)
        w.put64(24, size)
        w.put32(32, cryptMethod)
        w.put32(36, l1Size)
        w.put64(40, l1TableOffset)
        w.put64(48, refcountTableOffset)
        w.put32(56, refcountTableClusters)
        w.put32(60, snapshotCount)
        w.put64(64, snapshotsOffset)
        w.put64(72, incompatibleFeatures)
        w.put64(80, compatibleFeatures)
        w.put64(88, autoclearFeatures)
        w.put32(96, refcountOrder)
        w.put32(100, headerLength)
        var at = Int(headerLength)
        if let format = backingFormat {
            let name = Array(format.utf8)
            w.put32(at, Extension.backingFormat)
            w.put32(at + 4, UInt32(name.count))
            w.bytes.replaceSubrange((at + 8)..<(at + 8 + name.count), with: name)
            at += 8 + (name.count + 7) / 8 * 8
        }
        w.put32(at, Extension.end)
        w.put32(at + 4, 0)
        if let backing = backingFile {
            let name = Array(backing.utf8)
            w.bytes.replaceSubrange(Int(backingFileOffset)..<(Int(backingFileOffset) + name.count), with: name)
        }
        return w.bytes
    }

    /// Where a new header puts the backing file name: after the fixed header, the
    /// backing format extension and the end marker.
    static func backingNameOffset(headerLength: UInt32, backingFormat: String?) -> UInt64 {
        var at = UInt64(headerLength)
        if let f = backingFormat { at += 8 + UInt64((f.utf8.count + 7) / 8 * 8) }
        return at + 8
    }
}

// MARK: - Byte order

/// Big-endian fields of a byte array; callers check the bounds first.
struct BigEndianReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u32(_ at: Int) -> UInt32 {
        bytes[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
    func u64(_ at: Int) -> UInt64 {
        bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

struct BigEndianWriter {
    var bytes: [UInt8]
    init(count: Int) { bytes = [UInt8](repeating: 0, count: count) }
    mutating func put32(_ at: Int, _ v: UInt32) {
        for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
    }
    mutating func put64(_ at: Int, _ v: UInt64) {
        for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) }
    }
}

extension UInt64 {
    /// The 8 big-endian bytes of this value.
    var bigEndianBytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * UInt64($0))) } }
}
