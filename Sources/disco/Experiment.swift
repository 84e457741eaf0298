import ArgumentParser
import Cluster
import Coordinator
import Foundation
import Protocol
import Yams

/// `disco experiment NAME`: a sweep from `experiments/NAME.yaml`, one CSV row per run,
/// PNG plots drawn by `experiments/plot.py` (matplotlib).
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run a sweep from experiments/NAME.yaml; write a CSV and PNG plots.",
        discussion: """
            An experiment file names a guest and the values to sweep: engine
            (cluster: a local cluster of node processes; process: `disco run`,
            the machine in one process; qemu: QEMU's TCG; sharing: the memory
            footprint of VMs of bcache.elf booted from one base image, Disco's
            Fig. 6), guest, nodes, vcpus, vms, policy (the page policy on or
            off), placement, memory and cache (each node's buffer cache, for
            sharing; 0: none).
            Every combination is one run: its own cluster, its VMs booted
            together. A run records the wall time, the VMs' run time (first
            boot to last end, start-up left out), jobs per minute, guest
            instructions and MIPS, the share of sampled misses that were
            local, migrations, replications and collapses; a sharing run, the
            guest memory its VMs used and the machine memory holding it. Every
            VM must pass, and every run of a guest must print the same checksum.

            The CSV goes to DIR/NAME.csv, the plots the file asks for to
            DIR/*.png, drawn by plot.py beside the experiment file or in
            --experiments (python3 with matplotlib: apt-get install
            python3-matplotlib).
            --scale N runs N times the VMs on N times the nodes.
              disco experiment --list
              disco experiment numa --out results/numa
              disco experiment throughput --scale 4
            """
    )

    @Argument(help: ArgumentHelp("The experiment: a name in --experiments (numa, scaling, overhead, throughput, sharing) or a YAML file.", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("Multiply the VMs and the nodes of every run by this.", valueName: "n"))
    var scale: Int = 1

    @Option(help: ArgumentHelp("Directory for the CSV and the plots (default: results/NAME).", valueName: "dir"))
    var out: String?

    @Option(help: ArgumentHelp("Directory of the experiment files and plot.py.", valueName: "dir"))
    var experiments: String = "experiments"

    @Option(help: ArgumentHelp("Directory of the built guests.", valueName: "dir"))
    var guests: String = "guests/build"

    @Flag(help: "List the experiments and exit.")
    var list = false

    @Flag(help: "Write the CSV only, no plots.")
    var noPlots = false

    mutating func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        if list {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: experiments)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
            guard !files.isEmpty else { fail("no experiment files (*.yaml) in '\(experiments)'") }
            for f in files {
                let title = (try? ExperimentFile.load("\(experiments)/\(f)").title) ?? "(does not parse)"
                print("\((f as NSString).deletingPathExtension.padding(toLength: 12, withPad: " ", startingAt: 0))  \(title)")
            }
            return
        }
        guard let name else { fail("name an experiment (disco experiment --list shows them)") }
        guard (1...64).contains(scale) else { fail("--scale must be 1...64") }
        let path = name.hasSuffix(".yaml") ? name : "\(experiments)/\(name).yaml"
        let file: ExperimentFile
        do { file = try ExperimentFile.load(path) } catch { fail("\(path): \(error)") }
        let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let dir = out ?? "results/\(base)"
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            fail("cannot create '\(dir)': \(error)")
        }
        // plot.py beside the experiment file, or else in --experiments (a file of one's own elsewhere).
        let beside = ((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent) + "/plot.py"
        let plotter = FileManager.default.isReadableFile(atPath: beside) ? beside : "\(experiments)/plot.py"
        let python = noPlots || file.plots.isEmpty ? nil : Self.pythonWithMatplotlib()
        if !noPlots, !file.plots.isEmpty {
            guard python != nil else { fail("no python3 with matplotlib for the plots (apt-get install python3-matplotlib), or pass --no-plots") }
            guard FileManager.default.isReadableFile(atPath: plotter) else { fail("the plot script '\(plotter)' is missing") }
        }
        let runs = file.runs(scale: scale)
        for r in runs {
            let guest = "\(guests)/\(r.guest)"
            guard FileManager.default.isReadableFile(atPath: guest) else { fail("guest '\(guest)' not found (build the guests: make -C guests)") }
        }
        print("experiment \(base): \(file.title)")
        print("\(runs.count) run(s)\(scale > 1 ? ", scale \(scale)" : ""); results in \(dir)")
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let csvPath = "\(dir)/\(base).csv"
        var rows: [[String]] = []
        var checksums: [String: String] = [:]
        let started = Date()
        for (i, r) in runs.enumerated() {
            print("[\(i + 1)/\(runs.count)] \(r.label) ...", terminator: "")
            fflush(stdout)
            let result: RunResult
            do {
                result = try ExperimentRunner(me: me, guests: guests, timeout: file.timeout).run(r)
            } catch {
                print(" failed")
                fail("run \(i + 1) (\(r.label)): \(error)")
            }
            if let c = result.checksum {
                if let seen = checksums[r.guest], seen != c {
                    fail("run \(i + 1) (\(r.label)): \(r.guest) printed '\(c)', other runs '\(seen)'")
                }
                checksums[r.guest] = c
            }
            print(" \(result.summary)")
            rows.append(r.cells(index: i + 1) + result.cells)
            // The CSV so far, so that a long sweep stopped half-way keeps what it measured.
            try Self.csv([ExperimentRun.columns + RunResult.columns] + rows).write(toFile: csvPath, atomically: true, encoding: .utf8)
        }
        print(String(format: "done in %.0f s; CSV: %@", Date().timeIntervalSince(started), csvPath))
        if let python {
            let spec: [String: Any] = ["title": file.title, "csv": csvPath, "out": dir, "plots": file.plots]
            let specPath = "\(dir)/\(base).plots.json"
            let data = try JSONSerialization.data(withJSONObject: spec, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: specPath))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: python)
            p.arguments = [plotter, specPath]
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { fail("the plot script failed (status \(p.terminationStatus))") }
        }
        if let paper = file.paper { print("the paper: \(paper)") }
    }

    static func csv(_ rows: [[String]]) -> String {
        rows.map { $0.map { $0.contains(",") || $0.contains("\"") ? "\"\($0.replacingOccurrences(of: "\"", with: "\"\""))\"" : $0 }
            .joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    /// Debian's python3 first (where python3-matplotlib installs), then python3 on PATH.
    static func pythonWithMatplotlib() -> String? {
        var candidates = ["/usr/bin/python3"]
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") { candidates.append("\(dir)/python3") }
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: c)
            p.arguments = ["-c", "import matplotlib"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { continue }
            p.waitUntilExit()
            if p.terminationStatus == 0 { return c }
        }
        return nil
    }
}

