// Direct-threaded execution of blocks (Hart+Blocks.swift).
//
// Each entry of a block holds, next to its decoded instruction (DecodedOp), the form
// it runs in (ThreadedOp): the address of the handler that runs it, its register
// numbers and its immediate. A handler does its instruction and ends by calling the
// next entry's handler in tail position, which the optimizer compiles to an indirect
// jump: one dispatch per instruction, from the end of each handler (so each handler's
// jump is predicted on its own), with no loop, no switch and no bounds check.
// Handlers are C-convention closures, plain code addresses that take their state in
// five registers: the entry, the register file, the context, the page base and the
// budget left after the current block.
//
// A jump, a taken branch or the `.blockEnd` entry after a block's last instruction
// goes on to the block at its target if that is of the current code epoch and within
// the budget, and in the same page (the context holds the page's block map and the
// epoch) or in a page the fetch TLB maps directly (the context points at the TLB; a
// hit there has passed the execute permission check, and the TLB is flushed only by
// instructions that run out of line); otherwise the handler returns to `Hart.run`,
// with the page base it ended in. So does an instruction a block cannot
// finish (a load or store off the fast path, anything `executeOutOfLine` does), which
// returns its own entry with the exit pc `outOfLine`.
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
    static let otherPage: CrossPage = { target, x, c, base, budget in
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
        return Raw(bitPattern: e.load(fromByteOffset: 8, as: UInt.self) &+ UInt(vaddr)).unsafelyUnwrapped
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

    static let lui: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { _, v in v } }
    static let auipc: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { _, v in base &+ v } }  // v: offset from base
    static let jal: Handler = { p, x, c, base, budget in
        let o = op(p)
        x[Int(o.rd)] = base &+ (UInt64(o.rs2) | UInt64(o.aux) &<< 8)
        return goto(base &+ imm(o), x, c, base, budget)
    }
    static let jalr: Handler = { p, x, c, base, budget in
        let o = op(p)
        let target = (x[Int(o.rs1)] &+ imm(o)) & ~1
        x[Int(o.rd)] = base &+ (UInt64(o.rs2) | UInt64(o.aux) &<< 8)
        return goto(target, x, c, base, budget)
    }
    static let beq: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, eq) }
    static let bne: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, ne) }
    static let blt: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, lt) }
    static let bge: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, ge) }
    static let bltu: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, ltu) }
    static let bgeu: Handler = { p, x, c, base, budget in branch(p, x, c, base, budget, geu) }

    static let lb: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 1, i8) }
    static let lh: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 2, i16) }
    static let lw: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 4, i32) }
    static let ld: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 8, u64) }
    static let lbu: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 1, u8) }
    static let lhu: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 2, u16) }
    static let lwu: Handler = { p, x, c, base, budget in load(p, x, c, base, budget, 4, u32) }
    static let sb: Handler = { p, x, c, base, budget in
        store(p, x, c, base, budget, 1) { h, v in h.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self) }
    }
    static let sh: Handler = { p, x, c, base, budget in
        store(p, x, c, base, budget, 2) { h, v in h.storeBytes(of: UInt16(truncatingIfNeeded: v), as: UInt16.self) }
    }
    static let sw: Handler = { p, x, c, base, budget in
        store(p, x, c, base, budget, 4) { h, v in h.storeBytes(of: UInt32(truncatingIfNeeded: v), as: UInt32.self) }
    }
    static let sd: Handler = { p, x, c, base, budget in store(p, x, c, base, budget, 8) { h, v in h.storeBytes(of: v, as: UInt64.self) } }

    static let addi: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a &+ v } }
    static let slti: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in lt(a, v) ? 1 : 0 } }
    static let sltiu: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a < v ? 1 : 0 } }
    static let xori: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a ^ v } }
    static let ori: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a | v } }
    static let andi: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a & v } }
    static let slli: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a &<< v } }
    static let srli: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in a &>> v } }
    static let srai: Handler = { p, x, c, base, budget in
        i(p, x, c, base, budget) { a, v in UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(bitPattern: v)) }
    }
    static let addiw: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in sext32(a &+ v) } }
    static let slliw: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in sext32(w(a) &<< w(v)) } }
    static let srliw: Handler = { p, x, c, base, budget in i(p, x, c, base, budget) { a, v in sext32(w(a) &>> w(v)) } }
    static let sraiw: Handler = { p, x, c, base, budget in
        i(p, x, c, base, budget) { a, v in UInt64(bitPattern: Int64(Int32(bitPattern: w(a)) &>> Int32(bitPattern: w(v)))) }
    }

    static let add: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a &+ b } }
    static let sub: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a &- b } }
    static let sll: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a &<< b } }
    static let slt: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in lt(a, b) ? 1 : 0 } }
    static let sltu: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a < b ? 1 : 0 } }
    static let xor: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a ^ b } }
    static let srl: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a &>> b } }
    static let sra: Handler = { p, x, c, base, budget in
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(bitPattern: a) &>> Int64(bitPattern: b)) }
    }
    static let or: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a | b } }
    static let and: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a & b } }
    static let mul: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a &* b } }
    static let mulh: Handler = { p, x, c, base, budget in
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(bitPattern: a).multipliedFullWidth(by: Int64(bitPattern: b)).high) }
    }
    static let mulhsu: Handler = { p, x, c, base, budget in
        r(p, x, c, base, budget) { a, b in
            let high = a.multipliedFullWidth(by: b).high
            return Int64(bitPattern: a) < 0 ? high &- b : high
        }
    }
    static let mulhu: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in a.multipliedFullWidth(by: b).high } }
    static let div: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.div) }
    static let divu: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in b == 0 ? .max : a / b } }
    static let rem: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.rem) }
    static let remu: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in b == 0 ? a : a % b } }
    static let addw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in sext32(a &+ b) } }
    static let subw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in sext32(a &- b) } }
    static let sllw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in sext32(w(a) &<< w(b)) } }
    static let srlw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in sext32(w(a) &>> w(b)) } }
    static let sraw: Handler = { p, x, c, base, budget in
        r(p, x, c, base, budget) { a, b in UInt64(bitPattern: Int64(Int32(bitPattern: w(a)) &>> Int32(bitPattern: w(b)))) }
    }
    static let mulw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget) { a, b in sext32(w(a) &* w(b)) } }
    static let divw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.divw) }
    static let divuw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.divuw) }
    static let remw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.remw) }
    static let remuw: Handler = { p, x, c, base, budget in r(p, x, c, base, budget, Hart.remuw) }

    /// Everything else: leave the block before the instruction, for `executeOutOfLine`.
    static let outOfLineHandler: Handler = { p, _, c, base, budget in outOfLine(p, c, base, budget) }
    static let blockEnd: Handler = { p, x, c, base, budget in goto(base &+ imm(op(p)), x, c, base, budget) }

    static let addiBeq: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, eq) }
    static let addiBne: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, ne) }
    static let addiBlt: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, lt) }
    static let addiBge: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, ge) }
    static let addiBltu: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, ltu) }
    static let addiBgeu: Handler = { p, x, c, base, budget in addiBranch(p, x, c, base, budget, geu) }
    static let lwBeq: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, eq) }
    static let lwBne: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, ne) }
    static let lwBlt: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, lt) }
    static let lwBge: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, ge) }
    static let lwBltu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, ltu) }
    static let lwBgeu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 4, i32, geu) }
    static let ldBeq: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, eq) }
    static let ldBne: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, ne) }
    static let ldBlt: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, lt) }
    static let ldBge: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, ge) }
    static let ldBltu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, ltu) }
    static let ldBgeu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 8, u64, geu) }
    static let lbuBeq: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, eq) }
    static let lbuBne: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, ne) }
    static let lbuBlt: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, lt) }
    static let lbuBge: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, ge) }
    static let lbuBltu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, ltu) }
    static let lbuBgeu: Handler = { p, x, c, base, budget in loadBranch(p, x, c, base, budget, 1, u8, geu) }

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
             .csrrw, .csrrs, .csrrc, .csrrwi, .csrrsi, .csrrci:
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
