import ArgumentParser
import Coordinator
import Foundation
import Yams

/// `disco top`: the cluster at a glance, redrawn every `--interval` seconds from the
/// coordinator's answers to `nodes`, `vm list` and `stats` (the same requests those
/// commands make), with rates from the difference between the nodes' counters reports.
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live view of a running cluster: nodes, VMs and their rates.",
        discussion: """
            Asks the coordinator every --interval seconds and redraws the
            terminal: one row per node (status, CPUs, memory, VMs and VCPUs
            placed there, guest MIPS, remote misses and coherence lines in and
            out per second, heartbeat round trip) and one per VM (state, VCPUs,
            its nodes, the share of its sampled misses that were local, pages
            migrated and replicated, why it ended). Rates come from the nodes'
            counters reports, sent every 4 heartbeats (2 s by default): "-"
            until a node has reported twice. Ctrl-C quits.

            --once prints one view without clearing the screen and exits (for
            scripts); it watches the reports for --interval (at least 3 s) so
            that rates can show.
              DISCO_SECRET=... disco top --coordinator tcp:10.0.0.1:7070
              disco top --once --secret-file s --coordinator unix:/tmp/d/c.sock
            """
    )

    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "seconds"))
    var interval: Double = 1

    @Flag(help: "Print one view and exit, without clearing the screen.")
    var once = false

    @OptionGroup var client: ClientOptions

    mutating func run() throws {
        guard interval >= 0.1 && interval <= 3600 else { fail("--interval must be 0.1...3600 seconds") }
        setvbuf(stdout, nil, _IOFBF, 1 << 16)
        let logger = client.options.logger("disco.top")
        let connection: ClusterClient
        do {
            connection = try ClusterClient(coordinator: parseEndpoint(client.coordinator, "--coordinator"),
                                           secret: client.options.secret(), logger: logger)
            try connection.waitConnected(timeout: 10)
        } catch { fail("\(error)") }
        let quit = LockedFlag()
        SignalStopper.install { quit.set(); connection.wake() }
        var view = TopView(coordinator: client.coordinator)
        if once {
            let deadline = Date().addingTimeInterval(max(3, interval))
            repeat {
                do { try view.sample(connection) } catch { fail("\(error)") }
                if view.hasRates || quit.isSet { break }
                Thread.sleep(forTimeInterval: 0.25)
            } while Date() < deadline
            print(view.render(), terminator: "")
            fflush(stdout)
            connection.close()
            return
        }
        while !quit.isSet {
            do { try view.sample(connection) } catch {
                print("\u{1B}[0m")
                fflush(stdout)
                fail("\(error)")
            }
            print("\u{1B}[H\u{1B}[2J" + view.render() + "Ctrl-C quits.", terminator: "")
            fflush(stdout)
            let until = Date().addingTimeInterval(interval)
            while !quit.isSet && Date() < until { Thread.sleep(forTimeInterval: min(0.1, interval)) }
        }
        print("")
        connection.close()
    }
}

/// What `disco top` shows, built from the coordinator's YAML answers; `render()` is the
/// text of one screen.
struct TopView {
    struct Node {
        var id: Int
        var name = "?"
        var status = "?"
        var cpus = 0
        var memory = "-"
        var free = "-"
        var address = ""
        var counters: [String: Double] = [:]
    }

    struct VM {
        var id: Int
        var name = "?"
        var state = "?"
        var vcpus = 0
        var nodes: [Int] = []
        var localShare = "-"
        var migrations = 0
        var replications = 0
        var detail = ""
    }

    /// Two distinct reports of a node: rates are their difference over the time between
    /// their arrival here.
    private struct Sample { var at: Date; var counters: [String: Double] }

    let coordinator: String
    var nodes: [Node] = []
    var vms: [VM] = []
    var at = Date()
    private var latest: [Int: Sample] = [:]
    private var previous: [Int: Sample] = [:]

    init(coordinator: String) { self.coordinator = coordinator }

    /// True once every live node has reported twice (its rates can be shown).
    var hasRates: Bool {
        let alive = nodes.filter { $0.status == "alive" }
        return !alive.isEmpty && alive.allSatisfy { previous[$0.id] != nil }
    }

    mutating func sample(_ client: ClusterClient) throws {
        let (_, nodesText) = try client.request(.nodes, timeout: 10)
        let (_, listText) = try client.request(.list, timeout: 10)
        let (_, statsText) = try client.request(.stats, timeout: 10)
        at = Date()
        nodes = Self.list(nodesText).compactMap { row in
            guard let id = Self.int(row["node"]) else { return nil }
            var n = Node(id: id)
            n.name = Self.text(row["name"]) ?? "?"
            n.status = Self.text(row["status"]) ?? "?"
            n.cpus = Self.int(row["cpus"]) ?? 0
            n.memory = Self.text(row["memory"]) ?? "-"
            n.free = Self.text(row["free"]) ?? "-"
            n.address = Self.text(row["address"]) ?? ""
            return n
        }
        let stats = (try? Yams.load(yaml: statsText)) as? [String: Any] ?? [:]
        var reports: [Int: [String: Double]] = [:]
        for row in stats["nodes"] as? [[String: Any]] ?? [] {
            guard let id = Self.int(row["node"]) else { continue }
            var counters: [String: Double] = [:]
            for (k, v) in row { if let d = Self.double(v) { counters[k] = d } }
            reports[id] = counters
        }
        for i in nodes.indices {
            guard let counters = reports[nodes[i].id] else { continue }
            nodes[i].counters = counters
            let id = nodes[i].id
            if let last = latest[id], last.counters == counters { continue }
            if let last = latest[id] { previous[id] = last }
            latest[id] = Sample(at: at, counters: counters)
        }
        var vmStats: [Int: [String: Any]] = [:]
        for row in stats["vms"] as? [[String: Any]] ?? [] {
            if let id = Self.int(row["vm"]) { vmStats[id] = row }
        }
        vms = Self.list(listText).compactMap { row in
            guard let id = Self.int(row["vm"]) else { return nil }
            var v = VM(id: id)
            v.name = Self.text(row["name"]) ?? "?"
            v.state = Self.text(row["state"]) ?? "?"
            v.vcpus = Self.int(row["vcpus"]) ?? 0
            v.nodes = (row["nodes"] as? [Any] ?? []).compactMap { Self.int($0) }
            v.detail = Self.text(row["detail"]) ?? ""
            if let s = vmStats[id] {
                v.migrations = Self.int(s["migrations"]) ?? 0
                v.replications = Self.int(s["replications"]) ?? 0
                if let sampled = s["sampled_misses"] as? [String: Any], let share = Self.double(sampled["local_share"]) {
                    v.localShare = String(format: "%.3f", share)
                }
            }
            return v
        }
    }

