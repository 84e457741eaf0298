// Direct-threaded execution of blocks (Hart+Blocks.swift).
//
// Each entry of a block holds, next to its decoded instruction (DecodedOp), the form
// it runs in (ThreadedOp): the address of the handler that runs it, its register
// numbers and its immediate. A handler does its instruction and ends by calling the
// next entry's handler in tail position, which the optimizer compiles to an indirect
// jump: one dispatch per instruction, from the end of each handler (so each handler's
// jump is predicted on its own), with no loop, no switch and no bounds check.
// Handlers are C function pointers (plain code addresses, made from global
// functions so that each is one entry point with its whole body) that take their
// state in five registers: the entry, the register file, the context, the page base
// and the budget left after the current block.
//
// A jump, a taken branch or the `.blockEnd` entry after a block's last instruction
// goes on to the block at its target if that is of the current code epoch and within
// the budget, and in the same page (the context holds the page's block map and the
// epoch) or in a page the fetch TLB maps directly (the context points at the TLB; a
// hit there has passed the execute permission check, and the TLB is flushed only by
// instructions that run out of line); otherwise the handler returns to `Hart.run`,
// with the page base it ended in. So does an instruction a block cannot finish (a
// load or store off the fast path, anything `executeOutOfLine` does), which returns
// its own entry with the exit pc `outOfLine`.
//
// The budget: entering a block subtracts all its instructions; an exit before its
// end gives back those it did not run (each entry's `aux` counts the instructions
// after it in its block).
//
// Chained blocks nest one call per instruction where the compiler does not make tail
// calls (debug builds), so `run` hands a chain at most `chainBudget` instructions,
// which bounds the stack whatever the compiler does.

typealias Handler = @convention(c) (
    _ entry: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>, _ context: UnsafeMutableRawPointer,
    _ base: UInt64, _ budget: Int
) -> UnsafeMutableRawPointer

/// One instruction of a block in the form its handler runs. 16 bytes.
struct ThreadedOp {
    var handler: Handler
    var rd: UInt8
    var rs1: UInt8
    var rs2: UInt8
    /// The instructions after this one in its block (JAL and JALR, always last, keep
    /// the offset of the next instruction in `rs2`, low byte, and `aux`, high byte).
    var aux: UInt8
    /// The decoded immediate (page-base relative for pc-relative instructions); for
    /// `.blockEnd`, the offset the block falls through to.
    var imm: Int32

    init(_ op: DecodedOp, after: Int) {
        handler = Threaded.handler(op.kind)
        rd = op.rd
        rs1 = op.rs1
        rs2 = op.rs2
        aux = UInt8(truncatingIfNeeded: after)
        imm = op.imm
        switch op.kind {
        case .jal, .jalr:
            rs2 = UInt8(truncatingIfNeeded: op.next)
            aux = UInt8(truncatingIfNeeded: op.next >> 8)
        case .blockEnd:
            imm = Int32(op.offset)
        default:
            break
        }
    }
}

/// An entry of a block: the instruction as it runs and as decoded. 32 bytes.
struct BlockEntry {
    var run: ThreadedOp
    var op: DecodedOp
}

enum Threaded {
    typealias Raw = UnsafeMutableRawPointer
    typealias Registers = UnsafeMutablePointer<UInt64>

    /// The exit pc of an instruction a block leaves to `executeOutOfLine` (pcs are even).
    static let outOfLine: UInt64 = 1

    // The context's layout.
    static let exitPC = 0, exitBudget = 8, blockMap = 16, epoch = 24, exitBase = 32, fetchTLB = 40, otherPageHandler = 48
    static let fastTLBOffset = 64
    /// Instructions `run` hands a chain of blocks at most (at least `maxBlockLength`;
    /// see the file comment).
    #if DEBUG
    static let chainBudget = Hart.maxBlockLength
    #else
    static let chainBudget = 1024
    #endif

    static let stride = MemoryLayout<BlockEntry>.stride

