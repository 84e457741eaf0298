import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid on its own pid, its
/// stdout and stderr in a log file. The namespace tests start many short and long
/// processes side by side; Foundation's Process now and then never learned that one of
/// them had ended there (isRunning stayed true, waitUntilExit hung), so these tests keep
/// the bookkeeping themselves. `stop()` (also on deinit): SIGTERM, SIGKILL after 3 s.
final class Spawned {
    struct Failure: Error, CustomStringConvertible { var description: String }

    let logPath: String
    let pid: pid_t
    private var exitStatus: Int32?

    init(_ command: [String], environment: [String: String]? = nil, log: String) throws {
        logPath = log
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, command[0], &actions, nil, &argv, &envp)
        guard rc == 0 else { throw Failure(description: "cannot start \(command[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            // WIFEXITED: the low 7 bits are 0; then the status is bits 8-15, else 128 + signal.
            exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return false
        }
        if r < 0 && errno == ECHILD { exitStatus = -1; return false }
        return true
    }

    /// The exit status once ended (128 + N for signal N; -1 if it was reaped elsewhere).
    var status: Int32? { isRunning ? nil : exitStatus }

    /// Waits until it ends or `timeout` passes; true if it ended.
    func wait(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if !wait(timeout: 3) {
            kill(pid, SIGKILL)
            _ = wait(timeout: 5)
        }
    }

    deinit { stop() }
}

/// Runs a command to its end with posix_spawn (killed after `timeout`), stdout and
/// stderr together.
func spawnAndWait(_ command: [String], environment: [String: String]? = nil, timeout: TimeInterval = 60) -> Finished {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString).out").path
    defer { try? FileManager.default.removeItem(atPath: log) }
    guard let p = try? Spawned(command, environment: environment, log: log) else {
        return Finished(status: -1, output: "could not start \(command[0])")
    }
    if !p.wait(timeout: timeout) { p.stop() }
    return Finished(status: p.status ?? -1, output: p.output)
}
