import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

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

/// Copy-on-write disks against the real QEMU tools: qcow2 overlays that disco writes
/// pass `qemu-img check` and compare equal to what QEMU writes into a raw copy;
/// overlays made by `disco disk create` are read and written by QEMU; a guest killed
/// with SIGKILL after a flush leaves a checked overlay with the flushed data; a disk
/// on slot 0 sits where QEMU's `bus=virtio-mmio-bus.0` puts it. The guest is
/// guests/blk (virtio-blk, polled); QEMU runs it too, and both must print the same.
@Suite(.serialized) struct DiskTests {
    static let qemuImg = "/usr/bin/qemu-img"
    static let diskBytes = 2 << 20

    /// A scratch directory, removed by `remove()`.
    struct Scratch {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("disco-disks-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
        func remove() { try? FileManager.default.removeItem(at: url) }
    }

    func requireTools() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.qemuImg), "qemu-img is missing: run scripts/setup.sh (qemu-utils)")
        try #require(FileManager.default.fileExists(atPath: Paths.guest("blk.elf")), "guests/build/blk.elf is missing: run make -C guests")
    }

    /// A base image whose every sector differs, so a misplaced read shows.
    func makeBase(_ path: String) throws {
        var bytes = [UInt8](repeating: 0, count: Self.diskBytes)
        for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: (i >> 9) &* 7 &+ i &* 13) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @discardableResult
    func tool(_ path: String, _ args: [String], expect status: Int32? = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> ProcessResult {
        let r = try runProcess(path, args, timeout: 60)
        if let status {
            #expect(r.status == status, "\(path) \(args.joined(separator: " ")) exited \(r.status):\n\(r.output)\(r.errorOutput)",
                    sourceLocation: sourceLocation)
        }
        return r
    }

    /// blk.elf on QEMU with `drives` as (file, format, bus or nil) in command-line order.
    func qemu(_ args: String, drives: [(String, String, Int?)], timeout: TimeInterval = 120) throws -> ProcessResult {
        var extra = ["-global", "virtio-mmio.force-legacy=false", "-append", args]
        for (i, d) in drives.enumerated() {
            extra += ["-drive", "file=\(d.0),if=none,format=\(d.1),id=d\(i)",
                      "-device", "virtio-blk-device,drive=d\(i)" + (d.2.map { ",bus=virtio-mmio-bus.\($0)" } ?? "")]
        }
        return try runOnQEMU(Paths.guest("blk.elf"), harts: 1, extra: extra, timeout: timeout)
    }

    func disco(_ args: String, disks: [String], nodes: Int? = nil, timeout: TimeInterval = 120) throws -> ProcessResult {
        var extra = ["--append", args] + disks.flatMap { ["--disk", $0] }
        if let nodes { extra += ["--nodes", "\(nodes)"] }
        return try runOnDisco(Paths.guest("blk.elf"), harts: 1, extra: extra, timeout: timeout)
    }

    func expectSameRun(_ d: ProcessResult, _ q: ProcessResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(q.status == 0, "QEMU: \(q.output.suffix(800)) \(q.errorOutput.suffix(800))", sourceLocation: sourceLocation)
        #expect(d.status == 0, "disco: \(d.output.suffix(800)) \(d.errorOutput.suffix(800))", sourceLocation: sourceLocation)
        #expect(comparable(d.output) == comparable(q.output), "disco:\n\(d.output)\nQEMU:\n\(q.output)", sourceLocation: sourceLocation)
    }

    // MARK: - Overlays made by qemu-img, written by disco

    /// qemu-img makes the overlay (qcow2 version 3, version 2, small clusters); disco's
    /// guest writes through it; QEMU runs the same guest on a raw copy of the base.
    @Test(arguments: [[String](), ["-o", "compat=0.10"], ["-o", "cluster_size=512"], ["-o", "cluster_size=2M,refcount_bits=64"]])
    func anOverlayFromQemuImgWrittenByDiscoChecksAndComparesEqual(options: [String]) throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("base.raw"))
        let base = try Data(contentsOf: dir.url.appendingPathComponent("base.raw"))
        try FileManager.default.copyItem(atPath: dir.path("base.raw"), toPath: dir.path("reference.raw"))
        try tool(Self.qemuImg, ["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw"] + options + [dir.path("ov.qcow2")])

        let d = try disco("write 7 60", disks: [dir.path("ov.qcow2") + ",slot=0"])
        let q = try qemu("write 7 60", drives: [(dir.path("reference.raw"), "raw", 0)])
        expectSameRun(d, q)
        #expect(d.output.contains("blk: verified 60 requests"))
        let check = try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")])
        #expect(check.output.contains("No errors were found on the image."), "\(check.output)")
        let compare = try tool(Self.qemuImg, ["compare", "-f", "qcow2", "-F", "raw", dir.path("ov.qcow2"), dir.path("reference.raw")])
        #expect(compare.output.contains("Images are identical."), "\(compare.output)")
        #expect(try firstDifference(Data(contentsOf: dir.url.appendingPathComponent("base.raw")), base) == nil, "the base image was written")
    }

    /// The same on a two-node cluster: the spec (with the slot) travels to the node that
    /// holds the VM's devices.
    @Test func anOverlayWrittenFromATwoNodeClusterChecksAndComparesEqual() throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("base.raw"))
        try FileManager.default.copyItem(atPath: dir.path("base.raw"), toPath: dir.path("reference.raw"))
        try tool(Paths.disco, ["disk", "create", "--backing", "base.raw", dir.path("ov.qcow2")])
        let d = try disco("write 3 30", disks: [dir.path("ov.qcow2") + ",slot=0"], nodes: 2, timeout: 240)
        let q = try qemu("write 3 30", drives: [(dir.path("reference.raw"), "raw", 0)])
        expectSameRun(d, q)
        try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")])
        let compare = try tool(Self.qemuImg, ["compare", dir.path("ov.qcow2"), dir.path("reference.raw")])
        #expect(compare.output.contains("Images are identical."), "\(compare.output)")
    }

    /// A guest that never flushes and powers off: its writes are in the overlay all the
    /// same, in one process and on a two-node cluster (the VM's disks are written back
    /// when it stops, as QEMU does when it exits).
    @Test(arguments: [1, 2])
    func writesAreWrittenBackWhenTheVMStopsWithoutAFlush(nodes: Int) throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("base.raw"))
        try FileManager.default.copyItem(atPath: dir.path("base.raw"), toPath: dir.path("reference.raw"))
        try tool(Paths.disco, ["disk", "create", "--backing", "base.raw", dir.path("ov.qcow2")])
        let d = try disco("noflush 5 30", disks: [dir.path("ov.qcow2") + ",slot=0"], nodes: nodes == 1 ? nil : nodes, timeout: 240)
        let q = try qemu("noflush 5 30", drives: [(dir.path("reference.raw"), "raw", 0)])
        expectSameRun(d, q)
        try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")])
        let compare = try tool(Self.qemuImg, ["compare", dir.path("ov.qcow2"), dir.path("reference.raw")])
        #expect(compare.output.contains("Images are identical."), "\(compare.output)")
    }

    // MARK: - Overlays made by disco, used by QEMU

    @Test func anOverlayFromDiscoDiskCreateIsQEMUs() throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("base.raw"))
        let created = try tool(Paths.disco, ["disk", "create", "--backing", "base.raw", dir.path("ov.qcow2")])
        #expect(created.output.contains("qcow2, virtual size 2M, cluster size 64K, backing file 'base.raw' (raw)"), "\(created.output)")

        let info = try tool(Self.qemuImg, ["info", "--output=json", dir.path("ov.qcow2")])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any])
        #expect(json["format"] as? String == "qcow2")
        #expect(json["virtual-size"] as? Int == Self.diskBytes)
        #expect(json["cluster-size"] as? Int == 65_536)
        #expect(json["backing-filename"] as? String == "base.raw")
        #expect(json["backing-filename-format"] as? String == "raw")
        #expect(json["full-backing-filename"] as? String == dir.path("base.raw"))
        try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")])

        // QEMU writes into disco's overlay; disco reads QEMU's writes back.
        let q = try qemu("write 9 40", drives: [(dir.path("ov.qcow2"), "qcow2", 0)])
        #expect(q.status == 0, "\(q.output) \(q.errorOutput)")
        try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")])
        let d = try disco("verify 9 40", disks: [dir.path("ov.qcow2") + ",slot=0"])
        #expect(d.status == 0, "\(d.output) \(d.errorOutput)")
        let checksum = { (text: String) in text.split(separator: "\n").first { $0.hasPrefix("blk: checksum") } }
        #expect(checksum(d.output) != nil && checksum(d.output) == checksum(q.output))

        let ours = try tool(Paths.disco, ["disk", "info", dir.path("ov.qcow2")])
        #expect(ours.output.contains("format: qcow2 (version 3)"), "\(ours.output)")
        #expect(ours.output.contains("virtual size: 2M (2097152 bytes)"))
        #expect(ours.output.contains("backing file: base.raw (raw, 2M)"))
        #expect(ours.output.contains("allocated clusters: "))
        #expect(try tool(Paths.disco, ["disk", "check", dir.path("ov.qcow2")]).output.contains("No errors were found"))

        // An existing image is never overwritten; a relative backing name is the overlay directory's.
        let again = try tool(Paths.disco, ["disk", "create", "--backing", "base.raw", dir.path("ov.qcow2")], expect: 2)
        #expect(again.errorOutput.contains("File exists"), "\(again.errorOutput)")
        let lost = try tool(Paths.disco, ["disk", "create", "--backing", "nowhere.raw", dir.path("new.qcow2")], expect: 2)
        #expect(lost.errorOutput.contains("relative to the overlay's directory"), "\(lost.errorOutput)")
        #expect(!FileManager.default.fileExists(atPath: dir.path("new.qcow2")))
    }

    // MARK: - Crashes

    /// Starts `disco run`; once its console shows `ready`, runs `meanwhile`; once it
    /// shows `marker`, SIGKILLs it. Returns the console and whether `marker` appeared.
    func runAndKill(_ arguments: [String], ready: String, meanwhile: () throws -> Void, when marker: String,
                    timeout: TimeInterval = 120) throws -> (output: String, sawMarker: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.disco)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        final class Console: @unchecked Sendable {
            let lock = NSLock()
            var text = ""
            func append(_ d: Data) { lock.lock(); text += String(decoding: d, as: UTF8.self); lock.unlock() }
            var all: String { lock.lock(); defer { lock.unlock() }; return text }
        }
        let console = Console()
        out.fileHandleForReading.readabilityHandler = { h in console.append(h.availableData) }
        func shows(_ s: String) -> Bool { console.all.contains(s) }
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            out.fileHandleForReading.readabilityHandler = nil
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline && !shows(ready) { usleep(10_000) }
        if shows(ready) { try meanwhile() }
        while process.isRunning && Date() < deadline && !shows(marker) { usleep(10_000) }
        let saw = shows(marker)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return (console.all, saw)
    }

    /// The guest writes the lower half, flushes, then keeps writing the upper half
    /// without flushing; disco is SIGKILLed in the middle of that. The overlay must
    /// pass `qemu-img check`, and hold the flushed writes: QEMU's guest verifies them,
    /// and the lower half equals what QEMU wrote into a raw copy.
    @Test func aGuestKilledAfterAFlushLeavesACheckedOverlayWithTheFlushedData() throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("base.raw"))
        try FileManager.default.copyItem(atPath: dir.path("base.raw"), toPath: dir.path("reference.raw"))
        try tool(Paths.disco, ["disk", "create", "--backing", "base.raw", "--cluster-size", "4K", dir.path("ov.qcow2")])

        let run = ["run", "--bios", "none", "--kernel", Paths.guest("blk.elf"), "--append", "hang 11 50",
                   "--disk", dir.path("ov.qcow2") + ",slot=0"]
        var second: ProcessResult?
        let killed = try runAndKill(run, ready: "blk: using slot", meanwhile: {
            // While it runs, the overlay is locked: a second VM cannot write it.
            second = try runOnDisco(Paths.guest("blk.elf"), harts: 1, extra: ["--append", "layout", "--disk", dir.path("ov.qcow2")], timeout: 30)
        }, when: "blk: unflushed writes 64")
        #expect(killed.sawMarker, "the guest never reached its unflushed writes:\n\(killed.output.suffix(1500))")
        #expect(killed.output.contains("blk: flushed"))
        #expect(second?.status == 2 && second?.errorOutput.contains("in use by another VM or process") == true,
                "a second writer was not refused: \(second?.errorOutput ?? "-")")

        let check = try tool(Self.qemuImg, ["check", dir.path("ov.qcow2")], expect: nil)
        #expect(check.status == 0 || check.status == 3, "qemu-img check after SIGKILL:\n\(check.output)\(check.errorOutput)")
        #expect(!check.output.contains("ERROR"), "\(check.output)")

        let verify = try qemu("verify 11 50", drives: [(dir.path("ov.qcow2"), "qcow2", 0)])
        #expect(verify.status == 0 && verify.output.contains("blk: verified 50 requests"), "\(verify.output)")
        let reference = try qemu("write 11 50", drives: [(dir.path("reference.raw"), "raw", 0)])
        #expect(reference.status == 0)
        try tool(Self.qemuImg, ["convert", "-f", "qcow2", "-O", "raw", dir.path("ov.qcow2"), dir.path("after.raw")])
        let after = try Data(contentsOf: dir.url.appendingPathComponent("after.raw"))
        let expected = try Data(contentsOf: dir.url.appendingPathComponent("reference.raw"))
        #expect(after.count == expected.count)
        #expect(firstDifference(after.prefix(Self.diskBytes / 2), expected.prefix(Self.diskBytes / 2)) == nil, "the flushed half differs")
        // disco opens it again and its own check agrees.
        let ours = try tool(Paths.disco, ["disk", "check", dir.path("ov.qcow2")], expect: nil)
        #expect(ours.status == 0 || ours.status == 3, "\(ours.output)")
    }

    // MARK: - Slots

    /// Where disks land: slot 0 as QEMU's bus=virtio-mmio-bus.0; without a slot at the
    /// top as QEMU's bus-less virtio-blk-device; a named slot plus a free one.
    @Test func disksSitInTheSlotsQEMUPutsThemIn() throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("a.raw"))
        try tool(Self.qemuImg, ["create", "-q", "-f", "qcow2", dir.path("b.qcow2"), "1M"])
        let a = dir.path("a.raw"), b = dir.path("b.qcow2")
        let cases: [([String], [(String, String, Int?)])] = [
            ([a + ",slot=0"], [(a, "raw", 0)]),
            ([a], [(a, "raw", nil)]),
            ([a + ",slot=2", b], [(a, "raw", 2), (b, "qcow2", nil)]),
            ([b, a + ",slot=7,readonly=on"], [(a, "raw", 7), (b, "qcow2", nil)]),
        ]
        for (discoDisks, qemuDrives) in cases {
            let d = try disco("layout", disks: discoDisks)
            let q = try qemu("layout", drives: qemuDrives)
            expectSameRun(d, q)
        }
        let slotZero = try disco("layout", disks: [a + ",slot=0"])
        #expect(slotZero.output.contains("blk: slot 0 id 2 capacity 4096"), "\(slotZero.output)")
    }

    @Test func badDisksAreRefusedWithAClearError() throws {
        try requireTools()
        let dir = try Scratch()
        defer { dir.remove() }
        try makeBase(dir.path("a.raw"))
        let a = dir.path("a.raw")
        for (disks, message) in [([a + ",slot=9"], "slot 9 does not exist"),
                                 ([a + ",slot=1", a + ",slot=1"], "both want virtio slot 1"),
                                 ([a + ",bus=3"], "unknown option 'bus'")] {
            let r = try disco("layout", disks: disks)
            #expect(r.status == 2 && r.errorOutput.contains(message), "\(disks): \(r.errorOutput)")
        }
        // A truncated overlay is refused before the guest starts.
        try tool(Self.qemuImg, ["create", "-q", "-f", "qcow2", "-b", "a.raw", "-F", "raw", dir.path("t.qcow2")])
        let bytes = try Data(contentsOf: dir.url.appendingPathComponent("t.qcow2"))
        try bytes.prefix(100).write(to: dir.url.appendingPathComponent("t.qcow2"))
        let truncated = try disco("layout", disks: [dir.path("t.qcow2")])
        #expect(truncated.status == 2 && truncated.errorOutput.contains("header truncated: the file has 100 bytes"), "\(truncated.errorOutput)")
        // A corrupt L2 entry fails the guest's request (and says why on stderr), nothing more.
        try tool(Self.qemuImg, ["create", "-q", "-f", "qcow2", "-b", "a.raw", "-F", "raw", dir.path("c.qcow2")])
        try tool(Self.qemuImg, ["convert", "-O", "qcow2", dir.path("a.raw"), dir.path("full.qcow2")])
        var full = try Data(contentsOf: dir.url.appendingPathComponent("full.qcow2"))
        let l1 = full[40..<48].reduce(0) { $0 << 8 | Int($1) }
        let l2 = full[l1..<(l1 + 8)].reduce(0) { $0 << 8 | Int($1) } & 0x00ff_ffff_ffff_fe00
        full[l2] |= 0x40  // the compressed bit of guest cluster 0's entry
        try full.write(to: dir.url.appendingPathComponent("full.qcow2"))
        let compressed = try disco("write 1 4", disks: [dir.path("full.qcow2") + ",slot=0"])
        #expect(compressed.status != 0 && compressed.errorOutput.contains("compressed clusters are not supported"),
                "\(compressed.output) \(compressed.errorOutput)")
    }
}
