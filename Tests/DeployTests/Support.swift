import Foundation
import TestSupport
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
