// The C extension: each 16-bit instruction expands to the 32-bit instruction it
// stands for (RV64C with the double-precision loads and stores of RV64DC).

extension Hart {
    private static func r(_ op: UInt32, _ rd: UInt32, _ f3: UInt32, _ rs1: UInt32, _ rs2: UInt32, _ f7: UInt32) -> UInt32 {
        op | rd << 7 | f3 << 12 | rs1 << 15 | rs2 << 20 | f7 << 25
    }
    private static func i(_ op: UInt32, _ rd: UInt32, _ f3: UInt32, _ rs1: UInt32, _ imm: Int32) -> UInt32 {
        op | rd << 7 | f3 << 12 | rs1 << 15 | (UInt32(bitPattern: imm) & 0xfff) << 20
    }
    private static func s(_ op: UInt32, _ f3: UInt32, _ rs1: UInt32, _ rs2: UInt32, _ imm: Int32) -> UInt32 {
        let u = UInt32(bitPattern: imm)
        return op | (u & 0x1f) << 7 | f3 << 12 | rs1 << 15 | rs2 << 20 | ((u >> 5) & 0x7f) << 25
    }
    private static func b(_ f3: UInt32, _ rs1: UInt32, _ rs2: UInt32, _ imm: Int32) -> UInt32 {
        let u = UInt32(bitPattern: imm)
        return 0x63 | ((u >> 11) & 1) << 7 | ((u >> 1) & 0xf) << 8 | f3 << 12 | rs1 << 15 | rs2 << 20
            | ((u >> 5) & 0x3f) << 25 | ((u >> 12) & 1) << 31
    }
    private static func j(_ rd: UInt32, _ imm: Int32) -> UInt32 {
        let u = UInt32(bitPattern: imm)
        return 0x6f | rd << 7 | ((u >> 12) & 0xff) << 12 | ((u >> 11) & 1) << 20 | ((u >> 1) & 0x3ff) << 21
            | ((u >> 20) & 1) << 31
    }
    @inline(__always) private static func bit(_ c: UInt32, _ n: UInt32) -> UInt32 { (c >> n) & 1 }
    @inline(__always) private static func sext(_ v: UInt32, _ bits: UInt32) -> Int32 {
        Int32(bitPattern: v << (32 - bits)) >> Int32(32 - bits)
    }

