import Testing
@testable import RISCV

/// A hart's state moves to a fresh hart intact (what a VCPU migration ships).
@Suite struct HartStateTests {
    @Test func aHartsStateRestoresIntoAFreshHart() throws {
        let memory = TestMemory(size: 1 << 16)
        let a = Hart(id: 3, memory: memory)
        a.pc = 0x8000_1234
        a.privilege = .supervisor
        for i in 1..<32 { a[register: i] = UInt64(i) &* 0x9e37_79b9_7f4a_7c15 }
        for i in 0..<32 { a[floatRegister: i] = UInt64(i) << 40 | 7 }
        a.mstatus = 0x0000_000a_0000_2000 | (1 << 1)
        a.mie = 0xaaa
        a.mip = 1 << 9 | 1 << 1
        a.satp = 8 << 60 | 0x80123
        a.stimecmp = 12345
        a.frm = 3
        a.fflags = 5
        a.pmpaddr[5] = 0x1234
        a.pmpcfg[2] = 0x1f
        a.reservationValid = true
        let st = a.state
        let b = Hart(id: 3, memory: memory)
        try b.restore(st)
        #expect(b.state == st)
        #expect(b.pc == 0x8000_1234 && b.privilege == .supervisor && b[register: 31] == 31 &* 0x9e37_79b9_7f4a_7c15)
        #expect(b.fcsr == 3 << 5 | 5 && b.mip == 1 << 9 | 1 << 1 && b.pmpaddr[5] == 0x1234 && b.pmpcfg[2] == 0x1f)
        // The reservation does not move: the next SC fails, as the ISA allows.
        #expect(!b.reservationValid)
    }

    @Test func aBrokenStateIsRefused() {
        let h = Hart(id: 0, memory: TestMemory(size: 4096))
        var st = h.state
        st.registers.removeLast()
        #expect(throws: Hart.StateError.self) { try h.restore(st) }
        st = h.state
        st.privilege = 2
        #expect(throws: Hart.StateError.self) { try h.restore(st) }
        st = h.state
        st.csrs.append((0x7c0, 1))
        #expect(throws: Hart.StateError.self) { try h.restore(st) }
    }
}
