import Foundation
import Testing
@testable import Platform

/// Malformed, truncated and fuzzed images: each is refused at open with a clear
/// `DiskImageError`, or only the requests that touch the damage fail; nothing
/// crashes and nothing is read past the end of the file.
@Suite struct QCow2MalformedImageTests {
    /// A 1 MiB image with data in guest clusters 0, 2 and 15, laid out as `qemu-img create`
    /// does: header, refcount table (cluster 1), refcount block (2), L1 (3), then the rest.
    func populated(_ dir: ScratchDirectory, name: String = "p.qcow2") throws -> String {
        let path = dir.path(name)
        try QCow2Image.create(path: path, options: .init(size: 1 << 20))
        let image = try QCow2Image(path: path, readOnly: false)
        for g in [UInt64(0), 2, 15] { try image.write(at: g * 65_536, pattern(65_536, at: g * 65_536, tag: 1)) }
        image.close()
        return path
    }

    func expectRefused(_ path: String, readOnly: Bool = true, _ phrase: String?, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try QCow2Image(path: path, readOnly: readOnly)
            Issue.record("opened an image that should be refused (\(phrase ?? "-"))", sourceLocation: sourceLocation)
        } catch let e as DiskImageError {
            if let phrase { #expect(e.description.contains(phrase), "\(e.description)", sourceLocation: sourceLocation) }
            #expect(e.description.hasPrefix("disk '\(path)': "), sourceLocation: sourceLocation)
        } catch {
            Issue.record("not a DiskImageError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func badHeaderFieldsAreRefusedAtOpen() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let good = try readFile(try populated(dir))
        let cases: [(Int, [UInt8], String)] = [
            (0, [0x51, 0x46, 0x49, 0xfa], "bad magic"),
            (4, bigEndian32(1), "version 1 is not supported"),
            (4, bigEndian32(4), "version 4 is not supported"),
            (20, bigEndian32(8), "cluster_bits 8 is out of range"),
            (20, bigEndian32(22), "cluster_bits 22 is out of range"),
            (24, UInt64(1 << 40).bigEndianBytes, "too few for the virtual size"),
            (24, UInt64(1 << 62).bigEndianBytes, "too large"),
            (32, bigEndian32(1), "encrypted images are not supported"),
            (32, bigEndian32(2), "encrypted images are not supported"),
            (36, bigEndian32(0x0100_0000), "exceeds the 32 MiB limit"),
            (36, bigEndian32(0), "too few for the virtual size"),
            (40, UInt64(0x30001).bigEndianBytes, "L1 table offset 196609 is not aligned"),
            (40, UInt64(1 << 40).bigEndianBytes, "L1 table (8 bytes at offset 1099511627776) extends past the end of the file"),
            (40, UInt64(0).bigEndianBytes, "L1 table overlaps the header"),
            (48, UInt64(0).bigEndianBytes, "refcount table overlaps the header"),
            (48, UInt64(0x7fff_0000).bigEndianBytes, "refcount table (65536 bytes at offset 2147418112) extends past the end"),
            (56, bigEndian32(0), "refcount table has no clusters"),
            (56, bigEndian32(1000), "exceeds the 8 MiB limit"),
            (60, bigEndian32(1) + UInt64(0).bigEndianBytes, "snapshot table offset 0 is invalid"),
            (72, UInt64(1 << 5).bigEndianBytes, "unknown incompatible feature bit 5"),
            (72, (UInt64(1) << 63).bigEndianBytes, "unknown incompatible feature bit 63"),
            (72, UInt64(1 << 2).bigEndianBytes, "external data file are not supported"),
            (72, UInt64(1 << 4).bigEndianBytes, "extended L2 entries"),
            (96, bigEndian32(7), "refcount_order 7 is invalid"),
            (100, bigEndian32(100), "header_length 100 is invalid"),
            (100, bigEndian32(108), "header_length 108 is invalid") ,
            (100, bigEndian32(70_000), "header_length 70000 is invalid"),
            (8, UInt64(65_530).bigEndianBytes + bigEndian32(10), "lies outside the first cluster"),
            (8, UInt64(512).bigEndianBytes + bigEndian32(2000), "backing file name length 2000 is invalid"),
            (112, bigEndian32(0x1234_5678) + bigEndian32(70_000), "runs past the first cluster"),
        ]
        for (offset, bytes, phrase) in cases {
            var image = good
            image.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            let path = dir.path("bad.qcow2")
            try writeFile(path, image)
            expectRefused(path, phrase)
        }
    }

    @Test func marksAndSnapshotsRefuseWritingButNotReading() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let good = try readFile(try populated(dir))
        for (offset, bytes, phrase) in [(72, UInt64(1).bigEndianBytes, "marked dirty"), (72, UInt64(2).bigEndianBytes, "marked corrupt"),
                                        (60, bigEndian32(1) + UInt64(0x40000).bigEndianBytes, "internal snapshot")] {
            var image = good
            image.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            let path = dir.path("marked.qcow2")
            try writeFile(path, image)
            expectRefused(path, readOnly: false, phrase)
            let ro = try QCow2Image(path: path, readOnly: true)
            #expect(try ro.read(at: 2 * 65_536, count: 16) == pattern(16, at: 2 * 65_536, tag: 1))
        }
    }

    @Test func unknownAutoclearBitsAreClearedBeforeWriting() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try populated(dir)
        try patchFile(path, at: 88, UInt64(0b11).bigEndianBytes)
        _ = try QCow2Image(path: path, readOnly: true)
        #expect(Array(try readFile(path)[88..<96]) == UInt64(0b11).bigEndianBytes)
        let image = try QCow2Image(path: path, readOnly: false)
        #expect(Array(try readFile(path)[88..<96]) == UInt64(0).bigEndianBytes)
        image.close()
    }

