import ArgumentParser
import Foundation

struct BenchNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net",
        abstract: "Measure the virtual Ethernet: VM-to-VM round trips and frames per second, on one node and across two.",
        discussion: """
            Runs guests/build/net.elf in two VMs on the switch (`disco run --nodes N
            --spec ... --spec ...`): the pinger sends --pings pings of 0-1490 bytes,
            stop-and-wait, and times each round trip with the CLINT's mtime; then it sends
            --stream full-size frames (1514 bytes) back to back and the other VM counts
            what arrived. Once with both VMs on one node (frames copied between their
            memories by the node), once with one VM on each of two nodes (frames over the
            transport as ethernetFrame messages, Unix sockets). Then jumbo frames of four
            whole pages (MTU 16384, net.elf's pages and sink roles, --page-frames of
            them, acked in batches of 4): on one node into page-aligned buffers (their
            three data pages move by remapping), on one node into buffers 64 bytes off a
            page boundary (the same frames copied: the baseline), and across two nodes.
            Build for release first:
              swift build -c release && .build/release/disco bench net
            """
    )

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "path"))
    var guests: String = "guests/build"

    @Option(help: "Pings per run.")
    var pings: Int = 1000

    @Option(help: "Frames streamed per run.")
    var stream: Int = 3000

    @Option(help: "Page frames (16 KiB jumbo frames) per run; 0 skips them.")
    var pageFrames: Int = 400

    @Option(help: "Runs of each placement; the median is reported.")
    var repeats: Int = 3

    mutating func run() throws {
        let net = guests + "/net.elf"
        guard FileManager.default.isReadableFile(atPath: net) else { fail("guest '\(net)' not found (build the guests with: make -C guests)") }
        guard repeats >= 1, (1...4096).contains(pings), stream >= 0, (0...65535).contains(pageFrames) else {
            fail("--repeats ≥ 1, --pings 1...4096, --stream ≥ 0, --page-frames 0...65535")
        }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let dir = NSTemporaryDirectory() + "disco-bench-net-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let absolute = URL(fileURLWithPath: net).standardizedFileURL.path
        func spec(_ name: String, _ mac: String, _ args: String, mtu: Int? = nil) throws -> String {
            let path = dir + "/\(name).yaml"
            let nic = "{switch: bench, mac: \"\(mac)\"\(mtu.map { ", mtu: \($0)" } ?? "")}"
            try "name: \(name)\nmemory: 64M\nbios: none\nkernel: \(absolute)\nbootargs: \(args)\nnics: [\(nic)]\n"
                .write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let ping = try spec("ping", "52:54:00:00:00:01", "ping 1 \(pings) \(stream)")
        let pong = try spec("pong", "52:54:00:00:00:02", "pong")
        print("== virtual Ethernet: \(pings) pings (0-1490 bytes), then \(stream) frames of 1514 bytes streamed ==")
        for (label, nodes) in [("one node   ", 1), ("two nodes  ", 2)] {
            var medians: [Double] = [], p99s: [Double] = [], rates: [Double] = [], streams: [Double] = [], lost: [Double] = []
            for _ in 0..<repeats {
                let out = try runDisco(me, ["run", "--nodes", "\(nodes)", "--spec", ping, "--spec", pong])
                guard let rtt = out.split(separator: "\n").first(where: { $0.contains("net: rtt median us") }) else {
                    fail("net.elf printed no round trips:\n\(out)")
                }
                let f = rtt.split(separator: " ")
                func after(_ key: String, in words: [Substring]) -> Double {
                    words.firstIndex(of: Substring(key)).flatMap { $0 + 1 < words.count ? Double(words[$0 + 1]) : nil } ?? .nan
                }
                medians.append(after("us", in: f))
                p99s.append(f.firstIndex(of: "p99").flatMap { $0 + 2 < f.count ? Double(f[$0 + 2]) : nil } ?? .nan)
                rates.append(after("frames/s", in: f))
                if stream > 0, let s = out.split(separator: "\n").first(where: { $0.contains("instret: stream sent") }) {
                    let w = s.split(separator: " ")
                    streams.append(after("frames/s", in: w))
                    lost.append(Double(stream) - after("received", in: w))
                }
            }
            print(String(format: "%@ round trip median %7.1f µs  p99 %7.1f µs  ping-pong %6.0f frames/s", label,
                         median(medians), median(p99s), median(rates)))
            if !streams.isEmpty {
                print(String(format: "%@ stream %8.0f frames/s  (%.1f Mbit/s of 1514-byte frames; %.0f of %d dropped)", label,
                             median(streams), median(streams) * 1514 * 8 / 1e6, median(lost), stream))
            }
        }
        guard pageFrames > 0 else { return }
        print("== \(pageFrames) jumbo frames of 4 pages (16384 bytes: a header page and 3 data pages), acked every 4 ==")
        let sender = try spec("pages", "52:54:00:00:00:01", "pages 1 \(pageFrames) 4", mtu: 16384)
        let aligned = try spec("sink", "52:54:00:00:00:02", "sink 4", mtu: 16384)
        let offset = try spec("sinkcopy", "52:54:00:00:00:02", "sink 4 copy", mtu: 16384)
        var oneNode: [String: Double] = [:]
        for (label, nodes, sink) in [("one node, remapped ", 1, aligned), ("one node, copied   ", 1, offset), ("two nodes          ", 2, aligned)] {
            var rates: [Double] = []
            for _ in 0..<repeats {
                let out = try runDisco(me, ["run", "--nodes", "\(nodes)", "--spec", sender, "--spec", sink])
                guard let line = out.split(separator: "\n").first(where: { $0.contains("instret: pages frames/s") }),
                      let rate = line.split(separator: " ").last.flatMap({ Double($0) }) else {
                    fail("net.elf printed no page-frame rate:\n\(out.suffix(1500))")
                }
                rates.append(rate)
            }
            let m = median(rates)
            if nodes == 1 { oneNode[sink] = m }
            print(String(format: "%@ %6.0f frames/s  (%.1f MB/s of data pages)", label, m, m * 3 * 4096 / 1e6))
        }
        if let r = oneNode[aligned], let c = oneNode[offset], c > 0 {
            print(String(format: "remapping on one node: %.2fx the frames per second of copying them", r / c))
        }
    }

    private func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    private func runDisco(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.environment = ParentWatch.childEnvironment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { fail("disco \(args.joined(separator: " ")) exited with \(p.terminationStatus):\n\(text.suffix(1500))") }
        return text
    }
}
