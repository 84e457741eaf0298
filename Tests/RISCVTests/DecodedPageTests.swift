import Testing
@testable import RISCV

/// The pre-decoder (DecodedOp) against the assembler, and the decoded-page cache
/// against code that changes under it: rewritten by an outside writer, by the hart's
/// own stores, moved by the memory, straddling pages, or not directly accessible.
@Suite struct DecodedPageTests {
    static let table = CompressedTable.shared

    /// The instruction words of `source` as clang assembles them (16- or 32-bit).
    func words(_ source: String) throws -> [UInt32] {
        let bytes = try assemble(source)
        var out: [UInt32] = []
        var i = 0
        while i + 1 < bytes.count {
            let low = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8
            if low & 3 != 3 {
                out.append(low)
                i += 2
            } else {
                out.append(low | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                i += 4
            }
        }
        return out
    }

    /// Writes an instruction of the same length as the one at `address` (as a loader
    /// or DMA would: behind the hart's back).
    func patch(_ mem: TestMemory, at address: UInt64, with word: UInt32) {
        #expect((mem.read32(address) & 3 == 3) == (word & 3 == 3))
        if word & 3 == 3 { mem.write32(address, word) } else { mem.write16(address, UInt16(word)) }
    }

    struct Expected {
        var kind: OpKind, rd: UInt8, rs1: UInt8 = 0, rs2: UInt8 = 0, imm: Int32 = 0
    }

    @Test func decodesWhatTheAssemblerEncoded() throws {
        let sink = Hart.sinkRegister
        let cases: [(String, Expected)] = [
            ("lui a0, 0xfffff", Expected(kind: .lui, rd: 10, imm: -4096)),
            ("auipc t1, 0x12", Expected(kind: .auipc, rd: 6, imm: 0x12000)),
            ("jal ra, .+2044", Expected(kind: .jal, rd: 1, imm: 2044)),
            ("jalr x0, -8(t0)", Expected(kind: .jalr, rd: sink, rs1: 5, imm: -8)),
            ("bgeu a1, a2, .-4096", Expected(kind: .bgeu, rd: sink, rs1: 11, rs2: 12, imm: -4096)),
            ("blt s1, s2, .+12", Expected(kind: .blt, rd: 9, rs1: 9, rs2: 18, imm: 12)),
            ("lhu a3, -2048(sp)", Expected(kind: .lhu, rd: 13, rs1: 2, imm: -2048)),
            ("lwu t2, 2047(a0)", Expected(kind: .lwu, rd: 7, rs1: 10, imm: 2047)),
            ("sd s11, -1(a7)", Expected(kind: .sd, rd: 31, rs1: 17, rs2: 27, imm: -1)),
            ("sraiw t3, t4, 31", Expected(kind: .sraiw, rd: 28, rs1: 29, imm: 31)),
            ("srai a0, a1, 63", Expected(kind: .srai, rd: 10, rs1: 11, imm: 63)),
            ("sltiu a4, a5, -1", Expected(kind: .sltiu, rd: 14, rs1: 15, imm: -1)),
            ("mulhsu a0, a1, a2", Expected(kind: .mulhsu, rd: 10, rs1: 11, rs2: 12)),
            ("remuw t0, t1, t2", Expected(kind: .remuw, rd: 5, rs1: 6, rs2: 7)),
            ("sub x0, a0, a1", Expected(kind: .sub, rd: sink, rs1: 10, rs2: 11)),
            ("amomaxu.d.aqrl a0, a1, (a2)", Expected(kind: .amoD, rd: 10, rs1: 12, rs2: 11, imm: Int32(AtomicOp.maxu.rawValue))),
            ("amoor.w zero, a1, (a2)", Expected(kind: .amoW, rd: sink, rs1: 12, rs2: 11, imm: Int32(AtomicOp.or.rawValue))),
            ("lr.w t0, (a0)", Expected(kind: .lrW, rd: 5, rs1: 10)),
            ("sc.d t1, a2, (a0)", Expected(kind: .scD, rd: 6, rs1: 10, rs2: 12)),
            ("csrrci a0, mstatus, 8", Expected(kind: .csrrci, rd: 10, rs1: 8, imm: 0x300)),
            ("csrrs x0, satp, a1", Expected(kind: .csrrs, rd: sink, rs1: 11, imm: 0x180)),
            ("sfence.vma a0, a1", Expected(kind: .sfenceVMA, rd: sink, rs1: 10, rs2: 11)),
            ("fence.i", Expected(kind: .fenceI, rd: sink)),
            ("wfi", Expected(kind: .wfi, rd: sink, rs2: 5, imm: 0)),
            // Compressed forms decode to the operations of their expansions.
            ("c.addi4spn a0, sp, 16", Expected(kind: .addi, rd: 10, rs1: 2, imm: 16)),
            ("c.lui s0, 0xfffe1", Expected(kind: .lui, rd: 8, imm: Int32(bitPattern: 0xfffe_1000))),
            ("c.sdsp ra, 8(sp)", Expected(kind: .sd, rd: 8, rs1: 2, rs2: 1, imm: 8)),
            ("c.beqz a5, .-256", Expected(kind: .beq, rd: sink, rs1: 15, rs2: 0, imm: -256)),
            ("c.jr ra", Expected(kind: .jalr, rd: sink, rs1: 1, imm: 0)),
            ("c.mv a0, a1", Expected(kind: .add, rd: 10, rs1: 0, rs2: 11)),
            ("c.srai a2, 7", Expected(kind: .srai, rd: 12, rs1: 12, imm: 7)),
            ("c.subw a3, a4", Expected(kind: .subw, rd: 13, rs1: 13, rs2: 14)),
            ("c.ebreak", Expected(kind: .ebreak, rd: sink, rs2: 1)),
        ]
        for (source, want) in cases {
            let ws = try words(source)
            #expect(ws.count == 1, "\(source)")
            let op = DecodedOp(decoding: ws[0], compressed: Self.table)
            // Fields an instruction does not have hold whatever bits sit there; compare
            // only the ones it has.
            #expect(op.kind == want.kind, "\(source)")
            #expect(op.bits == ws[0], "\(source)")
            #expect(op.length == (ws[0] & 3 == 3 ? 4 : 2), "\(source)")
            switch want.kind {
            case .lui, .auipc, .jal: #expect((op.rd, op.imm) == (want.rd, want.imm), "\(source)")
            case .jalr, .lhu, .lwu, .sraiw, .srai, .sltiu, .addi, .csrrci, .csrrs, .lrW:
                #expect((op.rd, op.rs1, op.imm) == (want.rd, want.rs1, want.imm), "\(source)")
            case .bgeu, .blt, .beq, .sd:
                #expect((op.rs1, op.rs2, op.imm) == (want.rs1, want.rs2, want.imm), "\(source)")
            case .fenceI, .wfi, .ebreak: break
            default: #expect((op.rd, op.rs1, op.rs2, op.imm) == (want.rd, want.rs1, want.rs2, want.imm), "\(source)")
            }
        }
    }

    @Test func illegalEncodingsKeepTheirBitsForMtval() {
        // c.unimp (all zero), a reserved compressed form (c.addi4spn with a zero
        // immediate), SYSTEM funct3 4 (hypervisor loads), a reserved major opcode, LR
        // with rs2 set, SRAI with a bad funct6, an unknown AMO.
        for raw: UInt32 in [0x0000, 0x0010, 0x0000_4073, 0xffff_ffff, 0x1015_a52f, 0x4400_5513, 0x2805_b52f] {
            let op = DecodedOp(decoding: raw, compressed: Self.table)
            #expect(op.kind == .illegal, "\(String(raw, radix: 16))")
            #expect(op.bits == (raw & 3 == 3 ? raw : raw & 0xffff))
        }
        // An entry never filled is the decoding of the all-zero parcel.
        let empty = DecodedOp()
        #expect(empty.kind == .illegal && empty.bits == 0 && empty.matches(0xabcd_0000) && !empty.matches(0x0000_0001))
    }

    @Test func entriesMatchOnlyTheirOwnParcels() {
        let compressed = DecodedOp(decoding: 0x1234_4505, compressed: Self.table)  // c.li a0, 1; upper half belongs to the next
        #expect(compressed.bits == 0x4505)
        #expect(compressed.matches(0x4505) && compressed.matches(0xffff_4505))
        #expect(!compressed.matches(0x4509))
        let full = DecodedOp(decoding: 0x0015_0513, compressed: Self.table)  // addi a0, a0, 1
        #expect(full.matches(0x0015_0513))
        #expect(!full.matches(0x0025_0513) && !full.matches(0x0000_0513))
    }

    // MARK: - Code that changes under the cache

    @Test func codeRewrittenBehindTheHartsBackRunsAnew() throws {
        // A loop that sets a0 and spins; another writer (DMA, a loader, a remote node)
        // replaces the li while it runs. No FENCE.I: the cache still notices.
        let (h, mem) = try makeHart("""
            1: li a0, 1
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        _ = h.run(budget: 50)
        #expect(h[register: 10] == 1)
        let decodedBefore = h.decodedInstructions
        let li2 = try words("li a0, 2")
        #expect(li2.count == 1)
        patch(mem, at: TestMemory.base, with: li2[0])
        _ = h.run(budget: 50)
        #expect(h[register: 10] == 2)
        #expect(h.decodedInstructions == decodedBefore + 2)  // exactly the changed block: the li and its j
    }

    @Test func storesToItsOwnCodeAreSeenAtOnce() throws {
        // The first pass runs (and decodes) a 32-bit addi, then overwrites it with a
        // compressed li and a compressed nop; the second pass must run those.
        let (h, mem) = try makeHart("""
            .option norvc
            li s0, 2
            la t0, target
            lw t1, replacement
            loop:
            target:
            addi a0, zero, 5
            addi a1, a1, 9
            sw t1, 0(t0)
            addi s0, s0, -1
            bnez s0, loop
            1: j 1b
            .align 2
            replacement:
            .option rvc
            c.li a0, 7
            c.nop
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        _ = h.run(budget: 40)
        #expect(h[register: 10] == 7)
        #expect(h[register: 11] == 18)
    }

    @Test func aRevokedPageIsReadAgainFromTheMemory() throws {
        let (h, mem) = try makeHart("""
            1: li a0, 1
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        _ = h.run(budget: 20)
        #expect(h[register: 10] == 1)
        // The memory moves the page to other host memory (as a node does when it gives
        // up direct access) holding different code, and revokes the old pointer.
        let old = mem.ram
        let moved = UnsafeMutableRawPointer.allocate(byteCount: mem.size, alignment: 4096)
        moved.copyMemory(from: old, byteCount: mem.size)
        mem.ram = moved
        defer { old.deallocate() }
        let li3 = try words("li a0, 3")
        patch(mem, at: TestMemory.base, with: li3[0])
        _ = h.run(budget: 20)
        #expect(h[register: 10] == 1)  // still the pointer it was given: the contract says revoke
        h.dropDirectMappings(page: TestMemory.base)
        _ = h.run(budget: 20)
        #expect(h[register: 10] == 3)
    }

    /// The code epoch (blocks are compared with memory again in a newer one) moves only
    /// for writes that may change code: a store through the bus to RAM without blocks
    /// (a remote line) keeps it, one to a device (which may DMA) moves it.
    @Test func onlyWritesThatMayChangeCodeStartANewEpoch() throws {
        func epochs(storingTo address: UInt64) throws -> UInt64 {
            let (h, mem) = try makeHart("""
                li t0, \(address)
                1: sd a0, 0(t0)
                addi a0, a0, 1          # not a spin: a register changes
                j 1b
                """)
            mem.indirectPages.insert(TestMemory.base + 0x10000)
            return withExtendedLifetime(mem) {  // the hart holds its memory unowned
                _ = h.run(budget: 4)
                let before = h.codeEpoch
                _ = h.run(budget: 2000)  // stores out of line use more of the budget
                #expect(h[register: 10] > 20)
                return h.codeEpoch - before
            }
        }
        #expect(try epochs(storingTo: TestMemory.base + 0x10000) == 1)  // the run's own
        #expect(try epochs(storingTo: 0x1000_0000) > 20)
    }

    /// Taking a page's direct access away starts a new epoch only if the hart has blocks
    /// on it: nothing else can have been decoded from it.
    @Test func revokingAPageWithoutBlocksKeepsTheEpoch() throws {
        let (h, mem) = try makeHart("""
            1: li a0, 1
            j 1b
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        _ = h.run(budget: 20)
        let before = h.codeEpoch
        h.dropDirectMappings(page: TestMemory.base + 0x10000)
        #expect(h.codeEpoch == before)
        h.dropDirectMappings(page: TestMemory.base)
        #expect(h.codeEpoch == before + 1)
    }

    @Test func instructionsInTheLastParcelAndAcrossPages() throws {
        let (h, mem) = try makeHart("""
            .option norvc
            li a0, 0
            li a1, 0
            j straddle
            .org 0xffe
            straddle:
            addi a0, a0, 7          # bytes 0xffe-0x1001: two pages
            j last
            .org 0x1ffe
            last:
            .option rvc
            c.addi a1, 5            # the last parcel of its page
            .option norvc
            addi a1, a1, 1
            1: j 1b
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        _ = h.run(budget: 40)
        #expect(h[register: 10] == 7)
        #expect(h[register: 11] == 6)
    }

    @Test func pagesWithoutDirectAccessAreFetchedThroughMemory() throws {
        let (h, mem) = try makeHart("""
            li a0, 0
            li t0, 10
            1: addi a0, a0, 3
            addi t0, t0, -1
            bnez t0, 1b
            2: j 2b
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        mem.indirectPages = [TestMemory.base]
        _ = h.run(budget: 200)
        #expect(h[register: 10] == 30)
        #expect(h.decodedPageCount == 0)
        #expect(h.decodedInstructions == 0)
    }

    @Test func decodedPagesStayWithinTheirLimit() throws {
        // Five pages of code called in turn, three times, with room for two decoded pages.
        let (h, mem) = try makeHart("""
            .option norvc
            li s0, 3
            li a0, 0
            outer:
            call p1
            call p2
            call p3
            call p4
            call p5
            addi s0, s0, -1
            bnez s0, outer
            1: j 1b
            .org 0x1000
            p1: addi a0, a0, 1
            ret
            .org 0x2000
            p2: addi a0, a0, 10
            ret
            .org 0x3000
            p3: addi a0, a0, 100
            ret
            .org 0x4000
            p4: addi a0, a0, 1000
            ret
            .org 0x5000
            p5: addi a0, a0, 2000
            ret
            """)
        defer { withExtendedLifetime(mem) {} }  // the hart holds its memory unowned
        h.decodedPageLimit = 2
        _ = h.run(budget: 500)
        #expect(h[register: 10] == 9333)
        #expect(h.decodedPageCount <= 2)
        #expect(h.decodedPageCount >= 1)
    }
}
