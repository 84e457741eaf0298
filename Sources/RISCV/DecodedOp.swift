// Pre-decoded instructions: every encoding the hart implements becomes one dense
// operation code with its register numbers and immediate already extracted, so a
// block runs each instruction through the handler of its operation (Threaded.swift)
// instead of walking opcode → funct3 → funct7 and re-assembling immediates each time.

/// What a decoded instruction does (dense `UInt8` values). Compressed instructions
/// decode to the operation of the 32-bit instruction they stand for.
enum OpKind: UInt8 {
    case illegal = 0
    case lui, auipc, jal, jalr
    case beq, bne, blt, bge, bltu, bgeu
    case lb, lh, lw, ld, lbu, lhu, lwu
    case sb, sh, sw, sd
    case addi, slti, sltiu, xori, ori, andi, slli, srli, srai
    case addiw, slliw, srliw, sraiw
    case add, sub, sll, slt, sltu, xor, srl, sra, or, and
    case mul, mulh, mulhsu, mulhu, div, divu, rem, remu
    case addw, subw, sllw, srlw, sraw, mulw, divw, divuw, remw, remuw
    case fence, fenceI
    case lrW, lrD, scW, scD, amoW, amoD
    case ecall, ebreak, mret, sret, wfi, sfenceVMA
    case csrrw, csrrs, csrrc, csrrwi, csrrsi, csrrci
    /// F and D (Hart+Float.swift): the loads and stores, the four fused multiply-adds,
    /// and everything under the OP-FP opcode (decoded further from `bits` when it runs).
    /// Their register numbers are kept as encoded (f0 is a register).
    case flw, fld, fsw, fsd, fmadd, fmsub, fnmsub, fnmadd, fp
    /// Not an instruction: the entry after a block's last instruction, whose `offset`
    /// is where the block falls through to (Hart+Blocks.swift).
    case blockEnd
    /// Superinstructions (Hart+Blocks.swift): an ADDI, LW, LD or LBU whose entry also
    /// runs the conditional branch in the entry after it (which stays in the block as
    /// it was, for the checks against memory, budgets and counts).
    case addiBeq, addiBne, addiBlt, addiBge, addiBltu, addiBgeu
    case lwBeq, lwBne, lwBlt, lwBge, lwBltu, lwBgeu
    case ldBeq, ldBne, ldBlt, ldBge, ldBltu, ldBgeu
    case lbuBeq, lbuBne, lbuBlt, lbuBge, lbuBltu, lbuBgeu
}

extension OpKind {
    /// Instructions after which a block ends: jumps, and everything the block
    /// interpreter leaves to `executeOutOfLine` that may change the pc, the privilege,
    /// the translation, interrupt state or memory (system instructions, fences,
    /// atomics, illegal encodings). A conditional branch leaves its block only when it
    /// is taken: the block goes on with the instructions after it.
    var endsBlock: Bool {
        switch self {
        case .jal, .jalr,
             .illegal, .fence, .fenceI, .lrW, .lrD, .scW, .scD, .amoW, .amoD,
             .ecall, .ebreak, .mret, .sret, .wfi, .sfenceVMA,
             .csrrw, .csrrs, .csrrc, .csrrwi, .csrrsi, .csrrci:
            return true
        default:
            return false
        }
    }

    /// The superinstruction an entry of this kind becomes when `next` follows it, if any.
    func fused(with next: OpKind) -> OpKind? {
        let branch: Int
        switch next {
        case .beq: branch = 0
        case .bne: branch = 1
        case .blt: branch = 2
        case .bge: branch = 3
        case .bltu: branch = 4
        case .bgeu: branch = 5
        default: return nil
        }
        let first: OpKind
        switch self {
        case .addi: first = .addiBeq
        case .lw: first = .lwBeq
        case .ld: first = .ldBeq
        case .lbu: first = .lbuBeq
        default: return nil
        }
        return OpKind(rawValue: first.rawValue + UInt8(branch))
    }

    /// The instruction a superinstruction's own entry stands for (itself otherwise).
    var unfused: OpKind {
        switch self {
        case .addiBeq, .addiBne, .addiBlt, .addiBge, .addiBltu, .addiBgeu: return .addi
        case .lwBeq, .lwBne, .lwBlt, .lwBge, .lwBltu, .lwBgeu: return .lw
        case .ldBeq, .ldBne, .ldBlt, .ldBge, .ldBltu, .ldBgeu: return .ld
        case .lbuBeq, .lbuBne, .lbuBlt, .lbuBge, .lbuBltu, .lbuBgeu: return .lbu
        default: return self
        }
    }

    /// The F and D instructions, whose `rd` may name an FP register (no sink for 0).
    var isFloat: Bool {
        switch self {
        case .flw, .fld, .fsw, .fsd, .fmadd, .fmsub, .fnmsub, .fnmadd, .fp: return true
        default: return false
        }
    }

