import RISCV
#if canImport(Glibc)
import Glibc
#endif

/// A VM's guest-physical address space in one process: RAM at 0x8000_0000 backed by
/// one anonymous host mapping, and MMIO devices at fixed ranges. It is the
/// `PhysicalMemory` the harts of a single-process machine use; a cluster node puts
/// its own implementation (pmap + coherence) behind the same interface.
///
/// RAM pages are handed out directly for every kind of access; device ranges and
/// holes never are. Device lookup is a scan of a short array sorted by address.
public final class SystemBus: PhysicalMemory {
    public let ramBase: UInt64
    public let ramSize: UInt64
    /// Host address of guest-physical `ramBase`.
    public let ram: UnsafeMutableRawPointer
    private var devices: [(base: UInt64, size: UInt64, device: MMIODevice)] = []
    private let clock: () -> UInt64

    public struct MappingError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Only the devices, not RAM (a store to RAM starts no DMA).
    public func isDevicePage(_ pageAddress: UInt64) -> Bool { pageAddress &- ramBase >= ramSize }

    /// Maps `ramSize` bytes of zeroed RAM (pages are committed lazily by the host).
    public init(ramBase: UInt64 = VirtBoard.ramBase, ramSize: UInt64, clock: @escaping () -> UInt64) throws {
        guard ramSize > 0, ramSize % 4096 == 0 else {
            throw MappingError(description: "RAM size \(ramSize) is not a positive multiple of 4 KiB")
        }
        guard let p = mmap(nil, Int(ramSize), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else {
            throw MappingError(description: "cannot map \(ramSize >> 20) MiB of guest RAM: \(String(cString: strerror(errno)))")
        }
        self.ramBase = ramBase
        self.ramSize = ramSize
        self.ram = p
        self.clock = clock
    }

    deinit { munmap(ram, Int(ramSize)) }

    /// Attaches a device at [base, base + size). Ranges must not overlap RAM or each other.
    /// Drops every device: devices that DMA hold the bus, so the machine breaks the
    /// cycle when it goes away.
    public func detachAll() { devices.removeAll() }

    public func attach(_ device: MMIODevice, at base: UInt64, size: UInt64) {
        precondition(base + size <= ramBase || base >= ramBase + ramSize, "device overlaps RAM")
        precondition(!devices.contains { base < $0.base + $0.size && $0.base < base + size }, "devices overlap")
        devices.append((base, size, device))
        devices.sort { $0.base < $1.base }
    }

    @inline(__always) private func ramOffset(_ address: UInt64, _ size: Int) -> Int? {
        let offset = address &- ramBase
        return offset < ramSize && ramSize - offset >= UInt64(size) ? Int(offset) : nil
    }

    @inline(__always) private func device(at address: UInt64) -> (MMIODevice, UInt64)? {
        for d in devices where address >= d.base && address - d.base < d.size { return (d.device, address - d.base) }
        return nil
    }

    // MARK: - Host-side access (loaders, virtio DMA)

    /// Copies bytes into RAM; false if any of them falls outside it.
    @discardableResult
    public func copyIn(_ bytes: UnsafeRawBufferPointer, at address: UInt64) -> Bool {
        guard let offset = ramOffset(address, bytes.count) else { return false }
        if let base = bytes.baseAddress, bytes.count > 0 { (ram + offset).copyMemory(from: base, byteCount: bytes.count) }
        return true
    }

    /// Copies bytes out of RAM; nil if any of them falls outside it.
    public func copyOut(at address: UInt64, count: Int) -> [UInt8]? {
        guard let offset = ramOffset(address, count) else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: ram + offset, count: count))
    }

    // MARK: - PhysicalMemory

    public func directPage(_ pageAddress: UInt64, for access: AccessType) -> UnsafeMutableRawPointer? {
        guard let offset = ramOffset(pageAddress, 4096) else { return nil }
        return ram + offset
    }

    public func load(_ address: UInt64, size: Int, hart: Int, value: inout UInt64) -> BusStatus {
        if let offset = ramOffset(address, size) {
            value = Self.read(ram + offset, size)
            return .ok
        }
        guard let (device, offset) = device(at: address) else { return .accessFault }
        value = device.read(offset: offset, size: size)
        return .ok
    }

    public func store(_ address: UInt64, size: Int, value: UInt64, hart: Int) -> BusStatus {
        if let offset = ramOffset(address, size) {
            Self.write(ram + offset, size, value)
            return .ok
        }
        guard let (device, offset) = device(at: address) else { return .accessFault }
        device.write(offset: offset, size: size, value: value)
        return .ok
    }

    public func atomic(_ op: AtomicOp, _ address: UInt64, size: Int, operand: UInt64, expected: UInt64,
                       hart: Int, old: inout UInt64) -> BusStatus {
        guard let offset = ramOffset(address, size) else {
            // On a device the AMO is a read followed by a write of the result, as QEMU
            // does it (harts of this bus run on one thread, so nothing comes between).
            guard let (device, deviceOffset) = device(at: address) else { return .accessFault }
            let current = device.read(offset: deviceOffset, size: size)
            old = current
            if let result = op.apply(current: current, operand: operand, expected: expected, size: size) {
                device.write(offset: deviceOffset, size: size, value: result)
            }
            return .ok
        }
        let p = ram + offset
        let current = Self.read(p, size)
        old = current
        if let result = op.apply(current: current, operand: operand, expected: expected, size: size) { Self.write(p, size, result) }
        return .ok
    }

    public func currentTime() -> UInt64 { clock() }

    @inline(__always) static func read(_ p: UnsafeMutableRawPointer, _ size: Int) -> UInt64 {
        switch size {
        case 1: return UInt64(p.load(as: UInt8.self))
        case 2: return UInt64(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
        case 4: return UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
        default: return UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        }
    }

    @inline(__always) static func write(_ p: UnsafeMutableRawPointer, _ size: Int, _ value: UInt64) {
        switch size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, toByteOffset: 0, as: UInt16.self)
        case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, toByteOffset: 0, as: UInt32.self)
        default: p.storeBytes(of: value.littleEndian, toByteOffset: 0, as: UInt64.self)
        }
    }
}

/// The machine clock: mtime ticks at 10 MHz from a host monotonic clock since `start`.
public struct MonotonicClock: Sendable {
    private let start: UInt64
    public init() { start = MonotonicClock.nanoseconds() }
    public func ticks() -> UInt64 { (MonotonicClock.nanoseconds() - start) / 100 }
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
