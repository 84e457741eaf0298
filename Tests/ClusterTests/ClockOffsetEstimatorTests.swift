import Testing
@testable import Cluster

@Suite struct ClockOffsetEstimatorTests {
    @Test func keepsTheSampleWithTheShortestRoundTrip() {
        var e = ClockOffsetEstimator()
        // The remote clock is 1_000_000 ns ahead. First sample: 100 µs round trip.
        let first = e.add(sentLocal: 10_000, remote: 1_000_000 + 60_000, receivedLocal: 110_000)
        #expect(first)
        #expect(e.offsetNanos == 1_000_000)
        // A slow, lopsided sample (2 ms) is ignored.
        let slow = e.add(sentLocal: 200_000, remote: 1_000_000 + 2_100_000, receivedLocal: 2_200_000)
        #expect(!slow)
        #expect(e.offsetNanos == 1_000_000)
        // A faster one refines it.
        let fast = e.add(sentLocal: 3_000_000, remote: 1_000_000 + 3_005_000, receivedLocal: 3_010_000)
        #expect(fast)
        #expect(e.offsetNanos == 1_000_000)
        #expect(e.bestRoundTripNanos == 10_000)
        // A reply that arrives before it was sent is nonsense.
        let backwards = e.add(sentLocal: 5_000, remote: 0, receivedLocal: 4_000)
        #expect(!backwards)
    }

    @Test func theBestRoundTripAgesSoTheEstimateFollowsChange() {
        var e = ClockOffsetEstimator()
        e.add(sentLocal: 0, remote: 500, receivedLocal: 1_000)
        var adopted = false
        for i in 1...200 where !adopted {
            adopted = e.add(sentLocal: UInt64(i) * 10_000, remote: UInt64(i) * 10_000 + 700 + 5_000, receivedLocal: UInt64(i) * 10_000 + 1_400)
        }
        #expect(adopted, "a steadily slower network is never followed")
        #expect(e.offsetNanos == 5_000)
    }
}
