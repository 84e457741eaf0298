import Foundation
@testable import RISCV

/// Flat RAM at 0x8000_0000 plus one MMIO word at 0x1000_0000 that can be told to
/// answer `.retry` (a remote line in flight).
final class TestMemory: PhysicalMemory {
    static let base: UInt64 = 0x8000_0000
    var ram: UnsafeMutableRawPointer
    let size: Int
    var mmioWord: UInt64 = 0
    var retryMMIO = false
    var time: UInt64 = 0
    /// Pages the memory does not hand out for direct access (served by load/store).
    var indirectPages: Set<UInt64> = []

    init(size: Int = 1 << 20) {
        self.size = size
        ram = .allocate(byteCount: size, alignment: 4096)
        ram.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    }
    deinit { ram.deallocate() }

    func offset(_ a: UInt64, _ n: Int) -> Int? {
        a >= Self.base && a - Self.base + UInt64(n) <= UInt64(size) ? Int(a - Self.base) : nil
    }
    func directPage(_ page: UInt64, for access: AccessType) -> UnsafeMutableRawPointer? {
        indirectPages.contains(page) ? nil : offset(page, 4096).map { ram + $0 }
    }
    func load(_ a: UInt64, size n: Int, hart: Int, value: inout UInt64) -> BusStatus {
        if a == 0x1000_0000 { if retryMMIO { return .retry }; value = mmioWord; return .ok }
        guard let o = offset(a, n) else { return .accessFault }
        value = 0
        memcpy(&value, ram + o, n)
        return .ok
    }
    func store(_ a: UInt64, size n: Int, value: UInt64, hart: Int) -> BusStatus {
        if a == 0x1000_0000 { if retryMMIO { return .retry }; mmioWord = value; return .ok }
        guard let o = offset(a, n) else { return .accessFault }
        var v = value
        memcpy(ram + o, &v, n)
        return .ok
    }
    func atomic(_ op: AtomicOp, _ a: UInt64, size n: Int, operand: UInt64, expected: UInt64, hart: Int,
                old: inout UInt64) -> BusStatus {
        guard load(a, size: n, hart: hart, value: &old) == .ok else { return .accessFault }
        let mask: UInt64 = n == 4 ? 0xffff_ffff : .max
        let new: UInt64
        switch op {
        case .or: new = old | operand
        case .add: new = old &+ operand
        case .swap: new = operand
        case .compareAndSwap:
            guard old & mask == expected & mask else { return .ok }
            new = operand
        default: fatalError("not needed by these tests")
        }
        return store(a, size: n, value: new, hart: hart)
    }
    func currentTime() -> UInt64 { time }
    /// Anything but the RAM is a device (the MMIO word).
    func isDevicePage(_ p: UInt64) -> Bool { offset(p, 4096) == nil }

    func write32(_ a: UInt64, _ v: UInt32) { (ram + offset(a, 4)!).storeBytes(of: v, as: UInt32.self) }
    func write16(_ a: UInt64, _ v: UInt16) { (ram + offset(a, 2)!).storeBytes(of: v, as: UInt16.self) }
    func read32(_ a: UInt64) -> UInt32 { (ram + offset(a, 4)!).loadUnaligned(as: UInt32.self) }
    func read64(_ a: UInt64) -> UInt64 { (ram + offset(a, 8)!).load(as: UInt64.self) }
    func write64(_ a: UInt64, _ v: UInt64) { (ram + offset(a, 8)!).storeBytes(of: v, as: UInt64.self) }
}

/// Assembles RISC-V source with the toolchain's clang and ld.lld into raw bytes
/// linked at 0x80000000.
func assemble(_ source: String) throws -> [UInt8] {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-asm-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try (".option norelax\n.globl _start\n_start:\n" + source + "\n").write(to: dir.appendingPathComponent("t.S"), atomically: true, encoding: .utf8)
    func tool(_ name: String) -> String {
        for d in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") + ["/opt/swift/usr/bin"]
        where FileManager.default.isExecutableFile(atPath: "\(d)/\(name)") { return "\(d)/\(name)" }
        return "/opt/swift/usr/bin/\(name)"
    }
    func run(_ t: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: t)
        p.arguments = args
        p.currentDirectoryURL = dir
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw AssemblyFailed() }
    }
    try run(tool("clang"), ["--target=riscv64-unknown-elf", "-march=rv64imafdc_zicsr_zifencei", "-c", "t.S", "-o", "t.o"])
    try run(tool("ld.lld"), ["-Ttext=0x80000000", "--oformat=binary", "t.o", "-o", "t.bin"])
    return [UInt8](try Data(contentsOf: dir.appendingPathComponent("t.bin")))
}

struct AssemblyFailed: Error {}

/// A hart with `source` loaded at 0x80000000, ready to run in M-mode.
func makeHart(_ source: String) throws -> (Hart, TestMemory) {
    let mem = TestMemory()
    let code = try assemble(source)
    code.withUnsafeBytes { mem.ram.copyMemory(from: $0.baseAddress!, byteCount: code.count) }
    let hart = Hart(id: 0, memory: mem)
    hart.pc = TestMemory.base
    return (hart, mem)
}
