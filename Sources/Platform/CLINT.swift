import RISCV

/// The core-local interruptor at 0x2000000 (SiFive CLINT layout, as on QEMU virt):
/// `msip` per hart at +4·h drives the machine software interrupt, `mtimecmp` per
/// hart at +0x4000 + 8·h and the shared `mtime` at +0xbff8 drive the machine timer
/// interrupt (pending while mtime ≥ mtimecmp). Time comes from the machine's clock
/// (10 MHz); writing mtime moves an offset against it.
public final class CLINT: MMIODevice {
    public let harts: Int
    private let sink: InterruptSink
    private let clock: () -> UInt64
    private var msip: [Bool]
    private var mtimecmp: [UInt64]
    private var timerAsserted: [Bool]
    private var timeOffset: UInt64 = 0

    static let msipBase: UInt64 = 0, mtimecmpBase: UInt64 = 0x4000, mtimeOffset: UInt64 = 0xbff8

    public init(harts: Int, sink: InterruptSink, clock: @escaping () -> UInt64) {
        self.harts = harts
        self.sink = sink
        self.clock = clock
        msip = Array(repeating: false, count: harts)
        // QEMU 7.2's virt CLINT resets mtimecmp to 0, so MTIP is pending from the start
        // (the machine loop's first updateTimers() raises it).
        mtimecmp = Array(repeating: 0, count: harts)
        timerAsserted = Array(repeating: false, count: harts)
    }

    public var mtime: UInt64 { clock() &+ timeOffset }

    /// Re-evaluates every hart's timer line against the current time.
    public func updateTimers() {
        let now = mtime
        for h in 0..<harts { setTimer(h, now >= mtimecmp[h]) }
    }

    /// The earliest mtime at which a timer line not yet raised will rise.
    public var nextDeadline: UInt64? { nextDeadline { _ in true } }

    /// The same, counting only the harts `counts` accepts.
    public func nextDeadline(counting counts: (Int) -> Bool) -> UInt64? {
        var d: UInt64?
        for h in 0..<harts where !timerAsserted[h] && mtimecmp[h] != .max && counts(h) {
            d = min(d ?? .max, mtimecmp[h])
        }
        return d
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case Self.msipBase..<Self.msipBase + 4 * UInt64(harts):
            return msip[Int(offset / 4)] && offset % 4 == 0 ? 1 : 0
        case Self.mtimecmpBase..<Self.mtimecmpBase + 8 * UInt64(harts):
            let h = Int((offset - Self.mtimecmpBase) / 8)
            return mtimecmp[h].slice(byteOffset: offset, size: size)
        case Self.mtimeOffset..<Self.mtimeOffset + 8:
            return mtime.slice(byteOffset: offset, size: size)
        default:
            return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        switch offset {
        case Self.msipBase..<Self.msipBase + 4 * UInt64(harts):
            guard offset % 4 == 0 else { return }
            let h = Int(offset / 4)
            msip[h] = value & 1 != 0
            sink.setInterrupt(hart: h, line: .machineSoftware, asserted: msip[h])
        case Self.mtimecmpBase..<Self.mtimecmpBase + 8 * UInt64(harts):
            let h = Int((offset - Self.mtimecmpBase) / 8)
            mtimecmp[h] = mtimecmp[h].replacing(byteOffset: offset, size: size, with: value)
            setTimer(h, mtime >= mtimecmp[h])
        case Self.mtimeOffset..<Self.mtimeOffset + 8:
            let wanted = mtime.replacing(byteOffset: offset, size: size, with: value)
            timeOffset = wanted &- clock()
            updateTimers()
        default:
            break
        }
    }

    /// Hart `h`'s registers (its msip bit and mtimecmp), to move it to another node.
    public func registers(ofHart h: Int) -> (msip: Bool, mtimecmp: UInt64) { (msip[h], mtimecmp[h]) }

    /// Sets hart `h`'s registers (a hart moved here) and drives its lines from them.
    public func setRegisters(ofHart h: Int, msip m: Bool, mtimecmp t: UInt64) {
        msip[h] = m
        mtimecmp[h] = t
        sink.setInterrupt(hart: h, line: .machineSoftware, asserted: m)
        timerAsserted[h] = !(mtime >= t)
        setTimer(h, mtime >= t)
    }

    private func setTimer(_ h: Int, _ asserted: Bool) {
        guard timerAsserted[h] != asserted else { return }
        timerAsserted[h] = asserted
        sink.setInterrupt(hart: h, line: .machineTimer, asserted: asserted)
    }
}
