import Foundation
import Testing
@testable import Platform

/// A scratch directory for one test, removed by `remove()`.
struct ScratchDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("disco-qcow2-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// SplitMix64, so that a randomized test replays from its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Bytes that differ with the position and a tag, so misplaced data shows.
func pattern(_ count: Int, at offset: UInt64, tag: UInt8) -> [UInt8] {
    (0..<count).map { i in
        let p = offset + UInt64(i)
        return UInt8(truncatingIfNeeded: (p >> 9) &* 31 &+ p &+ UInt64(tag) &* 101)
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readFile(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

/// Overwrites bytes of a file in place.
func patchFile(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
    var all = try readFile(path)
    if all.count < offset + bytes.count { all += [UInt8](repeating: 0, count: offset + bytes.count - all.count) }
    all.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    try writeFile(path, all)
}

func bigEndian32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }

/// `qemu-img check` on `path`: its exit status (0 clean, 3 leaks only, 2 corrupt) and output.
func qemuImgCheck(_ path: String) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
    p.arguments = ["check", path]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// nil when the bytes are equal, else where they first differ. (`#expect(a == b)` on
/// megabytes makes Swift Testing diff the two when they differ, which takes hours.)
func firstDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> String? where A.Element == UInt8, B.Element == UInt8 {
    var i = 0
    var x = a.makeIterator(), y = b.makeIterator()
    while true {
        switch (x.next(), y.next()) {
        case (nil, nil): return nil
        case let (p?, q?) where p == q: i += 1
        case let (p, q): return "byte \(i): \(p.map { String($0) } ?? "end") vs \(q.map { String($0) } ?? "end") (\(a.count) vs \(b.count) bytes)"
        }
    }
}

let qemuImgInstalled = FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")

@Suite struct QCow2ImageTests {
    // MARK: - Round trips

    @Test func writesReadBackBeforeAndAfterReopening() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = dir.path("a.qcow2")
        try QCow2Image.create(path: path, options: .init(size: 3 << 20))
        var expected = [UInt8](repeating: 0, count: 3 << 20)
        let writes: [(UInt64, Int)] = [(0, 512), (65_536 - 100, 300), (1 << 20, 4096), (3 << 20 - 512, 512),
                                       (200_000, 200_000), (65_536 * 5, 65_536)]
        do {
            let image = try QCow2Image(path: path, readOnly: false)
            #expect(image.virtualSize == 3 << 20)
            for (i, (offset, count)) in writes.enumerated() {
                let bytes = pattern(count, at: offset, tag: UInt8(i))
                try image.write(at: offset, bytes)
                expected.replaceSubrange(Int(offset)..<(Int(offset) + count), with: bytes)
                #expect(try firstDifference(image.read(at: offset, count: count), bytes) == nil)
            }
            #expect(try firstDifference(image.read(at: 0, count: expected.count), expected) == nil)
            try image.flush()
            #expect(try image.report(refcounts: true).errors == [])
            image.close()
        }
        let again = try QCow2Image(path: path, readOnly: true)
        #expect(try firstDifference(again.read(at: 0, count: expected.count), expected) == nil)
        let report = try again.report(refcounts: true)
        #expect(report.errors == [] && report.leaks == [])
        #expect(report.dataClusters == 8)  // guest clusters 0, 1, 3, 4, 5, 6, 16 and 47
    }

    @Test func requestsOutsideTheDiskAndWritesToReadOnlyImagesFail() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = dir.path("a.qcow2")
        try QCow2Image.create(path: path, options: .init(size: 1 << 20))
        let image = try QCow2Image(path: path, readOnly: false)
        #expect(throws: DiskImageError.self) { try image.read(at: (1 << 20) - 511, count: 512) }
        #expect(throws: DiskImageError.self) { try image.write(at: UInt64.max - 10, [1]) }
        image.close()
        let ro = try QCow2Image(path: path, readOnly: true)
        #expect(throws: DiskImageError("disk '\(path)': image is read-only")) { try ro.write(at: 0, [1]) }
    }

    // MARK: - Backing files

    @Test func partialWritesCopyTheRestOfTheClusterFromTheBacking() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let base = pattern(1 << 20, at: 0, tag: 7)
        try writeFile(dir.path("base.raw"), base)
        // Stored relative: resolved against the overlay's directory, not the working directory.
        try QCow2Image.create(path: dir.path("ov.qcow2"), options: .init(backing: "base.raw"))
        let image = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false)
        #expect(image.backingName == "base.raw" && image.backing?.format == .raw && image.virtualSize == 1 << 20)
        #expect(try firstDifference(image.read(at: 0, count: base.count), base) == nil)
        let patch = [UInt8](repeating: 0xee, count: 1000)
        try image.write(at: 3 * 65_536 + 5000, patch)
        var expected = base
        expected.replaceSubrange((3 * 65_536 + 5000)..<(3 * 65_536 + 6000), with: patch)
        #expect(try firstDifference(image.read(at: 0, count: base.count), expected) == nil)
        try image.flush()
        let report = try image.report(refcounts: true)
        #expect(report.dataClusters == 1 && report.errors == [] && report.leaks == [])
        image.close()
        #expect(try firstDifference(readFile(dir.path("base.raw")), base) == nil)  // the base is never written
        #expect(try firstDifference(QCow2Image(path: dir.path("ov.qcow2"), readOnly: true).read(at: 0, count: base.count), expected) == nil)
    }

    @Test func aBackingFileShorterThanTheDiskReadsAsZerosPastItsEnd() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let base = pattern(100_000, at: 0, tag: 3)
        try writeFile(dir.path("base.raw"), base)
        try QCow2Image.create(path: dir.path("ov.qcow2"), options: .init(size: 1 << 20, backing: dir.path("base.raw")))
        let image = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false)
        #expect(try firstDifference(image.read(at: 90_000, count: 20_000), Array(base[90_000...]) + [UInt8](repeating: 0, count: 10_000)) == nil)
        try image.write(at: 65_536, [1, 2, 3])  // cluster 1 straddles the base's end
        var expected = Array(base[65_536...]) + [UInt8](repeating: 0, count: 131_072 - 100_000)
        expected.replaceSubrange(0..<3, with: [1, 2, 3])
        #expect(try firstDifference(image.read(at: 65_536, count: 65_536), expected) == nil)
    }

    @Test func qcow2BackingChainsAreReadThroughAndNeverWritten() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path("images"), withIntermediateDirectories: true)
        try writeFile(dir.path("images/base.raw"), pattern(512 << 10, at: 0, tag: 1))
        try QCow2Image.create(path: dir.path("images/mid.qcow2"), options: .init(backing: "base.raw"))
        do {
            let mid = try QCow2Image(path: dir.path("images/mid.qcow2"), readOnly: false)
            try mid.write(at: 70_000, [UInt8](repeating: 0x11, count: 100))
            mid.close()
        }
        let midBytes = try readFile(dir.path("images/mid.qcow2"))
        try QCow2Image.create(path: dir.path("top.qcow2"), options: .init(backing: "images/mid.qcow2"))
        let top = try QCow2Image(path: dir.path("top.qcow2"), readOnly: false)
        #expect(top.backing?.format == .qcow2)
        #expect(try top.read(at: 70_000, count: 100) == [UInt8](repeating: 0x11, count: 100))
        try top.write(at: 70_050, [UInt8](repeating: 0x22, count: 100))
        #expect(try top.read(at: 69_999, count: 202) == [pattern(1, at: 69_999, tag: 1)[0]] + [UInt8](repeating: 0x11, count: 50)
                + [UInt8](repeating: 0x22, count: 100) + pattern(51, at: 70_150, tag: 1))
        top.close()
        #expect(try firstDifference(readFile(dir.path("images/mid.qcow2")), midBytes) == nil)
    }

    @Test func backingProblemsAreRefusedClearly() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        #expect(throws: DiskImageError.self) {
            try QCow2Image.create(path: dir.path("ov.qcow2"), options: .init(backing: "missing.raw"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("ov.qcow2")))
        // A loop: a → b → a.
        try QCow2Image.create(path: dir.path("a.qcow2"), options: .init(size: 1 << 20))
        try QCow2Image.create(path: dir.path("b.qcow2"), options: .init(backing: "a.qcow2"))
        let a = try readFile(dir.path("a.qcow2"))
        try QCow2Image.create(path: dir.path("c.qcow2"), options: .init(backing: "b.qcow2"))
        // Make a's header name b as its backing file, as c's names b.
        let c = try readFile(dir.path("c.qcow2"))
        try writeFile(dir.path("a.qcow2"), Array(c[0..<65_536]) + Array(a[65_536...]))
        #expect(throws: DiskImageError.self) { try QCow2Image(path: dir.path("a.qcow2"), readOnly: true) }
        // An existing file is never overwritten.
        #expect(throws: DiskImageError.self) { try QCow2Image.create(path: dir.path("b.qcow2"), options: .init(size: 512)) }
    }

    // MARK: - Zero clusters

    /// The host offset of the L2 entry for guest cluster `guestCluster` (L2 table known).
    func l2EntryOffset(_ image: QCow2Image, guestCluster: UInt64) throws -> Int {
        let l1Index = Int(guestCluster >> image.l2Bits)
        let table = image.l1[l1Index] & QCow2Header.offsetMask
        return Int(table) + 8 * Int(guestCluster & ((1 << image.l2Bits) - 1))
    }

    @Test func zeroClustersReadAsZerosAndAreFilledInPlace() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        try writeFile(dir.path("base.raw"), [UInt8](repeating: 0x55, count: 1 << 20))
        try QCow2Image.create(path: dir.path("ov.qcow2"), options: .init(backing: "base.raw"))
        var entries: [(Int, UInt64)] = []
        do {
            let image = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false)
            try image.write(at: 2 * 65_536, [UInt8](repeating: 0xaa, count: 65_536))
            try image.write(at: 3 * 65_536, [UInt8](repeating: 0xbb, count: 512))
            try image.flush()
            for g in [UInt64(2), 3] {
                let at = try l2EntryOffset(image, guestCluster: g)
                let entry = image.l2Cache[image.l1[0] & QCow2Header.offsetMask]!.entries[Int(g)]
                entries.append((at, entry))
            }
            image.close()
        }
        // Cluster 2: zero flag on its allocated entry (preallocated zero cluster).
        try patchFile(dir.path("ov.qcow2"), at: entries[0].0, (entries[0].1 | 1).bigEndianBytes)
        // Cluster 4: the zero flag and no host cluster: zeros instead of the backing's 0x55.
        try patchFile(dir.path("ov.qcow2"), at: entries[0].0 + 16, UInt64(1).bigEndianBytes)
        let image = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false)
        #expect(try firstDifference(image.read(at: 2 * 65_536, count: 65_536), [UInt8](repeating: 0, count: 65_536)) == nil)
        #expect(try firstDifference(image.read(at: 4 * 65_536, count: 65_536), [UInt8](repeating: 0, count: 65_536)) == nil)
        #expect(try image.read(at: 5 * 65_536, count: 4) == [0x55, 0x55, 0x55, 0x55])
        var r = try image.report(refcounts: true)
        #expect(r.zeroClusters == 2 && r.dataClusters == 1 && r.errors == [] && r.leaks == [])
        // Writing into them: the rest of the cluster stays zero (not the backing's bytes).
        try image.write(at: 2 * 65_536 + 100, [9])
        try image.write(at: 4 * 65_536 + 100, [8])
        #expect(try image.read(at: 2 * 65_536 + 99, count: 3) == [0, 9, 0])
        #expect(try image.read(at: 4 * 65_536 + 99, count: 3) == [0, 8, 0])
        #expect(try image.read(at: 4 * 65_536 + 65_535, count: 1) == [0])
        try image.flush()
        r = try image.report(refcounts: true)
        #expect(r.zeroClusters == 0 && r.dataClusters == 3 && r.errors == [] && r.leaks == [])
        // The preallocated cluster was reused, not leaked: cluster 2 still maps to its old host cluster.
        #expect(try image.mapping(ofGuestCluster: 2) == .data(offset: entries[0].1 & QCow2Header.offsetMask, copied: true))
    }

    // MARK: - Refcounts

    @Test(arguments: [UInt32(0), 3, 4, 6])
    func refcountEntriesOfEveryWidthRoundTrip(order: UInt32) throws {
        let block = RefcountBlock(bytes: [UInt8](repeating: 0, count: 512), order: UInt64(order), dirty: false)
        var rng = SplitMix(state: UInt64(order))
        var values: [UInt64] = []
        for i in 0..<block.count {
            let v = UInt64.random(in: 0...block.maxValue, using: &rng)
            block[i] = v
            values.append(v)
        }
        let same = (0..<block.count).map { block[$0] } == values
        #expect(same)
        #expect(block.count == 4096 >> Int(order))
    }

    /// 512-byte clusters with 16-bit refcounts: a refcount block counts 256 clusters and
    /// the one-cluster refcount table 64 blocks (8 MiB of file), so writing 12 MiB
    /// allocates dozens of refcount blocks and moves the table at least once.
    @Test func refcountsGrowPastOneBlockAndTheTableMoves() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = dir.path("small.qcow2")
        try QCow2Image.create(path: path, options: .init(size: 12 << 20, clusterBits: 9))
        let image = try QCow2Image(path: path, readOnly: false)
        let firstTable = image.header.refcountTableOffset
        var offset: UInt64 = 0
        while offset < 12 << 20 {
            try image.write(at: offset, pattern(8192, at: offset, tag: 9))
            offset += 8192
        }
        try image.flush()
        #expect(image.header.refcountTableOffset != firstTable)
        #expect(image.header.refcountTableClusters > 1)
        #expect(image.refcountTable.filter { $0 != 0 }.count > 64)
        image.close()
        let again = try QCow2Image(path: path, readOnly: true)
        let r = try again.report(refcounts: true)
        #expect(r.errors == [] && r.leaks == [] && r.dataClusters == 24_576)
        for at in stride(from: UInt64(0), to: 12 << 20, by: 1 << 20) {
            #expect(try firstDifference(again.read(at: at, count: 1 << 20), pattern(1 << 20, at: at, tag: 9)) == nil)
        }
        if qemuImgInstalled {
            let (status, output) = try qemuImgCheck(path)
            #expect(status == 0, "\(output)")
        }
    }

    @Test(arguments: [UInt32(0), 6])
    func narrowAndWideRefcountsStayConsistent(order: UInt32) throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = dir.path("r.qcow2")
        try QCow2Image.create(path: path, options: .init(size: 2 << 20, clusterBits: 9, refcountOrder: order))
        let image = try QCow2Image(path: path, readOnly: false)
        var rng = SplitMix(state: 42)
        for _ in 0..<300 {
            let at = UInt64.random(in: 0..<(2 << 20) - 2000, using: &rng)
            try image.write(at: at, pattern(Int.random(in: 1...2000, using: &rng), at: at, tag: 5))
        }
        image.close()
        let r = try QCow2Image(path: path, readOnly: true).report(refcounts: true)
        #expect(r.errors == [] && r.leaks == [])
        if qemuImgInstalled {
            let (status, output) = try qemuImgCheck(path)
            #expect(status == 0, "\(output)")
        }
    }
}

