// Blocks: pre-decoded straight-line code.
//
// Each guest-physical page a hart executes from gets a block map: one slot per 2-byte
// parcel, holding the block that starts there (or none). A block is the decoded
// instructions from its start up to and including the first that ends a block
// (`OpKind.endsBlock`: a branch or jump, a system instruction, a fence, an atomic, an
// illegal encoding), at most `maxBlockLength` of them, and never past offset 4092 of
// its page (an instruction in the last parcel may straddle into the next page; it is
// fetched and decoded each time, as is code on a page without direct access). Blocks
// live in one arena per hart; when it or the page limit is full, everything is dropped
// and decoded again.
//
// The hart keeps a cursor on the page pc is in (its virtual base, the host pointer to
// its bytes and its block map), so reaching the next block within a page costs a map
// load and no TLB lookup.
//
// Invalidation. Code can be rewritten by this hart's stores, by another hart, by a
// virtio device's DMA, by a loader or by a remote node whose line comes home. Rather
// than making every one of those writers find and drop blocks, a block records the
// code epoch in which it was last compared with memory and is compared again (its
// instructions' bits against the bytes) the first time it runs in a newer epoch, and
// decoded anew if they differ. The epoch advances whenever code may have changed
// behind the hart's back:
//   - at every `run` (other harts, devices, loaders and remote nodes write between
//     slices: a node's machine state belongs to one thread);
//   - after every access that leaves the inline fast path (device and remote
//     accesses, TLB refills with their A/D updates, atomics, stores to pages that
//     hold blocks) and FENCE.I;
//   - when the memory revokes a direct mapping.
// A store to a page that holds blocks never takes the inline fast path: the TLB's
// write entry for such a page carries the page's block map, which sends the store out
// of line, where it advances the epoch and ends the block. Instruction fetch therefore
// sees every store before the next instruction, as before blocks, which the RISC-V
// memory model allows (FENCE.I has nothing left to order).

/// The fixed part of a block in the arena; its `count` DecodedOps follow it, then a
/// `.blockEnd` entry holding the offset the block falls through to.
struct BlockHeader {
    /// The code epoch in which the instructions were last compared with memory.
    var epoch: UInt64
    var count: Int
}

extension Hart {
    static let parcelsPerPage = 2048
    /// Instructions per block at most: 64 instructions cost one dispatch of the block.
    static let maxBlockLength = 64
    static let maxBlockBytes = MemoryLayout<BlockHeader>.stride + (maxBlockLength + 1) * MemoryLayout<DecodedOp>.stride

