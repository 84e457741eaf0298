import Foundation
import Testing
@testable import Node
import RISCV

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
        p.add(vm: 1, vcpu: 0, state: "parked-read-homeaway", pc: 0x10, line: 0x8000_1040, weight: 3_000)
        p.add(vm: 1, vcpu: 1, state: "parked-write-homehere", pc: 0x20, line: 0x8000_1040, weight: 1_600)
        p.add(vm: 1, vcpu: 1, state: "parked-read-homeaway", pc: 0x30, line: 0x8000_2000, weight: 4_000)
        p.add(vm: 1, vcpu: 0, state: "runnable", pc: 0x40, weight: 9_000)
        p.add(vm: 1, vcpu: 0, state: "runnable", pc: 0x50, weight: 400)  // under half a millisecond
        let report = p.report()
        #expect(report.contains("3 1 0 parked-read-homeaway 0x10 0x80001040\n"))
        #expect(report.contains("9 1 0 runnable 0x40\n"))
        #expect(report.contains("2 1 1 parked-write-homehere 0x20 0x80001040\n"))
        #expect(!report.contains("0x50"))
        let byLine = report.components(separatedBy: "# parked samples by line: samples line\n")
        #expect(byLine.count == 2 && byLine[1] == "5 0x80001040\n4 0x80002000\n")
    }

    /// A node that sleeps samples as it goes to sleep and as it wakes, before it
    /// handles what woke it: the time asleep counts in full, whatever the interval.
    @Test func aForcedSampleCountsTheTimeSinceTheLast() {
        var p = GuestProfile(environment: ["DISCO_GUEST_PROFILE": "/nonexistent"], name: "n")!
        #expect(p.due(1_000_000) == 1_000)             // the first: one interval
        #expect(p.due(1_300_000) == 0)                 // not due yet
        #expect(p.due(1_300_000, force: true) == 300)  // forced: 300 µs since the last
        #expect(p.due(2_300_000) == 1_000)
        #expect(p.samples == 2)
    }

    /// The profile's trailer says where each VCPU stopped: pc, privilege, the trap
    /// CSRs and the registers a trap loop is read from.
    @Test func aStoppedVCPUIsDescribedByItsTrapState() {
        var regs = [UInt64](repeating: 0, count: 32)
        regs[2] = 0xffffffff81000000
        let st = HartState(pc: 0xffffffff80a00000, privilege: 1, registers: regs, floatRegisters: Array(repeating: 0, count: 32),
                           csrs: [(0x142, 0xc), (0x143, 0xffffffff80a00000), (0x105, 0xffffffff80a00000), (0x7c0, 5)])
        let line = NodeRuntime.describe(st)
        #expect(line.hasPrefix("pc=ffffffff80a00000 priv=1 "))
        #expect(line.contains("scause=c stval=ffffffff80a00000") && line.contains("stvec=ffffffff80a00000"))
        #expect(line.contains("sp=ffffffff81000000") && line.contains("a1=0"))
        #expect(!line.contains("=5 "))  // CSRs it does not name are left out
    }

    /// Every section ends with the VCPU lines of its end, not only the last.
    @Test func eachSectionEndsWithWhereTheVCPUsAre() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var p = GuestProfile(environment: ["DISCO_GUEST_PROFILE": dir, "DISCO_GUEST_PROFILE_PERIOD": "1"], name: "n")!
        var calls = 0
        let vcpus = { () -> String in calls += 1; return "# vcpu 1 0 pc=\(calls)\n" }
        p.endSectionIfDue(1_000_000_000, vcpus: vcpus)   // opens the first section
        p.endSectionIfDue(1_500_000_000, vcpus: vcpus)   // not over yet
        p.endSectionIfDue(2_000_000_000, vcpus: vcpus)   // closes it
        p.endSectionIfDue(3_000_000_000, vcpus: vcpus)   // closes the second
        #expect(calls == 2)
        try p.write()
        let text = try String(contentsOfFile: dir + "/n.txt", encoding: .utf8)
        let sections = text.components(separatedBy: "## ").filter { !$0.isEmpty }
        #expect(sections.count == 3)
        #expect(sections[0].hasSuffix("# vcpu 1 0 pc=1\n") && sections[1].hasSuffix("# vcpu 1 0 pc=2\n"))
    }

    @Test func subMicrosecondWaitsCountInTheFirstBucket() {
        var h = WaitHistogram()
        h.record(nanos: 10)
        h.record(nanos: 999)
        #expect(h.buckets[0] == 2)
        #expect(h.quantile(0.99) == 1)
    }
}