    @Test func truncatedFilesAreRefusedOrFailOnlyTheRequestsThatNeedTheMissingPart() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let good = try readFile(try populated(dir))
        let path = dir.path("short.qcow2")
        var opened = 0
        for length in Array(stride(from: 0, to: good.count, by: 4096)) + [1, 3, 4, 71, 72, 103, 104, 111, 65_535, good.count - 1] {
            try writeFile(path, Array(good[0..<length]))
            if length < 72 { expectRefused(path, "header truncated") }
            if length < 3 * 65_536 + 8 { expectRefused(path, length < 72 ? "header truncated" : nil) }
            guard let image = try? QCow2Image(path: path, readOnly: false) else { continue }
            opened += 1
            var failures = 0
            for g in 0..<16 {
                do {
                    #expect(try image.read(at: UInt64(g) * 65_536, count: 65_536).count == 65_536)
                } catch let e as DiskImageError {
                    #expect(e.description.contains("past the end of the file"), "\(e)")
                    failures += 1
                }
            }
            // Guest cluster 15's data is the last cluster of the file: cut, it cannot be read.
            #expect(failures >= 1)
            // Neither can it be written in place; other clusters can.
            #expect(throws: DiskImageError.self) { try image.write(at: 15 * 65_536, [1]) }
            image.close()
        }
        #expect(opened > 0)
    }

    /// Offsets of the metadata of `populated`: its L2 table and the refcount block.
    func l2Table(_ path: String) throws -> Int {
        let image = try QCow2Image(path: path, readOnly: true)
        return Int(image.l1[0] & QCow2Header.offsetMask)
    }

    @Test func damagedTablesFailOnlyTheRequestsThatUseThem() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let source = try populated(dir)
        let good = try readFile(source)
        let l2 = try l2Table(source)
        let l1 = 3 * 65_536
        let cases: [(Int, UInt64, Int, String)] = [
            // (where, entry, guest cluster to read, phrase)
            (l1, 0x8000_0000_0000_0001 | UInt64(l2), 0, "L1 entry 0 has reserved bits set"),
            (l1, 0x8000_0000_0000_0000 | (1 << 40), 0, "past the end of the file"),
            (l1, 0x8000_0000_0000_0000 | 0x10000, 0, "overlaps the header, the L1 or the refcount table"),
            (l1, 0x8000_0000_0000_0000 | 0x10200, 0, "unaligned offset"),
            (l2 + 16, 0x4000_0000_0000_0000 | 0x50000, 2, "compressed clusters are not supported"),
            (l2 + 16, 0x8000_0000_0000_0000 | 0x50200, 2, "unaligned host offset"),
            (l2 + 16, 0x8000_0000_0000_0000 | 0x30000, 2, "maps onto image metadata"),
            (l2 + 16, 0x8000_0000_0000_0000 | (1 << 45), 2, "past the end of the file"),
            (l2 + 16, 0x8000_0000_0000_0000, 2, "marked allocated at host offset 0"),
            (l2 + 16, 0x0100_0000_0000_0000 | 0x50000, 2, "reserved bits set"),
        ]
        for (at, entry, guest, phrase) in cases {
            var bytes = good
            bytes.replaceSubrange(at..<(at + 8), with: entry.bigEndianBytes)
            let path = dir.path("damaged.qcow2")
            try writeFile(path, bytes)
            let image = try QCow2Image(path: path, readOnly: false)
            do {
                _ = try image.read(at: UInt64(guest) * 65_536, count: 512)
                Issue.record("read through a damaged entry (\(phrase))")
            } catch let e as DiskImageError {
                #expect(e.description.contains(phrase), "\(e.description)")
            }
            #expect(throws: DiskImageError.self) { try image.write(at: UInt64(guest) * 65_536, [1, 2, 3]) }
            // A guest cluster under another L1 entry is unaffected (the disk is 1 MiB: one L1 entry; read past the damage instead).
            if at != l1 {
                #expect(try image.read(at: 0, count: 512) == pattern(512, at: 0, tag: 1))
                try image.write(at: 8 * 65_536, [7])
                #expect(try image.read(at: 8 * 65_536, count: 1) == [7])
            }
            image.close()
        }
    }

    @Test func aDamagedRefcountTableFailsAllocationsButNotReads() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try populated(dir)
        try patchFile(path, at: 65_536, (UInt64(0x20000) | 0x17).bigEndianBytes)
        let image = try QCow2Image(path: path, readOnly: false)
        #expect(try image.read(at: 2 * 65_536, count: 4) == pattern(4, at: 2 * 65_536, tag: 1))
        try image.write(at: 2 * 65_536, [9])  // in place: no refcount needed
        #expect(throws: DiskImageError.self) { try image.write(at: 9 * 65_536, [9]) }
        #expect(try image.read(at: 9 * 65_536, count: 1) == [0])
    }

    /// Random damage to the metadata-dense start of a small-cluster image, and random
    /// truncation: open, read, write, flush, recount; any failure must be a
    /// `DiskImageError`. A crash or a hang fails the whole run.
    @Test func fuzzedImagesNeverCrash() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        try writeFile(dir.path("base.raw"), pattern(128 << 10, at: 0, tag: 4))
        let source = dir.path("f.qcow2")
        try QCow2Image.create(path: source, options: .init(size: 256 << 10, backing: "base.raw", clusterBits: 9))
        do {
            let image = try QCow2Image(path: source, readOnly: false)
            var rng = SplitMix(state: 1)
            for _ in 0..<80 {
                let at = UInt64.random(in: 0..<(256 << 10) - 3000, using: &rng)
                try image.write(at: at, pattern(Int.random(in: 1...3000, using: &rng), at: at, tag: 2))
            }
            image.close()
        }
        let good = try readFile(source)
        var rng = SplitMix(state: 0xf00d)
        var outcomes = [String: Int]()
        func note(_ e: Error) {
            guard let e = e as? DiskImageError else { Issue.record("not a DiskImageError: \(e)"); return }
            let key = e.description.split(separator: ":").dropFirst().first.map(String.init) ?? e.description
            outcomes[String(key.prefix(40)), default: 0] += 1
        }
        let path = dir.path("fuzzed.qcow2")
        for round in 0..<600 {
            var bytes = good
            let hot = min(bytes.count, 512 * 40)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:  // a random byte anywhere in the first clusters
                    bytes[Int.random(in: 0..<hot, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1:  // a random 8-byte entry
                    let at = Int.random(in: 0..<(hot / 8), using: &rng) * 8
                    bytes.replaceSubrange(at..<(at + 8), with: UInt64.random(in: 0...UInt64.max, using: &rng).bigEndianBytes)
                case 2:  // a plausible-looking offset
                    let at = Int.random(in: 0..<(hot / 8), using: &rng) * 8
                    let v = UInt64.random(in: 0..<UInt64(bytes.count + 4096), using: &rng) & ~511 | (Bool.random(using: &rng) ? 1 << 63 : 0)
                    bytes.replaceSubrange(at..<(at + 8), with: v.bigEndianBytes)
                default:  // a header field
                    let at = [4, 20, 24, 32, 36, 40, 48, 56, 60, 72, 96, 100, 8, 16].randomElement(using: &rng)!
                    bytes.replaceSubrange(at..<(at + 4), with: bigEndian32(UInt32.random(in: 0...70, using: &rng)))
                }
            }
            if round % 5 == 0 { bytes = Array(bytes[0..<Int.random(in: 0..<bytes.count, using: &rng)]) }
            try writeFile(path, bytes)
            let image: QCow2Image
            do { image = try QCow2Image(path: path, readOnly: false) } catch { note(error); continue }
            let span = min(image.virtualSize, 256 << 10)
            for at in stride(from: UInt64(0), to: span, by: 4096) {
                do { _ = try image.read(at: at, count: Int(min(4096, span - at))) } catch { note(error) }
            }
            for _ in 0..<8 where span > 600 {
                let at = UInt64.random(in: 0..<span - 600, using: &rng)
                do { try image.write(at: at, pattern(600, at: at, tag: 6)) } catch { note(error) }
            }
            do { try image.flush() } catch { note(error) }
            do { _ = try image.report(refcounts: true) } catch { note(error) }
            image.close()
            outcomes["opened", default: 0] += 1
        }
        #expect(outcomes["opened", default: 0] > 50)
        #expect(outcomes.count > 5, "\(outcomes)")
    }
}
