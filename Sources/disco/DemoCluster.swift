import Coordinator
import Foundation
import Logging
import Platform
import Protocol

/// The memory figures of each node in a `disco stats` text: guest pages mapped, machine
/// frames used and the buffer cache's counters, by node id.
func nodeMemoryFigures(_ stats: String) -> [Int: [String: Int]] {
    var nodes: [Int: [String: Int]] = [:]
    for row in stats.split(separator: "\n") where row.contains("{node: ") {
        var figures: [String: Int] = [:]
        var node: Int?
        for field in row.drop(while: { $0 != "{" }).dropFirst().dropLast().split(separator: ",") {
            let kv = field.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let v = Int(kv[1]) else { continue }
            if kv[0] == "node" { node = v }
            if kv[0] == "guest_pages_mapped" || kv[0].hasPrefix("machine_frames") || kv[0].hasPrefix("buffer_cache") { figures[kv[0]] = v }
        }
        if let node { nodes[node] = figures }
    }
    return nodes
}

/// `disco demo --vms N`: Disco itself. A local cluster of node processes with a buffer
/// cache boots N VMs of Debian's OpenSBI + U-Boot side by side, each with its own qcow2
/// overlay over one base disk and a NIC on one virtual switch. The demo types at each
/// U-Boot: it reads 4 MiB of the disk (`virtio read`: whole pages, mapped from the
/// node's buffer cache), then VMs ping each other in pairs over the switch. It prints
/// the VMs' consoles prefixed with their names, the memory that sharing saved per node
/// (guest pages against machine frames), and how to attach to each console; the
/// cluster stays up until Ctrl-C.
func runDemoCluster(vms count: Int, nodes: Int, openSBI: String, uBoot: String) -> Int32 {
    setvbuf(stdout, nil, _IOLBF, 0)
    var template = Array((NSTemporaryDirectory() + "disco-demo-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { fail("cannot create a directory in /tmp") }
    let dir = String(cString: made)
    // The base disk: 4 MiB, every sector saying what it is.
    var base = [UInt8](repeating: 0, count: 4 << 20)
    for sector in 0..<(base.count / 512) {
        let text = Array("Disco demo base disk, sector \(sector)\n".utf8)
        for (i, b) in text.enumerated() { base[sector * 512 + i] = b }
    }
    FileManager.default.createFile(atPath: dir + "/base.raw", contents: Data(base))
    let perNode = (count + nodes - 1) / nodes
    let cluster: LocalCluster
    do {
        cluster = try LocalCluster.start(nodes: nodes, cpus: perNode, memoryBytes: UInt64(perNode) * (128 << 20) + (96 << 20),
                                         directory: dir + "/cluster", heartbeatMillis: 1000,  // busy U-Boot VMs on a loaded host
                                         coordinatorArguments: ["--buffer-cache", "32M"],
                                         progress: { print("disco: \($0)") })
    } catch {
        fail("cannot start the local cluster: \(error)")
    }
    var logger = Logger(label: "disco.demo")
    logger.logLevel = .error
    let client: ClusterClient
    var names: [UInt32: String] = [:]
    var order: [UInt32] = []
    do {
        client = try ClusterClient(coordinator: cluster.coordinatorEndpoint, secret: cluster.secret, logger: logger)
        try client.waitConnected(timeout: 10)
        for i in 0..<count {
            let overlay = dir + "/uboot-\(i + 1).qcow2"
            try QCow2Image.create(path: overlay, options: .init(backing: dir + "/base.raw", backingFormat: .raw))
            let spec = """
                name: uboot-\(i + 1)
                vcpus: 1
                memory: 128M
                bios: \(openSBI)
                kernel: \(uBoot)
                disks: [\(overlay)]
                nics: [{switch: demo, mac: "52:54:00:00:00:\(String(format: "%02x", i + 1))"}]

                """
            let (ok, id, body) = try client.requestWithVM(.create(spec: spec))
            guard ok, let id else { throw LocalCluster.LaunchError(description: "the cluster refused VM uboot-\(i + 1): \(body)") }
            names[id] = "uboot-\(i + 1)"
            order.append(id)
        }
        if let (_, list) = try? client.request(.list) {
            for row in list.split(separator: "\n") { print("disco: \(row.drop { $0 == "-" || $0 == " " })") }
        }
    } catch {
        cluster.stop()
        fail("\(error) (logs in \(dir))")
    }
    // What the demo types at each U-Boot, one command per prompt; then the pairs ping.
    var scripts: [UInt32: [String]] = [:]
    for (i, id) in order.enumerated() {
        scripts[id] = ["virtio scan", "virtio read 0x84000000 0 0x2000",
                       "setenv ipaddr 10.0.0.\(i + 1)", "setenv netmask 255.255.255.0"]
    }
    var pings: [UInt32: String] = [:]
    for (i, id) in order.enumerated() where count > 1 {
        let peer = i % 2 == 0 ? (i + 1 < count ? i + 1 : i - 1) : i - 1
        pings[id] = "ping 10.0.0.\(peer + 1)"
    }
    var text: [UInt32: String] = [:]
    var line: [UInt32: [UInt8]] = [:]
    var stopped: Set<UInt32> = []
    var pinged: Set<UInt32> = []
    var autobootStopped: Set<UInt32> = []
    let quit = LockedFlag()
    SignalStopper.install { quit.set(); client.wake() }
    func type(_ id: UInt32, _ command: String) {
        client.send(.console(vm: id, bytes: Array((command + "\r").utf8)))
        text[id] = ""
    }
    func atPrompt(_ id: UInt32) -> Bool { (text[id] ?? "").hasSuffix("=> ") }
    var reported = false
    let deadline = Date().addingTimeInterval(300)
    while !quit.isSet {
        let (events, failure) = clusterEvents(client, cluster)
        if let failure {
            cluster.stop()
            fail(failure)
        }
        for m in events {
            switch m {
            case .console(let id, let bytes):
                text[id, default: ""] += String(decoding: bytes, as: UTF8.self)
                var buffer = line[id, default: []] + bytes
                while let nl = buffer.firstIndex(of: 10) {
                    let l = String(decoding: buffer[..<nl], as: UTF8.self).trimmingCharacters(in: .newlines)
                    print("[\(names[id] ?? "vm\(id)")] \(l)")
                    buffer.removeSubrange(...nl)
                }
                line[id] = buffer
            case .vmStatus(let id, .stopped, _, let detail), .vmStatus(let id, .failed, _, let detail):
                print("disco: \(names[id] ?? "vm\(id)") ended: \(detail)")
                stopped.insert(id)
            default:
                break
            }
        }
        for id in order where !stopped.contains(id) {
            if !autobootStopped.contains(id), (text[id] ?? "").contains("Hit any key to stop autoboot") {
                autobootStopped.insert(id)
                client.send(.console(vm: id, bytes: Array(" ".utf8)))
                text[id] = ""
            } else if autobootStopped.contains(id), atPrompt(id), var script = scripts[id], !script.isEmpty {
                type(id, script.removeFirst())
                scripts[id] = script
            }
        }
        // Every VM through its script and at its prompt: the pairs ping each other at once
        // (U-Boot answers a ping only while it runs a network command itself).
        let ready = order.allSatisfy { scripts[$0]?.isEmpty == true && atPrompt($0) }
        if ready, pinged.isEmpty, !pings.isEmpty {
            for id in order { if let p = pings[id] { type(id, p); pinged.insert(id) } }
        } else if ready, !reported {
            reported = true
            // The nodes report every 4 heartbeats (4 s here): wait for a report made after this.
            var figures: [Int: [String: Int]] = [:]
            let started = Date()
            while Date().timeIntervalSince(started) < 20 {
                Thread.sleep(forTimeInterval: 1)
                guard let (_, stats) = try? client.request(.stats) else { continue }
                figures = nodeMemoryFigures(stats)
                if Date().timeIntervalSince(started) > 9, figures.count == nodes,
                   figures.values.allSatisfy({ ($0["guest_pages_mapped"] ?? 0) > 0 }) { break }
            }
            if !figures.isEmpty {
                print("")
                print("== memory: what the global buffer cache saved ==")
                var totalV = 0, totalM = 0
                for (node, f) in figures.sorted(by: { $0.key < $1.key }) {
                    let v = f["guest_pages_mapped"] ?? 0, m = f["machine_frames_used"] ?? 0
                    totalV += v
                    totalM += m
                    print(String(format: "node %ld: guest pages %ld (%.1f MiB), machine frames %ld (%.1f MiB); %ld cached disk pages mapped %ld times",
                                 node, v, Double(v) / 256, m, Double(m) / 256, f["buffer_cache_frames_used"] ?? 0, f["buffer_cache_mappings"] ?? 0))
                }
                print(String(format: "all: %.1f MiB of guest memory in %.1f MiB of machine memory: %.1f MiB saved", Double(totalV) / 256,
                             Double(totalM) / 256, Double(totalV - totalM) / 256))
            }
            print("")
            print("The VMs run on. Attach to a console from another terminal (Ctrl-A d detaches):")
            print("  export DISCO_SECRET=\(cluster.secretText)")
            for id in order { print("  disco console \(names[id]!) --coordinator \(cluster.coordinatorEndpoint)") }
            print("Consoles are logged in \(dir)/cluster/consoles. Ctrl-C stops everything.")
        }
        if !reported, Date() > deadline {
            print("disco: the VMs did not get through the demo's commands within 300 s (logs in \(dir))")
            for id in order { _ = try? client.request(.stop(vm: id), timeout: 5) }
            client.close()
            cluster.stop()
            return 1
        }
        if stopped.count == order.count { break }
    }
    for id in order where !stopped.contains(id) { _ = try? client.request(.stop(vm: id), timeout: 5) }
    client.close()
    cluster.stop()
    try? FileManager.default.removeItem(atPath: dir)
    return 0
}
