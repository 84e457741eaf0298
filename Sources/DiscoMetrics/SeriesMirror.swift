import CoreMetrics
import Prometheus

/// Mirrors figures that another component counts (a node's counters report, the
/// coordinator's records) into swift-metrics handles backed by one Prometheus registry.
///
/// Each update states every series' value as its source has it now, between `begin()`
/// and `end()`. A counter is given its total and advances by the difference; a total
/// below the last one means the source started over (a node restarted), and so does the
/// series: Prometheus reads that as a counter reset, as it should. A series not stated in
/// an update is destroyed, so a finished VM or a dead node leaves the output instead of
/// showing its last value for ever.
///
/// Not thread-safe: the owner serializes updates and emits (`MetricsRegistry`).
final class SeriesMirror {
    struct Key: Hashable {
        var name: String
        var labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }
    }

    let factory: PrometheusMetricsFactory
    private var counters: [Key: (handle: CoreMetrics.Counter, total: Int64)] = [:]
    private var floatCounters: [Key: (handle: FloatingPointCounter, total: Double)] = [:]
    private var gauges: [Key: CoreMetrics.Gauge] = [:]
    private var stated: Set<Key> = []

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
    }

    func begin() { stated.removeAll(keepingCapacity: true) }

    /// A counter whose source has counted `total` so far.
    func counter(_ name: String, _ labels: [(String, String)] = [], total: Int64) {
        let key = Key(name, labels)
        stated.insert(key)
        let total = max(0, total)
        guard let (handle, last) = counters[key] else {
            let handle = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
            handle.increment(by: total)
            counters[key] = (handle, total)
            return
        }
        if total >= last {
            handle.increment(by: total - last)
        } else {
            handle.reset()
            handle.increment(by: total)
        }
        counters[key]!.total = total
    }

    /// A counter of a fractional amount (seconds of CPU time).
    func counter(_ name: String, _ labels: [(String, String)] = [], total: Double) {
        let key = Key(name, labels)
        stated.insert(key)
        let total = max(0, total)
        guard let (handle, last) = floatCounters[key] else {
            let handle = FloatingPointCounter(label: name, dimensions: labels, factory: factory)
            handle.increment(by: total)
            floatCounters[key] = (handle, total)
            return
        }
        if total >= last {
            handle.increment(by: total - last)
        } else {
            handle.reset()
            handle.increment(by: total)
        }
        floatCounters[key]!.total = total
    }

    func gauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = Key(name, labels)
        stated.insert(key)
        let handle: CoreMetrics.Gauge
        if let g = gauges[key] {
            handle = g
        } else {
            handle = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            gauges[key] = handle
        }
        handle.record(value)
    }

    /// Destroys every series this update did not state.
    func end() {
        for key in counters.keys where !stated.contains(key) { counters.removeValue(forKey: key)?.handle.destroy() }
        for key in floatCounters.keys where !stated.contains(key) { floatCounters.removeValue(forKey: key)?.handle.destroy() }
        for key in gauges.keys where !stated.contains(key) { gauges.removeValue(forKey: key)?.destroy() }
    }
}
