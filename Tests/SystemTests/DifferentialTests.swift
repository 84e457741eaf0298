import Foundation
import Testing

/// The same guest must print the same thing on `disco run` and on QEMU's virt board.
@Suite(.serialized) struct DifferentialTests {
    static let harts = [1, 2, 4]

    static func requireGuest(_ name: String) throws -> String {
        let path = Paths.guest(name)
        guard FileManager.default.fileExists(atPath: path) else {
            throw GuestMissing(path: path)
        }
        return path
    }

    struct GuestMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "guest \(path) is not built: run `make -C guests` (scripts/test.sh does)" }
    }

    func expectSameOutput(_ guest: String, harts: Int) throws {
        let elf = try Self.requireGuest(guest)
        let qemu = try runOnQEMU(elf, harts: harts)
        let disco = try runOnDisco(elf, harts: harts)
        #expect(!qemu.stoppedEarly, "QEMU did not finish \(guest)")
        #expect(!disco.stoppedEarly, "disco did not finish \(guest): \(disco.output.suffix(2000))")
        #expect(disco.status == qemu.status, "exit status: disco \(disco.status), QEMU \(qemu.status); stderr: \(disco.errorOutput)")
        let expected = comparable(qemu.output), actual = comparable(disco.output)
        #expect(!expected.isEmpty)
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

    @Test(arguments: harts) func isaSuite(harts: Int) throws {
        try expectSameOutput("isa.elf", harts: harts)
    }

    @Test(arguments: harts) func smp(harts: Int) throws {
        try expectSameOutput("smp.elf", harts: harts)
    }

    @Test func isaSuitePassesOnDisco() throws {
        let result = try runOnDisco(try Self.requireGuest("isa.elf"), harts: 1)
        #expect(result.status == 0, "ISA suite failed on disco:\n\(result.output.suffix(3000))")
    }
}
