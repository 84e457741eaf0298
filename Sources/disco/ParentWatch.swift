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
    }

    /// The environment for a disco process this one starts (a bench's or an
    /// experiment's `disco run`): it arms its watch on this process, so killing a bench,
    /// even with SIGKILL, leaves no VM running behind it.
    static var childEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DISCO_PARENT_PID"] = String(getpid())
        return env
    }
}
