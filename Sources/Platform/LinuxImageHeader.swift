/// The 64-byte header at the start of a Linux RISC-V `Image` (the kernel's
/// Documentation/arch/riscv/boot-image-header.rst): two code words, then
/// little-endian `text_offset` (0x08), `image_size` (0x10), `flags` (0x18),
/// `version` (0x20), the magic "RISCV\0\0\0" (0x30) and "RSC\x05" (0x38).
///
/// QEMU 7.2's virt board loads such an image like any raw image, at the first
/// 2 MiB boundary after the firmware; disco does the same and uses the header to
/// refuse images that cannot be right (a truncated file, an offset or size that
/// does not fit the VM's RAM) before the guest jumps into garbage.
public struct LinuxImageHeader: Equatable, Sendable {
    public var textOffset: UInt64
    /// Bytes the kernel occupies in memory once running (file plus .bss).
    public var imageSize: UInt64
    public var flags: UInt64
    public var version: UInt32

    public static let headerSize = 64
    static let magicOffset = 0x30
    static let magic: [UInt8] = Array("RISCV".utf8) + [0, 0, 0]
    static let magic2Offset = 0x38
    static let magic2: [UInt8] = Array("RSC".utf8) + [0x05]

    public struct Malformed: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Whether `bytes` starts with a Linux RISC-V Image header (its magic numbers).
    public static func isPresent(in bytes: [UInt8]) -> Bool {
        guard bytes.count >= headerSize else { return false }
        return Array(bytes[magicOffset..<(magicOffset + 8)]) == magic
            && Array(bytes[magic2Offset..<(magic2Offset + 4)]) == magic2
    }

    /// Reads the header of `bytes` (which must carry the magic) and checks it against
    /// the file: the memory image cannot be smaller than the file, the offset must be
    /// page-aligned.
    public init(parsing bytes: [UInt8]) throws {
        guard Self.isPresent(in: bytes) else {
            throw Malformed(description: "no Linux RISC-V Image header (magic \"RISCV\" at 0x30 and \"RSC\\x05\" at 0x38)")
        }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
        textOffset = u64(0x08)
        imageSize = u64(0x10)
        flags = u64(0x18)
        version = UInt32(truncatingIfNeeded: u64(0x20))
        guard imageSize >= UInt64(bytes.count) else {
            throw Malformed(description: "Image header says image_size is \(imageSize) bytes, smaller than the file (\(bytes.count) bytes): the file is not the image its header describes")
        }
        guard textOffset % 4096 == 0 else {
            throw Malformed(description: "Image header's text_offset 0x\(String(textOffset, radix: 16)) is not page-aligned")
        }
        // Big-endian kernels (flags bit 0) do not exist on RISC-V.
        guard flags & 1 == 0 else {
            throw Malformed(description: "Image header flags 0x\(String(flags, radix: 16)) ask for a big-endian kernel")
        }
    }

    /// Checks that the image loaded at `address` fits in `ram`, and that the header's
    /// `text_offset` lies inside it.
    public func check(loadAddress address: UInt64, ram: Range<UInt64>) throws {
        let ramSize = ram.upperBound - ram.lowerBound
        guard textOffset < ramSize else {
            throw Malformed(description: "Image header's text_offset 0x\(String(textOffset, radix: 16)) lies beyond the VM's RAM (\(ramSize >> 20) MiB)")
        }
        guard address >= ram.lowerBound, address < ram.upperBound, imageSize <= ram.upperBound - address else {
            throw Malformed(description: "the kernel needs \(imageSize) bytes (image_size) at 0x\(String(address, radix: 16)), past the end of RAM at 0x\(String(ram.upperBound, radix: 16)): give the VM more memory")
        }
    }
}
