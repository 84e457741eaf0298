/// An Ethernet frame on its way from a NIC to the switch and on to other NICs.
///
/// Between VMs of one node a frame need not be copied page by page: a NIC whose memory
/// can lend pages (`PageLendingMemory`) leaves out every whole, page-aligned guest page
/// of the frame and records it as lent instead; a receiving NIC whose buffer has a
/// whole, page-aligned page at the same place in the packet maps the lent page there
/// (read-only, copy-on-write), and copies only the rest. docs/monitor.md, "Pages
/// that move by remapping".
public struct NetFrame: Equatable, Sendable {
    /// A whole guest page of the frame that its sender lent: `bytes[offset ..< offset +
    /// 4096]` holds zeros (but for the Ethernet header, which is always copied); the page's
    /// bytes are `token`'s, which the node resolves (`PageLendingMemory`).
    public struct LentPage: Equatable, Sendable {
        public var offset: Int
        public var token: UInt64
        public init(offset: Int, token: UInt64) {
            self.offset = offset
            self.token = token
        }
    }

    public var bytes: [UInt8]
    /// The lent pages, by increasing offset.
    public var lent: [LentPage]

    public init(_ bytes: [UInt8], lent: [LentPage] = []) {
        self.bytes = bytes
        self.lent = lent
    }

    /// Writes the 4096 bytes of lent page `token` into the frame wherever it is lent, and
    /// forgets the loan there (the page's contents are the frame's own from now on).
    public mutating func fill(_ token: UInt64, with page: [UInt8]) {
        precondition(page.count == 4096, "a lent page is 4096 bytes")
        for p in lent where p.token == token {
            bytes.replaceSubrange(p.offset ..< p.offset + 4096, with: page)
        }
        lent.removeAll { $0.token == token }
    }

    /// The whole frame as bytes, every lent page read through `read`; nil if one cannot be.
    public func materialized(_ read: (UInt64) -> [UInt8]?) -> [UInt8]? {
        var out = bytes
        for p in lent {
            guard let page = read(p.token), page.count == 4096 else { return nil }
            out.replaceSubrange(p.offset ..< p.offset + 4096, with: page)
        }
        return out
    }
}

/// Guest memory whose whole pages a NIC can lend to a frame instead of copying them out,
/// and into which a NIC can map a page lent by another NIC of the node instead of
/// copying it in (the node's VMs' memory: `NodeVM`).
public protocol PageLendingMemory: DMAMemory {
    /// Lends the page at page-aligned guest-physical `address`, part of a frame NIC `nic`
    /// sends: it stays as it is now for every holder of the returned token (a later write
    /// by its VM copies it for them first). Nil when the page cannot be lent (the caller
    /// copies the bytes).
    func lendPage(at address: UInt64, nic: Int) -> UInt64?
    /// Maps lent page `token` into page-aligned guest-physical `address`, read-only and
    /// copy-on-write. False when it cannot (the caller copies `lentPageBytes`).
    func mapLentPage(_ token: UInt64, at address: UInt64) -> Bool
    /// The 4096 bytes of lent page `token`.
    func lentPageBytes(_ token: UInt64) -> [UInt8]?
}
