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

/// U-Boot reads and writes a FAT file system on a virtio-blk disk that the test
/// builds with Debian's dosfstools and mtools.
@Suite(.serialized) struct VirtioDiskTests {
    func makeDisk(in dir: URL) throws -> URL {
        let disk = dir.appendingPathComponent("disk.img")
        let file = dir.appendingPathComponent("hello.txt")
        try "greeting=hello-from-a-virtio-disk\n".write(to: file, atomically: true, encoding: .utf8)
        _ = try checked("/sbin/mkfs.vfat", ["-C", disk.path, "4096"])
        _ = try checked("/usr/bin/mcopy", ["-i", disk.path, file.path, "::hello.txt"])
        return disk
    }

    func checked(_ tool: String, _ args: [String]) throws -> String {
        let r = try runProcess(tool, args, timeout: 30)
        guard r.status == 0 else { throw ToolFailed(what: "\(tool) \(args): \(r.errorOutput)") }
        return r.output
    }

    struct ToolFailed: Error { var what: String }

    /// In one process, and with the VM's two VCPUs and memory spread over two node
    /// processes (the disk's DMA then goes through the coherence protocol).
    @Test(arguments: [1, 2])
    func ubootReadsAndWritesAFileOnTheDisk(nodes: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = try makeDisk(in: dir)
        let script = "virtio scan; fatload virtio 0 ${loadaddr} hello.txt; env import -t ${loadaddr} ${filesize}; "
            + "echo disk-says ${greeting}; fatwrite virtio 0 ${loadaddr} copy.txt ${filesize}; setenv m done; echo script-${m}\n"
        let result = try runProcess(
            Paths.disco, ["run", "--bios", Paths.openSBI, "--kernel", Paths.uBoot, "--memory", "256M", "--disk", disk.path]
                + (nodes > 1 ? ["--nodes", "\(nodes)", "--smp", "2"] : []),
            respond: [("Hit any key to stop autoboot", "x"), ("=> ", script)], timeout: 180,
            until: { $0.contains("script-done") })  // not in the echoed command line, which has ${m}
        #expect(result.output.contains("disk-says hello-from-a-virtio-disk"), "\(result.output.suffix(1500))")
        #expect(result.output.contains("34 bytes written"), "\(result.output.suffix(800))")
        // The write went through to the image file.
        #expect(try checked("/usr/bin/mtype", ["-i", disk.path, "::copy.txt"]) == "greeting=hello-from-a-virtio-disk\n")
    }
}

/// The console in raw mode on a real terminal: `script` gives `disco run` a pty, the
/// test types at U-Boot's prompt, then quits with the escape key Ctrl-A x.
@Suite(.serialized) struct RawConsoleTests {
    @Test func escapeKeyQuitsCleanly() throws {
        let command = [Paths.disco, "run", "--bios", Paths.openSBI, "--kernel", Paths.uBoot, "--memory", "128M"]
            .joined(separator: " ")
        let result = try runProcess("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"],
                                    respond: [("Hit any key to stop autoboot", "x"),
                                              ("=> ", "echo typed-in-raw-mode\r"),
                                              ("\ntyped-in-raw-mode", "\u{01}x")],
                                    timeout: 120)
        #expect(!result.stoppedEarly, "Ctrl-A x did not end disco run:\n\(result.output.suffix(1500))")
        #expect(result.status == 0, "status \(result.status):\n\(result.output.suffix(1500))")
        #expect(result.output.contains("typed-in-raw-mode"))
        #expect(result.output.contains("disco: quit"), "\(result.output.suffix(800))")
    }
}