    @inline(__always) static func op(_ p: Raw) -> ThreadedOp { p.assumingMemoryBound(to: ThreadedOp.self).pointee }

    /// Runs the next entry (a tail call: a jump in optimized builds).
    @inline(__always) static func next(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        let q = p + stride
        return op(q).handler(q, x, c, base, budget)
    }

    /// Returns to `run` for `pc` with `budget` left, in the page at `base`; `stop` is
    /// the entry not run when `pc` is `outOfLine` (else anything).
    @inline(__always) static func leave(_ stop: Raw, _ c: Raw, _ base: UInt64, _ pc: UInt64, _ budget: Int) -> Raw {
        c.storeBytes(of: pc, toByteOffset: exitPC, as: UInt64.self)
        c.storeBytes(of: budget, toByteOffset: exitBudget, as: Int.self)
        c.storeBytes(of: base, toByteOffset: exitBase, as: UInt64.self)
        return stop
    }

    /// True if block `b` is of the current code epoch and `left`, the budget after it,
    /// is not negative (one test, so that the handlers need no extra registers).
    @inline(__always) static func runnable(_ b: UnsafeMutablePointer<BlockHeader>, _ c: Raw, _ left: Int) -> Bool {
        (b.pointee.epoch ^ c.load(fromByteOffset: epoch, as: UInt64.self)) | (UInt64(bitPattern: Int64(left)) &>> 63) == 0
    }

    /// Goes on at `target` with `budget` left: straight into its block if it is of the
    /// current code epoch, within the budget and in this page (or, out of line, in one
    /// the fetch TLB maps directly), else back to `run`.
    @inline(__always) static func goto(_ target: UInt64, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        let offset = target &- base
        guard offset < 4096 else {
            // Through the context, so that this path stays out of every handler.
            return c.load(fromByteOffset: otherPageHandler, as: CrossPage.self)(target, x, c, base, budget)
        }
        let b = c.load(fromByteOffset: blockMap, as: BlockMap.self)[Int(truncatingIfNeeded: offset &>> 1)]
        let left = budget &- b.pointee.count
        if runnable(b, c, left) {
            let first = UnsafeMutableRawPointer(b + 1)
            return op(first).handler(first, x, c, base, left)
        }
        return leave(c, c, base, target, budget)
    }

    /// `goto` to another page, through the fetch TLB. C convention like the handlers,
    /// so that the call to it is a jump too.
    typealias CrossPage = @convention(c) (UInt64, Registers, Raw, UInt64, Int) -> Raw
    static let otherPage: CrossPage = threadedOtherPage
    @inline(__always) static func otherPageBody(_ target: UInt64, _ x: Registers, _ c: Raw, _ base: UInt64,
                                                _ budget: Int) -> Raw {
        let vpn = target &>> 12
        let e = c.load(fromByteOffset: fetchTLB, as: UnsafeMutablePointer<TLBEntry>.self)
            + Int(truncatingIfNeeded: vpn & UInt64(Hart.tlbSize - 1))
        if e.pointee.tag == vpn, let map = e.pointee.decoded {
            let b = map[Int(truncatingIfNeeded: (target & 0xfff) &>> 1)]
            let left = budget &- b.pointee.count
            if runnable(b, c, left) {
                c.storeBytes(of: map, toByteOffset: blockMap, as: BlockMap.self)
                let first = UnsafeMutableRawPointer(b + 1)
                return op(first).handler(first, x, c, target & ~0xfff, left)
            }
        }
        return leave(c, c, base, target, budget)
    }

    /// Leaves the block before the entry at `p`, for `executeOutOfLine`.
    @inline(__always) static func outOfLine(_ p: Raw, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        leave(p, c, base, outOfLine, budget &+ Int(op(p).aux) &+ 1)
    }

    @inline(__always) static func imm(_ o: ThreadedOp) -> UInt64 { UInt64(bitPattern: Int64(o.imm)) }

    // MARK: Handler shapes

