import Foundation

/// Where a process reads the time: the host's CLOCK_MONOTONIC in production, a
/// manually advanced clock in tests that run a whole cluster in one process.
public protocol TimeSource: AnyObject, Sendable {
    /// Nanoseconds since an arbitrary origin; never decreases.
    func nanoseconds() -> UInt64
}

/// This host's CLOCK_MONOTONIC.
public final class MonotonicTime: TimeSource {
    public init() {}
    public func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// Virtual time: it moves only when a test advances it, so a test can stretch a
/// heartbeat gap or jump past a timeout without sleeping.
public final class ManualTime: TimeSource, @unchecked Sendable {
    private let lock = NSLock()
    private var now: UInt64

    public init(startNanos: UInt64 = 1_000_000_000) { now = startNanos }

    public func nanoseconds() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return now
    }

    public func advance(byNanos delta: UInt64) {
        lock.lock()
        now &+= delta
        lock.unlock()
    }

    public func advance(by duration: Duration) { advance(byNanos: duration.wholeNanoseconds) }
}

/// The cluster-wide time base of one process, in nanoseconds: the coordinator's
/// clock. A node adds the offset its `ClockOffsetEstimator` measured (zero on the
/// coordinator, a few microseconds between processes of one host), and never lets
/// the value run backwards when the estimate moves. A VM's mtime counts 10 MHz ticks
/// from its epoch. One instance per runtime (so several nodes can share a test
/// process), used from that runtime's thread.
public final class ClusterClock: @unchecked Sendable {
    public let source: TimeSource
    private var offsetNanos: Int64 = 0
    private var lastReturned: UInt64 = 0

    public init(source: TimeSource = MonotonicTime()) {
        self.source = source
    }

    /// The local time source, without the cluster offset (for round-trip samples).
    public func localNanoseconds() -> UInt64 { source.nanoseconds() }

    public func nanoseconds() -> UInt64 {
        let now = UInt64(bitPattern: Int64(bitPattern: source.nanoseconds()) &+ offsetNanos)
        if now > lastReturned { lastReturned = now }
        return lastReturned
    }

    public func mtime(epochNanos: UInt64) -> UInt64 {
        let now = nanoseconds()
        return now > epochNanos ? (now - epochNanos) / 100 : 0
    }

    /// Adopts a new offset from the coordinator's clock.
    public func setOffset(_ nanos: Int64) { offsetNanos = nanos }
}

/// Estimates the offset of the coordinator's clock from this host's (NTP's idea, the
/// simple form): every heartbeat is answered with the coordinator's time; the sample
/// with the shortest round trip bounds the error by half that round trip, so a sample
/// is adopted only if its round trip is near the best seen. The best round trip ages
/// (grows 1% per sample) so that a lasting change of the network is followed.
public struct ClockOffsetEstimator: Sendable, Equatable {
    public private(set) var offsetNanos: Int64?
    public private(set) var bestRoundTripNanos: UInt64 = .max

    public init() {}

    /// A sample: this host sent at `sentLocal`, the coordinator stamped `remote`, the
    /// answer came back at `receivedLocal` (all nanoseconds). Returns whether the
    /// estimate changed.
    @discardableResult
    public mutating func add(sentLocal: UInt64, remote: UInt64, receivedLocal: UInt64) -> Bool {
        guard receivedLocal >= sentLocal else { return false }
        let rtt = receivedLocal - sentLocal
        if bestRoundTripNanos != .max { bestRoundTripNanos += bestRoundTripNanos / 100 }
        guard offsetNanos == nil || rtt <= bestRoundTripNanos else { return false }
        bestRoundTripNanos = min(bestRoundTripNanos, rtt)
        let midpoint = sentLocal + rtt / 2
        offsetNanos = Int64(bitPattern: remote) &- Int64(bitPattern: midpoint)
        return true
    }
}

extension Duration {
    /// The duration in whole nanoseconds (0 for a negative one).
    public var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
