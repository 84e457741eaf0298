// The per-page pre-decoded instruction cache.
//
// Each guest-physical page a hart executes from gets a decoded page: one DecodedOp
// per 2-byte parcel, filled lazily the first time that parcel runs. The hart keeps a
// cursor on the page pc is in (its virtual base, the host pointer to its bytes and its
// decoded entries), so straight-line code and branches within a page need no TLB
// lookup and no decoding — only a check that memory still holds the bits the entry
// was decoded from.
//
// Invalidation. Code can be rewritten by this hart's stores, by another hart, by a
// virtio device's DMA, by a loader or by a remote node whose line comes home. Rather
// than making every one of those writers find and drop decoded pages, an entry is
// checked against memory (one load and compare) each time it is used, and re-decoded
// when they differ. Instruction fetch therefore always sees the latest stores, which
// the RISC-V memory model allows (FENCE.I has nothing left to order). The cursor —
// the only cached translation — is dropped with the TLB (satp, SFENCE.VMA, privilege
// and mstatus changes) and when the memory revokes direct access to its page
// (`dropDirectMappings`), since the host pointer it holds may then be stale.
//
// Pages without direct access (MMIO, or on a cluster node a page whose data lives
// elsewhere) are fetched through `PhysicalMemory` and decoded for every execution, as
// is an instruction in the last parcel of a page.

extension Hart {
    /// The cursor's target when it has none: bytes that are never a cached
    /// instruction (all ones) next to entries that never match them (bits 0), so the
    /// fast path's check fails without a test of its own. Shared, never written.
    static let emptyCodeBytes: UnsafeRawPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0xff, count: 4096)
        return UnsafeRawPointer(p)
    }()
    static let emptyDecodedPage: UnsafeMutablePointer<DecodedOp> = {
        let p = UnsafeMutablePointer<DecodedOp>.allocate(capacity: Hart.parcelsPerPage)
        p.initialize(repeating: DecodedOp(), count: Hart.parcelsPerPage)
        return p
    }()

    static let parcelsPerPage = 2048

    /// The decoded instruction at `pc` (run's copy of the pc). The fast path: pc is in
    /// the cursor's page, below its last parcel, and the entry matches memory.
    @inline(__always) func decodedInstruction(at pc: UInt64) throws(Trap) -> DecodedOp {
        let offset = pc &- codeBase
        if offset < 4093 {
            let op = codeOps[Int(truncatingIfNeeded: offset &>> 1)]
            if op.matches(codeHost.loadUnaligned(fromByteOffset: Int(truncatingIfNeeded: offset), as: UInt32.self)) {
                return op
            }
        }
        self.pc = pc
        return try decodeSlowly()
    }

    /// pc left the cursor's page, the entry is empty or stale, or pc is in the last
    /// parcel of a page.
    @inline(never)
    func decodeSlowly() throws(Trap) -> DecodedOp {
        var offset = pc &- codeBase
        if codePage == .max || offset >= 4096 {
            let e = try entry(pc, .execute)
            guard let host = e.host, let ops = e.decoded else {
                invalidateCodeCursor()
                return DecodedOp(decoding: try fetch(), compressed: compressedTable)
            }
            codeBase = pc & ~0xfff
            codeHost = UnsafeRawPointer(host)
            codeOps = ops
            codePage = e.physicalPage
            offset = pc & 0xfff
        }
        guard offset < 4093 else {
            return DecodedOp(decoding: try fetch(), compressed: compressedTable)
        }
        let word = codeHost.loadUnaligned(fromByteOffset: Int(truncatingIfNeeded: offset), as: UInt32.self)
        let slot = codeOps + Int(truncatingIfNeeded: offset &>> 1)
        if !slot.pointee.matches(word) {
            slot.pointee = DecodedOp(decoding: word, compressed: compressedTable)
            decodedInstructions &+= 1
        }
        return slot.pointee
    }

    /// Points the cursor at nothing: the next instruction takes the slow path.
    func invalidateCodeCursor() {
        codeBase = 0
        codeHost = Self.emptyCodeBytes
        codeOps = Self.emptyDecodedPage
        codePage = .max
    }

    /// The decoded page for a guest-physical page, made (empty) on first use.
    func decodedPage(_ physicalPage: UInt64) -> UnsafeMutablePointer<DecodedOp> {
        if let page = decodedPages[physicalPage] { return page }
        if decodedPages.count >= decodedPageLimit {
            // Bounded memory: start over. TLB entries and the cursor point into the
            // pages being freed, so they go first.
            flushTLB()
            releaseDecodedPages()
        }
        let page = UnsafeMutablePointer<DecodedOp>.allocate(capacity: Self.parcelsPerPage)
        page.initialize(repeating: DecodedOp(), count: Self.parcelsPerPage)
        decodedPages[physicalPage] = page
        return page
    }

    func releaseDecodedPages() {
        for page in decodedPages.values { page.deallocate() }
        decodedPages.removeAll(keepingCapacity: true)
    }

    /// How many decoded pages this hart holds (for tests and statistics).
    public var decodedPageCount: Int { decodedPages.count }
}
