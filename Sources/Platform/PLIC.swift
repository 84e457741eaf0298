import RISCV

/// The platform-level interrupt controller at 0xc000000, laid out as QEMU virt's
/// (SiFive PLIC): sources 1..95 with priorities at +4·n, the pending bits at
/// +0x1000, per-context enables at +0x2000 + 0x80·c, and per-context threshold
/// and claim/complete at +0x200000 + 0x1000·c. Context 2h is hart h's M-mode
/// (MEIP), 2h+1 its S-mode (SEIP). Sources are level-triggered through a gateway:
/// a claimed source is not pending again until it is completed.
public final class PLIC: MMIODevice {
    public static let sources = 96
    public let harts: Int
    private let sink: InterruptSink
    private var priority = [UInt32](repeating: 0, count: PLIC.sources)
    private var level = [Bool](repeating: false, count: PLIC.sources)
    private var pending = [Bool](repeating: false, count: PLIC.sources)
    private var claimed = [Bool](repeating: false, count: PLIC.sources)
    private var enable: [[UInt32]]
    private var threshold: [UInt32]
    private var asserted: [Bool]

    public init(harts: Int, sink: InterruptSink) {
        self.harts = harts
        self.sink = sink
        enable = Array(repeating: [0, 0, 0], count: 2 * harts)
        threshold = Array(repeating: 0, count: 2 * harts)
        asserted = Array(repeating: false, count: 2 * harts)
    }

    /// Drives source `irq`'s input line.
    public func setSourceLevel(_ irq: Int, _ high: Bool) {
        guard irq > 0, irq < Self.sources else { return }
        level[irq] = high
        if high && !claimed[irq] { pending[irq] = true }
        if !high { pending[irq] = false }
        update()
    }

    /// The best pending, enabled source above the threshold for a context (0 if none).
    private func best(_ ctx: Int) -> Int {
        var bestIRQ = 0, bestPriority: UInt32 = 0
        for irq in 1..<Self.sources where pending[irq] && enable[ctx][irq / 32] & (1 << UInt32(irq % 32)) != 0 {
            if priority[irq] > bestPriority { bestPriority = priority[irq]; bestIRQ = irq }
        }
        return bestPriority > threshold[ctx] ? bestIRQ : 0
    }

    private func update() {
        for ctx in 0..<(2 * harts) {
            let on = best(ctx) != 0
            if on != asserted[ctx] {
                asserted[ctx] = on
                sink.setInterrupt(hart: ctx / 2, line: ctx % 2 == 0 ? .machineExternal : .supervisorExternal, asserted: on)
            }
        }
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case 0..<0x1000:
            let irq = Int(offset / 4)
            return irq < Self.sources ? UInt64(priority[irq]) : 0
        case 0x1000..<0x100c:
            let word = Int((offset - 0x1000) / 4)
            var bits: UInt32 = 0
            for b in 0..<32 where pending[word * 32 + b] { bits |= 1 << UInt32(b) }
            return UInt64(bits)
        case 0x2000..<0x1f_0000:
            let ctx = Int((offset - 0x2000) / 0x80), word = Int(((offset - 0x2000) % 0x80) / 4)
            return ctx < 2 * harts && word < 3 ? UInt64(enable[ctx][word]) : 0
        case 0x20_0000..<0x60_0000:
            let ctx = Int((offset - 0x20_0000) / 0x1000)
            guard ctx < 2 * harts else { return 0 }
            switch offset % 0x1000 {
            case 0: return UInt64(threshold[ctx])
            case 4:
                let irq = best(ctx)
                if irq != 0 {
                    pending[irq] = false
                    claimed[irq] = true
                    update()
                }
                return UInt64(irq)
            default: return 0
            }
        default:
            return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let v = UInt32(truncatingIfNeeded: value)
        switch offset {
        case 0..<0x1000:
            let irq = Int(offset / 4)
            if irq > 0 && irq < Self.sources { priority[irq] = v & 7 }
        case 0x2000..<0x1f_0000:
            let ctx = Int((offset - 0x2000) / 0x80), word = Int(((offset - 0x2000) % 0x80) / 4)
            if ctx < 2 * harts && word < 3 { enable[ctx][word] = word == 0 ? v & ~1 : v }
        case 0x20_0000..<0x60_0000:
            let ctx = Int((offset - 0x20_0000) / 0x1000)
            guard ctx < 2 * harts else { return }
            switch offset % 0x1000 {
            case 0: threshold[ctx] = v & 7
            case 4:
                let irq = Int(v)
                if irq > 0 && irq < Self.sources && claimed[irq] {
                    claimed[irq] = false
                    if level[irq] { pending[irq] = true }
                }
            default: break
            }
        default: break
        }
        update()
    }
}
