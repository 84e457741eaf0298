import RISCV

/// A memory-mapped device of the virt board. Offsets are relative to the device's
/// base; sizes are 1, 2, 4 or 8 bytes. Devices never trap on a bad access: reads of
/// unknown registers return 0 and writes to them are ignored, as on QEMU.
public protocol MMIODevice: AnyObject {
    func read(offset: UInt64, size: Int) -> UInt64
    func write(offset: UInt64, size: Int, value: UInt64)
}

/// Where devices send interrupt lines. The single-process machine wires this to its
/// harts; a cluster node turns remote ones into messages.
public protocol InterruptSink: AnyObject {
    func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool)
}

/// Receives the bytes a guest writes to its console UART.
public protocol ConsoleSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer)
}

extension UInt64 {
    /// Little-endian bytes `offset..<offset+size` of a wider register (sub-word MMIO reads).
    @inline(__always) func slice(byteOffset: UInt64, size: Int) -> UInt64 {
        let shifted = self >> (8 * (byteOffset & 7))
        return size >= 8 ? shifted : shifted & ((1 << UInt64(8 * size)) - 1)
    }

    /// This register with bytes `offset..<offset+size` replaced by `value`.
    @inline(__always) func replacing(byteOffset: UInt64, size: Int, with value: UInt64) -> UInt64 {
        let shift = 8 * (byteOffset & 7)
        let mask: UInt64 = size >= 8 ? .max : ((1 << UInt64(8 * size)) - 1)
        return (self & ~(mask << shift)) | ((value & mask) << shift)
    }
}
