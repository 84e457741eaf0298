/// Writes a flattened device tree blob (devicetree specification v0.4, FDT
/// version 17): header, an empty memory reservation map, the structure block and
/// the strings block, all big-endian.
public struct FlattenedDeviceTree: Sendable {
    private var structure: [UInt8] = []
    private var strings: [UInt8] = []
    private var stringOffsets: [String: UInt32] = [:]
    private var depth = 0

    static let magic: UInt32 = 0xd00d_feed
    static let beginNode: UInt32 = 1, endNode: UInt32 = 2, prop: UInt32 = 3, end: UInt32 = 9

    public init() {}

    public mutating func begin(_ name: String) {
        append32(Self.beginNode)
        structure += Array(name.utf8) + [0]
        pad()
        depth += 1
    }

    public mutating func end() {
        precondition(depth > 0, "end() without begin()")
        append32(Self.endNode)
        depth -= 1
    }

    public mutating func property(_ name: String, bytes: [UInt8]) {
        append32(Self.prop)
        append32(UInt32(bytes.count))
        append32(offset(of: name))
        structure += bytes
        pad()
    }

    public mutating func property(_ name: String) { property(name, bytes: []) }

    public mutating func property(_ name: String, string: String) {
        property(name, bytes: Array(string.utf8) + [0])
    }

    public mutating func property(_ name: String, strings list: [String]) {
        property(name, bytes: list.flatMap { Array($0.utf8) + [0] })
    }

    /// A list of 32-bit cells.
    public mutating func property(_ name: String, cells: [UInt32]) {
        property(name, bytes: cells.flatMap(Self.bigEndian))
    }

    /// 64-bit values as pairs of cells (for #address-cells = #size-cells = 2).
    public mutating func property(_ name: String, pairs: [UInt64]) {
        property(name, cells: pairs.flatMap { [UInt32($0 >> 32), UInt32(truncatingIfNeeded: $0)] })
    }

    /// The blob.
    public func finish(bootCPU: UInt32 = 0) -> [UInt8] {
        precondition(depth == 0, "unbalanced nodes")
        var body = structure
        body += Self.bigEndian(Self.end)
        let headerSize = 40
        let reservationOffset = headerSize
        let reservationSize = 16  // one terminating (0, 0) entry
        let structOffset = reservationOffset + reservationSize
        let stringsOffset = structOffset + body.count
        let total = stringsOffset + strings.count
        var blob: [UInt8] = []
        blob.reserveCapacity(total)
        for field in [Self.magic, UInt32(total), UInt32(structOffset), UInt32(stringsOffset), UInt32(reservationOffset),
                      17, 16, bootCPU, UInt32(strings.count), UInt32(body.count)] {
            blob += Self.bigEndian(field)
        }
        blob += [UInt8](repeating: 0, count: reservationSize)
        blob += body
        blob += strings
        return blob
    }

    private mutating func offset(of name: String) -> UInt32 {
        if let o = stringOffsets[name] { return o }
        let o = UInt32(strings.count)
        strings += Array(name.utf8) + [0]
        stringOffsets[name] = o
        return o
    }

    private mutating func append32(_ v: UInt32) { structure += Self.bigEndian(v) }
    private mutating func pad() { while structure.count % 4 != 0 { structure.append(0) } }
    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }
}
