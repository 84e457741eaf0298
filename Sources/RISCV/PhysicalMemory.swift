/// The one narrow interface through which a hart reaches everything outside itself.
///
/// A hart knows nothing of sockets, nodes or devices. Every access it makes after
/// address translation is to a *guest-physical* address and goes through this
/// protocol: the single-process platform backs it with local RAM and MMIO devices,
/// a cluster node later backs it with local or remote machine memory (the pmap and
/// the coherence agent sit behind it).
///
/// The hot path never calls through the protocol: a hart asks `directPage` once per
/// page and caches the host pointer in its TLB. The owner of the memory revokes
/// those cached pointers with `Hart.dropDirectMappings(...)` whenever the page stops
/// being locally accessible at that permission (coherence action, migration, MMIO
/// remap).
public protocol PhysicalMemory: AnyObject {
    /// A host pointer to the start of the 4 KiB guest-physical page `pageAddress`
    /// (page aligned) if the hart may access all of it directly for `access`:
    /// reads and fetches for `.read`/`.execute`, reads and writes for `.write`.
    /// `nil` means "use `load`/`store`/`atomic`" (MMIO, remote, not present).
    func directPage(_ pageAddress: UInt64, for access: AccessType) -> UnsafeMutableRawPointer?

    /// A load of `size` bytes (1, 2, 4 or 8; naturally aligned) at `address`, little endian, zero extended.
    /// It must not write memory (a device read may change the device, not RAM): a hart
    /// compares its decoded code with memory again only after stores and atomics.
    func load(_ address: UInt64, size: Int, hart: Int, value: inout UInt64) -> BusStatus

    /// A store of the low `size` bytes of `value` (1, 2, 4 or 8; naturally aligned) at `address`.
    func store(_ address: UInt64, size: Int, value: UInt64, hart: Int) -> BusStatus

    /// An atomic read-modify-write of `size` (4 or 8) bytes at `address`; `old` receives the
    /// previous memory value (zero extended). For `.compareAndSwap`, `operand` is the new value
    /// and `expected` the value that must be present for the write to happen.
    func atomic(_ op: AtomicOp, _ address: UInt64, size: Int, operand: UInt64, expected: UInt64,
                hart: Int, old: inout UInt64) -> BusStatus

    /// The platform's time base (mtime, ticks at 10 MHz), used for the `time` CSR and Sstc.
    func currentTime() -> UInt64

    /// Whether a store to guest-physical page `pageAddress` may reach a device, whose
    /// work (a DMA started by the write) may write any memory, code included. A store
    /// to RAM writes only its own bytes, so a hart compares its decoded code with
    /// memory again only if that page holds some. The default, true, is always safe.
    func isDevicePage(_ pageAddress: UInt64) -> Bool
}

extension PhysicalMemory {
    public func isDevicePage(_ pageAddress: UInt64) -> Bool { true }
}

/// What an access wants to do with a page.
public enum AccessType: UInt8, Sendable {
    case read = 0
    case write = 1
    case execute = 2
}

/// The outcome of an access through `PhysicalMemory`.
public enum BusStatus: UInt8, Sendable {
    /// Done.
    case ok = 0
    /// No memory or device answers at that address: the hart raises an access fault.
    case accessFault = 1
    /// The data is not here yet (a remote line is being fetched). The hart must not
    /// retire the instruction: it stops with `HartExit.parked` and re-executes the
    /// instruction from scratch when resumed. Instructions therefore make no
    /// architectural change before their last memory access succeeds.
    case retry = 2
}

/// The read-modify-write operations of the A extension, performed at the memory.
public enum AtomicOp: UInt8, Sendable {
    case swap, add, xor, and, or, min, max, minu, maxu
    case compareAndSwap
}

extension AtomicOp {
    /// The value an AMO of `size` bytes (4 or 8) stores when memory holds `current`:
    /// for `.compareAndSwap`, `operand` if `current` equals `expected` (compared at
    /// `size`), else nil (nothing is written). Shared by every memory that performs
    /// AMOs so that they agree bit for bit.
    @inline(__always)
    public func apply(current: UInt64, operand: UInt64, expected: UInt64, size: Int) -> UInt64? {
        let mask: UInt64 = size == 4 ? 0xffff_ffff : ~0
        let signed = { (v: UInt64) -> Int64 in size == 4 ? Int64(Int32(truncatingIfNeeded: v)) : Int64(bitPattern: v) }
        switch self {
        case .swap: return operand & mask
        case .add: return (current &+ operand) & mask
        case .xor: return (current ^ operand) & mask
        case .and: return (current & operand) & mask
        case .or: return (current | operand) & mask
        case .min: return (signed(current) <= signed(operand) ? current : operand) & mask
        case .max: return (signed(current) >= signed(operand) ? current : operand) & mask
        case .minu: return ((current & mask) <= (operand & mask) ? current : operand) & mask
        case .maxu: return ((current & mask) >= (operand & mask) ? current : operand) & mask
        case .compareAndSwap: return (current & mask) == (expected & mask) ? operand & mask : nil
        }
    }
}
