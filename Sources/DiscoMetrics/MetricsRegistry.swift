import Foundation
import Prometheus

/// One Prometheus registry and the mirror that fills it, behind one lock. `render` states
/// the latest figures (the caller's and the process's own) and writes Prometheus's text
/// format; it runs on the HTTP server's tasks, never on a runtime's thread.
final class MetricsRegistry: @unchecked Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    private let mirror: SeriesMirror
    private let process = ProcessFigures()

    init() {
        mirror = SeriesMirror(factory: PrometheusMetricsFactory(registry: registry))
    }

    func render(_ state: (SeriesMirror) -> Void) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        mirror.begin()
        state(mirror)
        process.state(into: mirror)
        mirror.end()
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

/// The latest value handed over by one thread, read by another.
final class Latest<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func set(_ new: Value) {
        lock.lock()
        value = new
        lock.unlock()
    }

    func get() -> Value {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
