import Foundation
import Testing

/// The same guest must print the same thing on `disco run` and on QEMU's virt board.
@Suite(.serialized) struct DifferentialTests {
    struct GuestMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "guest \(path) is not built: run `make -C guests` (scripts/test.sh does)" }
    }

    func expectSameOutput(_ guest: String, harts: Int, timeout: TimeInterval = 120) throws {
        let elf = Paths.guest(guest)
        guard FileManager.default.fileExists(atPath: elf) else { throw GuestMissing(path: elf) }
        let qemu = try runOnQEMU(elf, harts: harts, timeout: timeout)
        let disco = try runOnDisco(elf, harts: harts, timeout: timeout)
        #expect(!qemu.stoppedEarly, "QEMU did not finish \(guest)")
        #expect(!disco.stoppedEarly, "disco did not finish \(guest): \(disco.output.suffix(2000))")
        #expect(qemu.status == 0, "the guest failed on QEMU: \(qemu.output.suffix(1000))")
        #expect(disco.status == qemu.status, "exit status: disco \(disco.status), QEMU \(qemu.status); \(disco.errorOutput)")
        let expected = comparable(qemu.output), actual = comparable(disco.output)
        #expect(expected.contains("\n"), "QEMU printed nothing")
        if actual != expected {
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(e, a).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(e.count, a.count)
            Issue.record("""
                \(guest) on \(harts) harts differs from QEMU at line \(first + 1):
                  qemu:  \(first < e.count ? String(e[first]) : "<end>")
                  disco: \(first < a.count ? String(a[first]) : "<end>")
                """)
        }
    }

    @Test(arguments: [1, 2, 4])
    func smpGuest(harts: Int) throws {
        try expectSameOutput("smp.elf", harts: harts)
    }

    /// The ISA self-test suite (guests/isa): every RV64IMAC instruction, Zicsr,
    /// traps, delegation, interrupts, Sv39, A/D bits, fence.i and an SMP part.
    @Test(arguments: [1, 2, 4])
    func isaSuite(harts: Int) throws {
        try expectSameOutput("isa.elf", harts: harts)
    }

    /// The F and D extensions (guests/fp): every instruction with every rounding mode
    /// on edge cases and seeded random operands, result bits and fflags hashed per
    /// instruction and mode; mstatus.FS, the FP CSRs, reserved rounding modes.
    @Test func floatingPoint() throws {
        try expectSameOutput("fp.elf", harts: 1)
    }

    /// Memory-model litmus tests in one process: harts interleaved on one thread, and
    /// one hart rewriting code another has decoded (guests/litmus).
    @Test func litmusTests() throws {
        try expectSameOutput("litmus.elf", harts: 2)
    }

    @Test func benchmarkChecksum() throws {
        try expectSameOutput("bench.elf", harts: 1, timeout: 240)
    }
}
