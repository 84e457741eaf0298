import Coordinator
import Foundation
import Logging
import Cluster
import Protocol

/// `disco run --nodes N --spec a.yaml --spec b.yaml ...`: boots several VMs side by
/// side on an embedded local cluster of N node processes (⌈all VCPUs / N⌉ CPUs each, so
/// the placement spreads them), prints each VM's console output line by line prefixed
/// with `[name] ` (or a VM's `console-log` file instead), says on standard error
/// where each VM was placed, and returns when every VM
/// has ended: 0 if all passed, else the first failure's status. Console input is not
/// routed (one keyboard, several VMs); Ctrl-C stops them all.
func runSideBySide(specs: [VMSpec], nodes: Int, cpus: Int? = nil) -> Int32 {
    let vcpus = specs.reduce(0) { $0 + $1.vcpus }
    let memory = specs.reduce(UInt64(0)) { $0 + (($1.memoryBytes + 4095) & ~4095) }
    let cluster: LocalCluster
    do {
        cluster = try LocalCluster.start(nodes: nodes, cpus: cpus ?? max(1, (vcpus + nodes - 1) / nodes),
                                         memoryBytes: max(256 << 20, memory), directory: nil,
                                         heartbeatMillis: LocalCluster.embeddedHeartbeatMillis)
    } catch {
        fail("cannot start the local cluster: \(error)")
    }
    var logger = Logger(label: "disco.run")
    logger.logLevel = .error
    let client: ClusterClient
    var names: [UInt32: String] = [:]
    var logs: [UInt32: FileHandle] = [:]
    var pending: [UInt32: [UInt8]] = [:]
    // What each VM was created from, to create it again when its guest resets.
    var sentSpecs: [UInt32: String] = [:]
    do {
        client = try ClusterClient(coordinator: cluster.coordinatorEndpoint, secret: cluster.secret, logger: logger)
        try client.waitConnected(timeout: 10)
        let taken = Dictionary(grouping: specs, by: \.name).filter { $0.value.count > 1 }.keys
        for spec in specs {
            var sent = spec
            sent.consoleLog = nil
            let (ok, created, body) = try client.requestWithVM(.create(spec: sent.yamlText()))
            guard ok, let id = created else {
                cluster.stop()
                fail("the cluster refused VM '\(spec.name)': \(body)")
            }
            names[id] = taken.contains(spec.name) ? "\(spec.name)-\(id)" : spec.name
            sentSpecs[id] = sent.yamlText()
            if let path = spec.consoleLog {
                guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                    cluster.stop()
                    fail("cannot write the console log '\(path)'")
                }
                logs[id] = h
            }
        }
        // Where each VM runs, on standard error (the coordinator's `vm list` rows).
        if let (_, list) = try? client.request(.list) {
            for row in list.split(separator: "\n") { FileHandle.standardError.write(Data("disco: \(row.drop { $0 == "-" || $0 == " " })\n".utf8)) }
        }
    } catch {
        cluster.stop()
        fail("\(error) (logs in \(cluster.directory))")
    }
    setvbuf(stdout, nil, _IOLBF, 0)
    func emit(_ vm: UInt32, _ bytes: [UInt8], flush: Bool = false) {
        if let log = logs[vm] {
            log.write(Data(bytes))
            return
        }
        var buffer = pending[vm, default: []] + bytes
        while let nl = buffer.firstIndex(of: 10) {
            print("[\(names[vm] ?? "vm\(vm)")] \(String(decoding: buffer[..<nl], as: UTF8.self))")
            buffer.removeSubrange(...nl)
        }
        if flush, !buffer.isEmpty {
            print("[\(names[vm] ?? "vm\(vm)")] \(String(decoding: buffer, as: UTF8.self))")
            buffer.removeAll()
        }
        pending[vm] = buffer
    }

    let quit = LockedFlag()
    SignalStopper.install { quit.set(); client.wake() }
    var running = Set(names.keys)
    var status: Int32 = 0
    var problem: String?
    loop: while !running.isEmpty {
        if quit.isSet {
            for vm in running.sorted() { _ = try? client.request(.stop(vm: vm), timeout: 5) }
            status = 130
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
            case .console(let vm, let bytes):
                emit(vm, bytes)
            case .vmStatus(let vm, .stopped, .reset?, _) where running.contains(vm):
                // The guest reset its board: boot that VM again (a new id, the same
                // name and console log), as QEMU does.
                emit(vm, [], flush: true)
                running.remove(vm)
                do {
                    let (ok, created, body) = try client.createAgainAfterReset(spec: sentSpecs[vm] ?? "")
                    guard ok, let id = created else {
                        problem = "VM '\(names[vm] ?? "\(vm)")' reset and the cluster refused to boot it again: \(body)"
                        status = 1
                        break loop
                    }
                    names[id] = names[vm]
                    logs[id] = logs.removeValue(forKey: vm)
                    sentSpecs[id] = sentSpecs[vm]
                    running.insert(id)
                } catch {
                    problem = "VM '\(names[vm] ?? "\(vm)")' reset and booting it again failed: \(error) (logs in \(cluster.directory))"
                    status = 1
                    break loop
                }
            case .vmStatus(let vm, .stopped, let exit, _):
                emit(vm, [], flush: true)
                running.remove(vm)
                if status == 0, case .fail(let code)? = exit { status = code == 0 ? 1 : Int32(truncatingIfNeeded: code) }
            case .vmStatus(let vm, .failed, _, let detail):
                emit(vm, [], flush: true)
                running.remove(vm)
                problem = "VM '\(names[vm] ?? "\(vm)")' failed: \(detail) (logs in \(cluster.directory))"
                status = 1
                break loop
            default:
                break
            }
        }
    }
    for log in logs.values { try? log.close() }
    client.close()
    cluster.stop()
    if let problem {
        FileHandle.standardError.write(Data("disco: \(problem)\n".utf8))
    } else {
        try? FileManager.default.removeItem(atPath: cluster.directory)
    }
    return status
}
