import Foundation
import Testing
@testable import Platform

/// The ELF parser against a real RISC-V executable linked here by the toolchain's
/// clang and ld.lld, and against every way of breaking it.
@Suite struct ELFImageTests {
    /// Links a two-segment bare-metal program at 0x80000000 and returns its bytes.
    static func buildGuest() throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-elf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
            .section .text
            .globl _start
            _start:
                li a0, 0x100000
                li a1, 0x5555
                sw a1, 0(a0)
            1:  j 1b
            .section .data
            message: .asciz "hello"
            .section .bss
            .space 8192
            """.write(to: dir.appendingPathComponent("g.S"), atomically: true, encoding: .utf8)
        try """
            ENTRY(_start)
            SECTIONS {
              . = 0x80000000;
              .text : { *(.text) }
              . = 0x80002000;
              .data : { *(.data) }
              .bss : { *(.bss) }
            }
            """.write(to: dir.appendingPathComponent("g.ld"), atomically: true, encoding: .utf8)
        try run(tool("clang"), ["--target=riscv64-unknown-elf", "-march=rv64imac", "-c", "g.S", "-o", "g.o"], in: dir)
        try run(tool("ld.lld"), ["-T", "g.ld", "g.o", "-o", "g.elf"], in: dir)
        return [UInt8](try Data(contentsOf: dir.appendingPathComponent("g.elf")))
    }

    static func tool(_ name: String) -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") + ["/opt/swift/usr/bin"] {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "/opt/swift/usr/bin/\(name)"
    }

    static func run(_ tool: String, _ args: [String], in dir: URL) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.currentDirectoryURL = dir
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ToolFailed(command: "\(tool) \(args.joined(separator: " "))") }
    }

    struct ToolFailed: Error { var command: String }

    @Test func parsesARealExecutable() throws {
        let bytes = try Self.buildGuest()
        let image = try ELFImage(parsing: bytes)
        #expect(image.entry == 0x8000_0000)
        #expect(image.segments.count == 2)
        let text = image.segments[0], data = image.segments[1]
        #expect(text.address == 0x8000_0000)
        #expect(text.fileSize >= 12)
        // The first instruction (lui a0, 0x100) is where the segment's bytes start.
        #expect(Array(bytes[text.fileOffset..<text.fileOffset + 4]) == [0x37, 0x05, 0x10, 0x00])
        #expect(data.address == 0x8000_2000)
        #expect(data.fileSize == 6)
        #expect(data.memorySize >= 6 + 8192)  // .bss is zero-filled memory beyond the file bytes
        #expect(image.extent.lowerBound == 0x8000_0000)
        try image.check(fitsIn: 0x8000_0000..<0x8010_0000)
        #expect(throws: ELFError.outsideMemory(address: 0x8000_2000, size: data.memorySize)) {
            try image.check(fitsIn: 0x8000_0000..<0x8000_3000)
        }
    }

    @Test func everyTruncationIsAnError() throws {
        let bytes = try Self.buildGuest()
        let image = try ELFImage(parsing: bytes)
        let needed = image.segments.map { $0.fileOffset + $0.fileSize }.max()!
        for length in stride(from: 0, to: needed, by: 7) {
            #expect(throws: ELFError.self) { try ELFImage(parsing: Array(bytes.prefix(length))) }
        }
    }

    @Test func wrongKindsOfFileAreNamed() throws {
        let bytes = try Self.buildGuest()
        var notELF = bytes; notELF[1] = 0x41
        #expect(throws: ELFError.notELF) { try ELFImage(parsing: notELF) }
        var elf32 = bytes; elf32[4] = 1
        #expect(throws: ELFError.unsupported("not a 64-bit ELF (class 1)")) { try ELFImage(parsing: elf32) }
        var bigEndian = bytes; bigEndian[5] = 2
        #expect(throws: ELFError.unsupported("not little-endian (data 2)")) { try ELFImage(parsing: bigEndian) }
        var x86 = bytes; x86[18] = 62; x86[19] = 0
        #expect(throws: ELFError.unsupported("machine 62 is not RISC-V (243)")) { try ELFImage(parsing: x86) }
        // The host's own executables are well-formed ELFs for another machine.
        let host = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
        #expect(throws: ELFError.unsupported("machine 62 is not RISC-V (243)")) { try ELFImage(parsing: host) }
    }

    @Test func lyingHeadersAreRejected() throws {
        let bytes = try Self.buildGuest()
        let phoff = Int(bytes[32]) | Int(bytes[33]) << 8
        var hugeCount = bytes; hugeCount[56] = 0xff; hugeCount[57] = 0xff
        #expect(throws: ELFError.self) { try ELFImage(parsing: hugeCount) }
        var farTable = bytes; farTable[39] = 0x7f  // phoff far beyond the file
        #expect(throws: ELFError.self) { try ELFImage(parsing: farTable) }
        var fileBiggerThanMemory = bytes  // p_filesz of the first header > p_memsz
        fileBiggerThanMemory[phoff + 32 + 7] = 0x01
        #expect(throws: ELFError.self) { try ELFImage(parsing: fileBiggerThanMemory) }
        var wraps = bytes  // p_paddr near the top of the address space
        for i in 0..<8 { wraps[phoff + 24 + i] = 0xff }
        #expect(throws: ELFError.self) { try ELFImage(parsing: wraps) }
    }

    @Test func randomCorruptionNeverTraps() throws {
        let bytes = try Self.buildGuest()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                mutated[Int.random(in: 0..<min(mutated.count, 256), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? ELFImage(parsing: mutated)  // any outcome but a crash is fine
        }
    }
}