    /// rd = f(x[rs1], x[rs2]).
    @inline(__always) static func r(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                    _ f: (UInt64, UInt64) -> UInt64) -> Raw {
        let o = op(p)
        x[Int(o.rd)] = f(x[Int(o.rs1)], x[Int(o.rs2)])
        return next(p, x, c, base, budget)
    }

    /// rd = f(x[rs1], imm).
    @inline(__always) static func i(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                    _ f: (UInt64, UInt64) -> UInt64) -> Raw {
        let o = op(p)
        x[Int(o.rd)] = f(x[Int(o.rs1)], imm(o))
        return next(p, x, c, base, budget)
    }

    /// A conditional branch: leaves the block when taken, else goes on.
    @inline(__always) static func branch(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                         _ taken: (UInt64, UInt64) -> Bool) -> Raw {
        let o = op(p)
        if taken(x[Int(o.rs1)], x[Int(o.rs2)]) { return goto(base &+ imm(o), x, c, base, budget &+ Int(o.aux)) }
        return next(p, x, c, base, budget)
    }

    /// The host address of a naturally aligned `size`-byte access that the fast TLB
    /// maps (see Hart.directAddress, which this mirrors).
    @inline(__always) static func address(_ c: Raw, _ vaddr: UInt64, _ size: Int, _ write: Bool) -> Raw? {
        let slot = (write ? Hart.tlbSize : 0) &+ Int(truncatingIfNeeded: (vaddr &>> 12) & UInt64(Hart.tlbSize - 1))
        let e = c + (fastTLBOffset &+ slot &<< 4)
        guard e.load(as: UInt64.self) == vaddr & (~0xfff | UInt64(size &- 1)) else { return nil }
        return unsafeBitCast(e.load(fromByteOffset: 8, as: UInt.self) &+ UInt(truncatingIfNeeded: vaddr), to: Raw.self)
    }

    /// rd = the value `read` takes from the host bytes of a `size`-byte load.
    @inline(__always) static func load(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int, _ size: Int,
                                       _ read: (Raw) -> UInt64) -> Raw {
        let o = op(p)
        guard let h = address(c, x[Int(o.rs1)] &+ imm(o), size, false) else { return outOfLine(p, c, base, budget) }
        x[Int(o.rd)] = read(h)
        return next(p, x, c, base, budget)
    }

    /// `write` stores x[rs2] to the host bytes of a `size`-byte store.
    @inline(__always) static func store(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int, _ size: Int,
                                        _ write: (Raw, UInt64) -> Void) -> Raw {
        let o = op(p)
        guard let h = address(c, x[Int(o.rs1)] &+ imm(o), size, true) else { return outOfLine(p, c, base, budget) }
        write(h, x[Int(o.rs2)])
        return next(p, x, c, base, budget)
    }

    /// The second half of a superinstruction: the branch in the entry after `p`.
    @inline(__always) static func fusedBranch(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                              _ taken: (UInt64, UInt64) -> Bool) -> Raw {
        let q = p + stride
        let b = op(q)
        if taken(x[Int(b.rs1)], x[Int(b.rs2)]) { return goto(base &+ imm(b), x, c, base, budget &+ Int(b.aux)) }
        return next(q, x, c, base, budget)
    }

    /// ADDI, then the branch after it.
    @inline(__always) static func addiBranch(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                             _ taken: (UInt64, UInt64) -> Bool) -> Raw {
        let o = op(p)
        x[Int(o.rd)] = x[Int(o.rs1)] &+ imm(o)
        return fusedBranch(p, x, c, base, budget, taken)
    }

    /// A load, then the branch after it (a load off the fast path runs alone, out of line).
    @inline(__always) static func loadBranch(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int,
                                             _ size: Int, _ read: (Raw) -> UInt64,
                                             _ taken: (UInt64, UInt64) -> Bool) -> Raw {
        let o = op(p)
        guard let h = address(c, x[Int(o.rs1)] &+ imm(o), size, false) else { return outOfLine(p, c, base, budget) }
        x[Int(o.rd)] = read(h)
        return fusedBranch(p, x, c, base, budget, taken)
    }