/// An experiment file (`experiments/*.yaml`).
struct ExperimentFile {
    struct Problem: Error, CustomStringConvertible { var description: String }

    var title: String
    var paper: String?
    var timeout: TimeInterval = 300
    /// The swept values, in sweep order (the first varies slowest).
    var dimensions: [(key: String, values: [String])] = []
    var plots: [[String: Any]] = []

    static let sweepKeys = ["guest", "engine", "nodes", "vcpus", "vms", "policy", "placement", "memory", "cache"]
    static let defaults: [String: String] = ["engine": "cluster", "nodes": "1", "vcpus": "1", "vms": "1", "policy": "on",
                                             "placement": "first-touch", "memory": "16M", "cache": "16M"]
    static let plotKeys = ["file", "x", "y", "series", "title", "xlabel", "ylabel", "kind", "normalize", "where", "logx"]

    static func load(_ path: String) throws -> ExperimentFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Problem(description: "cannot read the file") }
        guard let map = try Yams.load(yaml: text) as? [String: Any] else { throw Problem(description: "not a YAML mapping") }
        let known = Set(sweepKeys + ["title", "description", "paper", "timeout", "plots"])
        for k in map.keys where !known.contains(k) {
            throw Problem(description: "unknown key '\(k)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        guard let title = map["title"] as? String else { throw Problem(description: "needs a title") }
        var f = ExperimentFile(title: title)
        f.paper = map["paper"] as? String
        if let t = map["timeout"] { guard let s = t as? Int, s > 0 else { throw Problem(description: "timeout must be seconds") }; f.timeout = TimeInterval(s) }
        guard map["guest"] != nil else { throw Problem(description: "needs a guest (an ELF in the guests directory)") }
        for key in sweepKeys {
            let raw = map[key] ?? defaults[key]!
            // YAML 1.1 reads on/off as booleans.
            let values = (raw as? [Any] ?? [raw]).map { v -> String in (v as? Bool).map { $0 ? "on" : "off" } ?? "\(v)" }
            guard !values.isEmpty else { throw Problem(description: "'\(key)' has no values") }
            for v in values { try check(key, v) }
            f.dimensions.append((key, values))
        }
        for (i, p) in (map["plots"] as? [[String: Any]] ?? []).enumerated() {
            for k in p.keys where !plotKeys.contains(k) {
                throw Problem(description: "plot \(i + 1): unknown key '\(k)' (known: \(plotKeys.joined(separator: ", ")))")
            }
            // y: a column, or a list of columns drawn side by side (V and M of Fig. 6).
            let ys = (p["y"] as? String).map { [$0] } ?? (p["y"] as? [Any])?.compactMap { $0 as? String } ?? []
            guard p["file"] is String, let x = p["x"] as? String, !ys.isEmpty, ys.count == ((p["y"] as? [Any])?.count ?? 1) else {
                throw Problem(description: "plot \(i + 1) needs file, x and y (a column or a list of columns)")
            }
            for c in [x] + ys where !(ExperimentRun.columns + RunResult.columns).contains(c) {
                throw Problem(description: "plot \(i + 1): '\(c)' is not a column (\((ExperimentRun.columns + RunResult.columns).joined(separator: ", ")))")
            }
            f.plots.append(p)
        }
        let engines = f.dimensions.first { $0.key == "engine" }?.values ?? []
        if engines.contains("sharing"), f.dimensions.first(where: { $0.key == "vcpus" })?.values != ["1"] {
            throw Problem(description: "engine sharing runs VMs of one VCPU (bcache.elf): vcpus must be 1")
        }
        if map["plots"] != nil && f.plots.isEmpty, !(map["plots"] is [Any]) { throw Problem(description: "plots must be a list") }
        return f
    }

    static func check(_ key: String, _ v: String) throws {
        switch key {
        case "engine":
            guard ["cluster", "process", "qemu", "sharing"].contains(v) else {
                throw Problem(description: "engine '\(v)' (known: cluster, process, qemu, sharing)")
            }
        case "nodes", "vms":
            guard let n = Int(v), (1...64).contains(n) else { throw Problem(description: "\(key) must be 1...64, not '\(v)'") }
        case "vcpus":
            guard let n = Int(v), (1...VMSpec.maxVCPUs).contains(n) else { throw Problem(description: "vcpus must be 1...\(VMSpec.maxVCPUs), not '\(v)'") }
        case "policy":
            guard ["on", "off"].contains(v) else { throw Problem(description: "policy must be on or off, not '\(v)'") }
        case "placement":
            _ = try VMSpec.MemoryPlacement(parsing: v)
        case "memory":
            _ = try MemorySize.parse(v)
        case "cache":
            if v != "0" { _ = try MemorySize.parse(v) }
        default:
            break
        }
    }

    func runs(scale: Int) -> [ExperimentRun] {
        var combos: [[String: String]] = [[:]]
        for (key, values) in dimensions {
            combos = combos.flatMap { c in values.map { v in c.merging([key: v]) { $1 } } }
        }
        return combos.map { c in
            ExperimentRun(engine: c["engine"]!, guest: c["guest"]!, nodes: Int(c["nodes"]!)! * scale, vcpus: Int(c["vcpus"]!)!,
                          vms: Int(c["vms"]!)! * scale, policy: c["policy"]!, placement: c["placement"]!,
                          memoryBytes: (try? MemorySize.parse(c["memory"]!)) ?? 16 << 20,
                          cacheBytes: c["cache"] == "0" ? 0 : (try? MemorySize.parse(c["cache"]!)) ?? 16 << 20)
        }
    }
}

