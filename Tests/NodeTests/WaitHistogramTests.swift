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
        #expect(h.totalNanos == 90 * 30_000 + 9 * 700_000 + 5_000_000_000)
    }

    /// The guest profile names the line a parked VCPU waits for, and sums its samples
    /// per line over the VCPUs and pcs that waited for it.
    @Test func theGuestProfileSumsParkedSamplesPerLine() {
        var p = GuestProfile(environment: ["DISCO_GUEST_PROFILE": "/nonexistent"], name: "n")!
        p.add(vm: 1, vcpu: 0, state: "parked-read-homeaway", pc: 0x10, line: 0x8000_1040, weight: 3)
        p.add(vm: 1, vcpu: 1, state: "parked-write-homehere", pc: 0x20, line: 0x8000_1040, weight: 2)
        p.add(vm: 1, vcpu: 1, state: "parked-read-homeaway", pc: 0x30, line: 0x8000_2000, weight: 4)
        p.add(vm: 1, vcpu: 0, state: "runnable", pc: 0x40, weight: 9)
        let report = p.report()
        #expect(report.contains("3 1 0 parked-read-homeaway 0x10 0x80001040\n"))
        #expect(report.contains("9 1 0 runnable 0x40\n"))
        let byLine = report.components(separatedBy: "# parked samples by line: samples line\n")
        #expect(byLine.count == 2 && byLine[1] == "5 0x80001040\n4 0x80002000\n")
    }

    @Test func subMicrosecondWaitsCountInTheFirstBucket() {
        var h = WaitHistogram()
        h.record(nanos: 10)
        h.record(nanos: 999)
        #expect(h.buckets[0] == 2)
        #expect(h.quantile(0.99) == 1)
    }
}