    // MARK: Conditions and values

    @inline(__always) static func eq(_ a: UInt64, _ b: UInt64) -> Bool { a == b }
    @inline(__always) static func ne(_ a: UInt64, _ b: UInt64) -> Bool { a != b }
    @inline(__always) static func lt(_ a: UInt64, _ b: UInt64) -> Bool { Int64(bitPattern: a) < Int64(bitPattern: b) }
    @inline(__always) static func ge(_ a: UInt64, _ b: UInt64) -> Bool { Int64(bitPattern: a) >= Int64(bitPattern: b) }
    @inline(__always) static func ltu(_ a: UInt64, _ b: UInt64) -> Bool { a < b }
    @inline(__always) static func geu(_ a: UInt64, _ b: UInt64) -> Bool { a >= b }

    @inline(__always) static func i8(_ h: Raw) -> UInt64 { UInt64(bitPattern: Int64(h.load(as: Int8.self))) }
    @inline(__always) static func i16(_ h: Raw) -> UInt64 { UInt64(bitPattern: Int64(h.load(as: Int16.self))) }
    @inline(__always) static func i32(_ h: Raw) -> UInt64 { UInt64(bitPattern: Int64(h.load(as: Int32.self))) }
    @inline(__always) static func u8(_ h: Raw) -> UInt64 { UInt64(h.load(as: UInt8.self)) }
    @inline(__always) static func u16(_ h: Raw) -> UInt64 { UInt64(h.load(as: UInt16.self)) }
    @inline(__always) static func u32(_ h: Raw) -> UInt64 { UInt64(h.load(as: UInt32.self)) }
    @inline(__always) static func u64(_ h: Raw) -> UInt64 { h.load(as: UInt64.self) }

