import CLibUV
import Foundation

/// For processes started by a launcher (`disco up`, `disco run --nodes`): when the
/// environment names the launcher's pid in `DISCO_PARENT_PID`, ask the kernel to
/// send SIGTERM when the parent dies, and exit now if it already has. No node or
/// coordinator outlives the command that started it.
public enum ParentWatch {
    public static func arm() {
        guard let text = ProcessInfo.processInfo.environment["DISCO_PARENT_PID"], let parent = Int32(text) else { return }
        _ = disco_set_parent_death_signal(SIGTERM)
        if getppid() != parent { exit(1) }
    }
}
