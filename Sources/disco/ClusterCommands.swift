import ArgumentParser
import Coordinator
import DiscoMetrics
import Foundation
import Logging
import Cluster
import Node
import Protocol
import Transport

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the global monitor: membership, VM placement, consoles.",
        discussion: """
            Nodes join it with the cluster secret (DISCO_SECRET or --secret-file), CLI
            commands talk to it. Stops on SIGINT or SIGTERM, stopping its VMs. With
            --metrics it serves Prometheus metrics: members, every VM (state, VCPUs,
            migrations, replications) and each node's latest counters.
              DISCO_SECRET=s3cret disco coordinator --listen tcp:127.0.0.1:7070 --metrics 127.0.0.1:9470
            """
    )

    @Option(help: ArgumentHelp("Address to accept nodes and clients on (repeatable): tcp:HOST:PORT or unix:PATH.", valueName: "address"))
    var listen: [String] = ["tcp:127.0.0.1:7070"]

    @Option(help: "Heartbeat interval of the nodes, in milliseconds; a node silent for 6 intervals is dead.")
    var heartbeatMs: Int = 500

    @Option(help: "Coherence line size in bytes (a power of two, 64 to 4096).")
    var lineSize: Int = 128

    @Option(help: ArgumentHelp("Each node's global buffer cache, e.g. 16M (0: none): the top of every node's slice, at most half of it, kept from VMs; whole-page disk reads of a read-only base image map one cached machine page into every VM on the node that reads it, copy-on-write.", valueName: "size"))
    var bufferCache: String = "0"

    @Option(help: ArgumentHelp("Keep every VM's console output in this directory, one file per VM (vm-ID-NAME.log); created if missing. A spec's console-log file is written too, on this host (a relative path is taken from this process's working directory; `vm create` sends it absolute, from the spec file's directory).", valueName: "dir"))
    var consoleDir: String?

    @Option(help: ArgumentHelp("VCPU load balancing: on, a VCPU of a node with more VCPUs than CPUs moves to another node of its VM with a CPU free (after the overload lasted 2 s; at most one move a second; a moved VCPU stays 30 s); off, VCPUs move only by `disco vm migrate-vcpu`.", valueName: "on|off"))
    var balanceVcpus: String = "on"

    @OptionGroup var metricsOption: MetricsOption

    @OptionGroup var options: ClusterOptions

    mutating func run() throws {
        ParentWatch.arm()
        if let consoleDir {
            do { try FileManager.default.createDirectory(atPath: consoleDir, withIntermediateDirectories: true) } catch {
                fail("cannot create --console-dir \(consoleDir): \(error.localizedDescription)")
            }
        }
        guard (64...4096).contains(lineSize), lineSize & (lineSize - 1) == 0 else { fail("--line-size must be a power of two from 64 to 4096") }
        guard heartbeatMs >= 10 else { fail("--heartbeat-ms must be at least 10") }
        guard let balance = try? VMSpec.parseSwitch(balanceVcpus, "") else { fail("--balance-vcpus must be on or off, not '\(balanceVcpus)'") }
        let bufferCacheBytes: UInt64
        do { bufferCacheBytes = bufferCache == "0" ? 0 : try MemorySize.parse(bufferCache) } catch { fail("--buffer-cache: \(error)") }
        guard bufferCacheBytes % 4096 == 0 else { fail("--buffer-cache must be whole 4 KiB pages") }
        let endpoints = listen.map { parseEndpoint($0, "--listen") }
        _ = metricsOption.address()
        let logger = options.logger("disco.coordinator")
        let runtime = CoordinatorRuntime(
            configuration: CoordinatorConfiguration(listen: endpoints, secret: options.secret(),
                                                    machine: .init(heartbeatMillis: UInt32(heartbeatMs), lineSize: lineSize,
                                                                   balancing: .init(enabled: balance),
                                                                   bufferCacheBytes: bufferCacheBytes),
                                                    consoleDirectory: consoleDir),
            logger: logger)
        // Listening for metrics first: a port in use stops the coordinator before any node joins.
        let figures = CoordinatorMetrics()
        if metricsOption.metrics != nil { runtime.onFigures = { figures.record($0, $1) } }
        let server = metricsOption.serve(logger: logger) { figures.render() }
        defer { server?.stop() }
        SignalStopper.install { runtime.stop(reason: "signal"); exitSoonAfterSignal() }
        do {
            let reason = try runtime.run()
            Logger(label: "disco.coordinator").info("coordinator stopped: \(reason)")
        } catch {
            fail("\(error)")
        }
    }
}

