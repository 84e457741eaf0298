// Blocks: pre-decoded straight-line code.
//
// Each guest-physical page a hart executes from gets a block map: one slot per 2-byte
// parcel, holding the block that starts there (`Hart.noBlock` where none does). A
// block is the decoded instructions from its start up to and including the first
// that ends a block (`OpKind.endsBlock`: a jump, a system instruction, a fence, an
// atomic, an illegal encoding; a conditional branch leaves the block only when
// taken), at most `maxBlockLength` of them, and never past offset 4092 of its page
// (an instruction in the last parcel may straddle into the next page; it is fetched
// and decoded each time, as is code on a page without direct access). Blocks live in
// one arena per hart; when it or the page limit is full, everything is dropped and
// decoded again. Blocks run in their threaded form (Threaded.swift).
//
// The hart keeps a cursor on the page pc is in (its virtual base, the host pointer to
// its bytes and its block map), so reaching a block within the page costs a map load
// and no TLB lookup.
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
//   - at every out-of-line store and atomic to a device (a DMA started by an MMIO
//     write happens inside it) or to a page holding blocks, every A/D update of a
//     page table on a page holding blocks, and FENCE.I (loads, device reads included,
//     write no memory; a store to RAM without blocks changes none of them);
//   - when the memory revokes the direct mapping of a page holding blocks.
// A store to a page that holds blocks never takes the fast path: the write TLB entry
// of such a page carries the page's block map and is kept out of the fast TLB, so the
// store runs out of line, where it advances the epoch and ends the block. Instruction
// fetch therefore sees every store before the next instruction, as before blocks,
// which the RISC-V memory model allows (FENCE.I has nothing left to order).

/// Where each block of a page starts: one slot per parcel, `Hart.noBlock` where none.
typealias BlockMap = UnsafeMutablePointer<UnsafeMutablePointer<BlockHeader>>

/// The fixed part of a block in the arena. Its `count` entries (BlockEntry: the
/// instruction decoded and in the form it runs in, Threaded.swift) follow it, then a
/// `.blockEnd` entry holding the offset the block falls through to.
struct BlockHeader {
    /// The code epoch in which the instructions were last compared with memory.
    var epoch: UInt64
    var count: Int
}

extension Hart {
    static let parcelsPerPage = 2048
    /// Instructions per block at most (a chain enters a block only if all of it fits
    /// in the budget, so `Threaded.chainBudget` must not be smaller).
    static let maxBlockLength = 64
    static let maxBlockBytes = MemoryLayout<BlockHeader>.stride + (maxBlockLength + 1) * MemoryLayout<BlockEntry>.stride

    /// What a block map holds where no block starts: a header of no code epoch (the
    /// epoch starts at 1) and no budget fits, so a lookup fails without a test of its
    /// own. Shared, never written.
    static let noBlock: UnsafeMutablePointer<BlockHeader> = {
        let p = UnsafeMutablePointer<BlockHeader>.allocate(capacity: 1)
        p.initialize(to: BlockHeader(epoch: 0, count: .max))
        return p
    }()

