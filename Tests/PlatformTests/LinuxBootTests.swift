import Foundation
import Testing
@testable import Platform

/// `--kernel` with a Linux RISC-V Image header and `--initrd`, placed as QEMU 7.2's
/// virt board places them; QEMU's own device tree (`-machine dumpdtb`) is the oracle.
@Suite struct LinuxBootTests {
    static let openSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"

    /// A file of `size` bytes with a Linux Image header (the rest pseudo-random).
    static func image(size: Int, textOffset: UInt64 = 0x20_0000, imageSize: UInt64? = nil, flags: UInt64 = 0,
                      magic: Bool = true) -> [UInt8] {
        var g = UInt64(0x1234_5678)
        var bytes = (0..<size).map { _ -> UInt8 in
            g = g &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: g >> 33)
        }
        func put64(_ v: UInt64, at o: Int) { for i in 0..<8 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        put64(textOffset, at: 0x08)
        put64(imageSize ?? UInt64(size) + 0x1000, at: 0x10)
        put64(flags, at: 0x18)
        put64(2, at: 0x20)
        if magic {
            bytes.replaceSubrange(0x30..<0x38, with: Array("RISCV".utf8) + [0, 0, 0])
            bytes.replaceSubrange(0x38..<0x3c, with: Array("RSC".utf8) + [5])
        } else {
            bytes.replaceSubrange(0x30..<0x3c, with: [UInt8](repeating: 0, count: 12))
        }
        return bytes
    }

    final class Dir {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("disco-linux-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = url.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    func config(memory: UInt64, bios: BootFirmware, kernel: String?, initrd: String?, bootargs: String? = nil) -> MachineConfig {
        MachineConfig(harts: 1, memoryBytes: memory, bios: bios, kernel: kernel, disks: [], bootargs: bootargs, initrd: initrd)
    }

    func expectError(_ config: MachineConfig, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try BootImage(config: config)
            Issue.record("no error; expected one containing '\(text)'", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(text), "\(error)", sourceLocation: sourceLocation)
        }
    }

    // MARK: The header

    @Test func parsesTheHeader() throws {
        let bytes = Self.image(size: 5000, textOffset: 0x20_0000, imageSize: 0x9000)
        #expect(LinuxImageHeader.isPresent(in: bytes))
        let h = try LinuxImageHeader(parsing: bytes)
        #expect(h.textOffset == 0x20_0000 && h.imageSize == 0x9000 && h.flags == 0 && h.version == 2)
    }

    @Test func withoutMagicItIsNoImage() {
        #expect(!LinuxImageHeader.isPresent(in: Self.image(size: 5000, magic: false)))
        #expect(!LinuxImageHeader.isPresent(in: Array(Self.image(size: 5000).prefix(0x3b))))
        var second = Self.image(size: 5000)
        second[0x3b] = 4  // "RSC\x04"
        #expect(!LinuxImageHeader.isPresent(in: second))
    }

    @Test func rejectsMalformedHeaders() {
        #expect(throws: LinuxImageHeader.Malformed.self) { try LinuxImageHeader(parsing: Self.image(size: 5000, imageSize: 4999)) }
        #expect(throws: LinuxImageHeader.Malformed.self) { try LinuxImageHeader(parsing: Self.image(size: 5000, imageSize: 0)) }
        #expect(throws: LinuxImageHeader.Malformed.self) { try LinuxImageHeader(parsing: Self.image(size: 5000, textOffset: 0x20_0010)) }
        #expect(throws: LinuxImageHeader.Malformed.self) { try LinuxImageHeader(parsing: Self.image(size: 5000, flags: 1)) }
        #expect(throws: (any Error).self) { try LinuxImageHeader(parsing: Self.image(size: 5000, magic: false)) }
    }

    // MARK: Placement and errors in BootImage

    @Test func imageGoesAfterTheFirmwareRawImageKeepsItsPlace() throws {
        let dir = try Dir()
        let fw = try dir.file("fw.bin", [UInt8](repeating: 0x13, count: 0x2_8000))
        let bigFW = try dir.file("big-fw.bin", [UInt8](repeating: 0x13, count: 0x28_0000))  // 2.5 MiB
        let image = try dir.file("Image", Self.image(size: 0x3000))
        let raw = try dir.file("raw.bin", Self.image(size: 0x3000, magic: false))
        func kernelChunk(_ b: BootImage) -> UInt64? { b.chunks.dropFirst().first?.address }

        let a = try BootImage(config: config(memory: 128 << 20, bios: .file(fw), kernel: image, initrd: nil))
        #expect(kernelChunk(a) == 0x8020_0000 && a.kernelStart == 0x8020_0000 && a.entry == 0x8000_0000)
        // The next 2 MiB boundary after a firmware of 2.5 MiB, as QEMU.
        let b = try BootImage(config: config(memory: 128 << 20, bios: .file(bigFW), kernel: image, initrd: nil))
        #expect(kernelChunk(b) == 0x8040_0000 && b.kernelStart == 0x8040_0000)
        // No firmware: at the start of RAM, entered in M-mode.
        let c = try BootImage(config: config(memory: 128 << 20, bios: .none, kernel: image, initrd: nil))
        #expect(c.chunks.first?.address == 0x8000_0000 && c.entry == 0x8000_0000)
        // A headerless raw image: where it always went.
        let d = try BootImage(config: config(memory: 128 << 20, bios: .file(fw), kernel: raw, initrd: nil))
        #expect(kernelChunk(d) == VirtBoard.kernelBase)
    }

