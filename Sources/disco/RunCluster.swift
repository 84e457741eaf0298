import Coordinator
import Foundation
import Logging
import Cluster
import Node
import Protocol
import Transport

/// `disco run --nodes N`: boots `spec` on an embedded local cluster of N node
/// processes (VCPUs round-robin over them, memory homed on them), with this terminal
/// (or the console log) as the VM's console. Returns the exit status.
func runOnCluster(spec: VMSpec, nodes: Int, cpus: Int? = nil, printStats: Bool = false, parkSpinning: Bool = true) -> Int32 {
    let console: HostConsole
    do { console = try HostConsole(logPath: spec.consoleLog) } catch { fail("\(error)") }
    let perNode = max(256 << 20, (spec.memoryBytes + 4095) & ~4095)
    let cluster: LocalCluster
    do {
        cluster = try LocalCluster.start(nodes: nodes, cpus: cpus ?? max(1, (spec.vcpus + nodes - 1) / nodes),
                                         memoryBytes: perNode, directory: nil, heartbeatMillis: LocalCluster.embeddedHeartbeatMillis,
                                         nodeArguments: parkSpinning ? [] : ["--no-park-spinning"])
    } catch {
        fail("cannot start the local cluster: \(error)")
    }
    var logger = Logger(label: "disco.run")
    logger.logLevel = .error
    let client: ClusterClient
    var vm: UInt32
    var sent = spec
    sent.consoleLog = nil
    do {
        client = try ClusterClient(coordinator: cluster.coordinatorEndpoint, secret: cluster.secret, logger: logger)
        try client.waitConnected(timeout: 10)
        let (ok, created, body) = try client.requestWithVM(.create(spec: sent.yamlText()))
        guard ok, let id = created else {
            cluster.stop()
            fail("the cluster refused the VM: \(body)")
        }
        vm = id
    } catch {
        cluster.stop()
        fail("\(error) (logs in \(cluster.directory))")
    }

    console.enterRawModeIfTerminal()
    let quit = LockedFlag()
    // A guest reset boots the VM again under a new id; console input follows it.
    let current = CurrentVM(vm)
    console.startInputThread(deliver: { client.send(.console(vm: current.id, bytes: $0)) },
                             quit: { quit.set(); client.wake() })
    SignalStopper.install { quit.set(); client.wake() }

    var status: Int32 = 0
    var problem: String?
    loop: while true {
        if quit.isSet {
            _ = try? client.request(.stop(vm: vm), timeout: 5)
            status = console.quitRequested.isSet ? 0 : 130
            break
        }
        let (events, failure) = clusterEvents(client, cluster)
        if let failure {
            problem = failure
            status = 1
            break
        }
        for m in events {
            switch m {
            case .console(_, let bytes):
                bytes.withUnsafeBytes { console.write($0) }
            case .vmStatus(let which, _, _, _) where which != vm:
                break  // a VM that a reset replaced, winding down
            case .vmStatus(_, .stopped, .reset?, _):
                // The guest reset the board (the finisher's 0x7777, as OpenSBI's SBI
                // system reset writes it): as QEMU and `disco run` on one process do,
                // boot the VM again from its files, with fresh memory.
                do {
                    let (ok, created, body) = try client.createAgainAfterReset(spec: sent.yamlText())
                    guard ok, let id = created else {
                        problem = "the guest reset the VM and the cluster refused to boot it again: \(body)"
                        status = 1
                        break loop
                    }
                    vm = id
                    current.id = id
                } catch {
                    problem = "the guest reset the VM and booting it again failed: \(error) (logs in \(cluster.directory))"
                    status = 1
                    break loop
                }
            case .vmStatus(_, .stopped, let exit, _):
                switch exit {
                case .fail(let code)?: status = code == 0 ? 1 : Int32(truncatingIfNeeded: code)
                case .pass?, .stopped?, .reset?, nil: status = 0
                }
                break loop
            case .vmStatus(_, .failed, _, let detail):
                problem = "the VM failed: \(detail) (logs in \(cluster.directory))"
                status = 1
                break loop
            default:
                break
            }
        }
    }
    console.restoreTerminal()
    if printStats, problem == nil { printVMStats(client, vm) }
    client.close()
    cluster.stop()
    if let problem {
        FileHandle.standardError.write(Data("disco: \(problem)\n".utf8))
    } else {
        if ProcessInfo.processInfo.environment["DISCO_KEEP_LOGS"] == nil { try? FileManager.default.removeItem(atPath: cluster.directory) } else { FileHandle.standardError.write(Data("disco: logs in \(cluster.directory)\n".utf8)) }
    }
    return status
}

/// The VM that console input goes to (a reset replaces it).
private final class CurrentVM: @unchecked Sendable {
    private let lock = NSLock()
    private var _id: UInt32
    init(_ id: UInt32) { _id = id }
    var id: UInt32 {
        get { lock.lock(); defer { lock.unlock() }; return _id }
        set { lock.lock(); _id = newValue; lock.unlock() }
    }
}

/// Prints the coordinator's statistics line of VM `vm` to standard error once the nodes'
/// last reports (sent as they drop the VM) are in: when two answers in a row agree.
private func printVMStats(_ client: ClusterClient, _ vm: UInt32) {
    var last = ""
    let deadline = Date().addingTimeInterval(5)
    while Date() < deadline {
        guard let body = try? client.request(.stats, timeout: 5).body,
              let line = body.split(separator: "\n").first(where: { $0.contains("{vm: \(vm),") }).map(String.init) else {
            Thread.sleep(forTimeInterval: 0.1)
            continue
        }
        if line == last && !line.contains("state: running") { break }
        last = line
        Thread.sleep(forTimeInterval: 0.15)
    }
    FileHandle.standardError.write(Data("\(last.trimmingCharacters(in: .whitespaces).dropFirst(2))\n".utf8))
}

/// The embedded cluster's next events (waiting up to 0.2 s), or why there are none: a
/// process of the cluster exited, or the coordinator connection failed.
func clusterEvents(_ client: ClusterClient, _ cluster: LocalCluster) -> (events: [Message], failure: String?) {
    if let died = cluster.firstExited() { return ([], "\(died) (logs in \(cluster.directory))") }
    do { return (try client.events(until: Date().addingTimeInterval(0.2)), nil) } catch {
        return ([], "\(error) (logs in \(cluster.directory))")
    }
}