    /// The 32-bit instruction a compressed one stands for, or nil if it is reserved or illegal.
    static func expandCompressed(_ half: UInt16) -> UInt32? {
        let c = UInt32(half)
        let f3 = c >> 13
        let rdFull = (c >> 7) & 31, rs2Full = (c >> 2) & 31
        let rdP = 8 + ((c >> 2) & 7), rs1P = 8 + ((c >> 7) & 7)
        switch (c & 3, f3) {
        case (0, 0):  // C.ADDI4SPN
            let imm = ((c >> 7) & 0xf) << 6 | ((c >> 11) & 3) << 4 | bit(c, 5) << 3 | bit(c, 6) << 2
            guard imm != 0 else { return nil }
            return i(0x13, rdP, 0, 2, Int32(imm))
        case (0, 1):  // C.FLD
            let imm = ((c >> 5) & 3) << 6 | ((c >> 10) & 7) << 3
            return i(0x07, rdP, 3, rs1P, Int32(imm))
        case (0, 2):  // C.LW
            let imm = bit(c, 5) << 6 | ((c >> 10) & 7) << 3 | bit(c, 6) << 2
            return i(0x03, rdP, 2, rs1P, Int32(imm))
        case (0, 3):  // C.LD
            let imm = ((c >> 5) & 3) << 6 | ((c >> 10) & 7) << 3
            return i(0x03, rdP, 3, rs1P, Int32(imm))
        case (0, 5):  // C.FSD
            let imm = ((c >> 5) & 3) << 6 | ((c >> 10) & 7) << 3
            return s(0x27, 3, rs1P, rdP, Int32(imm))
        case (0, 6):  // C.SW
            let imm = bit(c, 5) << 6 | ((c >> 10) & 7) << 3 | bit(c, 6) << 2
            return s(0x23, 2, rs1P, rdP, Int32(imm))
        case (0, 7):  // C.SD
            let imm = ((c >> 5) & 3) << 6 | ((c >> 10) & 7) << 3
            return s(0x23, 3, rs1P, rdP, Int32(imm))
        case (1, 0):  // C.ADDI / C.NOP
            let imm = sext(bit(c, 12) << 5 | rs2Full, 6)
            return i(0x13, rdFull, 0, rdFull, imm)
        case (1, 1):  // C.ADDIW
            guard rdFull != 0 else { return nil }
            return i(0x1b, rdFull, 0, rdFull, sext(bit(c, 12) << 5 | rs2Full, 6))
        case (1, 2):  // C.LI
            return i(0x13, rdFull, 0, 0, sext(bit(c, 12) << 5 | rs2Full, 6))
        case (1, 3):
            if rdFull == 2 {  // C.ADDI16SP
                var u: UInt32 = bit(c, 12) << 9
                u |= ((c >> 3) & 3) << 7
                u |= bit(c, 5) << 6
                u |= bit(c, 2) << 5
                u |= bit(c, 6) << 4
                let imm = sext(u, 10)
                guard imm != 0 else { return nil }
                return i(0x13, 2, 0, 2, imm)
            }
            let imm = sext(bit(c, 12) << 17 | rs2Full << 12, 18)  // C.LUI
            guard imm != 0 else { return nil }
            return 0x37 | rdFull << 7 | (UInt32(bitPattern: imm) & 0xfffff000)
        case (1, 4):
            let shamt = bit(c, 12) << 5 | rs2Full
            switch (c >> 10) & 3 {
            case 0: return i(0x13, rs1P, 5, rs1P, Int32(shamt))  // C.SRLI
            case 1: return i(0x13, rs1P, 5, rs1P, Int32(shamt | 0x400))  // C.SRAI
            case 2: return i(0x13, rs1P, 7, rs1P, sext(shamt, 6))  // C.ANDI
            default:
                let rs2P = 8 + ((c >> 2) & 7)
                switch (bit(c, 12), (c >> 5) & 3) {
                case (0, 0): return r(0x33, rs1P, 0, rs1P, rs2P, 0x20)  // C.SUB
                case (0, 1): return r(0x33, rs1P, 4, rs1P, rs2P, 0)  // C.XOR
                case (0, 2): return r(0x33, rs1P, 6, rs1P, rs2P, 0)  // C.OR
                case (0, 3): return r(0x33, rs1P, 7, rs1P, rs2P, 0)  // C.AND
                case (1, 0): return r(0x3b, rs1P, 0, rs1P, rs2P, 0x20)  // C.SUBW
                case (1, 1): return r(0x3b, rs1P, 0, rs1P, rs2P, 0)  // C.ADDW
                default: return nil
                }
            }
        case (1, 5):  // C.J
            var u: UInt32 = bit(c, 12) << 11
            u |= bit(c, 8) << 10
            u |= ((c >> 9) & 3) << 8
            u |= bit(c, 6) << 7
            u |= bit(c, 7) << 6
            u |= bit(c, 2) << 5
            u |= bit(c, 11) << 4
            u |= ((c >> 3) & 7) << 1
            return j(0, sext(u, 12))
        case (1, 6), (1, 7):  // C.BEQZ, C.BNEZ
            var u: UInt32 = bit(c, 12) << 8
            u |= ((c >> 5) & 3) << 6
            u |= bit(c, 2) << 5
            u |= ((c >> 10) & 3) << 3
            u |= ((c >> 3) & 3) << 1
            return b(f3 == 6 ? 0 : 1, rs1P, 0, sext(u, 9))
        case (2, 0):  // C.SLLI
            return i(0x13, rdFull, 1, rdFull, Int32(bit(c, 12) << 5 | rs2Full))
        case (2, 1):  // C.FLDSP (f0 is a valid destination)
            let hi: UInt32 = ((c >> 2) & 7) << 6
            let imm: UInt32 = hi | bit(c, 12) << 5 | ((c >> 5) & 3) << 3
            return i(0x07, rdFull, 3, 2, Int32(imm))
        case (2, 2):  // C.LWSP
            guard rdFull != 0 else { return nil }
            let hi: UInt32 = ((c >> 2) & 3) << 6
            let imm: UInt32 = hi | bit(c, 12) << 5 | ((c >> 4) & 7) << 2
            return i(0x03, rdFull, 2, 2, Int32(imm))
        case (2, 3):  // C.LDSP
            guard rdFull != 0 else { return nil }
            let hi: UInt32 = ((c >> 2) & 7) << 6
            let imm: UInt32 = hi | bit(c, 12) << 5 | ((c >> 5) & 3) << 3
            return i(0x03, rdFull, 3, 2, Int32(imm))
        case (2, 4):
            if bit(c, 12) == 0 {
                if rs2Full == 0 {  // C.JR
                    guard rdFull != 0 else { return nil }
                    return i(0x67, 0, 0, rdFull, 0)
                }
                return r(0x33, rdFull, 0, 0, rs2Full, 0)  // C.MV
            }
            if rs2Full == 0 {
                if rdFull == 0 { return 0x0010_0073 }  // C.EBREAK
                return i(0x67, 1, 0, rdFull, 0)  // C.JALR
            }
            return r(0x33, rdFull, 0, rdFull, rs2Full, 0)  // C.ADD
        case (2, 5):  // C.FSDSP
            return s(0x27, 3, 2, rs2Full, Int32(((c >> 7) & 7) << 6 | ((c >> 10) & 7) << 3))
        case (2, 6):  // C.SWSP
            return s(0x23, 2, 2, rs2Full, Int32(((c >> 7) & 3) << 6 | ((c >> 9) & 0xf) << 2))
        case (2, 7):  // C.SDSP
            return s(0x23, 3, 2, rs2Full, Int32(((c >> 7) & 7) << 6 | ((c >> 10) & 7) << 3))
        default:
            return nil  // reserved encodings
        }
    }
}

/// Every 16-bit encoding's expansion, computed once per process (256 KiB): a fetch of a
/// compressed instruction is then one load instead of a decode. 0 marks a reserved or
/// illegal encoding (no expansion is 0: expanded instructions end in binary 11).
enum CompressedTable {
    static let shared: UnsafePointer<UInt32> = {
        let table = UnsafeMutablePointer<UInt32>.allocate(capacity: 1 << 16)
        for half in 0..<(1 << 16) {
            table[half] = half & 3 == 3 ? 0 : Hart.expandCompressed(UInt16(half)) ?? 0
        }
        return UnsafePointer(table)
    }()
}
