import CProcessControl
import Foundation

/// For processes started by a launcher (`disco up`, `disco run --nodes`): when the
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
}
