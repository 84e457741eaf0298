import Foundation
import Testing

/// QEMU's Linux boot flags: a kernel with the Linux RISC-V Image header
/// (guests/linux-image) after Debian's OpenSBI, an initrd, a command line, and the
/// SBI system reset (shutdown, reboot), on QEMU and on `disco run` alike.
@Suite(.serialized) struct LinuxImageBootTests {
    static let kernel = Paths.guest("linux-image.bin")

    final class Initrd {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-initrd-\(UUID().uuidString)")
        let path: String
        init() throws {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var g = UInt64(42)
            let noise = (0..<20_000).map { _ -> UInt8 in
                g = g &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: g >> 33)
            }
            path = dir.appendingPathComponent("initrd.img").path
            try Data(Array("DISCO-INITRD-0123456789".utf8) + noise).write(to: URL(fileURLWithPath: path))
        }
        deinit { try? FileManager.default.removeItem(at: dir) }
    }

    static func imageLines(_ output: String) -> [String] {
        output.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasPrefix("image: ") }
    }

    static func boots(_ output: String) -> Int { output.components(separatedBy: "image: hello").count - 1 }

    func qemu(initrd: String, append: String, memory: String, until: ((String) -> Bool)? = nil) throws -> ProcessResult {
        try runProcess("/usr/bin/qemu-system-riscv64",
                       ["-machine", "virt", "-nographic", "-bios", Paths.openSBI, "-m", memory, "-smp", "1",
                        "-kernel", Self.kernel, "-initrd", initrd, "-append", append], timeout: 60, until: until)
    }

    func disco(initrd: String, append: String, memory: String, nodes: Int?, until: ((String) -> Bool)? = nil) throws -> ProcessResult {
        try runProcess(Paths.disco, ["run", "--bios", Paths.openSBI, "--memory", memory, "--smp", "1",
                                     "--kernel", Self.kernel, "--initrd", initrd, "--append", append]
                                    + (nodes.map { ["--nodes", "\($0)"] } ?? []), timeout: 120, until: until)
    }

    /// The kernel finds itself, the device tree and the initrd where QEMU puts them,
    /// then powers off through SBI SRST: both end with status 0.
    @Test(arguments: [("128M", nil), ("1G", nil), ("256M", 2)] as [(String, Int?)])
    func shutdownAfterTheSameBootAsQEMU(memory: String, nodes: Int?) throws {
        let initrd = try Initrd()
        let append = "console=ttyS0 srst=shutdown"
        let q = try qemu(initrd: initrd.path, append: append, memory: memory)
        let d = try disco(initrd: initrd.path, append: append, memory: memory, nodes: nodes)
        #expect(!q.stoppedEarly && q.status == 0, "QEMU: \(q.status) \(q.output.suffix(800))")
        #expect(!d.stoppedEarly && d.status == 0, "disco: \(d.status) \(d.errorOutput) \(d.output.suffix(800))")
        let expected = Self.imageLines(q.output)
        #expect(expected.contains("image: /chosen/bootargs \(append)"))
        #expect(expected.contains { $0.hasPrefix("image: initrd 0x4e37 bytes") && $0.hasSuffix("begins \"DISCO-INITRD-012\"") })
        #expect(expected.last == "image: asking OpenSBI for a shutdown")
        #expect(Self.imageLines(d.output) == expected, "disco:\n\(d.output.suffix(1500))")
    }

    /// A reboot through SBI SRST boots the VM again from scratch (OpenSBI's banner and
    /// the kernel's lines once more), on QEMU, on one process and on a cluster.
    @Test(arguments: [nil, 2] as [Int?])
    func rebootBootsAgainAsQEMU(nodes: Int?) throws {
        let initrd = try Initrd()
        let append = "console=ttyS0 srst=reboot"
        let q = try qemu(initrd: initrd.path, append: append, memory: "128M") { Self.boots($0) >= 3 }
        let d = try disco(initrd: initrd.path, append: append, memory: "128M", nodes: nodes) { Self.boots($0) >= 3 }
        #expect(Self.boots(q.output) >= 3, "QEMU: \(q.output.suffix(800))")
        #expect(Self.boots(d.output) >= 3, "disco: \(d.status) \(d.errorOutput) \(d.output.suffix(800))")
        #expect(d.output.components(separatedBy: "OpenSBI v").count - 1 >= 3)
        // Two whole boots, line for line (the third may be cut short by the stop).
        let perBoot = Self.imageLines(q.output).firstIndex(of: "image: asking OpenSBI for a cold reboot").map { $0 + 1 } ?? 0
        #expect(perBoot > 5)
        #expect(Array(Self.imageLines(d.output).prefix(2 * perBoot)) == Array(Self.imageLines(q.output).prefix(2 * perBoot)))
        #expect(!d.output.contains("SRST returned"))
    }

    /// Side by side on a cluster (two specs), the VM that reboots boots again under
    /// its name while the other powers off.
    @Test func sideBySideOneRebootsOneShutsDown() throws {
        let initrd = try Initrd()
        let dir = initrd.dir
        for (name, mode) in [("a", "shutdown"), ("b", "reboot")] {
            try "name: \(name)\nmemory: 128M\nbios: \(Paths.openSBI)\nkernel: \(Self.kernel)\ninitrd: initrd.img\nbootargs: srst=\(mode)\n"
                .write(to: dir.appendingPathComponent("\(name).yaml"), atomically: true, encoding: .utf8)
        }
        let r = try runProcess(Paths.disco, ["run", "--nodes", "2", "--spec", dir.appendingPathComponent("a.yaml").path,
                                             "--spec", dir.appendingPathComponent("b.yaml").path], timeout: 120,
                               until: { $0.components(separatedBy: "[b] image: hello").count > 3 })
        #expect(r.output.components(separatedBy: "[b] image: hello").count > 3, "\(r.errorOutput) \(r.output.suffix(800))")
        #expect(r.output.contains("[a] image: asking OpenSBI for a shutdown"))
        #expect(r.output.components(separatedBy: "[a] image: hello").count == 2)
        #expect(!r.errorOutput.contains("failed") && !r.errorOutput.contains("refused"), "\(r.errorOutput)")
    }

    /// Bad input is refused before anything boots, with the reason.
    @Test func anInitrdThatDoesNotFitIsAnError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-initrd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = dir.appendingPathComponent("big.img")
        try Data(count: 40 << 20).write(to: big)
        let r = try runProcess(Paths.disco, ["run", "--bios", Paths.openSBI, "--memory", "64M",
                                             "--kernel", Self.kernel, "--initrd", big.path], timeout: 30)
        #expect(r.status != 0)
        #expect(r.errorOutput.contains("does not fit in RAM at 0x82200000"), "\(r.errorOutput)")
        let orphan = try runProcess(Paths.disco, ["run", "--bios", Paths.openSBI, "--initrd", big.path], timeout: 30)
        #expect(orphan.status == 2 && orphan.errorOutput.contains("needs a kernel"), "\(orphan.errorOutput)")
    }
}
