import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process that runs while a test works with it (a cluster, Prometheus), its
/// stdout and stderr in one log file. `stop()` (also on deinit) ends it: SIGTERM, then
/// SIGKILL after 3 s, so nothing outlives the test.
public final class Background {
    public let name: String
    public let logPath: String
    private let process = Process()

    public init(_ name: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:], logDirectory: String) throws {
        self.name = name
        logPath = logDirectory + "/\(name).out"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// A launcher's command line (`command[0]` the executable) with exactly `environment`
    /// (nothing inherited), its output in `log`.
    public init(command: [String], environment: [String: String], log: String) throws {
        name = (command.first as NSString?)?.lastPathComponent ?? "process"
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }
    public var status: Int32 { process.terminationStatus }

    /// Waits until the output contains `text` (true), the process ends or the time is up (false).
    public func wait(for text: String, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return true }
            if !process.isRunning { return output.contains(text) }
            usleep(50_000)
        }
        return false
    }

    /// The rest of the first output line that contains `prefix`.
    public func line(after prefix: String) -> String? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains(prefix) }),
              let r = line.range(of: prefix) else { return nil }
        return String(line[r.upperBound...]).trimmingCharacters(in: .whitespaces)
    }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot report
/// the one they chose, like Prometheus).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: a.sin_port))
}

