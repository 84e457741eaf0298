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

    struct Figures {
        var guestPages: Int
        var machineFrames: Int
        var cacheFrames: Int
        var copies: Int
        var output: String
        var seconds: Double
        var scanned = 0
        var merged = 0
        var scanNanos = 0
    }

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
        // The base image: pages that differ from each other (so no two are alike by chance).
        let base = root + "/base.raw"
        var bytes = [UInt8](repeating: 0, count: (pages + 16) * 4096)
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        for i in stride(from: 0, to: bytes.count, by: 8) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            withUnsafeBytes(of: x.littleEndian) { for j in 0..<8 { bytes[i + j] = $0[j] } }
        }
        FileManager.default.createFile(atPath: base, contents: Data(bytes))
        let memory = 16 << 20
        setvbuf(stdout, nil, _IOLBF, 0)
        print("== global buffer cache: VMs of \(memory >> 20) MiB from one base image; each reads \(pages) pages, writes \(writes) of them, fills \(`private`) of its own ==")
        print("VMs  guest pages (V)  machine frames (M)  cache frames  copies on write  V/M    no cache: M   V/M")
        var output: String?
        for n in vms {
            let shared = try measure(n, cacheBytes: cacheBytes, root: root + "/cache-\(n)", base: base, elf: elf)
            let baseline = noBaseline ? nil : try measure(n, cacheBytes: 0, root: root + "/nocache-\(n)", base: base, elf: elf)
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
                let c = try measure(n, cacheBytes: cacheBytes, root: root + "/identical-\(n)", base: base, elf: elf,
                                    nodeArguments: ["--share-identical-pages"])
                print(String(format: "     identical pages merged too: M %ld (V/M %4.2fx); %ld pages merged, %ld hashes, %.1f µs of scanning a hash, %.1f ms of scanning in %.1f s",
                             c.machineFrames, Double(c.guestPages) / Double(max(1, c.machineFrames)), c.merged, c.scanned,
                             Double(c.scanNanos) / Double(max(1, c.scanned)) / 1e3, Double(c.scanNanos) / 1e6, c.seconds))
            }
        }
        print("every VM printed:")
        print(output ?? "", terminator: "")
    }

    /// Boots `n` VMs on a fresh one-node cluster and reads the node's figures once every VM is done.
    private func measure(_ n: Int, cacheBytes: UInt64, root: String, base: String, elf: String,
                         nodeArguments: [String] = []) throws -> Figures {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let started = Date()
        let cluster = try LocalCluster.start(nodes: 1, cpus: n, memoryBytes: UInt64(n) * (16 << 20) + 2 * cacheBytes + (16 << 20),
                                             directory: root + "/cluster", nodeArguments: nodeArguments,
                                             coordinatorArguments: ["--buffer-cache", cacheBytes == 0 ? "0" : "\(cacheBytes >> 10)K"])
        defer { cluster.stop() }
        let client = try cluster.connectedClient(label: "disco.bench")
        defer { client.close() }
        var ids: [UInt32] = []
        for i in 0..<n {
            let overlay = root + "/vm\(i).qcow2"
            try QCow2Image.create(path: overlay, options: .init(backing: base, backingFormat: .raw))
            let spec = "name: bc\(i)\nvcpus: 1\nmemory: 16M\nbios: none\nkernel: \(elf)\nbootargs: hold \(pages) \(writes) \(`private`)\ndisks: [\(overlay)]\n"
            let (ok, id, body) = try client.requestWithVM(.create(spec: spec))
            guard ok, let id else { throw BenchError("the cluster refused VM \(i): \(body)") }
            ids.append(id)
        }
        // Every VM done (its console log says so), none failed.
        let consoles = root + "/cluster/consoles"
        let deadline = Date().addingTimeInterval(180)
        var outputs: [String] = []
        while true {
            outputs = ids.enumerated().map { i, id in
                (try? String(contentsOfFile: consoles + "/vm-\(id)-bc\(i).log", encoding: .utf8)) ?? ""
            }
            if outputs.allSatisfy({ $0.contains("bcache: done\n") }) { break }
            if let bad = outputs.first(where: { $0.contains("bcache: ") && !$0.contains("checksum") }) { throw BenchError("a VM failed: \(bad)") }
            if let died = cluster.firstExited() { throw BenchError(died) }
            let (_, list) = try client.request(.list)
            if list.contains("state: failed") || list.contains("state: stopped") { throw BenchError("a VM ended before it was measured:\n\(list)\n\(outputs.joined(separator: "---\n"))") }
            guard Date() < deadline else { throw BenchError("the VMs were not done within 180 s (logs in \(root))") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        guard Set(outputs).count == 1 else { throw BenchError("the VMs printed different things:\n\(outputs.joined(separator: "---\n"))") }
        // The node reports every 4 heartbeats (2 s): the figures count once they stayed
        // the same for longer than two reports after the VMs were done.
        var last: [String: Int] = [:]
        var since = Date()
        var figures: [String: Int] = [:]
        while true {
            let (_, stats) = try client.request(.stats)
            figures = [:]
            if let row = stats.split(separator: "\n").first(where: { $0.contains("{node: 0,") }) {
                for field in row.drop(while: { $0 != "{" }).dropFirst().dropLast().split(separator: ",") {
                    let kv = field.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if kv.count == 2, kv[0] == "guest_pages_mapped" || kv[0].hasPrefix("machine_frames") || kv[0].hasPrefix("buffer_cache")
                        || kv[0] == "identical_pages_merged",
                       let v = Int(kv[1]) { figures[kv[0]] = v }
                }
            }
            if figures != last {
                last = figures
                since = Date()
            } else if let pages = figures["guest_pages_mapped"], pages > 0, Date().timeIntervalSince(since) > 4.5 {
                break
            }
            guard Date() < deadline else { throw BenchError("the node's figures did not settle within 180 s: \(stats.split(separator: "\n").joined(separator: " | "))") }
            Thread.sleep(forTimeInterval: 0.5)
        }
        // The scan's cost: its time counter changes on every turn, so it is read apart.
        var scanNanos = 0, scanned = 0
        if let (_, stats) = try? client.request(.stats), let row = stats.split(separator: "\n").first(where: { $0.contains("{node: 0,") }) {
            func value(_ key: String) -> Int {
                guard let field = row.split(separator: ",").first(where: { $0.contains(" \(key):") }) else { return 0 }
                return Int(field.split(separator: ":").last!.trimmingCharacters(in: .whitespaces.union(["}"]))) ?? 0
            }
            scanNanos = value("identical_scan_ns")
            scanned = value("identical_pages_scanned")
        }
        for id in ids { _ = try? client.request(.stop(vm: id)) }
        return Figures(guestPages: figures["guest_pages_mapped"] ?? 0, machineFrames: figures["machine_frames_used"] ?? 0,
                       cacheFrames: figures["buffer_cache_frames_used"] ?? 0, copies: figures["buffer_cache_copies_on_write"] ?? 0,
                       output: outputs[0], seconds: Date().timeIntervalSince(started),
                       scanned: scanned, merged: figures["identical_pages_merged"] ?? 0,
                       scanNanos: scanNanos)
    }
}
