import ArgumentParser
import Coordinator
import Foundation
import Protocol
#if canImport(Glibc)
import Glibc
#endif

/// `disco console VM`: this terminal becomes a console of a running VM of the cluster.
struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Attach this terminal to a running VM's console (by VM id or name).",
        discussion: """
            A client of the coordinator, like `disco vm list`, so it works from any host
            that reaches it. It prints the VM's recent output first (the coordinator
            keeps the last 64 KiB of each VM's console), then its live output; what you
            type goes to that VM only. On a terminal, Ctrl-A is the escape key:
              Ctrl-A d   detach; the VM runs on (Ctrl-A x does the same)
              Ctrl-A h   help
              Ctrl-A Ctrl-A  send a Ctrl-A to the VM
            Several consoles may attach to one VM, and to different VMs, at once: each
            sees all the VM's output, and input from any of them reaches the VM; the VM's
            creator (`vm create --wait`) keeps its console too. Ends with status 0 on
            detach or when the VM stops, 1 if it failed or the coordinator is lost,
            2 if the VM is not running.
              DISCO_SECRET=... disco console web-1 --coordinator tcp:10.0.0.1:7070
            """
    )

    @Argument(help: ArgumentHelp("The VM's id or name (as `disco vm list` shows).", valueName: "vm"))
    var vm: String

    @OptionGroup var client: ClientOptions

    func run() throws {
        let logger = client.options.logger("disco.console")
        let connection: ClusterClient
        let id: UInt32
        var backlog: [UInt8] = []
        do {
            connection = try ClusterClient(coordinator: parseEndpoint(client.coordinator, "--coordinator"),
                                           secret: client.options.secret(), logger: logger)
            try connection.waitConnected(timeout: 10)
            connection.send(.consoleAttach(vm: vm))
            let deadline = Date().addingTimeInterval(10)
            var answer: (UInt32, Bool, String, [UInt8])?
            var early: [Message] = []
            while answer == nil {
                guard Date() < deadline else { fail("no answer from the coordinator within 10 s") }
                for m in try connection.events(until: deadline) {
                    if case .consoleAttached(let v, let ok, let detail, let b) = m { answer = (v, ok, detail, b) }
                    else if answer != nil { early.append(m) }
                    else if case .error(_, let text) = m { fail("the coordinator: \(text)") }
                }
            }
            guard answer!.1 else { fail(answer!.2) }
            id = answer!.0
            backlog = answer!.3
            FileHandle.standardError.write(Data("disco: \(answer!.2); Ctrl-A d detaches, Ctrl-A h helps\n".utf8))
            if !backlog.isEmpty { FileHandle.standardOutput.write(Data(backlog)) }
            if handle(early, vm: id) { return }
        } catch { fail("\(error)") }

        let console: HostConsole
        do { console = try HostConsole(logPath: nil) } catch { fail("\(error)") }
        console.enterRawModeIfTerminal()
        let detached = LockedFlag()
        console.startInputThread(deliver: { connection.send(.console(vm: id, bytes: $0)) },
                                 quit: { detached.set(); connection.wake() },
                                 detach: { detached.set(); connection.wake() })
        SignalStopper.install { detached.set(); connection.wake() }
        while true {
            if detached.isSet {
                connection.send(.consoleDetach(vm: id))
                // Let the detach reach the coordinator before the connection closes.
                _ = try? connection.events(until: Date().addingTimeInterval(0.1))
                console.restoreTerminal()
                connection.close()
                Foundation.exit(0)
            }
            let events: [Message]
            do { events = try connection.events(until: Date().addingTimeInterval(0.5)) } catch {
                console.restoreTerminal()
                FileHandle.standardError.write(Data("\ndisco: VM \(id): \(error)\n".utf8))
                Foundation.exit(1)
            }
            if handle(events, vm: id, console: console) { Foundation.exit(0) }
        }
    }

    /// Writes the VM's output; returns true once the VM has ended (exits 1 if it failed).
    private func handle(_ events: [Message], vm: UInt32, console: HostConsole? = nil) -> Bool {
        for m in events {
            switch m {
            case .console(let v, let bytes) where v == vm:
                if let console { bytes.withUnsafeBytes { console.write($0) } } else { FileHandle.standardOutput.write(Data(bytes)) }
            case .vmStatus(let v, let state, _, let detail) where v == vm && (state == .stopped || state == .failed):
                console?.restoreTerminal()
                FileHandle.standardError.write(Data("\ndisco: VM \(vm) \(state): \(detail)\n".utf8))
                if state == .failed { Foundation.exit(1) }
                return true
            case .error(_, let text):
                FileHandle.standardError.write(Data("\ndisco: the coordinator: \(text)\n".utf8))
            default:
                break
            }
        }
        return false
    }
}