/// One combination of the sweep.
struct ExperimentRun {
    var engine: String
    var guest: String
    var nodes: Int
    var vcpus: Int
    var vms: Int
    var policy: String
    var placement: String
    var memoryBytes: UInt64
    /// Each node's buffer cache (engine sharing).
    var cacheBytes: UInt64 = 16 << 20

    static let columns = ["run", "engine", "guest", "nodes", "vcpus", "vms", "policy", "placement", "memory_mib", "cache_mib"]

    var label: String {
        switch engine {
        case "cluster": "\(guest) on \(nodes) node(s), \(vms) VM(s) x \(vcpus) VCPU(s), policy \(policy)"
        case "sharing": "\(guest) on \(nodes) node(s), \(vms) VM(s), buffer cache \(cacheBytes >> 20) MiB a node"
        default: "\(guest) on \(engine), \(vms) VM(s) x \(vcpus) VCPU(s)"
        }
    }

    func cells(index: Int) -> [String] {
        let cluster = engine == "cluster"
        return [String(index), engine, guest, cluster || engine == "sharing" ? String(nodes) : "", String(vcpus), String(vms),
                cluster ? policy : "", cluster ? placement : "", String(memoryBytes >> 20),
                engine == "sharing" ? String(cacheBytes >> 20) : ""]
    }
}

