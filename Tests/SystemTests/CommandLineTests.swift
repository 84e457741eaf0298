import Foundation
import Testing

/// `disco run` turns every bad command line or input into one clear line and exit 2.
@Suite struct CommandLineTests {
    func expectUsageError(_ arguments: [String], mentioning fragment: String) throws {
        let result = try runProcess(Paths.disco, arguments, timeout: 30)
        #expect(result.status == 2, "status \(result.status) for \(arguments): \(result.errorOutput)")
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(result.errorOutput)")
        #expect(result.errorOutput.contains(fragment), "\(result.errorOutput)")
        #expect(result.output.isEmpty)
    }

    /// Every bench subcommand works right after the README's set-up: the transport
    /// bench finds its C baseline beside `disco` (a short run; the figures are not checked).
    @Test func benchTransportFindsItsBaseline() throws {
        let result = try runProcess(Paths.disco, ["bench", "transport", "--rounds", "200", "--messages", "10000",
                                                  "--pages", "1000", "--sockets", "unix"], timeout: 60)
        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.output.contains("(C libuv baseline)"), "\(result.output)")
    }

    @Test func unknownFlag() throws {
        try expectUsageError(["run", "--frobnicate"], mentioning: "frobnicate")
    }

    @Test func missingKernel() throws {
        try expectUsageError(["run", "--bios", "none", "--kernel", "/nonexistent/kernel.elf"], mentioning: "/nonexistent/kernel.elf")
    }

    @Test func nothingToBoot() throws {
        try expectUsageError(["run", "--bios", "none"], mentioning: "nothing to boot")
    }

    @Test func badMemorySize() throws {
        try expectUsageError(["run", "--memory", "12Q", "--bios", "none", "--kernel", "/bin/sh"], mentioning: "12Q")
    }

    @Test func malformedELF() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // An ELF header cut short after the magic and class bytes.
        let bad = dir.appendingPathComponent("truncated.elf")
        try Data([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]).write(to: bad)
        try expectUsageError(["run", "--bios", "none", "--kernel", bad.path], mentioning: "truncated.elf")
        // The host's own x86-64 binary is a well-formed ELF for the wrong machine.
        try expectUsageError(["run", "--bios", "none", "--kernel", "/bin/true"], mentioning: "/bin/true")
    }

    @Test func imageLargerThanRAM() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = dir.appendingPathComponent("big.bin")
        try Data(count: 3 << 20).write(to: big)
        try expectUsageError(["run", "--bios", "none", "--memory", "2M", "--kernel", big.path], mentioning: "big.bin")
    }

    @Test func badSpecFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = dir.appendingPathComponent("vm.yaml")
        try "vcpus: 2\nmemroy: 64M\n".write(to: spec, atomically: true, encoding: .utf8)
        try expectUsageError(["run", "--spec", spec.path], mentioning: "memroy")
    }

    @Test func helpExplainsFlags() throws {
        let result = try runProcess(Paths.disco, ["run", "--help"], timeout: 30)
        #expect(result.status == 0)
        for flag in ["--bios", "--kernel", "--smp", "--memory", "--disk", "--console-log", "--spec"] {
            #expect(result.output.contains(flag), "help lacks \(flag)")
        }
    }
}
