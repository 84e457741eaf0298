import CProcessControl
import Foundation

/// For processes started by a launcher (`disco up`, `disco run --nodes`, a bench or an
/// experiment starting `disco run`): when the
/// environment names the launcher's pid in `DISCO_PARENT_PID`, ask the kernel to
/// send SIGTERM when the parent dies, and exit now if it already has. No node or
/// coordinator outlives the command that started it.
enum ParentWatch {
    static func arm() {
        guard let text = ProcessInfo.processInfo.environment["DISCO_PARENT_PID"], let parent = Int32(text) else { return }
        if disco_set_parent_death_signal(SIGTERM) != 0 {
            let why = String(cString: strerror(errno))
            FileHandle.standardError.write(Data(
                "disco: warning: cannot arrange to stop when the launcher (pid \(parent)) dies: \(why)\n".utf8))
        }
        if getppid() != parent { exit(1) }
        // The kernel's SIGTERM comes once, and a process that is just then installing
        // its handlers (SIG_IGN first, then a dispatch source that registers later)
        // can lose it and run on with nobody to stop it (seen under a loaded host). So
        // the launcher's death is also polled: once it is gone, SIGTERM again every
        // half second until this process has stopped.
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler { if getppid() != parent { kill(getpid(), SIGTERM) } }
        timer.resume()
        watch = timer
    }

    nonisolated(unsafe) private static var watch: DispatchSourceTimer?

    /// The environment for a disco process this one starts (a bench's or an
    /// experiment's `disco run`): it arms its watch on this process, so killing a bench,
    /// even with SIGKILL, leaves no VM running behind it.
    static var childEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DISCO_PARENT_PID"] = String(getpid())
        return env
    }
}
