/// Reads little-endian fields from a payload, checking every bound. A variable-length
/// field may claim no more than the bytes that remain, so a lying length cannot make
/// the decoder allocate more than the frame itself holds.
public struct WireReader: ~Copyable {
    private let base: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer
        offset = 0
    }

    public var remaining: Int { base.count - offset }

    @inline(__always) mutating func need(_ n: Int, _ field: String) throws(WireError) {
        guard n >= 0, n <= remaining else { throw .truncated(field: field) }
    }

    @inline(__always) public mutating func u8(_ field: String) throws(WireError) -> UInt8 {
        try need(1, field)
        defer { offset += 1 }
        return base[offset]
    }

    @inline(__always) public mutating func bool(_ field: String) throws(WireError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        default: throw .invalidValue(field: field)
        }
    }

    @inline(__always)
    public mutating func int<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, field)
        defer { offset += size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inline(__always) public mutating func u16(_ field: String) throws(WireError) -> UInt16 { try int(UInt16.self, field) }
    @inline(__always) public mutating func u32(_ field: String) throws(WireError) -> UInt32 { try int(UInt32.self, field) }
    @inline(__always) public mutating func u64(_ field: String) throws(WireError) -> UInt64 { try int(UInt64.self, field) }
    @inline(__always) public mutating func i64(_ field: String) throws(WireError) -> Int64 { try int(Int64.self, field) }

    /// A length-prefixed byte string.
    public mutating func bytes(_ field: String) throws(WireError) -> [UInt8] {
        let n = Int(try u32(field))
        return try raw(n, field)
    }

    /// Exactly `n` bytes.
    public mutating func raw(_ n: Int, _ field: String) throws(WireError) -> [UInt8] {
        try need(n, field)
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(rebasing: base[offset..<offset + n]))
    }

    public mutating func string(_ field: String) throws(WireError) -> String {
        let b = try bytes(field)
        guard let s = String(validating: b, as: UTF8.self) else { throw .invalidValue(field: field) }
        return s
    }

    /// An element count for an array whose elements take at least `minimumSize` bytes:
    /// a count the remaining payload cannot hold is rejected before anything is allocated.
    public mutating func count(_ field: String, minimumElementSize: Int) throws(WireError) -> Int {
        let n = Int(try u32(field))
        guard n <= remaining / max(1, minimumElementSize) else { throw .truncated(field: field) }
        return n
    }

    /// Fails unless every byte was consumed.
    public func finish() throws(WireError) {
        if remaining != 0 { throw .trailingBytes(remaining) }
    }
}