    /// Instructions whose immediate is relative to their own address: in a block the
    /// immediate holds the target's offset from the page base instead.
    var isPCRelative: Bool {
        switch self {
        case .auipc, .jal, .beq, .bne, .blt, .bge, .bltu, .bgeu: return true
        default: return false
        }
    }
}

/// One instruction, decoded. 16 bytes; a block holds one per instruction.
///
/// `bits` is the instruction as it sits in memory (16 bits for a compressed one, the
/// upper half zero). A block compares them with memory before it runs in a new code
/// epoch (Hart+Blocks.swift), which is how it notices that its code was rewritten — by
/// this hart, by another hart, by DMA or by a remote node — without any writer having
/// to know that the page holds decoded code.
struct DecodedOp {
    var kind: OpKind = .illegal
    /// The destination register; writes to x0 are steered to the scratch slot 32
    /// (`Hart.sinkRegister`) so that execution never tests for x0.
    var rd: UInt8 = Hart.sinkRegister
    var rs1: UInt8 = 0
    var rs2: UInt8 = 0
    /// The sign-extended immediate; for shifts the shift amount, for CSR
    /// instructions the CSR number, for AMOs the `AtomicOp`.
    var imm: Int32 = 0
    var bits: UInt32 = 0
    /// In a block: the instruction's offset in its page, and the offset of the one
    /// after it (`offset` + length; past 4095 for the last instruction of a page).
    var offset: UInt16 = 0
    var next: UInt16 = 0

    /// The instruction's length in bytes.
    @inline(__always) var length: UInt64 { bits & 3 == 3 ? 4 : 2 }

    /// True if `word` (the four bytes at the instruction's address, or two at the end
    /// of a page) still holds the instruction this entry was decoded from.
    @inline(__always) func matches(_ word: UInt32) -> Bool {
        word & (bits & 3 == 3 ? 0xffff_ffff : 0xffff) == bits
    }

    /// The entry for an instruction (a 32-bit one, or a compressed one in the low half).
    /// Reserved and unimplemented encodings decode to `.illegal`, keeping their bits
    /// for mtval. An entry that was never filled has bits 0 and kind `.illegal`, which
    /// is exactly the decoding of the all-zero (illegal) parcel.
    init(decoding raw: UInt32, compressed table: UnsafePointer<UInt32>) {
        let isCompressed = raw & 3 != 3
        bits = isCompressed ? raw & 0xffff : raw
        let i = isCompressed ? table[Int(raw & 0xffff)] : raw
        guard i != 0, let (kind, imm) = Self.operation(i) else { return }
        self.kind = kind
        self.imm = imm
        let d = UInt8((i >> 7) & 31)
        rd = d == 0 && !kind.isFloat ? Hart.sinkRegister : d
        rs1 = UInt8((i >> 15) & 31)
        rs2 = UInt8((i >> 20) & 31)
    }

    init() {}

    // MARK: - Decoding

    private static func immI(_ i: UInt32) -> Int32 { Int32(bitPattern: i) >> 20 }
    private static func immS(_ i: UInt32) -> Int32 { (Int32(bitPattern: i & 0xfe00_0000) >> 20) | Int32((i >> 7) & 0x1f) }
    private static func immB(_ i: UInt32) -> Int32 {
        (Int32(bitPattern: i & 0x8000_0000) >> 19) | Int32((i & 0x80) << 4) | Int32((i >> 20) & 0x7e0) | Int32((i >> 7) & 0x1e)
    }
    private static func immU(_ i: UInt32) -> Int32 { Int32(bitPattern: i & 0xffff_f000) }
    private static func immJ(_ i: UInt32) -> Int32 {
        (Int32(bitPattern: i & 0x8000_0000) >> 11) | Int32(i & 0xff000) | Int32((i >> 9) & 0x800) | Int32((i >> 20) & 0x7fe)
    }

