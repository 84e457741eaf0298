import Coordinator
import Protocol

/// What `disco node --metrics` serves: the latest counters report the node handed over
/// (`NodeRuntime.onStatsReport`, every few heartbeats) and the process's own figures.
public final class NodeMetrics: Sendable {
    private let latest = Latest<StatsReport?>(nil)
    private let registry = MetricsRegistry()

    public init() {}

    /// Keeps the report (any thread; a lock and an assignment).
    public func record(_ report: StatsReport) { latest.set(report) }

    /// Prometheus's text format of the latest figures.
    public func render() -> [UInt8] {
        let report = latest.get()
        return registry.render { m in
            if let report { NodeFigures.state(report, into: m) }
        }
    }
}

/// What `disco coordinator --metrics` (and `disco up --metrics`) serves: the state
/// machine's members and VMs and the nodes' latest reports, as the runtime handed them
/// over (`CoordinatorRuntime.onFigures`, about once a second), and the process's own figures.
public final class CoordinatorMetrics: Sendable {
    private let latest = Latest<(CoordinatorStateMachine, [Int32: StatsReport])?>(nil)
    private let registry = MetricsRegistry()

    public init() {}

    /// Keeps the figures (any thread; a lock and an assignment: both are values).
    public func record(_ machine: CoordinatorStateMachine, _ reports: [Int32: StatsReport]) {
        latest.set((machine, reports))
    }

    public func render() -> [UInt8] {
        let figures = latest.get()
        return registry.render { m in
            if let (machine, reports) = figures { CoordinatorFigures.state(machine, reports: reports, into: m) }
        }
    }
}