    @inline(__always) static func sext32(_ v: UInt64) -> UInt64 { Hart.sext32(v) }
    @inline(__always) static func sext32(_ v: UInt32) -> UInt64 { Hart.sext32(v) }
    @inline(__always) static func w(_ v: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: v) }

    // MARK: Handlers

    @inline(__always) static func luiBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { _, v in v }
    }
    @inline(__always) static func auipcBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { _, v in base &+ v }  // v: offset from base
    }
    @inline(__always) static func jalBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        let o = op(p)
        x[Int(o.rd)] = base &+ (UInt64(o.rs2) | UInt64(o.aux) &<< 8)
        return goto(base &+ imm(o), x, c, base, budget)
    }
    @inline(__always) static func jalrBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        let o = op(p)
        let target = (x[Int(o.rs1)] &+ imm(o)) & ~1
        x[Int(o.rd)] = base &+ (UInt64(o.rs2) | UInt64(o.aux) &<< 8)
        return goto(target, x, c, base, budget)
    }
    @inline(__always) static func beqBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, eq)
    }
    @inline(__always) static func bneBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, ne)
    }
    @inline(__always) static func bltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, lt)
    }
    @inline(__always) static func bgeBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, ge)
    }
    @inline(__always) static func bltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, ltu)
    }
    @inline(__always) static func bgeuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        branch(p, x, c, base, budget, geu)
    }

    @inline(__always) static func lbBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 1, i8)
    }
    @inline(__always) static func lhBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 2, i16)
    }
    @inline(__always) static func lwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 4, i32)
    }
    @inline(__always) static func ldBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 8, u64)
    }
    @inline(__always) static func lbuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 1, u8)
    }
    @inline(__always) static func lhuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 2, u16)
    }
    @inline(__always) static func lwuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        load(p, x, c, base, budget, 4, u32)
    }
    @inline(__always) static func sbBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        store(p, x, c, base, budget, 1) { h, v in h.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self) }
    }
    @inline(__always) static func shBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        store(p, x, c, base, budget, 2) { h, v in h.storeBytes(of: UInt16(truncatingIfNeeded: v), as: UInt16.self) }
    }
    @inline(__always) static func swBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        store(p, x, c, base, budget, 4) { h, v in h.storeBytes(of: UInt32(truncatingIfNeeded: v), as: UInt32.self) }
    }
    @inline(__always) static func sdBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        store(p, x, c, base, budget, 8) { h, v in h.storeBytes(of: v, as: UInt64.self) }
    }

    @inline(__always) static func addiBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a &+ v }
    }
    @inline(__always) static func sltiBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in lt(a, v) ? 1 : 0 }
    }
    @inline(__always) static func sltiuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a < v ? 1 : 0 }
    }
    @inline(__always) static func xoriBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a ^ v }
    }
    @inline(__always) static func oriBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a | v }
    }
    @inline(__always) static func andiBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a & v }
    }
    @inline(__always) static func slliBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a &<< v }
    }
    @inline(__always) static func srliBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in a &>> v }
    }
    @inline(__always) static func sraiBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(bitPattern: v)) }
    }
    @inline(__always) static func addiwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in sext32(a &+ v) }
    }
    @inline(__always) static func slliwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in sext32(w(a) &<< w(v)) }
    }
    @inline(__always) static func srliwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in sext32(w(a) &>> w(v)) }
    }
    @inline(__always) static func sraiwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        i(p, x, c, base, budget) { a, v in UInt64(bitPattern: Int64(Int32(bitPattern: w(a)) &>> Int32(bitPattern: w(v)))) }
    }

    @inline(__always) static func addBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a &+ b }
    }
    @inline(__always) static func subBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a &- b }
    }
    @inline(__always) static func sllBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a &<< b }
    }
    @inline(__always) static func sltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in lt(a, b) ? 1 : 0 }
    }
    @inline(__always) static func sltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a < b ? 1 : 0 }
    }
    @inline(__always) static func xorBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a ^ b }
    }
    @inline(__always) static func srlBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a &>> b }
    }
    @inline(__always) static func sraBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(bitPattern: b)) }
    }
    @inline(__always) static func orBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a | b }
    }
    @inline(__always) static func andBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a & b }
    }
    @inline(__always) static func mulBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a &* b }
    }
    @inline(__always) static func mulhBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(bitPattern: a).multipliedFullWidth(by: Int64(bitPattern: b)).high) }
    }
    @inline(__always) static func mulhsuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in
            let high = a.multipliedFullWidth(by: b).high
            return Int64(bitPattern: a) < 0 ? high &- b : high
        }
    }
    @inline(__always) static func mulhuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in a.multipliedFullWidth(by: b).high }
    }
    @inline(__always) static func divBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.div)
    }
    @inline(__always) static func divuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in b == 0 ? .max : a / b }
    }
    @inline(__always) static func remBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.rem)
    }
    @inline(__always) static func remuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in b == 0 ? a : a % b }
    }
    @inline(__always) static func addwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in sext32(a &+ b) }
    }
    @inline(__always) static func subwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in sext32(a &- b) }
    }
    @inline(__always) static func sllwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in sext32(w(a) &<< w(b)) }
    }
    @inline(__always) static func srlwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in sext32(w(a) &>> w(b)) }
    }
    @inline(__always) static func srawBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(Int32(bitPattern: w(a)) &>> Int32(bitPattern: w(b)))) }
    }
    @inline(__always) static func mulwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget) { a, b in sext32(w(a) &* w(b)) }
    }
    @inline(__always) static func divwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.divw)
    }
    @inline(__always) static func divuwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.divuw)
    }
    @inline(__always) static func remwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.remw)
    }
    @inline(__always) static func remuwBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        r(p, x, c, base, budget, Hart.remuw)
    }

    /// Everything else: leave the block before the instruction, for `executeOutOfLine`.
    @inline(__always) static func outOfLineHandlerBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        outOfLine(p, c, base, budget)
    }
    @inline(__always) static func blockEndBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        goto(base &+ imm(op(p)), x, c, base, budget)
    }

    @inline(__always) static func addiBeqBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, eq)
    }
    @inline(__always) static func addiBneBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, ne)
    }
    @inline(__always) static func addiBltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, lt)
    }
    @inline(__always) static func addiBgeBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, ge)
    }
    @inline(__always) static func addiBltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, ltu)
    }
    @inline(__always) static func addiBgeuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        addiBranch(p, x, c, base, budget, geu)
    }
    @inline(__always) static func lwBeqBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, eq)
    }
    @inline(__always) static func lwBneBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, ne)
    }
    @inline(__always) static func lwBltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, lt)
    }
    @inline(__always) static func lwBgeBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, ge)
    }
    @inline(__always) static func lwBltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, ltu)
    }
    @inline(__always) static func lwBgeuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 4, i32, geu)
    }
    @inline(__always) static func ldBeqBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, eq)
    }
    @inline(__always) static func ldBneBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, ne)
    }
    @inline(__always) static func ldBltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, lt)
    }
    @inline(__always) static func ldBgeBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, ge)
    }
    @inline(__always) static func ldBltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, ltu)
    }
    @inline(__always) static func ldBgeuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 8, u64, geu)
    }
    @inline(__always) static func lbuBeqBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, eq)
    }
    @inline(__always) static func lbuBneBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, ne)
    }
    @inline(__always) static func lbuBltBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, lt)
    }
    @inline(__always) static func lbuBgeBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, ge)
    }
    @inline(__always) static func lbuBltuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, ltu)
    }
    @inline(__always) static func lbuBgeuBody(_ p: Raw, _ x: Registers, _ c: Raw, _ base: UInt64, _ budget: Int) -> Raw {
        loadBranch(p, x, c, base, budget, 1, u8, geu)
    }

    // The handlers: C entry points made from global functions, which (unlike closures)
    // get their whole body inlined into the entry point.
    static let lui: Handler = threaded_lui
    static let auipc: Handler = threaded_auipc
    static let jal: Handler = threaded_jal
    static let jalr: Handler = threaded_jalr
    static let beq: Handler = threaded_beq
    static let bne: Handler = threaded_bne
    static let blt: Handler = threaded_blt
    static let bge: Handler = threaded_bge
    static let bltu: Handler = threaded_bltu
    static let bgeu: Handler = threaded_bgeu
    static let lb: Handler = threaded_lb
    static let lh: Handler = threaded_lh
    static let lw: Handler = threaded_lw
    static let ld: Handler = threaded_ld
    static let lbu: Handler = threaded_lbu
    static let lhu: Handler = threaded_lhu
    static let lwu: Handler = threaded_lwu
    static let sb: Handler = threaded_sb
    static let sh: Handler = threaded_sh
    static let sw: Handler = threaded_sw
    static let sd: Handler = threaded_sd
    static let addi: Handler = threaded_addi
    static let slti: Handler = threaded_slti
    static let sltiu: Handler = threaded_sltiu
    static let xori: Handler = threaded_xori
    static let ori: Handler = threaded_ori
    static let andi: Handler = threaded_andi
    static let slli: Handler = threaded_slli
    static let srli: Handler = threaded_srli
    static let srai: Handler = threaded_srai
    static let addiw: Handler = threaded_addiw
    static let slliw: Handler = threaded_slliw
    static let srliw: Handler = threaded_srliw
    static let sraiw: Handler = threaded_sraiw
    static let add: Handler = threaded_add
    static let sub: Handler = threaded_sub
    static let sll: Handler = threaded_sll
    static let slt: Handler = threaded_slt
    static let sltu: Handler = threaded_sltu
    static let xor: Handler = threaded_xor
    static let srl: Handler = threaded_srl
    static let sra: Handler = threaded_sra
    static let or: Handler = threaded_or
    static let and: Handler = threaded_and
    static let mul: Handler = threaded_mul
    static let mulh: Handler = threaded_mulh
    static let mulhsu: Handler = threaded_mulhsu
    static let mulhu: Handler = threaded_mulhu
    static let div: Handler = threaded_div
    static let divu: Handler = threaded_divu
    static let rem: Handler = threaded_rem
    static let remu: Handler = threaded_remu
    static let addw: Handler = threaded_addw
    static let subw: Handler = threaded_subw
    static let sllw: Handler = threaded_sllw
    static let srlw: Handler = threaded_srlw
    static let sraw: Handler = threaded_sraw
    static let mulw: Handler = threaded_mulw
    static let divw: Handler = threaded_divw
    static let divuw: Handler = threaded_divuw
    static let remw: Handler = threaded_remw
    static let remuw: Handler = threaded_remuw
    static let outOfLineHandler: Handler = threaded_outOfLineHandler
    static let blockEnd: Handler = threaded_blockEnd
    static let addiBeq: Handler = threaded_addiBeq
    static let addiBne: Handler = threaded_addiBne
    static let addiBlt: Handler = threaded_addiBlt
    static let addiBge: Handler = threaded_addiBge
    static let addiBltu: Handler = threaded_addiBltu
    static let addiBgeu: Handler = threaded_addiBgeu
    static let lwBeq: Handler = threaded_lwBeq
    static let lwBne: Handler = threaded_lwBne
    static let lwBlt: Handler = threaded_lwBlt
    static let lwBge: Handler = threaded_lwBge
    static let lwBltu: Handler = threaded_lwBltu
    static let lwBgeu: Handler = threaded_lwBgeu
    static let ldBeq: Handler = threaded_ldBeq
    static let ldBne: Handler = threaded_ldBne
    static let ldBlt: Handler = threaded_ldBlt
    static let ldBge: Handler = threaded_ldBge
    static let ldBltu: Handler = threaded_ldBltu
    static let ldBgeu: Handler = threaded_ldBgeu
    static let lbuBeq: Handler = threaded_lbuBeq
    static let lbuBne: Handler = threaded_lbuBne
    static let lbuBlt: Handler = threaded_lbuBlt
    static let lbuBge: Handler = threaded_lbuBge
    static let lbuBltu: Handler = threaded_lbuBltu
    static let lbuBgeu: Handler = threaded_lbuBgeu

    /// The handler of an operation.
    static func handler(_ kind: OpKind) -> Handler {
        switch kind {
        case .lui: return lui
        case .auipc: return auipc
        case .jal: return jal
        case .jalr: return jalr
        case .beq: return beq
        case .bne: return bne
        case .blt: return blt
        case .bge: return bge
        case .bltu: return bltu
        case .bgeu: return bgeu
        case .lb: return lb
        case .lh: return lh
        case .lw: return lw
        case .ld: return ld
        case .lbu: return lbu
        case .lhu: return lhu
        case .lwu: return lwu
        case .sb: return sb
        case .sh: return sh
        case .sw: return sw
        case .sd: return sd
        case .addi: return addi
        case .slti: return slti
        case .sltiu: return sltiu
        case .xori: return xori
        case .ori: return ori
        case .andi: return andi
        case .slli: return slli
        case .srli: return srli
        case .srai: return srai
        case .addiw: return addiw
        case .slliw: return slliw
        case .srliw: return srliw
        case .sraiw: return sraiw
        case .add: return add
        case .sub: return sub
        case .sll: return sll
        case .slt: return slt
        case .sltu: return sltu
        case .xor: return xor
        case .srl: return srl
        case .sra: return sra
        case .or: return or
        case .and: return and
        case .mul: return mul
        case .mulh: return mulh
        case .mulhsu: return mulhsu
        case .mulhu: return mulhu
        case .div: return div
        case .divu: return divu
        case .rem: return rem
        case .remu: return remu
        case .addw: return addw
        case .subw: return subw
        case .sllw: return sllw
        case .srlw: return srlw
        case .sraw: return sraw
        case .mulw: return mulw
        case .divw: return divw
        case .divuw: return divuw
        case .remw: return remw
        case .remuw: return remuw
        case .illegal, .fence, .fenceI, .lrW, .lrD, .scW, .scD, .amoW, .amoD,
             .ecall, .ebreak, .mret, .sret, .wfi, .sfenceVMA,
             .csrrw, .csrrs, .csrrc, .csrrwi, .csrrsi, .csrrci,
             .flw, .fld, .fsw, .fsd, .fmadd, .fmsub, .fnmsub, .fnmadd, .fp:
            return outOfLineHandler
        case .blockEnd: return blockEnd
        case .addiBeq: return addiBeq
        case .addiBne: return addiBne
        case .addiBlt: return addiBlt
        case .addiBge: return addiBge
        case .addiBltu: return addiBltu
        case .addiBgeu: return addiBgeu
        case .lwBeq: return lwBeq
        case .lwBne: return lwBne
        case .lwBlt: return lwBlt
        case .lwBge: return lwBge
        case .lwBltu: return lwBltu
        case .lwBgeu: return lwBgeu
        case .ldBeq: return ldBeq
        case .ldBne: return ldBne
        case .ldBlt: return ldBlt
        case .ldBge: return ldBge
        case .ldBltu: return ldBltu
        case .ldBgeu: return ldBgeu
        case .lbuBeq: return lbuBeq
        case .lbuBne: return lbuBne
        case .lbuBlt: return lbuBlt
        case .lbuBge: return lbuBge
        case .lbuBltu: return lbuBltu
        case .lbuBgeu: return lbuBgeu
        }
    }
}

