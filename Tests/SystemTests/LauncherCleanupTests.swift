import Foundation
import Testing

/// A bench or an experiment that starts `disco run` (which may start a coordinator and
/// nodes) and is killed with SIGKILL — no chance to clean up — leaves nothing running:
/// its `disco run` gets SIGTERM from the kernel when the launcher dies
/// (DISCO_PARENT_PID, ParentWatch), and a cluster's processes go with it.
@Suite struct LauncherCleanupTests {
    /// The pids of `pid`'s children (Linux: /proc/PID/task/PID/children).
    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    static func alive(_ pid: Int32) -> Bool {
        // A zombie (reaped by nobody yet) has ended: only a live state counts.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Starts `arguments` (a disco launcher), waits until `ready` holds for its
    /// descendants (pid of its first child, that child's children), kills it with
    /// SIGKILL and returns the descendants still running 10 s later.
    func survivors(_ arguments: [String], after delay: useconds_t = 0, ready: ([Int32]) -> Bool) throws -> (started: [Int32], left: [Int32]) {
        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: Paths.disco)
        launcher.arguments = arguments
        launcher.standardOutput = FileHandle.nullDevice
        launcher.standardError = FileHandle.nullDevice
        launcher.standardInput = FileHandle.nullDevice
        try launcher.run()
        defer { if launcher.isRunning { kill(launcher.processIdentifier, SIGKILL) } }
        var started: [Int32] = []
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let child = Self.children(of: launcher.processIdentifier).first {
                started = [child] + Self.children(of: child)
                if ready(started) { break }
            }
            usleep(20_000)
        }
        usleep(delay)
        kill(launcher.processIdentifier, SIGKILL)
        launcher.waitUntilExit()
        let gone = Date().addingTimeInterval(10)
        while Date() < gone, started.contains(where: Self.alive) { usleep(50_000) }
        let left = started.filter(Self.alive)
        for pid in left { kill(pid, SIGKILL) }
        return (started, left)
    }

    /// An experiment's `disco run` of a guest that never ends (idle.elf: a timer tick
    /// and WFI), its launcher killed: the run stops too — whether the launcher dies
    /// before the run's own code runs, while it sets up its signal handling (where the
    /// kernel's one SIGTERM could be lost), or once it runs the VM.
    @Test(.timeLimit(.minutes(2)))
    func anExperimentKilledWithSIGKILLLeavesNoVMRunning() throws {
        try #require(FileManager.default.fileExists(atPath: Paths.guest("idle.elf")), "guests are not built: run make -C guests")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-launcher-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "title: forever\nguest: idle.elf\nengine: process\ntimeout: 600\n".write(toFile: dir + "/forever.yaml", atomically: true, encoding: .utf8)
        for delay: useconds_t in [0, 2_000, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000] {
            let (started, left) = try survivors(["experiment", dir + "/forever.yaml", "--guests", Paths.guests.path, "--out", dir, "--no-plots"],
                                                after: delay) { $0.count >= 1 }
            #expect(started.count == 1, "the experiment started \(started)")
            #expect(left.isEmpty, "killed \(delay / 1000) ms after its disco run started: still running 10 s later: \(left)")
        }
    }
}