/// A daemon asked to stop gets a few seconds to do so cleanly; then it exits anyway,
/// so a launcher's SIGTERM always ends it.
func exitSoonAfterSignal() {
    DispatchQueue.global().asyncAfter(deadline: .now() + 5) {
        FileHandle.standardError.write(Data("disco: did not stop within 5 s of the signal; exiting\n".utf8))
        Foundation.exit(1)
    }
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run one NUMA node: its CPUs, its slice of machine memory, its directory.",
        discussion: """
            With --metrics it serves Prometheus metrics: the counters it reports to the
            coordinator (instructions, misses, lines, page moves, queue depths, round trip).
              DISCO_SECRET=s3cret disco node --coordinator tcp:10.0.0.1:7070 --listen tcp:10.0.0.2:7071 --cpus 4 --memory 2G --metrics 10.0.0.2:9470
            """
    )

    @Option(help: ArgumentHelp("The coordinator's address.", valueName: "address"))
    var coordinator: String = "tcp:127.0.0.1:7070"

    @Option(help: ArgumentHelp("Where peer nodes reach this one (port 0 picks one).", valueName: "address"))
    var listen: String = "tcp:127.0.0.1:0"

    @Option(help: "A name unique in the cluster (default: host name and pid).")
    var name: String?

    @Option(help: "Physical CPUs this node offers.")
    var cpus: Int = 2

    @Option(help: ArgumentHelp("Machine memory this node homes, e.g. 1G.", valueName: "size"))
    var memory: String = "1G"

    @Option(help: ArgumentHelp("Remote access cache size, e.g. 1M.", valueName: "size"))
    var cache: String = "1M"

    @Option(help: "Coherence line size in bytes (must match the coordinator's).")
    var lineSize: Int = 128

    @Flag(inversion: .prefixedNo, help: """
        Park a VCPU that spins (comes back to the same instruction with its registers \
        unchanged: a loop polling memory, with or without the pause hint) until memory \
        may have changed, instead of letting it burn a host core (default: on).
        """)
    var parkSpinning = true

    @Flag(help: "Beyond Disco: merge pages of identical contents of the VMs that use the buffer cache into one cached frame, copy-on-write (a scan hashing up to 512 used pages every 10 ms; needs the coordinator's --buffer-cache; default: off).")
    var shareIdenticalPages = false

    @Flag(help: ArgumentHelp("When the coordinator is lost (a network cut, a coordinator restart), join it again as a new node instead of exiting; the VMs that used this node have failed by then. The process stays (it re-executes itself), so srun, a container or a test keeps one process."))
    var rejoin = false

    @Option(help: ArgumentHelp("With --rejoin: seconds to wait before joining again.", valueName: "seconds"))
    var rejoinDelay: Double = 1

    @OptionGroup var metricsOption: MetricsOption

    @OptionGroup var options: ClusterOptions

    mutating func run() throws {
        ParentWatch.arm()
        guard rejoinDelay >= 0 && rejoinDelay <= 3600 else { fail("--rejoin-delay must be 0...3600 seconds") }
        let memoryBytes: UInt64, cacheBytes: UInt64
        do {
            memoryBytes = try MemorySize.parse(memory)
            cacheBytes = try MemorySize.parse(cache)
        } catch { fail("\(error)") }
        guard cpus >= 1 && cpus <= 1024 else { fail("--cpus must be 1...1024") }
        guard (64...4096).contains(lineSize), lineSize & (lineSize - 1) == 0 else { fail("--line-size must be a power of two from 64 to 4096") }
        _ = metricsOption.address()
        let logger = options.logger("disco.node")
        var nodeConfiguration = NodeConfiguration(coordinator: parseEndpoint(coordinator, "--coordinator"),
                                                  listen: parseEndpoint(listen, "--listen"),
                                                  name: name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())",
                                                  cpus: cpus, memoryBytes: memoryBytes, secret: options.secret(),
                                                  lineSize: lineSize, cacheBytes: Int(cacheBytes), parkSpinning: parkSpinning)
        nodeConfiguration.shareIdenticalPages = shareIdenticalPages
        let runtime = NodeRuntime(configuration: nodeConfiguration, logger: logger)
        let figures = NodeMetrics()
        if metricsOption.metrics != nil { runtime.onStatsReport = { figures.record($0) } }
        let server = metricsOption.serve(logger: logger) { figures.render() }
        defer { server?.stop() }
        let signalled = LockedFlag()
        SignalStopper.install { signalled.set(); runtime.stop(reason: "signal"); exitSoonAfterSignal() }
        let reason: String
        do {
            reason = try runtime.run()
            Logger(label: "disco.node").info("node stopped: \(reason)")
        } catch {
            fail("\(error)")
        }
        if rejoin, !signalled.isSet, reason.hasPrefix("lost the coordinator") {
            server?.stop()
            Logger(label: "disco.node").notice("rejoining the coordinator in \(rejoinDelay) s as a new node")
            Thread.sleep(forTimeInterval: rejoinDelay)
            if !signalled.isSet { reexecuteSelf() }
        }
    }
}

