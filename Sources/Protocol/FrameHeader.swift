/// The 8-byte header in front of every message on the wire:
///
///     offset 0  u16  magic 0xD15C
///     offset 2  u8   protocol version (4)
///     offset 3  u8   message type (MessageType)
///     offset 4  u32  payload length in bytes, not counting the header
///
/// All integers are little-endian. A frame is the header followed by the payload.
public struct FrameHeader: Equatable, Sendable {
    public static let magic: UInt16 = 0xD15C
    public static let version: UInt8 = 5
    public static let size = 8
    /// The largest payload a receiver accepts unless configured otherwise: room for a
    /// VCPU state or a 64 KiB virtual-Ethernet frame, far below anything that hurts.
    public static let defaultPayloadLimit = 1 << 20

    public var type: MessageType
    public var length: Int

    public init(type: MessageType, length: Int) {
        self.type = type
        self.length = length
    }

    /// Parses a header from exactly `FrameHeader.size` bytes. Checks magic, version,
    /// type and the payload limit, so a bad frame is refused before its payload arrives.
    public static func parse(_ bytes: UnsafeRawBufferPointer, payloadLimit: Int = defaultPayloadLimit)
        throws(WireError) -> FrameHeader
    {
        guard bytes.count >= size else { throw .truncated(field: "header") }
        let magic = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = bytes[2]
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard let type = MessageType(rawValue: bytes[3]) else { throw .unknownType(bytes[3]) }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        guard length <= payloadLimit else { throw .oversized(length: length, limit: payloadLimit) }
        return FrameHeader(type: type, length: length)
    }
}