    /// The operation and immediate of a 32-bit instruction, nil if it is illegal.
    private static func operation(_ i: UInt32) -> (OpKind, Int32)? {
        let f3 = (i >> 12) & 7, f7 = i >> 25
        switch i & 0x7f {
        case 0x37: return (.lui, immU(i))
        case 0x17: return (.auipc, immU(i))
        case 0x6f: return (.jal, immJ(i))
        case 0x67: return f3 == 0 ? (.jalr, immI(i)) : nil
        case 0x63:
            let b = immB(i)
            switch f3 {
            case 0: return (.beq, b)
            case 1: return (.bne, b)
            case 4: return (.blt, b)
            case 5: return (.bge, b)
            case 6: return (.bltu, b)
            case 7: return (.bgeu, b)
            default: return nil
            }
        case 0x03:
            let offset = immI(i)
            switch f3 {
            case 0: return (.lb, offset)
            case 1: return (.lh, offset)
            case 2: return (.lw, offset)
            case 3: return (.ld, offset)
            case 4: return (.lbu, offset)
            case 5: return (.lhu, offset)
            case 6: return (.lwu, offset)
            default: return nil
            }
        case 0x23:
            let offset = immS(i)
            switch f3 {
            case 0: return (.sb, offset)
            case 1: return (.sh, offset)
            case 2: return (.sw, offset)
            case 3: return (.sd, offset)
            default: return nil
            }
        case 0x13:
            let imm = immI(i), shamt = Int32((i >> 20) & 63)
            switch f3 {
            case 0: return (.addi, imm)
            case 1: return i >> 26 == 0 ? (.slli, shamt) : nil
            case 2: return (.slti, imm)
            case 3: return (.sltiu, imm)
            case 4: return (.xori, imm)
            case 5: return i >> 26 == 0 ? (.srli, shamt) : i >> 26 == 0x10 ? (.srai, shamt) : nil
            case 6: return (.ori, imm)
            default: return (.andi, imm)
            }
        case 0x1b:
            let shamt = Int32((i >> 20) & 31)
            switch (f3, f7) {
            case (0, _): return (.addiw, immI(i))
            case (1, 0): return (.slliw, shamt)
            case (5, 0): return (.srliw, shamt)
            case (5, 0x20): return (.sraiw, shamt)
            default: return nil
            }
        case 0x33:
            switch (f7, f3) {
            case (0, 0): return (.add, 0)
            case (0, 1): return (.sll, 0)
            case (0, 2): return (.slt, 0)
            case (0, 3): return (.sltu, 0)
            case (0, 4): return (.xor, 0)
            case (0, 5): return (.srl, 0)
            case (0, 6): return (.or, 0)
            case (0, 7): return (.and, 0)
            case (0x20, 0): return (.sub, 0)
            case (0x20, 5): return (.sra, 0)
            case (1, 0): return (.mul, 0)
            case (1, 1): return (.mulh, 0)
            case (1, 2): return (.mulhsu, 0)
            case (1, 3): return (.mulhu, 0)
            case (1, 4): return (.div, 0)
            case (1, 5): return (.divu, 0)
            case (1, 6): return (.rem, 0)
            case (1, 7): return (.remu, 0)
            default: return nil
            }
        case 0x3b:
            switch (f7, f3) {
            case (0, 0): return (.addw, 0)
            case (0, 1): return (.sllw, 0)
            case (0, 5): return (.srlw, 0)
            case (0x20, 0): return (.subw, 0)
            case (0x20, 5): return (.sraw, 0)
            case (1, 0): return (.mulw, 0)
            case (1, 4): return (.divw, 0)
            case (1, 5): return (.divuw, 0)
            case (1, 6): return (.remw, 0)
            case (1, 7): return (.remuw, 0)
            default: return nil
            }
        case 0x07:
            return f3 == 2 ? (.flw, immI(i)) : f3 == 3 ? (.fld, immI(i)) : nil
        case 0x27:
            return f3 == 2 ? (.fsw, immS(i)) : f3 == 3 ? (.fsd, immS(i)) : nil
        case 0x43, 0x47, 0x4b, 0x4f:
            guard (i >> 25) & 3 <= 1 else { return nil }  // fmt H and Q are not implemented
            let kinds: [OpKind] = [.fmadd, .fmsub, .fnmsub, .fnmadd]
            return (kinds[Int((i >> 2) & 3)], 0)
        case 0x53:
            return (.fp, 0)  // checked when it runs (Hart+Float.swift)
        case 0x0f:
            return f3 == 0 ? (.fence, 0) : f3 == 1 ? (.fenceI, 0) : nil
        case 0x2f:
            guard f3 == 2 || f3 == 3 else { return nil }
            let word = f3 == 2
            switch i >> 27 {
            case 0x02: return (i >> 20) & 31 == 0 ? (word ? .lrW : .lrD, 0) : nil
            case 0x03: return (word ? .scW : .scD, 0)
            default:
                let op: AtomicOp
                switch i >> 27 {
                case 0x01: op = .swap
                case 0x00: op = .add
                case 0x04: op = .xor
                case 0x0c: op = .and
                case 0x08: op = .or
                case 0x10: op = .min
                case 0x14: op = .max
                case 0x18: op = .minu
                case 0x1c: op = .maxu
                default: return nil
                }
                return (word ? .amoW : .amoD, Int32(op.rawValue))
            }
        case 0x73:
            let csr = Int32(i >> 20)
            switch f3 {
            case 0:
                guard (i >> 7) & 31 == 0 else { return nil }
                switch i >> 20 {
                case 0x000: return (i >> 15) & 31 == 0 ? (.ecall, 0) : nil
                case 0x001: return (.ebreak, 0)
                case 0x302: return (.mret, 0)
                case 0x102: return (.sret, 0)
                case 0x105: return (.wfi, 0)
                default: return f7 == 0x09 ? (.sfenceVMA, 0) : nil
                }
            case 1: return (.csrrw, csr)
            case 2: return (.csrrs, csr)
            case 3: return (.csrrc, csr)
            case 5: return (.csrrwi, csr)
            case 6: return (.csrrsi, csr)
            case 7: return (.csrrci, csr)
            default: return nil  // 4: the hypervisor's HLV/HSV, not implemented
            }
        default: return nil
        }
    }
}
