import Foundation
import Testing

/// Debian's OpenSBI (fw_jump) and U-Boot boot unmodified on `disco run`.
@Suite(.serialized) struct FirmwareBootTests {
    func boot(harts: Int, respond: [(after: String, send: String)] = [],
              until: @escaping (String) -> Bool) throws -> ProcessResult {
        try runProcess(Paths.disco, ["run", "--bios", Paths.openSBI, "--kernel", Paths.uBoot,
                                     "--memory", "256M", "--smp", "\(harts)"],
                       respond: respond, timeout: 120, until: until)
    }

    @Test(arguments: [1, 2])
    func openSBIThenUBootThenPrompt(harts: Int) throws {
        let result = try boot(harts: harts) { $0.contains("\n=> ") || $0.hasSuffix("=> ") }
        let out = result.output
        let sbi = try #require(out.range(of: "OpenSBI v"), "no OpenSBI banner:\n\(out.suffix(2000))")
        #expect(out.contains("Platform HART Count       : \(harts)"))
        #expect(out.contains("Boot HART Priv Version    : v1.12"))
        let uboot = try #require(out.range(of: "U-Boot 20"), "no U-Boot banner:\n\(out.suffix(2000))")
        let prompt = try #require(out.range(of: "=> ", options: .backwards), "no prompt:\n\(out.suffix(2000))")
        #expect(sbi.lowerBound < uboot.lowerBound && uboot.lowerBound < prompt.lowerBound)
        #expect(out.contains("DRAM:  256 MiB"))
    }

    /// Console input reaches U-Boot through the UART: a key stops autoboot and the
    /// commands typed run.
    @Test func ubootRunsTypedCommands() throws {
        let result = try boot(harts: 1, respond: [("Hit any key to stop autoboot", "x"),
                                                  ("=> ", "setexpr v 6 * 7; echo disco-says-${v}\n")]) {
            $0.contains("disco-says-2a")
        }
        #expect(result.output.contains("disco-says-2a"), "\(result.output.suffix(1500))")
    }
}
