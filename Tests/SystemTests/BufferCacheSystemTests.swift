import Foundation
import Testing

/// The global buffer cache on a real cluster (`disco bench sharing`, which starts a
/// one-node cluster, boots the VMs from one base image, each with its own qcow2 overlay,
/// and reads the node's figures from `disco stats`): eight VMs use far less machine
/// memory than eight private copies, and each prints what the same guest prints on QEMU.
@Suite(.serialized) struct BufferCacheSystemTests {
    struct Row { var vms: Int; var guestPages: Int; var machineFrames: Int; var cacheFrames: Int; var copies: Int; var baselineFrames: Int }

    /// The table rows of `disco bench sharing`.
    func rows(_ text: String) -> [Row] {
        text.split(separator: "\n").compactMap { line in
            let w = line.split(separator: " ").map(String.init)
            guard w.count >= 8, let n = Int(w[0]), let v = Int(w[1]), let m = Int(w[2]), let c = Int(w[3]), let k = Int(w[4]),
                  let b = Int(w[6]) else { return nil }
            return Row(vms: n, guestPages: v, machineFrames: m, cacheFrames: c, copies: k, baselineFrames: b)
        }
    }

    @Test(.timeLimit(.minutes(6))) func eightVMsFromOneBaseImageShareItsPages() throws {
        let dir = NSTemporaryDirectory() + "disco-bcache-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pages = 256, writes = 8, own = 32
        let r = try runProcess(Paths.disco, ["bench", "sharing", "--vms", "1", "--vms", "8", "--pages", "\(pages)",
                                             "--writes", "\(writes)", "--private", "\(own)", "--cache", "8M",
                                             "--guests", Paths.guests.path, "--dir", dir], timeout: 300)
        #expect(r.status == 0, "disco bench sharing exited \(r.status):\n\(r.output)\(r.errorOutput)")
        let table = rows(r.output)
        guard let one = table.first(where: { $0.vms == 1 }), let eight = table.first(where: { $0.vms == 8 }) else {
            Issue.record("no rows for 1 and 8 VMs:\n\(r.output)\(r.errorOutput)"); return
        }
        // Each VM uses its disk pages, its own pages and a few of code, stack and rings.
        #expect(eight.guestPages >= 8 * (pages + own) && eight.guestPages <= 8 * (pages + own + 64), "\(eight)")
        // Without the cache every used page has its own frame: eight private copies.
        #expect(eight.baselineFrames == eight.guestPages, "\(eight)")
        #expect(one.baselineFrames == one.guestPages, "\(one)")
        // With it: one copy for all eight of each disk page they map: the ones none
        // wrote (every VM writes the same pages, whose frames then have no sharer left
        // and are freed), and page 0, read again into a page of each VM's own. What each
        // wrote is a private copy.
        let sharedPerVM = pages - writes + 1
        #expect(eight.cacheFrames == sharedPerVM, "\(eight)")
        #expect(eight.copies == 8 * writes, "\(eight)")
        #expect(eight.machineFrames == eight.guestPages - 8 * sharedPerVM + sharedPerVM, "\(eight)")
        #expect(one.machineFrames == one.guestPages, "\(one)")
        #expect(Double(eight.guestPages) / Double(eight.machineFrames) >= 2.5, "\(eight)")
        // Every VM printed what QEMU prints for the same guest and disk.
        let q = try runOnQEMU(Paths.guest("bcache.elf"), harts: 1, memory: "16M",
                              extra: ["-global", "virtio-mmio.force-legacy=false", "-append", "run \(pages) \(writes) \(own)",
                                      "-drive", "file=\(dir)/base.raw,if=none,format=raw,id=d0,readonly=on",
                                      "-device", "virtio-blk-device,drive=d0"], timeout: 60)
        #expect(q.status == 0, "qemu: \(q.output)\(q.errorOutput)")
        let printed = r.output.components(separatedBy: "every VM printed:\n").last ?? ""
        #expect(printed.contains("bcache: done"), "\(r.output)")
        #expect(comparable(q.output).hasSuffix(printed) || comparable(q.output) == printed,
                "QEMU printed:\n\(q.output)\ndisco's VMs printed:\n\(printed)")
    }

    /// Beyond Disco: with the nodes merging identical pages too, two identical VMs end up
    /// in fewer frames than with the buffer cache alone, and print the same.
    @Test(.timeLimit(.minutes(5))) func identicalPagesMergeToo() throws {
        let dir = NSTemporaryDirectory() + "disco-identical-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runProcess(Paths.disco, ["bench", "sharing", "--vms", "2", "--pages", "64", "--writes", "4", "--private", "32",
                                             "--cache", "4M", "--no-baseline", "--identical", "--guests", Paths.guests.path,
                                             "--dir", dir], timeout: 240)
        #expect(r.status == 0, "disco bench sharing exited \(r.status):\n\(r.output)\(r.errorOutput)")
        let words = r.output.split(separator: "\n").first { $0.hasPrefix("  2 ") }?.split(separator: " ") ?? []
        let merged = r.output.split(separator: "\n").first { $0.contains("identical pages merged too: M ") }?
            .components(separatedBy: "M ").dropFirst().first?.split(separator: " ").first.flatMap { Int($0) }
        guard words.count >= 3, let m = Int(words[2]), let v = Int(words[1]), let merged else {
            Issue.record("no figures:\n\(r.output)"); return
        }
        // Everything of the two identical VMs is identical: one copy of each page is left.
        #expect(merged < m, "\(r.output)")
        #expect(merged <= v / 2 + 4, "\(r.output)")
    }
}
