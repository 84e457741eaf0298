import Foundation

/// The cluster-wide time base, in nanoseconds: the coordinator's CLOCK_MONOTONIC. A
/// node adds the offset its `ClockOffsetEstimator` measured (zero on the coordinator,
/// a few microseconds between processes of one host), and never lets the value run
/// backwards when the estimate moves. A VM's mtime counts 10 MHz ticks from its epoch.
/// Used from one thread per process (the coordinator's or a node's execution thread).
public enum ClusterClock {
    nonisolated(unsafe) private static var offsetNanos: Int64 = 0
    nonisolated(unsafe) private static var lastReturned: UInt64 = 0

    /// This host's CLOCK_MONOTONIC.
    public static func localNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    public static func nanoseconds() -> UInt64 {
        let now = UInt64(bitPattern: Int64(bitPattern: localNanoseconds()) &+ offsetNanos)
        if now > lastReturned { lastReturned = now }
        return lastReturned
    }

    public static func mtime(epochNanos: UInt64) -> UInt64 {
        let now = nanoseconds()
        return now > epochNanos ? (now - epochNanos) / 100 : 0
    }

    /// Adopts a new offset from the coordinator's clock.
    public static func setOffset(_ nanos: Int64) { offsetNanos = nanos }
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