/// Starts this program over in this process (same pid, arguments and environment):
/// a node that rejoins begins with nothing of its old membership. Every descriptor
/// above stderr is closed on the way (the old sockets, the metrics listener).
func reexecuteSelf() -> Never {
    if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
        for name in fds { if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
    }
    var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
    argv.append(nil)
    execv("/proc/self/exe", &argv)
    fail("cannot start over to rejoin: \(String(cString: strerror(errno)))")
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a local cluster: a coordinator and N nodes as child processes.",
        discussion: """
            Everything listens on Unix sockets in a fresh directory (printed, with the
            processes' logs). Runs until Ctrl-C or until any process dies (with
            --keep-going: until the coordinator dies), then stops them all. Other commands reach the cluster with the printed address and secret:
              DISCO_SECRET=... disco vm create --coordinator unix:/tmp/disco-.../coordinator.sock --spec vm.yaml
            With --metrics the coordinator serves Prometheus metrics there, the nodes'
            counters included (relayed from their reports):
              disco up --nodes 2 --metrics 127.0.0.1:9470
            """
    )

    @Option(help: "Number of node processes.")
    var nodes: Int = 2

    @Option(help: "CPUs per node.")
    var cpus: Int = 2

    @Option(help: ArgumentHelp("Machine memory per node.", valueName: "size"))
    var memory: String = "1G"

    @Option(help: ArgumentHelp("Directory for sockets and logs (default: a new one under /tmp).", valueName: "path"))
    var dir: String?

    @Flag(help: "Keep the cluster up when a node dies (its VMs fail, the others run on); only the coordinator's death stops it.")
    var keepGoing = false

    @Option(help: ArgumentHelp("The coordinator's VCPU load balancing (see disco coordinator --help).", valueName: "on|off"))
    var balanceVcpus: String = "on"
    @Option(help: ArgumentHelp("Each node's global buffer cache, e.g. 16M (0: none; see disco coordinator --help).", valueName: "size"))
    var bufferCache: String = "0"

    @OptionGroup var metricsOption: MetricsOption

    mutating func run() throws {
        guard (1...64).contains(nodes) else { fail("--nodes must be 1...64") }
        setvbuf(stdout, nil, _IOLBF, 0)  // progress lines appear at once, also in a pipe
        let memoryBytes: UInt64
        do { memoryBytes = try MemorySize.parse(memory) } catch { fail("\(error)") }
        let metricsAddress = metricsOption.address()
        guard (try? VMSpec.parseSwitch(balanceVcpus, "")) != nil else { fail("--balance-vcpus must be on or off, not '\(balanceVcpus)'") }
        let cluster: LocalCluster
        do {
            cluster = try LocalCluster.start(nodes: nodes, cpus: cpus, memoryBytes: memoryBytes, directory: dir,
                                             metrics: metricsAddress, coordinatorArguments: ["--balance-vcpus", balanceVcpus, "--buffer-cache", bufferCache],
                                             progress: { print($0) })
        } catch {
            fail("\(error)")
        }
        print("cluster up: \(nodes) node(s); coordinator at \(cluster.coordinatorEndpoint)")
        if metricsAddress != nil { print("metrics at \(cluster.metricsURL ?? "(see coordinator.log)")") }
        print("logs and sockets in \(cluster.directory)")
        print("VM consoles logged in \(cluster.directory)/consoles; attach with: disco console VM --coordinator \(cluster.coordinatorEndpoint)")
        print("export DISCO_SECRET=\(cluster.secretText)")
        print("Ctrl-C stops everything.")
        let stop = LockedFlag()
        SignalStopper.install { stop.set() }
        while !stop.isSet {
            if let died = keepGoing ? cluster.coordinatorExited() : cluster.firstExited() {
                print("\(died); stopping the cluster")
                cluster.stop()
                throw ExitCode(1)
            }
            if keepGoing, let died = cluster.newlyExited() { print("\(died); the cluster carries on") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        cluster.stop()
        print("cluster stopped")
    }
}

/// `disco nodes`, `disco vm ...`, `disco stats`: one request to a running coordinator.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The coordinator's address.", valueName: "address"))
    var coordinator: String = "tcp:127.0.0.1:7070"

    @OptionGroup var options: ClusterOptions

    func ask(_ request: VMRequest) -> Never {
        let logger = options.logger("disco.cli")
        do {
            let client = try ClusterClient(coordinator: parseEndpoint(coordinator, "--coordinator"),
                                           secret: options.secret(), logger: logger)
            try client.waitConnected(timeout: 10)
            let (ok, body) = try client.request(request)
            client.close()
            print(body)
            Foundation.exit(ok ? 0 : 1)
        } catch {
            fail("\(error)")
        }
    }
}

