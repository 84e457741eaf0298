import ArgumentParser
import Coordinator
import Foundation
import Platform
import Cluster

struct BenchSharing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sharing",
        abstract: "Measure the global buffer cache: machine memory vs guest memory of 1, 2, 4 and 8 VMs from one base image (Disco's Fig. 6).",
        discussion: """
            For each VM count, starts a local cluster of one node and boots that many VMs
            of guests/build/bcache.elf, each with its own qcow2 overlay over one raw base
            image: each reads --pages pages of the disk into whole-page buffers, writes
            --writes of them, fills --private pages of its own, and holds. Once every VM
            said "bcache: done", the node's figures from `disco stats` are read: the
            guest pages the VMs used (V) and the machine frames that hold them (M:
            their own frames of pages mapping no cached page, and the cache's frames).
            Run once with the buffer cache and once without (the baseline: private
            copies), with the same guests; every VM must print what QEMU prints.
              swift build -c release && .build/release/disco bench sharing
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: "VM counts to run.")
    var vms: [Int] = [1, 2, 4, 8]

    @Option(help: "Pages of the base image each VM reads (1-1024).")
    var pages: Int = 512

    @Option(help: "Pages of those each VM writes to.")
    var writes: Int = 16

    @Option(help: "Pages of its own each VM fills (0-512).")
    var `private`: Int = 64

    @Option(help: ArgumentHelp("The buffer cache of the node.", valueName: "size"))
    var cache: String = "16M"

    @Flag(help: "Skip the runs without a buffer cache.")
    var noBaseline = false

    @Flag(help: "Also run with the nodes merging identical pages (disco node --share-identical-pages), and report what the scan cost.")
    var identical = false

    @Option(help: ArgumentHelp("Keep the clusters' logs and the VMs' consoles here (default: a temporary directory, removed).", valueName: "path"))
    var dir: String?

    mutating func run() throws {
        let elf = URL(fileURLWithPath: guests + "/bcache.elf").standardizedFileURL.path
        guard FileManager.default.isReadableFile(atPath: elf) else { fail("guest '\(elf)' not found (build the guests with: make -C guests)") }
        guard !vms.isEmpty, vms.allSatisfy({ (1...32).contains($0) }) else { fail("--vms: counts from 1 to 32") }
        guard (1...1024).contains(pages), (0...pages).contains(writes), (0...512).contains(`private`) else {
            fail("--pages 1...1024, --writes 0...pages, --private 0...512")
        }
        let cacheBytes: UInt64
        do { cacheBytes = try MemorySize.parse(cache) } catch { fail("--cache: \(error)") }
        let root = dir ?? NSTemporaryDirectory() + "disco-bench-sharing-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        let footprint = SharingFootprint(elf: elf, pages: pages, writes: writes, privatePages: `private`)
        let base = try footprint.makeBase(in: root)
        let memory = 16 << 20
        setvbuf(stdout, nil, _IOLBF, 0)
        print("== global buffer cache: VMs of \(memory >> 20) MiB from one base image; each reads \(pages) pages, writes \(writes) of them, fills \(`private`) of its own ==")
        print("VMs  guest pages (V)  machine frames (M)  cache frames  copies on write  V/M    no cache: M   V/M")
        var output: String?
        for n in vms {
            let shared = try footprint.measure(vms: n, cacheBytes: cacheBytes, root: root + "/cache-\(n)", base: base)
            let baseline = noBaseline ? nil : try footprint.measure(vms: n, cacheBytes: 0, root: root + "/nocache-\(n)", base: base)
            for f in [shared] + (baseline.map { [$0] } ?? []) {
                if let output, output != f.output { fail("the VMs printed different things:\n\(output)\n---\n\(f.output)") }
                output = f.output
            }
            var line = String(format: "%3ld  %15ld  %18ld  %12ld  %15ld  %4.2fx", n, shared.guestPages, shared.machineFrames,
                              shared.cacheFrames, shared.copies, Double(shared.guestPages) / Double(max(1, shared.machineFrames)))
            if let b = baseline {
                line += String(format: "  %11ld  %4.2fx", b.machineFrames, Double(b.guestPages) / Double(max(1, b.machineFrames)))
            }
            print(line)
            if identical {
                let c = try footprint.measure(vms: n, cacheBytes: cacheBytes, root: root + "/identical-\(n)", base: base,
                                              nodeArguments: ["--share-identical-pages"])
                print(String(format: "     identical pages merged too: M %ld (V/M %4.2fx); %ld pages merged, %ld hashes, %.1f µs of scanning a hash, %.1f ms of scanning in %.1f s",
                             c.machineFrames, Double(c.guestPages) / Double(max(1, c.machineFrames)), c.merged, c.scanned,
                             Double(c.scanNanos) / Double(max(1, c.scanned)) / 1e3, Double(c.scanNanos) / 1e6, c.seconds))
            }
        }
        print("every VM printed:")
        print(output ?? "", terminator: "")
    }
}
