import Testing
import RISCV
@testable import Platform

final class RecordingSink: InterruptSink {
    var events: [(hart: Int, line: InterruptLine, asserted: Bool)] = []
    func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool) { events.append((hart, line, asserted)) }
    var summary: [String] { events.map { "h\($0.hart) \($0.line) \($0.asserted ? "on" : "off")" } }
}

final class ManualClock {
    var now: UInt64 = 0
}

@Suite struct CLINTTests {
    let sink = RecordingSink()
    let clock = ManualClock()
    func makeCLINT(harts: Int = 2) -> CLINT { CLINT(harts: harts, sink: sink, clock: { [clock] in clock.now }) }

    @Test func msipRaisesAndLowersMachineSoftwareInterrupts() {
        let clint = makeCLINT()
        clint.write(offset: 4, size: 4, value: 1)
        #expect(clint.read(offset: 4, size: 4) == 1)
        #expect(clint.read(offset: 0, size: 4) == 0)
        clint.write(offset: 4, size: 4, value: 0)
        #expect(sink.summary == ["h1 machineSoftware on", "h1 machineSoftware off"])
    }

    @Test func timerFiresWhenMtimeReachesMtimecmp() {
        let clint = makeCLINT()
        #expect(clint.read(offset: 0x4000, size: 8) == 0)  // reset value, as QEMU 7.2
        clint.write(offset: 0x4000, size: 8, value: .max)  // hart 0 off, as firmware does first
        clint.write(offset: 0x4008, size: 8, value: .max)
        clock.now = 100
        clint.write(offset: 0x4008, size: 8, value: 150)  // hart 1
        #expect(sink.events.isEmpty)
        #expect(clint.nextDeadline == 150)
        clock.now = 149
        clint.updateTimers()
        #expect(sink.events.isEmpty)
        clock.now = 150
        clint.updateTimers()
        clint.updateTimers()  // level, reported once
        #expect(sink.summary == ["h1 machineTimer on"])
        #expect(clint.nextDeadline == nil)
        // Moving mtimecmp into the future lowers the line at once.
        clint.write(offset: 0x4008, size: 8, value: 1000)
        #expect(sink.summary == ["h1 machineTimer on", "h1 machineTimer off"])
    }

    @Test func thirtyTwoBitHalvesAsRV32FirmwareWritesThem() {
        let clint = makeCLINT(harts: 1)
        clock.now = 0x1_0000_0005
        #expect(clint.read(offset: 0xbff8, size: 4) == 5)
        #expect(clint.read(offset: 0xbffc, size: 4) == 1)
        clint.write(offset: 0x4004, size: 4, value: 2)
        clint.write(offset: 0x4000, size: 4, value: 0xffff_ffff)
        #expect(clint.read(offset: 0x4000, size: 8) == 0x2_ffff_ffff)
        #expect(sink.events.isEmpty)
        clint.write(offset: 0x4004, size: 4, value: 0)  // now 0x0_ffffffff <= mtime
        #expect(sink.summary == ["h0 machineTimer on"])
    }

    @Test func writingMtimeShiftsTheTimeBase() {
        let clint = makeCLINT(harts: 1)
        clock.now = 1000
        clint.write(offset: 0xbff8, size: 8, value: 10)
        #expect(clint.mtime == 10)
        clock.now = 1500
        #expect(clint.read(offset: 0xbff8, size: 8) == 510)
    }

    @Test func unknownRegistersReadZeroAndIgnoreWrites() {
        let clint = makeCLINT(harts: 1)
        clint.write(offset: 0x8, size: 4, value: 1)  // msip of a hart that does not exist
        clint.write(offset: 0x5000, size: 8, value: 0)
        #expect(clint.read(offset: 0x8, size: 4) == 0)
        #expect(clint.read(offset: 0x5000, size: 8) == 0)
        #expect(sink.events.isEmpty)
    }
}

@Suite struct TestFinisherTests {
    @Test func requestsAsQEMUDecodesThem() {
        let f = TestFinisher()
        f.write(offset: 0, size: 4, value: 0x5555)
        #expect(f.take() == .pass)
        #expect(f.take() == nil)
        f.write(offset: 0, size: 4, value: (42 << 16) | 0x3333)
        #expect(f.take() == .fail(code: 42))
        f.write(offset: 0, size: 4, value: 0x7777)
        #expect(f.take() == .reset)
        f.write(offset: 0, size: 4, value: 0x1234)
        f.write(offset: 4, size: 4, value: 0x5555)
        #expect(f.take() == nil)
    }
}
