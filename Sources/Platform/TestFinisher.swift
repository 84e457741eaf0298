/// The `sifive,test1` finisher at 0x100000: the guest powers off (0x5555), fails
/// with a code ((code << 16) | 0x3333) or resets (0x7777) by writing it.
public final class TestFinisher: MMIODevice {
    public enum Request: Equatable, Sendable {
        case pass
        case fail(code: UInt32)
        case reset
    }

    /// The last request written, until the machine takes it.
    public private(set) var request: Request?

    public init() {}

    public func take() -> Request? {
        defer { request = nil }
        return request
    }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    /// Halfword writes count: OpenSBI's sifive_test reset driver (Debian's fw_jump,
    /// the SBI system reset that Linux's poweroff and reboot call) stores 16 bits,
    /// which QEMU's device accepts (its accesses are 2 to 4 bytes wide); the code of
    /// a failure then is 0. Byte writes are ignored.
    public func write(offset: UInt64, size: Int, value: UInt64) {
        guard offset == 0, size >= 2 else { return }
        let word = size == 2 ? UInt32(truncatingIfNeeded: value & 0xffff) : UInt32(truncatingIfNeeded: value)
        switch word & 0xffff {
        case 0x5555: request = .pass
        case 0x3333: request = .fail(code: word >> 16)
        case 0x7777: request = .reset
        default: break  // QEMU ignores other values
        }
    }
}
