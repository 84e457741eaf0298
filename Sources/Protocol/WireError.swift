/// Why a frame or a message could not be decoded. Every malformed input maps to one
/// of these; decoding never traps and never allocates more than the frame holds.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame does not start with the protocol's magic number.
    case badMagic(UInt16)
    /// The peer speaks a protocol version this build does not.
    case unsupportedVersion(UInt8)
    /// The message type code is not one this version knows.
    case unknownType(UInt8)
    /// The header announces a payload larger than the receiver accepts.
    case oversized(length: Int, limit: Int)
    /// The payload ended before the field `field` was complete.
    case truncated(field: String)
    /// A field holds a value outside its domain (an enum code, a count, UTF-8).
    case invalidValue(field: String)
    /// The payload holds bytes after the last field of its message.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .badMagic(let m): return "bad magic 0x\(String(m, radix: 16)) (not a disco peer?)"
        case .unsupportedVersion(let v):
            return "protocol version \(v) is not supported (this build speaks \(FrameHeader.version))"
        case .unknownType(let t): return "unknown message type 0x\(String(t, radix: 16))"
        case .oversized(let length, let limit): return "frame of \(length) bytes exceeds the limit of \(limit)"
        case .truncated(let field): return "frame truncated in field '\(field)'"
        case .invalidValue(let field): return "invalid value in field '\(field)'"
        case .trailingBytes(let n): return "\(n) unexpected bytes after the message"
        }
    }
}