    @Test func badImagesAndInitrdsGetClearErrors() throws {
        let dir = try Dir()
        let fw = try dir.file("fw.bin", [UInt8](repeating: 0x13, count: 0x2_8000))
        let short = try dir.file("short", Self.image(size: 0x3000, imageSize: 0x2fff))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: short, initrd: nil), contains: "smaller than the file")
        let farOffset = try dir.file("far", Self.image(size: 0x3000, textOffset: 0x1_0000_0000))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: farOffset, initrd: nil), contains: "text_offset 0x100000000 lies beyond")
        let huge = try dir.file("huge", Self.image(size: 0x3000, imageSize: 200 << 20))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: huge, initrd: nil), contains: "past the end of RAM")

        let kernel = try dir.file("Image", Self.image(size: 0x3000))
        let rd = try dir.file("rd", [UInt8](repeating: 7, count: 0x1000))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: nil, initrd: rd), contains: "needs a kernel")
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: kernel, initrd: dir.url.appendingPathComponent("none").path),
                    contains: "cannot read")
        // 128 MiB: the initrd starts at 0x84200000; 62 MiB are left before the end of RAM.
        let big = try dir.file("big", [UInt8](repeating: 7, count: 63 << 20))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: kernel, initrd: big), contains: "does not fit in RAM at 0x84200000")
        // 61 MiB fits in RAM but runs into the device tree at the top.
        let tight = try dir.file("tight", [UInt8](repeating: 7, count: 61 << 20))
        expectError(config(memory: 128 << 20, bios: .file(fw), kernel: kernel, initrd: tight), contains: "runs into the device tree")
        // A kernel bigger than the distance QEMU leaves to the initrd.
        let long = try dir.file("long", Self.image(size: 0x3000, imageSize: 5 << 20))
        expectError(config(memory: 8 << 20, bios: .file(fw), kernel: long, initrd: rd), contains: "inside the kernel")
    }

    @Test func initrdBytesLandWhereTheDeviceTreeSays() throws {
        let dir = try Dir()
        let kernel = try dir.file("Image", Self.image(size: 0x3000))
        let content = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let rd = try dir.file("rd", content)
        let boot = try BootImage(config: config(memory: 256 << 20, bios: .file(Self.openSBI), kernel: kernel, initrd: rd))
        #expect(boot.initrd?.lowerBound == 0x8820_0000 && boot.initrd?.upperBound == 0x8820_0000 + 5000)
        #expect(boot.chunks.contains { $0.address == 0x8820_0000 && $0.bytes == content })
    }

    // MARK: QEMU as the oracle

    /// /chosen's linux,initrd-start and -end in disco's device tree and in QEMU's
    /// (dumped with -machine dumpdtb) for the same firmware, kernel, initrd and RAM.
    @Test(arguments: [(32, "fw"), (128, "fw"), (256, "fw"), (1024, "fw"), (128, "big-fw"), (32, "none"), (512, "none")])
    func initrdWhereQEMUPutsIt(memoryMiB: Int, firmware: String) throws {
        let dir = try Dir()
        let kernel = try dir.file("Image", Self.image(size: 0x5000))
        let rd = try dir.file("rd", [UInt8](repeating: 0x5a, count: 12345))
        let fwPath: String? = switch firmware {
        case "fw": Self.openSBI
        case "big-fw": try dir.file("big-fw.bin", [UInt8](repeating: 0x13, count: 0x28_0000))
        default: nil
        }
        let dump = dir.url.appendingPathComponent("q.dtb").path
        _ = try VirtDeviceTreeTests.run("/usr/bin/qemu-system-riscv64",
                                        ["-machine", "virt,dumpdtb=\(dump)", "-bios", fwPath ?? "none", "-nographic",
                                         "-m", "\(memoryMiB)M", "-kernel", kernel, "-initrd", rd, "-append", "console=ttyS0"])
        let qemu = VirtDeviceTreeTests.nodes(try VirtDeviceTreeTests.run("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", dump]))
        let boot = try BootImage(config: config(memory: UInt64(memoryMiB) << 20, bios: fwPath.map { .file($0) } ?? .none,
                                                kernel: kernel, initrd: rd, bootargs: "console=ttyS0"))
        let blob = try #require(boot.chunks.last { $0.address == boot.deviceTreeAddress }).bytes
        let ours = VirtDeviceTreeTests.nodes(try VirtDeviceTreeTests.decompile(blob))
        let start = try #require(qemu["/chosen"]?["linux,initrd-start"])
        #expect(ours["/chosen"]?["linux,initrd-start"] == start)
        #expect(ours["/chosen"]?["linux,initrd-end"] == qemu["/chosen"]?["linux,initrd-end"])
        #expect(ours["/chosen"]?["bootargs"] == qemu["/chosen"]?["bootargs"])
        #expect(start == "<0x\(String(boot.initrd!.lowerBound, radix: 16))>")
    }
}