struct RunResult {
    var wallSeconds: Double
    var runSeconds: Double
    var vms: Int
    var instructions: Double?
    var localMisses: Double?
    var remoteMisses: Double?
    var migrations: Int?
    var replications: Int?
    var collapses: Int?
    var checksum: String?
    /// Runs that are jobs (not footprints) have jobs per minute.
    var jobs = true
    /// Guest memory the VMs used (Disco's V) and the machine memory holding it (M), MiB.
    var virtualMiB: Double?
    var machineMiB: Double?

    static let columns = ["wall_s", "run_s", "jobs_per_min", "instructions", "mips", "local_share", "local_misses", "remote_misses",
                          "migrations", "replications", "collapses", "virtual_mib", "machine_mib"]

    var localShare: Double? {
        guard let l = localMisses, let r = remoteMisses, l + r > 0 else { return nil }
        return l / (l + r)
    }

    var mips: Double? { instructions.map { $0 / runSeconds / 1e6 } }

    var cells: [String] {
        func f(_ v: Double?, _ format: String) -> String { v.map { String(format: format, $0) } ?? "" }
        return [f(wallSeconds, "%.3f"), f(runSeconds, "%.3f"), f(jobs ? Double(vms) * 60 / runSeconds : nil, "%.2f"), f(instructions, "%.0f"),
                f(mips, "%.1f"), f(localShare, "%.3f"), f(localMisses, "%.0f"), f(remoteMisses, "%.0f"),
                migrations.map(String.init) ?? "", replications.map(String.init) ?? "", collapses.map(String.init) ?? "",
                f(virtualMiB, "%.2f"), f(machineMiB, "%.2f")]
    }

    var summary: String {
        var parts = [String(format: "%.2f s", runSeconds)]
        if let v = virtualMiB, let m = machineMiB {
            parts.append(String(format: "guest memory %.1f MiB in %.1f MiB of machine memory (%.2fx)", v, m, v / max(m, 1e-9)))
        }
        if let m = mips { parts.append(String(format: "%.0f MIPS", m)) }
        if let s = localShare { parts.append(String(format: "local %.3f", s)) }
        if let m = migrations, let r = replications, m + r > 0 { parts.append("\(m) migrations, \(r) replications") }
        return parts.joined(separator: ", ")
    }
}

/// Runs one combination: on a fresh local cluster, or as `disco run` / QEMU processes.
struct ExperimentRunner {
    struct Failure: Error, CustomStringConvertible { var description: String }

    var me: String
    var guests: String
    var timeout: TimeInterval

    func run(_ r: ExperimentRun) throws -> RunResult {
        switch r.engine {
        case "cluster": try onCluster(r)
        case "sharing": try footprint(r)
        default: try asProcesses(r)
        }
    }