extension ClientOptions {
    /// `disco vm create --wait`: creates the VM, copies its console to stdout until it ends.
    func createAndWait(_ spec: VMSpec) -> Never {
        setvbuf(stdout, nil, _IONBF, 0)
        let logger = options.logger("disco.cli")
        let client: ClusterClient, vm: UInt32
        do {
            client = try ClusterClient(coordinator: parseEndpoint(coordinator, "--coordinator"), secret: options.secret(), logger: logger)
            try client.waitConnected(timeout: 10)
            let (ok, created, body) = try client.requestWithVM(.create(spec: spec.yamlText()))
            guard ok, let id = created else {
                FileHandle.standardError.write(Data("disco: the cluster refused the VM: \(body)\n".utf8))
                Foundation.exit(1)
            }
            vm = id
        } catch { fail("\(error)") }
        FileHandle.standardError.write(Data("disco: VM \(vm) created; its console follows\n".utf8))
        let quit = LockedFlag()
        SignalStopper.install { quit.set(); client.wake() }
        while true {
            if quit.isSet {
                _ = try? client.request(.stop(vm: vm), timeout: 5)
                FileHandle.standardError.write(Data("disco: VM \(vm) stopped on a signal\n".utf8))
                Foundation.exit(130)
            }
            let events: [Message]
            do { events = try client.events(until: Date().addingTimeInterval(0.5)) } catch {
                FileHandle.standardError.write(Data("disco: VM \(vm): \(error)\n".utf8))
                Foundation.exit(1)
            }
            for m in events {
                switch m {
                case .console(let v, let bytes) where v == vm:
                    FileHandle.standardOutput.write(Data(bytes))
                case .vmStatus(let v, .stopped, let exit, let detail) where v == vm:
                    FileHandle.standardError.write(Data("disco: VM \(vm) stopped: \(detail)\n".utf8))
                    switch exit {
                    case .fail?: Foundation.exit(1)
                    default: Foundation.exit(0)
                    }
                case .vmStatus(let v, .failed, _, let detail) where v == vm:
                    FileHandle.standardError.write(Data("disco: VM \(vm) failed: \(detail)\n".utf8))
                    Foundation.exit(1)
                default:
                    break
                }
            }
        }
    }
}

struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List the cluster's nodes.")
    @OptionGroup var client: ClientOptions
    func run() throws { client.ask(.nodes) }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Print the coordinator's counters.")
    @OptionGroup var client: ClientOptions
    func run() throws { client.ask(.stats) }
}

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Create, list or stop VMs on a running cluster, or move a page or a VCPU of one.",
        subcommands: [Create.self, List.self, Stop.self, Migrate.self, Replicate.self, MigrateVCPU.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a VM from a spec file; prints its id.",
            discussion: """
                With --wait it stays attached: the VM's console goes to standard
                output and the command ends with the VM: status 0 when the guest
                passed (powered off), 1 when it failed or the VM failed (a node it
                used was lost), 130 on Ctrl-C (which stops the VM). For batch jobs:
                  disco vm create --spec vm.yaml --wait --coordinator tcp:10.0.0.1:7070
                The spec's console-log is written by the coordinator, on its host
                (a relative path is taken from the spec file's directory); one it
                cannot open refuses the VM. Any client can attach to the VM's console
                later with `disco console VM`.
                """)
        @Option(help: ArgumentHelp("The VM spec (YAML).", valueName: "file")) var spec: String
        @Flag(help: "Print the VM's console output and wait until it ends; the exit status says how it ended.")
        var wait = false
        @OptionGroup var client: ClientOptions
        func run() throws {
            let vm: VMSpec
            do {
                vm = try VMSpec.load(file: spec)
                try vm.validate()
            } catch { fail("\(error)") }
            if wait { client.createAndWait(vm) }
            client.ask(.create(spec: vm.yamlText()))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List VMs and their state.")
        @OptionGroup var client: ClientOptions
        func run() throws { client.ask(.list) }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM.")
        @Argument(help: "The VM id.") var vm: UInt32
        @OptionGroup var client: ClientOptions
        func run() throws { client.ask(.stop(vm: vm)) }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move one guest page of a running VM to another of its nodes (what the page policy does).",
            discussion: "Prints the move's time once every node maps the new frame. Example: disco vm migrate 1 0x80001000 --to 1")
        @Argument(help: "The VM id.") var vm: UInt32
        @Argument(help: "The guest-physical page address (hex with 0x, or decimal; 4 KiB aligned).") var page: String
        @Option(help: "The node to move it to.") var to: Int32
        @OptionGroup var client: ClientOptions
        func run() throws {
            client.ask(.migrate(vm: vm, guestPage: parsePageAddress(page), node: to))
        }
    }

    struct MigrateVCPU: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate-vcpu",
            abstract: "Move one VCPU of a running VM to another of its nodes (what the balancer does).",
            discussion: """
                The VCPU stops on its node at the first slice boundary where none of its
                memory or device accesses is in flight; its registers, CSRs, FP state,
                pending interrupts and CLINT registers (msip, mtimecmp) go to the new
                node, which starts it with empty TLBs, and every node of the VM sends
                its interrupts there from then on. The guest sees nothing but time
                passing. Prints the move's time once the VCPU runs there.
                The target must be one of the VM's nodes (`disco vm list`: nodes) with a
                CPU free; --overcommit moves it even onto a node whose CPUs are all
                taken (its VCPUs then share them by time slices).
                Example: disco vm migrate-vcpu 1 3 --to 0
                """)
        @Argument(help: "The VM id.") var vm: UInt32
        @Argument(help: "The VCPU (its hart id, from 0).") var vcpu: UInt32
        @Option(help: "The node to move it to.") var to: Int32
        @Flag(help: "Move it even if the node has no free CPU.") var overcommit = false
        @OptionGroup var client: ClientOptions
        func run() throws {
            client.ask(.migrateVCPU(vm: vm, vcpu: vcpu, node: to, overcommit: overcommit))
        }
    }

    struct Replicate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give one guest page of a running VM read-only replicas on other nodes of it (what the page policy does).",
            discussion: """
                Prints the time once the replicas are in place. The page's first write anywhere collapses them
                again. Example: disco vm replicate 1 0x80001000 --to 1 --to 2
                """)
        @Argument(help: "The VM id.") var vm: UInt32
        @Argument(help: "The guest-physical page address (hex with 0x, or decimal; 4 KiB aligned).") var page: String
        @Option(help: "A node to put a replica on (repeat for several).") var to: [Int32]
        @OptionGroup var client: ClientOptions
        func run() throws {
            guard !to.isEmpty else { fail("name at least one node with --to") }
            client.ask(.replicate(vm: vm, guestPage: parsePageAddress(page), nodes: to))
        }
    }
}

/// A guest-physical page address from the command line (hex with 0x, or decimal), which
/// must be 4 KiB aligned.
func parsePageAddress(_ text: String) -> UInt64 {
    let t = text.lowercased()
    guard let address = t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t), address % 4096 == 0 else {
        fail("'\(text)' is not a 4 KiB-aligned guest-physical address")
    }
    return address
}
