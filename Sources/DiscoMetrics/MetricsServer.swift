import FlyingFox
import FlyingSocks
import Foundation
import Logging

/// An HTTP server for `GET /metrics` (FlyingFox, on Swift concurrency's threads and a
/// socket-polling queue of its own, never a runtime's thread). `render` is called per
/// request and must only read snapshots (NodeMetrics, CoordinatorMetrics).
public final class MetricsServer: Sendable {
    private let server: HTTPServer
    private let task: Task<Void, Never>
    /// Where it listens, with the port chosen when 0 was asked for.
    public let bound: MetricsAddress

    /// The URL Prometheus scrapes.
    public var url: String { "http://\(bound)/metrics" }

    /// Binds `address` and starts serving; throws a clear error when the address does not
    /// resolve or cannot be bound (say, the port is in use), before anything is served.
    public static func start(on address: MetricsAddress, logger: Logger,
                             render: @escaping @Sendable () -> [UInt8]) throws(MetricsError) -> MetricsServer {
        let server: HTTPServer
        switch try address.resolve() {
        case .v4(let a): server = HTTPServer(address: a, timeout: 15, logger: SwiftLogBridge(logger: logger))
        case .v6(let a): server = HTTPServer(address: a, timeout: 15, logger: SwiftLogBridge(logger: logger))
        }
        let outcome = Outcome()
        let task = Task.detached {
            await server.appendRoute("GET /metrics") { _ in
                HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                             body: Data(render()))
            }
            await server.appendRoute("GET /") { _ in
                HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                             body: Data("Disco metrics: GET /metrics (Prometheus text format)\n".utf8))
            }
            let watcher = Task {
                do {
                    try await server.waitUntilListening(timeout: 15)
                    outcome.finish(.success(await server.listeningAddress))
                } catch {
                    outcome.finish(.failure(MetricsError("metrics endpoint \(address): did not start listening within 15 s")))
                }
            }
            do {
                try await server.run()
            } catch {
                let e = MetricsError("cannot serve metrics on \(address): \(Self.describe(error))")
                if !outcome.finish(.failure(e)), !outcome.stopping { logger.error("metrics endpoint stopped: \(e)") }
            }
            watcher.cancel()
        }
        let listening: Socket.Address?
        switch outcome.wait(seconds: 30) {
        case .success(let a): listening = a
        case .failure(let error):
            task.cancel()
            throw error
        }
        var bound = address
        switch listening {
        case .ip4(_, let port)?, .ip6(_, let port)?: bound.port = port
        default: break
        }
        return MetricsServer(server: server, task: task, bound: bound, outcome: outcome)
    }

    private let outcome: Outcome

    private init(server: HTTPServer, task: Task<Void, Never>, bound: MetricsAddress, outcome: Outcome) {
        self.server = server
        self.task = task
        self.bound = bound
        self.outcome = outcome
    }

    /// Closes the listening socket and waits (briefly) for the server to end.
    public func stop() {
        outcome.stopping = true
        let server = self.server
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await server.stop(timeout: 1)
            done.signal()
        }
        _ = done.wait(timeout: .now() + 3)
        task.cancel()
    }

    /// "Address already in use" rather than "SocketError. bind(98): ...".
    private static func describe(_ error: any Error) -> String {
        if case SocketError.failed(let type, let code, let message) = error {
            return code == EADDRINUSE ? "the port is in use (\(type): \(message))" : "\(type): \(message)"
        }
        return "\(error)"
    }

    /// The first outcome of starting: listening (at an address) or an error.
    private final class Outcome: @unchecked Sendable {
        private let condition = NSCondition()
        private var result: Result<Socket.Address?, MetricsError>?
        private var _stopping = false

        /// Whether `stop()` was called (an error after it is expected).
        var stopping: Bool {
            get { condition.lock(); defer { condition.unlock() }; return _stopping }
            set { condition.lock(); _stopping = newValue; condition.unlock() }
        }

        /// Records the outcome; false if one was recorded already.
        @discardableResult
        func finish(_ r: Result<Socket.Address?, MetricsError>) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard result == nil else { return false }
            result = r
            condition.broadcast()
            return true
        }

        /// Waits for the outcome; an error if none came within `seconds` (the server's
        /// tasks never ran: Swift concurrency's threads were all kept busy).
        func wait(seconds: TimeInterval) -> Result<Socket.Address?, MetricsError> {
            let deadline = Date().addingTimeInterval(seconds)
            condition.lock()
            defer { condition.unlock() }
            while result == nil {
                if !condition.wait(until: deadline) { return .failure(MetricsError("the metrics endpoint did not start within \(Int(seconds)) s")) }
            }
            return result!
        }
    }
}

/// FlyingFox's log lines into swift-log, all at debug (`--log-level debug` shows every
/// request): what matters (cannot bind, the server stopped) `MetricsServer` says itself.
struct SwiftLogBridge: FlyingSocks.Logging {
    let logger: Logger
    func logDebug(_ debug: @autoclosure () -> String) { logger.debug("\(debug())") }
    func logInfo(_ info: @autoclosure () -> String) { logger.debug("\(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.debug("\(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.debug("\(error())") }
    func logCritical(_ critical: @autoclosure () -> String) { logger.debug("\(critical())") }
}
