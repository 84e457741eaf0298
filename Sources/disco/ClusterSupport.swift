import ArgumentParser
import Coordinator
import Foundation
import Logging
import Transport

/// Options every cluster process shares: the secret and the log level.
struct ClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A file holding the cluster secret (default: the DISCO_SECRET environment variable).", valueName: "path"))
    var secretFile: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical (default: DISCO_LOG_LEVEL or info).", valueName: "level"))
    var logLevel: String = ProcessInfo.processInfo.environment["DISCO_LOG_LEVEL"] ?? "info"

    func secret() -> [UInt8] {
        if let secretFile {
            guard let data = FileManager.default.contents(atPath: secretFile) else { fail("cannot read secret file '\(secretFile)'") }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { fail("secret file '\(secretFile)' is empty") }
            return Array(text.utf8)
        }
        guard let env = ProcessInfo.processInfo.environment["DISCO_SECRET"], !env.isEmpty else {
            fail("no cluster secret: set DISCO_SECRET or pass --secret-file")
        }
        return Array(env.utf8)
    }

    func logger(_ label: String) -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else { fail("unknown log level '\(logLevel)'") }
        LoggingBootstrap.once(level: level)
        var l = Logger(label: label)
        l.logLevel = level
        return l
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

func parseEndpoint(_ text: String, _ what: String) -> Endpoint {
    do { return try Endpoint(parsing: text) } catch { fail("\(what): \(error)") }
}

/// A fresh random secret for a cluster started here.
func randomSecret() -> String {
    var rng = SystemRandomNumberGenerator()
    return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
}

extension ClusterClient {
    /// Creates a VM again after its guest reset the board. The old VM's frames come
    /// back only once its nodes have scrubbed them, so a VM that needs them is refused
    /// for a moment ("not enough free memory"): ask again for up to `patience`.
    func createAgainAfterReset(spec: String, patience: TimeInterval = 30) throws -> (ok: Bool, vm: UInt32?, body: String) {
        let deadline = Date().addingTimeInterval(patience)
        while true {
            let answer = try requestWithVM(.create(spec: spec))
            guard !answer.ok, answer.body.contains("free memory"), Date() < deadline else { return answer }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}
