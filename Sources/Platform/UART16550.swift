import Foundation

/// The ns16550a console UART at 0x10000000 (IRQ 10): transmit to a `ConsoleSink`,
/// receive from a thread-safe input queue, FIFO mode, the divisor latch, and the
/// receive-data and transmitter-empty interrupts (a level on `irq`).
/// Transmission is instantaneous, so LSR always shows THR empty.
public final class UART16550: MMIODevice {
    private let console: ConsoleSink
    private let irq: (Bool) -> Void
    private var rx: [UInt8] = []
    private var ier: UInt8 = 0, lcr: UInt8 = 0, mcr: UInt8 = 0, scr: UInt8 = 0, fcr: UInt8 = 0
    private var dll: UInt8 = 0, dlm: UInt8 = 0
    /// THR-empty interrupt pending (set by a THR write or enabling ETBEI, cleared by reading IIR).
    private var thrEmptyPending = false
    private var irqLevel = false

    private let inputLock = NSLock()
    private var input: [UInt8] = []

    public init(console: ConsoleSink, irq: @escaping (Bool) -> Void = { _ in }) {
        self.console = console
        self.irq = irq
    }

    /// Queues host input for the guest (any thread).
    public func enqueueInput(_ bytes: [UInt8]) {
        inputLock.lock()
        input.append(contentsOf: bytes)
        inputLock.unlock()
    }

    /// Moves queued host input into the receive FIFO (machine thread).
    public func poll() {
        guard rx.count < 16 else { return }
        inputLock.lock()
        if !input.isEmpty {
            let n = min(16 - rx.count, input.count)
            rx.append(contentsOf: input.prefix(n))
            input.removeFirst(n)
        }
        inputLock.unlock()
        updateIRQ()
    }

    private var dlab: Bool { lcr & 0x80 != 0 }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case 0:
            if dlab { return UInt64(dll) }
            guard !rx.isEmpty else { return 0 }
            let byte = rx.removeFirst()
            updateIRQ()
            return UInt64(byte)
        case 1: return UInt64(dlab ? dlm : ier)
        case 2:
            let fifo: UInt8 = fcr & 1 != 0 ? 0xc0 : 0
            if ier & 1 != 0 && !rx.isEmpty { return UInt64(fifo | 0x04) }
            if ier & 2 != 0 && thrEmptyPending {
                thrEmptyPending = false
                updateIRQ()
                return UInt64(fifo | 0x02)
            }
            return UInt64(fifo | 0x01)
        case 3: return UInt64(lcr)
        case 4: return UInt64(mcr)
        case 5: return UInt64(0x60 | (rx.isEmpty ? 0 : 1))  // THRE | TEMT | DR
        case 6: return 0xb0  // DCD, DSR, CTS
        case 7: return UInt64(scr)
        default: return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let byte = UInt8(truncatingIfNeeded: value)
        switch offset {
        case 0:
            if dlab { dll = byte; return }
            withUnsafeBytes(of: byte) { console.write($0) }
            thrEmptyPending = true
        case 1:
            if dlab { dlm = byte; return }
            let enablingTHRE = byte & 2 != 0 && ier & 2 == 0
            ier = byte & 0x0f
            if enablingTHRE { thrEmptyPending = true }
        case 2:
            fcr = byte & 0xc9
            if byte & 2 != 0 { rx.removeAll() }
        case 3: lcr = byte
        case 4: mcr = byte & 0x1f
        case 7: scr = byte
        default: break
        }
        updateIRQ()
    }

    private func updateIRQ() {
        let level = (ier & 1 != 0 && !rx.isEmpty) || (ier & 2 != 0 && thrEmptyPending)
        if level != irqLevel {
            irqLevel = level
            irq(level)
        }
    }
}
