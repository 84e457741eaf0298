import Cluster

/// The machine address of the first byte of a coherence line (line aligned).
public typealias LineAddress = UInt64

/// What a requester asks the home of a line for.
public enum CoherenceRequest: UInt8, Sendable, CaseIterable {
    /// A read-only copy (the line becomes Shared).
    case getShared
    /// An exclusive copy with data (the requester has none).
    case getModified
    /// Exclusive ownership of a line the requester already holds Shared; if it lost
    /// the copy meanwhile the home answers with data, as for `getModified`.
    case upgrade
}

/// Line size: a power of two between 64 and 4096 bytes (default 128, as FLASH).
public struct LineGeometry: Sendable, Equatable {
    public let lineSize: Int
    public let lineShift: Int
    public static let pageSize = 4096

    public init(lineSize: Int = 128) {
        precondition(lineSize >= 8 && lineSize <= 4096 && lineSize & (lineSize - 1) == 0,
                     "line size must be a power of two between 8 and 4096")
        self.lineSize = lineSize
        self.lineShift = lineSize.trailingZeroBitCount
    }

    /// The line holding `address`.
    @inline(__always) public func line(of address: UInt64) -> LineAddress {
        address & ~UInt64(lineSize - 1)
    }

    /// The 4 KiB page holding `address`.
    @inline(__always) public static func page(of address: UInt64) -> UInt64 {
        address & ~UInt64(pageSize - 1)
    }
}

/// A set of nodes, as a bit mask (the machine has at most 64 nodes).
public struct NodeSet: Sendable, Equatable, Sequence, CustomStringConvertible {
    public private(set) var bits: UInt64
    public static let maxNodes = 64

    public init() { bits = 0 }
    public init<S: Sequence>(_ nodes: S) where S.Element == NodeID {
        bits = 0
        for n in nodes { insert(n) }
    }

    public var isEmpty: Bool { bits == 0 }
    public var count: Int { bits.nonzeroBitCount }
    public func contains(_ node: NodeID) -> Bool { bits & (1 << UInt64(node)) != 0 }
    public mutating func insert(_ node: NodeID) {
        precondition(node >= 0 && node < Self.maxNodes, "node id out of range")
        bits |= 1 << UInt64(node)
    }
    public mutating func remove(_ node: NodeID) { bits &= ~(1 << UInt64(node)) }

    public func makeIterator() -> AnyIterator<NodeID> {
        var rest = bits
        return AnyIterator {
            guard rest != 0 else { return nil }
            let n = rest.trailingZeroBitCount
            rest &= rest - 1
            return n
        }
    }

    public var description: String { "{" + map(String.init).joined(separator: ",") + "}" }
}
