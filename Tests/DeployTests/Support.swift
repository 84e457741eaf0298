import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

enum Paths {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let deploy = root.appendingPathComponent("deploy").path

    /// The `disco` under test: $DISCO_BIN, else the release or debug build.
    static var disco: String {
        if let env = ProcessInfo.processInfo.environment["DISCO_BIN"], !env.isEmpty { return env }
        for config in ["release", "debug"] {
            let path = root.appendingPathComponent(".build/\(config)/disco").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root.appendingPathComponent(".build/debug/disco").path
    }

    /// An executable on PATH (nil if none).
    static func tool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

struct Finished {
    var status: Int32
    var output: String
}

/// Runs a command to its end (killed after `timeout`), stdout and stderr together.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Finished {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString).out")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: out) }
    let handle = try FileHandle(forWritingTo: out)
    p.standardOutput = handle
    p.standardError = handle
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    return Finished(status: p.terminationStatus, output: (try? String(contentsOf: out, encoding: .utf8)) ?? "")
}

/// A process started from a launcher's command line, stopped (SIGTERM, then SIGKILL)
/// when the test is done with it.
final class Daemon {
    private let process = Process()
    let logPath: String

    init(_ command: [String], environment: [String: String], log: String) throws {
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

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func wait(for text: String, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && process.isRunning {
            if output.contains(text) { return true }
            usleep(50_000)
        }
        return output.contains(text)
    }

    func line(after prefix: String) -> String? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains(prefix) }),
              let r = line.range(of: prefix) else { return nil }
        return String(line[r.upperBound...]).trimmingCharacters(in: .whitespaces)
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard fd >= 0, ok else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// One HTTP GET on loopback: the body, or nil.
func httpGet(_ url: String) -> String? {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.connectionProxyDictionary = [:]
    configuration.timeoutIntervalForRequest = 5
    let session = URLSession(configuration: configuration)
    defer { session.invalidateAndCancel() }
    final class Box: @unchecked Sendable { var body: String? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    session.dataTask(with: URL(string: url)!) { data, response, _ in
        if (response as? HTTPURLResponse)?.statusCode == 200, let data { box.body = String(decoding: data, as: UTF8.self) }
        done.signal()
    }.resume()
    _ = done.wait(timeout: .now() + 6)
    return box.body
}

/// A fresh scratch directory.
func scratch(_ name: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-\(name)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// The value of one series (`name{labels}` exactly as written) in Prometheus text.
func metricValue(_ text: String?, _ series: String) -> Double? {
    text?.split(separator: "\n").lazy.compactMap { line -> Double? in
        guard line.hasPrefix(series + " ") else { return nil }
        return Double(line.dropFirst(series.count + 1))
    }.first
}