/// Which disk pages the global buffer cache may share: pages of a read-only file,
/// directly or through an overlay that does not hold them.
@Suite struct SharedSourceTests {
    @Test func onlyUnwrittenPagesOfAReadOnlyBaseAreShared() throws {
        let dir = try ScratchDirectory()
        let base = dir.path("base.raw")
        try [UInt8](repeating: 0xab, count: 64 << 10).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: base)) }
        let raw = try RawDiskImage(path: base, readOnly: true)
        let page1 = try #require(try raw.sharedSource(at: 4096, count: 4096))
        #expect(page1.offset == 4096)
        #expect(try raw.sharedSource(at: 62 << 10, count: 4096) == nil)  // past the end
        raw.close()
        let writable = try RawDiskImage(path: base, readOnly: false)
        #expect(try writable.sharedSource(at: 0, count: 4096) == nil)  // its writes would change it
        writable.close()

        let overlay = dir.path("vm.qcow2")
        try QCow2Image.create(path: overlay, options: .init(size: 128 << 10, backing: "base.raw", clusterBits: 12))
        let image = try QCow2Image(path: overlay, readOnly: false)
        #expect(try image.sharedSource(at: 4096, count: 4096) == page1)  // the same key as the base's own
        try image.write(at: 8192, [1, 2, 3])
        #expect(try image.sharedSource(at: 8192, count: 4096) == nil)  // the overlay holds it now
        #expect(try image.sharedSource(at: 64 << 10, count: 4096) == nil)  // beyond the base: zeros
        image.close()
    }
}
