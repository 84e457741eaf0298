import Coordinator
import Foundation
import Platform

/// Disco's Fig. 6 measurement, shared by `disco bench sharing` and `disco experiment`
/// (engine `sharing`): VMs of guests/build/bcache.elf, each with its own qcow2 overlay
/// over one raw base image, on a fresh local cluster; once every VM said
/// "bcache: done", the nodes' figures: the guest pages the VMs used (V) and the machine
/// frames that hold them (M), summed over the nodes (each node has its own cache).
struct SharingFootprint {
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

    /// The line of a console log that says bcache.elf failed (it says why and stops),
    /// if any. Only whole lines count: a log is read while the guest writes it, and
    /// "bcache: " alone is the start of every line it prints.
    static func failure(_ log: String) -> Substring? {
        log.split(separator: "\n", omittingEmptySubsequences: false).dropLast().first {
            $0.hasPrefix("bcache: ") && !$0.contains("checksum") && $0 != "bcache: done" && $0 != "bcache: page 0 read again matches"
        }
    }

    /// The guest: bcache.elf.
    var elf: String
    /// Pages of the base image each VM reads, writes and fills of its own.
    var pages: Int
    var writes: Int
    var privatePages: Int
    var memoryBytes: UInt64 = 16 << 20
    var timeout: TimeInterval = 180

    /// The base image in `directory`: `pages` + 16 pages that differ from each other (so
    /// no two are alike by chance and only the buffer cache shares them).
    func makeBase(in directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = directory + "/base.raw"
        var bytes = [UInt8](repeating: 0, count: (pages + 16) * 4096)
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        for i in stride(from: 0, to: bytes.count, by: 8) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            withUnsafeBytes(of: x.littleEndian) { for j in 0..<8 { bytes[i + j] = $0[j] } }
        }
        guard FileManager.default.createFile(atPath: base, contents: Data(bytes)) else { throw BenchError("cannot write \(base)") }
        return base
    }

    /// Boots `n` VMs on a fresh cluster of `nodes` nodes (the VMs packed a VCPU a CPU, so
    /// each VM is on one node) and reads the nodes' figures once every VM is done.
    func measure(vms n: Int, nodes: Int = 1, cacheBytes: UInt64, root: String, base: String,
                 nodeArguments: [String] = []) throws -> Figures {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let started = Date()
        let perNode = (n + nodes - 1) / nodes
        let cluster = try LocalCluster.start(nodes: nodes, cpus: perNode,
                                             memoryBytes: UInt64(perNode) * memoryBytes + 2 * cacheBytes + (16 << 20),
                                             directory: root + "/cluster", nodeArguments: nodeArguments,
                                             coordinatorArguments: ["--buffer-cache", cacheBytes == 0 ? "0" : "\(cacheBytes >> 10)K"])
        defer { cluster.stop() }
        let client = try cluster.connectedClient(label: "disco.sharing")
        defer { client.close() }
        var ids: [UInt32] = []
        for i in 0..<n {
            let overlay = root + "/vm\(i).qcow2"
            try QCow2Image.create(path: overlay, options: .init(backing: base, backingFormat: .raw))
            let spec = "name: bc\(i)\nvcpus: 1\nmemory: \(memoryBytes >> 10)K\nbios: none\nkernel: \(elf)\n"
                + "bootargs: hold \(pages) \(writes) \(privatePages)\ndisks: [\(overlay)]\n"
            let (ok, id, body) = try client.requestWithVM(.create(spec: spec))
            guard ok, let id else { throw BenchError("the cluster refused VM \(i): \(body)") }
            ids.append(id)
        }
        // Every VM done (its console log says so), none failed.
        let consoles = cluster.directory + "/consoles"
        let deadline = Date().addingTimeInterval(timeout)
        var outputs: [String] = []
        while true {
            outputs = ids.enumerated().map { i, id in
                (try? String(contentsOfFile: consoles + "/vm-\(id)-bc\(i).log", encoding: .utf8)) ?? ""
            }
            if outputs.allSatisfy({ $0.contains("bcache: done\n") }) { break }
            if let bad = outputs.lazy.compactMap(Self.failure).first { throw BenchError("a VM failed: \(bad)") }
            if let died = cluster.firstExited() { throw BenchError(died) }
            let (_, list) = try client.request(.list)
            if list.contains("state: failed") || list.contains("state: stopped") {
                throw BenchError("a VM ended before it was measured:\n\(list)\n\(outputs.joined(separator: "---\n"))")
            }
            guard Date() < deadline else { throw BenchError("the VMs were not done within \(Int(timeout)) s (logs in \(root))") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        guard Set(outputs).count == 1 else { throw BenchError("the VMs printed different things:\n\(outputs.joined(separator: "---\n"))") }
        // A node reports every 4 heartbeats (2 s): the figures count once they stayed the same
        // for longer than two reports after the VMs were done.
        var last: [String: Int] = [:]
        var since = Date()
        var figures: [String: Int] = [:]
        var rows: [Substring] = []
        while true {
            let (_, stats) = try client.request(.stats)
            rows = stats.split(separator: "\n").filter { $0.contains("{node: ") }
            figures = [:]
            for row in rows {
                for field in row.drop(while: { $0 != "{" }).dropFirst().dropLast().split(separator: ",") {
                    let kv = field.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if kv.count == 2, kv[0] == "guest_pages_mapped" || kv[0].hasPrefix("machine_frames") || kv[0].hasPrefix("buffer_cache")
                        || kv[0] == "identical_pages_merged",
                       let v = Int(kv[1]) { figures[kv[0], default: 0] += v }
                }
            }
            if figures != last {
                last = figures
                since = Date()
            } else if let pages = figures["guest_pages_mapped"], pages > 0, Date().timeIntervalSince(since) > 4.5 {
                break
            }
            guard Date() < deadline else {
                throw BenchError("the nodes' figures did not settle within \(Int(timeout)) s: \(stats.split(separator: "\n").joined(separator: " | "))")
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        // The scan's cost: its time counter changes on every turn, so it is read apart.
        var scanNanos = 0, scanned = 0
        if let (_, stats) = try? client.request(.stats) {
            for row in stats.split(separator: "\n") where row.contains("{node: ") {
                func value(_ key: String) -> Int {
                    guard let field = row.split(separator: ",").first(where: { $0.contains(" \(key):") }) else { return 0 }
                    return Int(field.split(separator: ":").last!.trimmingCharacters(in: .whitespaces.union(["}"]))) ?? 0
                }
                scanNanos += value("identical_scan_ns")
                scanned += value("identical_pages_scanned")
            }
        }
        for id in ids { _ = try? client.request(.stop(vm: id)) }
        return Figures(guestPages: figures["guest_pages_mapped"] ?? 0, machineFrames: figures["machine_frames_used"] ?? 0,
                       cacheFrames: figures["buffer_cache_frames_used"] ?? 0, copies: figures["buffer_cache_copies_on_write"] ?? 0,
                       output: outputs[0], seconds: Date().timeIntervalSince(started),
                       scanned: scanned, merged: figures["identical_pages_merged"] ?? 0, scanNanos: scanNanos)
    }
}