// The handlers as global functions (see `Threaded.handler`).
@inline(__always) private func threaded_lui(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.luiBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_auipc(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.auipcBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_jal(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.jalBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_jalr(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.jalrBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_beq(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.beqBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_bne(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.bneBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_blt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.bltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_bge(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.bgeBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_bltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.bltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_bgeu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.bgeuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lb(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lh(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lhBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ld(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lhu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lhuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sb(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sbBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sh(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.shBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.swBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sd(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sdBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addi(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_slti(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sltiBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sltiu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sltiuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_xori(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.xoriBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ori(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.oriBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_andi(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.andiBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_slli(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.slliBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_srli(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.srliBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_srai(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sraiBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_slliw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.slliwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_srliw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.srliwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sraiw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sraiwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_add(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sub(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.subBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sll(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sllBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_slt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_xor(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.xorBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_srl(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.srlBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sra(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sraBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_or(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.orBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_and(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.andBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_mul(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.mulBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_mulh(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.mulhBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_mulhsu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.mulhsuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_mulhu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.mulhuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_div(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.divBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_divu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.divuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_rem(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.remBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_remu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.remuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_subw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.subwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sllw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.sllwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_srlw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.srlwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_sraw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.srawBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_mulw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.mulwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_divw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.divwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_divuw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.divuwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_remw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.remwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_remuw(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.remuwBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_outOfLineHandler(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.outOfLineHandlerBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_blockEnd(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.blockEndBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBeq(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBeqBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBne(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBneBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBlt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBge(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBgeBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_addiBgeu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.addiBgeuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBeq(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBeqBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBne(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBneBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBlt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBge(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBgeBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lwBgeu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lwBgeuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBeq(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBeqBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBne(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBneBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBlt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBge(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBgeBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_ldBgeu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.ldBgeuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBeq(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBeqBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBne(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBneBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBlt(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBltBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBge(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBgeBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBltu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBltuBody(p, x, c, base, budget)
}
@inline(__always) private func threaded_lbuBgeu(_ p: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.lbuBgeuBody(p, x, c, base, budget)
}
@inline(__always) private func threadedOtherPage(_ target: UInt64, _ x: UnsafeMutablePointer<UInt64>,
    _ c: UnsafeMutableRawPointer, _ base: UInt64, _ budget: Int) -> UnsafeMutableRawPointer {
    Threaded.otherPageBody(target, x, c, base, budget)
}