    /// Per second between a node's last two reports, of counter `name`.
    func rate(_ node: Int, _ name: String) -> Double? {
        guard let a = previous[node], let b = latest[node], let x = a.counters[name], let y = b.counters[name] else { return nil }
        let seconds = b.at.timeIntervalSince(a.at)
        guard seconds > 0.05, y >= x else { return nil }
        return (y - x) / seconds
    }

    func render() -> String {
        let time = Self.clock.string(from: at)
        let alive = nodes.filter { $0.status == "alive" }.count
        let running = vms.filter { $0.state == "running" }.count
        let mips = nodes.compactMap { rate($0.id, "instructions_total") }.reduce(0, +) / 1e6
        var out = "disco top  \(coordinator)  \(time)\n"
        out += "nodes: \(alive) alive of \(nodes.count)   VMs: \(running) running of \(vms.count)   guest MIPS: \(hasRates || mips > 0 ? String(format: "%.1f", mips) : "-")\n\n"
        out += Self.row(["NODE", "NAME", "STATUS", "CPUS", "MEMORY", "FREE", "VMS", "VCPUS", "MIPS", "RMISS/s", "LINES IN/s", "OUT/s", "RTT ms"],
                        [5, -16, -8, 4, 9, 9, 4, 5, 8, 9, 10, 8, 7])
        for n in nodes {
            let live = n.status != "dead"
            func r(_ name: String, _ scale: Double = 1, _ format: String = "%.0f") -> String {
                guard live, let v = rate(n.id, name) else { return "-" }
                return Self.short(v / scale, format)
            }
            let rtt = live ? n.counters["heartbeat_rtt_ns"].map { String(format: "%.2f", $0 / 1e6) } ?? "-" : "-"
            out += Self.row([String(n.id), n.name, n.status, String(n.cpus), n.memory, live ? n.free : "-",
                             live ? n.counters["vms"].map { String(Int($0)) } ?? "-" : "-",
                             live ? n.counters["vcpus"].map { String(Int($0)) } ?? "-" : "-",
                             r("instructions_total", 1e6, "%.1f"), r("remote_misses"), r("lines_received"), r("lines_sent"), rtt],
                            [5, -16, -8, 4, 9, 9, 4, 5, 8, 9, 10, 8, 7])
        }
        if nodes.isEmpty { out += "  (no nodes have joined)\n" }
        out += "\n"
        out += Self.row(["VM", "NAME", "STATE", "VCPUS", "NODES", "LOCAL", "MIGR", "REPL", "DETAIL"], [5, -16, -8, 5, -12, 6, 6, 6, -1])
        for v in vms {
            out += Self.row([String(v.id), v.name, v.state, String(v.vcpus), v.nodes.map(String.init).joined(separator: ","),
                             v.localShare, String(v.migrations), String(v.replications), v.detail],
                            [5, -16, -8, 5, -12, 6, 6, 6, -1])
        }
        if vms.isEmpty { out += "  (no VMs)\n" }
        return out
    }

    private static let clock: DateFormatter = {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f
    }()

    /// Columns: a positive width right-aligns, a negative one left-aligns, -1 takes the rest.
    static func row(_ cells: [String], _ widths: [Int]) -> String {
        var line = ""
        for (cell, w) in zip(cells, widths) {
            if !line.isEmpty { line += "  " }
            if w == -1 { line += cell; continue }
            let width = abs(w)
            let c = cell.count > width ? String(cell.prefix(width)) : cell
            let pad = String(repeating: " ", count: width - c.count)
            line += w > 0 ? pad + c : c + pad
        }
        while line.hasSuffix(" ") { line.removeLast() }
        return line + "\n"
    }

    /// 1234567 → "1.23M", 12345 → "12.3k".
    static func short(_ v: Double, _ format: String) -> String {
        if v >= 1e9 { return String(format: "%.2fG", v / 1e9) }
        if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
        if v >= 1e4 { return String(format: "%.1fk", v / 1e3) }
        return String(format: format, v)
    }

    static func list(_ yaml: String) -> [[String: Any]] {
        (try? Yams.load(yaml: yaml)) as? [[String: Any]] ?? []
    }

    static func text(_ v: Any?) -> String? {
        guard let v else { return nil }
        if let s = v as? String { return s }
        return "\(v)"
    }

    static func int(_ v: Any?) -> Int? {
        if let i = v as? Int { return i }
        if let s = v as? String { return Int(s) }
        if let d = v as? Double { return Int(d) }
        return nil
    }

    static func double(_ v: Any?) -> Double? {
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let s = v as? String { return Double(s) }
        return nil
    }
}