    /// Disco's Fig. 6: VMs of bcache.elf (each reads 512 pages of one base image through
    /// its own qcow2 overlay, writes 16 of them, fills 64 of its own) on a fresh cluster
    /// with each node's buffer cache `r.cacheBytes`; the guest memory they used and the
    /// machine memory that holds it, once all are done (`disco bench sharing` measures the same).
    private func footprint(_ r: ExperimentRun) throws -> RunResult {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("disco-experiment-sharing-\(getpid())-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let elf = URL(fileURLWithPath: "\(guests)/\(r.guest)").standardizedFileURL.path
        let fp = SharingFootprint(elf: elf, pages: 512, writes: 16, privatePages: 64, memoryBytes: r.memoryBytes, timeout: timeout)
        let base = try fp.makeBase(in: root)
        let f = try fp.measure(vms: r.vms, nodes: r.nodes, cacheBytes: r.cacheBytes, root: root + "/run", base: base)
        var result = RunResult(wallSeconds: f.seconds, runSeconds: f.seconds, vms: r.vms, checksum: checksum(f.output))
        result.jobs = false
        result.virtualMiB = Double(f.guestPages) * 4096 / 1_048_576
        result.machineMiB = Double(f.machineFrames) * 4096 / 1_048_576
        return result
    }

    private func spec(_ r: ExperimentRun, _ i: Int) -> VMSpec {
        var s = VMSpec(name: "\((r.guest as NSString).deletingPathExtension)-\(i)", vcpus: r.vcpus, memoryBytes: r.memoryBytes,
                       firmware: VMSpec.Firmware.none, kernel: URL(fileURLWithPath: "\(guests)/\(r.guest)").standardizedFileURL.path)
        s.numaPolicy = r.policy == "on"
        s.placement = (try? VMSpec.MemoryPlacement(parsing: r.placement)) ?? .firstTouch
        return s
    }

    private func checksum(_ console: String) -> String? {
        console.split(separator: "\n").first { $0.contains("checksum") }.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    private func onCluster(_ r: ExperimentRun) throws -> RunResult {
        let wallStart = Date()
        let perNode = max(256 << 20, UInt64(r.vms) * r.memoryBytes)
        let cpus = max(1, (r.vms * r.vcpus + r.nodes - 1) / r.nodes)
        // Heartbeats every second (a node is dead after 6 s of silence, not 1.2 s): on a host
        // shared with other work, a node that is not scheduled for a moment must not fail the run.
        let cluster = try LocalCluster.start(nodes: r.nodes, cpus: cpus, memoryBytes: perNode, directory: nil,
                                             heartbeatMillis: LocalCluster.embeddedHeartbeatMillis)
        defer { cluster.stop() }
        let client = try cluster.connectedClient(label: "disco.experiment", timeout: 10)
        defer { client.close() }
        let runStart = Date()
        var ids: [UInt32] = []
        for i in 0..<r.vms {
            let (ok, created, body) = try client.requestWithVM(.create(spec: spec(r, i + 1).yamlText()))
            guard ok, let id = created else { throw Failure(description: "the cluster refused VM \(i + 1): \(body)") }
            ids.append(id)
        }
        var console: [UInt32: [UInt8]] = [:]
        var ended: Set<UInt32> = []
        let deadline = runStart.addingTimeInterval(timeout)
        while ended.count < ids.count {
            guard Date() < deadline else { throw Failure(description: "not done within \(Int(timeout)) s (logs in \(cluster.directory))") }
            if let died = cluster.firstExited() { throw Failure(description: died) }
            for m in try client.events(until: Date().addingTimeInterval(0.2)) {
                switch m {
                case .console(let vm, let bytes): console[vm, default: []] += bytes
                case .vmStatus(let vm, .stopped, let exit, let detail):
                    if case .fail? = exit { throw Failure(description: "VM \(vm) failed its checks: \(detail)\n\(String(decoding: console[vm] ?? [], as: UTF8.self).suffix(800))") }
                    ended.insert(vm)
                case .vmStatus(let vm, .failed, _, let detail):
                    throw Failure(description: "VM \(vm) failed: \(detail) (logs in \(cluster.directory))")
                default: break
                }
            }
        }
        let runSeconds = Date().timeIntervalSince(runStart)
        var sums: [String] = []
        for id in ids {
            guard let c = checksum(String(decoding: console[id] ?? [], as: UTF8.self)) else {
                throw Failure(description: "VM \(id) printed no checksum line:\n\(String(decoding: console[id] ?? [], as: UTF8.self).suffix(800))")
            }
            sums.append(c)
        }
        guard Set(sums).count == 1 else { throw Failure(description: "the VMs printed different checksums: \(sums)") }
        // The nodes' last reports arrive as they drop the VMs: wait until two answers agree.
        var last = "", stats: [String: Any] = [:]
        let settle = Date().addingTimeInterval(5)
        while Date() < settle {
            let (_, body) = try client.request(.stats, timeout: 5)
            if body == last { break }
            last = body
            Thread.sleep(forTimeInterval: 0.3)
        }
        stats = (try? Yams.load(yaml: last)) as? [String: Any] ?? [:]
        var result = RunResult(wallSeconds: 0, runSeconds: runSeconds, vms: r.vms, checksum: sums.first)
        result.instructions = (stats["nodes"] as? [[String: Any]] ?? []).reduce(0.0) { $0 + (TopView.double($1["instructions_total"]) ?? 0) }
        var local = 0.0, remote = 0.0, migrations = 0, replications = 0, collapses = 0
        for row in stats["vms"] as? [[String: Any]] ?? [] {
            guard let id = TopView.int(row["vm"]), ids.contains(UInt32(id)) else { continue }
            migrations += TopView.int(row["migrations"]) ?? 0
            replications += TopView.int(row["replications"]) ?? 0
            collapses += TopView.int(row["collapses"]) ?? 0
            if let s = row["sampled_misses"] as? [String: Any] {
                local += TopView.double(s["local"]) ?? 0
                remote += TopView.double(s["remote"]) ?? 0
            }
        }
        result.localMisses = local
        result.remoteMisses = remote
        result.migrations = migrations
        result.replications = replications
        result.collapses = collapses
        result.wallSeconds = Date().timeIntervalSince(wallStart)
        return result
    }

    /// `vms` processes side by side: `disco run` (the whole machine in one process) or QEMU.
    private func asProcesses(_ r: ExperimentRun) throws -> RunResult {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-experiment-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kernel = "\(guests)/\(r.guest)"
        var processes: [(Process, String)] = []
        defer { for (p, _) in processes where p.isRunning { p.terminate(); p.waitUntilExit() } }
        let start = Date()
        for i in 0..<r.vms {
            let log = "\(dir)/vm-\(i).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let p = Process()
            p.environment = ParentWatch.childEnvironment
            if r.engine == "qemu" {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-riscv64")
                p.arguments = ["-machine", "virt", "-nographic", "-bios", "none", "-m", "\(r.memoryBytes >> 20)M",
                               "-smp", "\(r.vcpus)", "-kernel", kernel]
            } else {
                p.executableURL = URL(fileURLWithPath: me)
                p.arguments = ["run", "--bios", "none", "--smp", "\(r.vcpus)", "--memory", "\(r.memoryBytes >> 20)M", "--kernel", kernel]
            }
            guard FileManager.default.isExecutableFile(atPath: p.executableURL!.path) else {
                throw Failure(description: "\(p.executableURL!.path) is not installed")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            p.standardOutput = handle
            p.standardError = handle
            p.standardInput = FileHandle.nullDevice
            try p.run()
            processes.append((p, log))
        }
        let deadline = start.addingTimeInterval(timeout)
        while processes.contains(where: { $0.0.isRunning }) {
            guard Date() < deadline else { throw Failure(description: "not done within \(Int(timeout)) s") }
            usleep(5_000)
        }
        let seconds = Date().timeIntervalSince(start)
        var sums: [String] = []
        for (p, log) in processes {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            guard p.terminationStatus == 0, let c = checksum(text) else {
                throw Failure(description: "\(r.engine) exited with status \(p.terminationStatus):\n\(text.suffix(800))")
            }
            sums.append(c)
        }
        guard Set(sums).count == 1 else { throw Failure(description: "the VMs printed different checksums: \(sums)") }
        return RunResult(wallSeconds: seconds, runSeconds: seconds, vms: r.vms, checksum: sums.first)
    }
}
