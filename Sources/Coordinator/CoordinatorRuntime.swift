import Cluster
import Foundation
import Logging
import Protocol
import Transport

public struct CoordinatorConfiguration: Sendable {
    public var listen: [Endpoint]
    public var secret: [UInt8]
    public var machine: CoordinatorStateMachine.Configuration
    /// A directory for a console log per VM (`vm-<id>-<name>.log`), or nil for none.
    public var consoleDirectory: String?

    public init(listen: [Endpoint], secret: [UInt8], machine: CoordinatorStateMachine.Configuration = .init(),
                consoleDirectory: String? = nil) {
        self.consoleDirectory = consoleDirectory
        self.listen = listen
        self.secret = secret
        self.machine = machine
    }
}

/// The `disco coordinator` process: a thin shell around `CoordinatorStateMachine`.
/// The transport's thread posts events into a mailbox; the thread that calls `run()`
/// feeds them (and a tick every half heartbeat interval) to the state machine and
/// carries out its directives. Any `MessageTransport` will do: libuv in production,
/// `InMemoryTransport` in tests.
public final class CoordinatorRuntime: @unchecked Sendable {
    public let configuration: CoordinatorConfiguration
    private let logger: Logger
    private let clock: ClusterClock
    private let makeTransport: TransportFactory
    private let mailbox = Mailbox<TransportEvent>()
    private var transport: (any MessageTransport)!
    private var machine: CoordinatorStateMachine
    private let boundLock = NSLock()
    private var bound: [Endpoint] = []
    /// Gets the state machine (VMs, members) and each node's latest counters about once a
    /// second, on the runtime's thread: it must only keep them (the `--metrics` endpoint's
    /// snapshot; both are values). Set before `run()`.
    public var onFigures: (@Sendable (CoordinatorStateMachine, [Int32: StatsReport]) -> Void)?
    private var nodeReports: [Int32: StatsReport] = [:]
    private var nodeConnections: Set<ConnectionID> = []
    private var nextFigures: UInt64 = 0
    private let consoleFiles: ConsoleFiles

    public init(configuration: CoordinatorConfiguration, logger: Logger, clock: ClusterClock = ClusterClock(),
                transport: TransportFactory? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        // This thread drives the sockets: a message is handled the moment it is read.
        self.makeTransport = transport ?? Transports.network(logger: logger, driven: true)
        var machineConfiguration = configuration.machine
        if machineConfiguration.checkConsoleLog == nil { machineConfiguration.checkConsoleLog = { ConsoleFiles.check($0) } }
        self.machine = CoordinatorStateMachine(configuration: machineConfiguration)
        self.consoleFiles = ConsoleFiles(directory: configuration.consoleDirectory) { [logger] in logger.warning("\($0)") }
    }

    /// Bound listen addresses, once `run()` has started (any thread).
    public var boundEndpoints: [Endpoint] {
        boundLock.lock()
        defer { boundLock.unlock() }
        return bound
    }

    /// Asks `run()` to return (any thread).
    public func stop(reason: String = "stopped") { mailbox.requestStop(reason) }

    /// Wakes `run()` to look at the clock now (tests that move virtual time).
    public func wake() { mailbox.wake() }

    public func run() throws -> String {
        defer { finish() }
        try start()
        while true {
            if let reason = turn() { return reason }
        }
    }

    private var tickNanos: UInt64 { UInt64(configuration.machine.heartbeatMillis) * 500_000 }
    private var nextTick: UInt64 = 0

    /// Makes the transport and listens (the first part of `run`, for a test that drives
    /// turns itself).
    public func start() throws {
        let identity = Hello(role: .coordinator, nodeID: -1, nonce: [UInt8](repeating: 0, count: 32), name: "coordinator")
        let mailbox = self.mailbox
        let made = try makeTransport(TransportConfiguration(secret: configuration.secret, identity: identity)) { mailbox.post($0) }
        transport = made
        if made.isDriven { mailbox.onWake { [weak made] in made?.wakeUp() } }
        for endpoint in configuration.listen {
            let b = try transport.listen(on: endpoint)
            boundLock.lock()
            bound.append(b)
            boundLock.unlock()
        }
        logger.info("coordinator listening on \(boundEndpoints.map(\.description).joined(separator: ", "))")
        nextTick = clock.nanoseconds()
    }

    /// One turn: handle what arrived (with `wait`, sleeping up to one tick for it in
    /// real time; virtual time in tests moves on `wake()`) and tick the failure
    /// detector when due. Returns why the coordinator stopped once it has.
    public func turn(wait: Bool = true) -> String? {
        if let reason = mailbox.stopRequested {
            carryOut(machine.handle(.stopping(reason: reason), now: clock.nanoseconds()))
            return reason
        }
        let deadline = Date().addingTimeInterval(Double(tickNanos) / 1e9)
        let events: [TransportEvent]
        if transport.isDriven {
            if wait && mailbox.count == 0 { transport.wait(until: deadline) }
            transport.poll()
            events = mailbox.takeAll()
        } else {
            events = wait ? mailbox.wait(until: deadline) : mailbox.takeAll()
        }
        for event in events {
            let e: CoordinatorStateMachine.Event
            switch event {
            case .connected(let id, let peer):
                if peer.role == .node { nodeConnections.insert(id) }
                e = .connected(id, peer: peer)
            case .received(let id, let m):
                if case .stats(let r) = m, nodeConnections.contains(id) { nodeReports[r.nodeID] = r }
                e = .received(id, m)
            case .disconnected(let id, let reason, _):
                nodeConnections.remove(id)
                e = .disconnected(id, reason: reason)
            case .writable: continue
            }
            carryOut(machine.handle(e, now: clock.nanoseconds()))
        }
        let now = clock.nanoseconds()
        if now >= nextTick {
            carryOut(machine.handle(.tick, now: now))
            nextTick = now + tickNanos
            if let onFigures, now >= nextFigures {
                onFigures(machine, nodeReports)
                nextFigures = now + 1_000_000_000
            }
        }
        return nil
    }

    /// Closes the transport (the last part of `run`).
    public func finish() {
        transport?.shutdown()
        consoleFiles.closeAll()
    }

    private func carryOut(_ directives: [CoordinatorStateMachine.Directive]) {
        for d in directives {
            switch d {
            case .send(let m, let c): _ = transport.send(m, on: c)
            case .close(let c): transport.close(c)
            case .log(let level, let text):
                logger.log(level: level, "\(text)")
            case .consoleOutput(let vm, let name, let log, let bytes):
                consoleFiles.write(vm: vm, name: name, log: log, bytes: bytes)
            }
        }
    }
}
