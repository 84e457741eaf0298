import Testing
@testable import Node

@Suite struct WaitHistogramTests {
    @Test func quantilesAreTheBucketsUpperBounds() {
        var h = WaitHistogram()
        #expect(h.quantile(0.5) == 0)
        for _ in 0..<90 { h.record(nanos: 30_000) }    // 30 µs: below 32
        for _ in 0..<9 { h.record(nanos: 700_000) }    // 700 µs: below 1024
        h.record(nanos: 5_000_000_000)                 // 5 s
        #expect(h.count == 100)
        #expect(h.quantile(0.5) == 32)
        #expect(h.quantile(0.9) == 32)
        #expect(h.quantile(0.99) == 1024)
        #expect(h.quantile(1.0) == 1 << 23)
    }

    @Test func subMicrosecondWaitsCountInTheFirstBucket() {
        var h = WaitHistogram()
        h.record(nanos: 10)
        h.record(nanos: 999)
        #expect(h.buckets[0] == 2)
        #expect(h.quantile(0.99) == 1)
    }
}
