/// How long VCPUs waited, parked, for a remote line or device read: counts in
/// power-of-two microsecond buckets (bucket k holds waits below 2^k µs), enough for the
/// median and the 99th percentile a node reports (`park_us_p50`, `park_us_p99`) at a
/// fixed cost per wait.
public struct WaitHistogram: Sendable, Equatable {
    public private(set) var buckets = [UInt64](repeating: 0, count: 32)
    public private(set) var count: UInt64 = 0
    /// The sum of every wait, in nanoseconds.
    public private(set) var totalNanos: UInt64 = 0

    public init() {}

    public mutating func record(nanos: UInt64) {
        let micros = nanos / 1000
        let k = micros == 0 ? 0 : min(63 - micros.leadingZeroBitCount + 1, buckets.count - 1)
        buckets[k] &+= 1
        count &+= 1
        totalNanos &+= nanos
    }

    /// The upper bound in µs of the bucket holding quantile `q` (0...1), or 0 if nothing
    /// was recorded.
    public func quantile(_ q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = max(1, UInt64((Double(count) * q).rounded(.up)))
        var seen: UInt64 = 0
        for (k, n) in buckets.enumerated() {
            seen &+= n
            if seen >= rank { return UInt64(1) << UInt64(k) }
        }
        return UInt64(1) << UInt64(buckets.count - 1)
    }
}
