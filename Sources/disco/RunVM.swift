import Foundation
import Cluster
import Node
import Platform
#if canImport(Glibc)
import Glibc
#endif

/// Boots `spec` in this process and returns the exit status for the finisher's verdict.
/// A guest reset (0x7777) reboots the VM from scratch, as QEMU does.
func runVM(spec: VMSpec, parkSpinning: Bool = true) -> Int32 {
    let console: HostConsole
    do {
        console = try HostConsole(logPath: spec.consoleLog)
    } catch {
        fail("\(error)")
    }
    var machine: Machine
    do {
        machine = try Machine(config: spec.machineConfig, console: console)
    } catch {
        fail("\(error)")
    }
    for h in machine.harts { h.detectsSpinning = parkSpinning }
    console.enterRawModeIfTerminal()
    defer { console.restoreTerminal() }

    // The input thread and signal handlers outlive one boot; route them to whichever
    // machine runs now.
    let current = MachineBox(machine)
    console.startInputThread(
        deliver: { current.machine.consoleInput($0) },
        quit: { console.quitRequested.set(); current.machine.requestStop() }
    )
    SignalStopper.install { current.machine.requestStop() }

    while true {
        let exit = machine.run()
        // The disks' metadata goes back to the files now: exit() skips deinitializers,
        // and a reset reopens the same files.
        machine.closeDisks()
        switch exit {
        case .pass:
            return 0
        case .fail(let code):
            return code == 0 ? 1 : Int32(truncatingIfNeeded: code)
        case .stopped:
            return console.quitRequested.isSet ? 0 : 130
        case .reset:
            do {
                machine = try Machine(config: spec.machineConfig, console: console)
                for h in machine.harts { h.detectsSpinning = parkSpinning }
                current.machine = machine
            } catch {
                console.restoreTerminal()
                fail("reset: \(error)")
            }
        }
    }
}

/// Holds the machine that console input and signals go to.
final class MachineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _machine: Machine
    init(_ machine: Machine) { _machine = machine }
    var machine: Machine {
        get { lock.lock(); defer { lock.unlock() }; return _machine }
        set { lock.lock(); _machine = newValue; lock.unlock() }
    }
}

/// SIGINT/SIGTERM stop the VM cleanly (in raw mode Ctrl-C goes to the guest instead).
enum SignalStopper {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func install(_ stop: @escaping () -> Void) {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: stop)
            source.resume()
            sources.append(source)
        }
    }
}