    /// The cursor's target when it has none: a block map without blocks, so the fast
    /// path's lookup fails without a test of its own. Shared, never written.
    static let emptyBlockMap: UnsafeMutablePointer<UInt32> = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: Hart.parcelsPerPage)
        p.initialize(repeating: 0, count: Hart.parcelsPerPage)
        return p
    }()
    static let emptyCodeBytes: UnsafeRawPointer = UnsafeRawPointer(emptyBlockMap)

    /// The block at arena index `index` (its byte offset / 16).
    @inline(__always) func block(at index: UInt32) -> UnsafeMutablePointer<BlockHeader> {
        (blockArena + Int(index) &<< 4).assumingMemoryBound(to: BlockHeader.self)
    }

    /// The decoded instructions of a block.
    @inline(__always) static func ops(of block: UnsafeMutablePointer<BlockHeader>) -> UnsafeMutablePointer<DecodedOp> {
        UnsafeMutableRawPointer(block + 1).assumingMemoryBound(to: DecodedOp.self)
    }

    /// The block that starts at `self.pc` (the fast path in `run` missed): pc left the
    /// cursor's page, no block starts there yet, the block is from an older code epoch,
    /// or pc is in the last parcel of a page or on a page without direct access (then a
    /// one-instruction block outside the arena, decoded for this execution only).
    @inline(never)
    func blockSlowly() throws(Trap) -> UnsafeMutablePointer<BlockHeader> {
        var offset = pc &- codeBase
        if codePage == .max || offset >= 4096 {
            let e = try entry(pc, .execute)
            guard let host = e.host, let map = e.decoded else {
                invalidateCodeCursor()
                return try scratchBlock()
            }
            codeBase = pc & ~0xfff
            codeHost = UnsafeRawPointer(host)
            codeMap = map
            codePage = e.physicalPage
            offset = pc & 0xfff
        }
        guard offset < 4093 else { return try scratchBlock() }
        let slot = codeMap + Int(offset &>> 1)
        if slot.pointee != 0 {
            let b = block(at: slot.pointee)
            if b.pointee.epoch == codeEpoch || matchesMemory(b) {
                b.pointee.epoch = codeEpoch
                return b
            }
        }
        if blockArenaUsed + Self.maxBlockBytes > blockArenaBytes {
            // The arena is full: start over (TLB entries and the cursor point at maps
            // being freed, so they go too), and find the page again.
            dropAllBlocks()
            return try blockSlowly()
        }
        return buildBlock(at: Int(offset), slot: slot)
    }

    /// True if memory still holds every instruction of `block` (in the cursor's page).
    func matchesMemory(_ block: UnsafeMutablePointer<BlockHeader>) -> Bool {
        let ops = Self.ops(of: block)
        for i in 0..<block.pointee.count {
            let op = ops[i]
            if !op.matches(codeHost.loadUnaligned(fromByteOffset: Int(op.offset), as: UInt32.self)) { return false }
        }
        return true
    }

    /// Decodes the block starting at `offset` of the cursor's page into the arena and
    /// enters it in the page's map at `slot`.
    func buildBlock(at start: Int, slot: UnsafeMutablePointer<UInt32>) -> UnsafeMutablePointer<BlockHeader> {
        let index = blockArenaUsed &>> 4
        let raw = blockArena + blockArenaUsed
        let block = raw.bindMemory(to: BlockHeader.self, capacity: 1)
        let ops = (raw + MemoryLayout<BlockHeader>.stride).bindMemory(to: DecodedOp.self, capacity: Self.maxBlockLength + 1)
        var offset = start, count = 0
        while offset < 4093 && count < Self.maxBlockLength {
            var op = DecodedOp(decoding: codeHost.loadUnaligned(fromByteOffset: offset, as: UInt32.self),
                               compressed: compressedTable)
            let next = offset + (op.bits & 3 == 3 ? 4 : 2)
            op.offset = UInt16(offset)
            op.next = UInt16(next)
            if op.kind.isPCRelative { op.imm &+= Int32(offset) }
            if count > 0, let fused = ops[count - 1].kind.fused(with: op.kind) { ops[count - 1].kind = fused }
            (ops + count).initialize(to: op)
            count += 1
            offset = next
            if op.kind.endsBlock { break }
        }
        (ops + count).initialize(to: Self.blockEnd(at: offset))
        block.initialize(to: BlockHeader(epoch: codeEpoch, count: count))
        blockArenaUsed += MemoryLayout<BlockHeader>.stride + (count + 1) * MemoryLayout<DecodedOp>.stride
        decodedInstructions &+= UInt64(count)
        slot.pointee = UInt32(index)
        return block
    }

    /// A block of the one instruction at pc, fetched through the TLB (or the memory)
    /// and decoded for this execution only.
    func scratchBlock() throws(Trap) -> UnsafeMutablePointer<BlockHeader> {
        var op = DecodedOp(decoding: try fetch(), compressed: compressedTable)
        let offset = pc & 0xfff
        op.offset = UInt16(offset)
        op.next = UInt16(offset + op.length)
        if op.kind.isPCRelative { op.imm &+= Int32(offset) }
        let ops = Self.ops(of: scratch)
        ops[0] = op
        ops[1] = Self.blockEnd(at: Int(op.next))
        return scratch
    }

    /// The entry after a block's last instruction: the block falls through to `offset`.
    static func blockEnd(at offset: Int) -> DecodedOp {
        var end = DecodedOp()
        end.kind = .blockEnd
        end.offset = UInt16(offset)
        return end
    }

    /// The first `count` instructions of the block at `ops` (fewer than it has), as a
    /// block of their own: the budget ends within the block.
    @inline(never)
    func truncated(_ ops: UnsafeMutablePointer<DecodedOp>, _ count: Int) -> UnsafeMutablePointer<DecodedOp> {
        truncation.update(from: ops, count: count)
        truncation[count - 1].kind = truncation[count - 1].kind.unfused  // its partner is cut off
        truncation[count] = Self.blockEnd(at: Int(ops[count].offset))
        return truncation
    }

    /// Points the cursor at nothing: the next block takes the slow path.
    func invalidateCodeCursor() {
        codeBase = 0
        codeHost = Self.emptyCodeBytes
        codeMap = Self.emptyBlockMap
        codePage = .max
    }

    /// The block map for a guest-physical page, made (empty) on first use. The TLB's
    /// write entries for the page learn that it holds code (see the file comment).
    func blockMap(_ physicalPage: UInt64) -> UnsafeMutablePointer<UInt32> {
        if let map = decodedPages[physicalPage] { return map }
        if decodedPages.count >= decodedPageLimit { dropAllBlocks() }
        let map = UnsafeMutablePointer<UInt32>.allocate(capacity: Self.parcelsPerPage)
        map.initialize(repeating: 0, count: Self.parcelsPerPage)
        decodedPages[physicalPage] = map
        let writes = Int(AccessType.write.rawValue) * Self.tlbSize
        for i in writes..<(writes + Self.tlbSize) where tlb[i].physicalPage == physicalPage {
            tlb[i].decoded = map
            fastTLB[i] = FastTLBEntry()
        }
        return map
    }

    /// Frees every block and block map (bounded memory: the arena or the page limit is
    /// full). TLB entries and the cursor point into them, so they go first.
    func dropAllBlocks() {
        flushTLB()
        releaseDecodedPages()
        blockArenaUsed = MemoryLayout<BlockHeader>.stride  // index 0 means "no block"
    }

    func releaseDecodedPages() {
        for map in decodedPages.values { map.deallocate() }
        decodedPages.removeAll(keepingCapacity: true)
    }

    /// How many pages hold blocks (for tests and statistics).
    public var decodedPageCount: Int { decodedPages.count }
}
