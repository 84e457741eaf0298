/// Appends little-endian fields to a byte buffer. Encoding a message is a sequence of
/// `put` calls; lengths of variable fields are written before their bytes.
public struct WireWriter: ~Copyable {
    public var bytes: [UInt8]

    public init(reservingCapacity capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Continues an existing buffer (frames are appended to a connection's output).
    public init(appendingTo buffer: consuming [UInt8]) { bytes = buffer }

    @inline(__always) public mutating func put(_ v: UInt8) { bytes.append(v) }
    @inline(__always) public mutating func put(_ v: Bool) { bytes.append(v ? 1 : 0) }
    @inline(__always) public mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    /// A byte string: a 32-bit length, then the bytes.
    @inline(__always) public mutating func put(bytes b: [UInt8]) {
        put(UInt32(b.count))
        bytes.append(contentsOf: b)
    }
    /// Exactly `b.count` bytes with no length (fixed-size fields such as nonces).
    @inline(__always) public mutating func put(raw b: [UInt8]) { bytes.append(contentsOf: b) }
    public mutating func put(_ s: String) { put(bytes: Array(s.utf8)) }

    /// Overwrites 4 bytes at `offset` (a length known only after the payload is written).
    @inline(__always) mutating func patch(_ v: UInt32, at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { src in
            for i in 0..<4 { bytes[offset + i] = src[i] }
        }
    }
}