    /// The cursor's target when it has none: a map without blocks and bytes that are
    /// never read. Shared, never written.
    static let emptyBlockMap: BlockMap = {
        let p = BlockMap.allocate(capacity: Hart.parcelsPerPage)
        p.initialize(repeating: noBlock, count: Hart.parcelsPerPage)
        return p
    }()
    static let emptyCodeBytes: UnsafeRawPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        return UnsafeRawPointer(p)
    }()

    /// The entries of a block.
    @inline(__always) static func entries(of block: UnsafeMutablePointer<BlockHeader>) -> UnsafeMutablePointer<BlockEntry> {
        UnsafeMutableRawPointer(block + 1).assumingMemoryBound(to: BlockEntry.self)
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
        let b = slot.pointee
        if b != Self.noBlock && (b.pointee.epoch == codeEpoch || matchesMemory(b)) {
            b.pointee.epoch = codeEpoch
            return b
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
        let entries = Self.entries(of: block)
        for i in 0..<block.pointee.count {
            let op = entries[i].op
            if !op.matches(codeHost.loadUnaligned(fromByteOffset: Int(op.offset), as: UInt32.self)) { return false }
        }
        return true
    }

    /// Decodes the block starting at `offset` of the cursor's page into the arena and
    /// enters it in the page's map at `slot`.
    func buildBlock(at start: Int, slot: BlockMap) -> UnsafeMutablePointer<BlockHeader> {
        let raw = blockArena + blockArenaUsed
        let block = raw.bindMemory(to: BlockHeader.self, capacity: 1)
        let ops = decodeBuffer
        var offset = start, count = 0
        while offset < 4093 && count < Self.maxBlockLength {
            var op = DecodedOp(decoding: codeHost.loadUnaligned(fromByteOffset: offset, as: UInt32.self),
                               compressed: compressedTable)
            let next = offset + (op.bits & 3 == 3 ? 4 : 2)
            op.offset = UInt16(offset)
            op.next = UInt16(next)
            if op.kind.isPCRelative { op.imm &+= Int32(offset) }
            if count > 0, let fused = ops[count - 1].kind.fused(with: op.kind) { ops[count - 1].kind = fused }
            ops[count] = op
            count += 1
            offset = next
            if op.kind.endsBlock { break }
        }
        ops[count] = Self.blockEnd(at: offset)
        block.initialize(to: BlockHeader(epoch: codeEpoch, count: count))
        let entries = (raw + MemoryLayout<BlockHeader>.stride).bindMemory(to: BlockEntry.self, capacity: count + 1)
        for i in 0...count {
            (entries + i).initialize(to: BlockEntry(run: ThreadedOp(ops[i], after: max(count - 1 - i, 0)), op: ops[i]))
        }
        blockArenaUsed += MemoryLayout<BlockHeader>.stride + (count + 1) * MemoryLayout<BlockEntry>.stride
        decodedInstructions &+= UInt64(count)
        slot.pointee = block
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
        let end = Self.blockEnd(at: Int(op.next))
        let entries = Self.entries(of: scratch)
        entries[0] = BlockEntry(run: ThreadedOp(op, after: 0), op: op)
        entries[1] = BlockEntry(run: ThreadedOp(end, after: 0), op: end)
        return scratch
    }

    /// The entry after a block's last instruction: the block falls through to `offset`.
    static func blockEnd(at offset: Int) -> DecodedOp {
        var end = DecodedOp()
        end.kind = .blockEnd
        end.offset = UInt16(offset)
        return end
    }

    /// The first `count` instructions of `block` (fewer than it has) as a block of their
    /// own, outside the arena: the budget ends within the block.
    @inline(never)
    func truncated(_ block: UnsafeMutablePointer<BlockHeader>, _ count: Int) -> UnsafeMutablePointer<BlockEntry> {
        let entries = Self.entries(of: block)
        for i in 0..<count {
            var op = entries[i].op
            if i == count - 1 { op.kind = op.kind.unfused }  // its partner is cut off
            truncation[i] = BlockEntry(run: ThreadedOp(op, after: count - 1 - i), op: op)
        }
        let end = Self.blockEnd(at: Int(entries[count].op.offset))
        truncation[count] = BlockEntry(run: ThreadedOp(end, after: 0), op: end)
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
    func blockMap(_ physicalPage: UInt64) -> BlockMap {
        if let map = decodedPages[physicalPage] { return map }
        if decodedPages.count >= decodedPageLimit { dropAllBlocks() }
        let map = BlockMap.allocate(capacity: Self.parcelsPerPage)
        map.initialize(repeating: Self.noBlock, count: Self.parcelsPerPage)
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
        blockArenaUsed = 0
    }

    func releaseDecodedPages() {
        for map in decodedPages.values { map.deallocate() }
        decodedPages.removeAll(keepingCapacity: true)
    }

    /// How many pages hold blocks (for tests and statistics).
    public var decodedPageCount: Int { decodedPages.count }
}
