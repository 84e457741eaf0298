import Testing
import RISCV
@testable import Platform

final class ScratchDevice: MMIODevice {
    var register: UInt64 = 0
    var writes: [(UInt64, Int, UInt64)] = []
    func read(offset: UInt64, size: Int) -> UInt64 { register.slice(byteOffset: offset, size: size) }
    func write(offset: UInt64, size: Int, value: UInt64) {
        writes.append((offset, size, value))
        register = register.replacing(byteOffset: offset, size: size, with: value)
    }
}

@Suite struct SystemBusTests {
    func makeBus() throws -> (SystemBus, ScratchDevice) {
        let bus = try SystemBus(ramSize: 1 << 20, clock: { 1234 })
        let dev = ScratchDevice()
        bus.attach(dev, at: 0x1000_0000, size: 0x100)
        return (bus, dev)
    }

    @Test func ramLoadsAndStoresAreLittleEndian() throws {
        let (bus, _) = try makeBus()
        #expect(bus.store(0x8000_0010, size: 8, value: 0x1122_3344_5566_7788, hart: 0) == .ok)
        var v: UInt64 = 0
        #expect(bus.load(0x8000_0010, size: 1, hart: 0, value: &v) == .ok && v == 0x88)
        #expect(bus.load(0x8000_0012, size: 2, hart: 0, value: &v) == .ok && v == 0x5566)
        #expect(bus.load(0x8000_0014, size: 4, hart: 0, value: &v) == .ok && v == 0x1122_3344)
        #expect(bus.copyOut(at: 0x8000_0010, count: 2) == [0x88, 0x77])
        #expect(bus.currentTime() == 1234)
    }

    @Test func directPagesCoverRAMOnly() throws {
        let (bus, _) = try makeBus()
        let page = try #require(bus.directPage(0x8000_1000, for: .write))
        page.storeBytes(of: 0xab, toByteOffset: 5, as: UInt8.self)
        var v: UInt64 = 0
        _ = bus.load(0x8000_1005, size: 1, hart: 0, value: &v)
        #expect(v == 0xab)
        #expect(bus.directPage(0x800f_f000, for: .execute) != nil)  // last page
        #expect(bus.directPage(0x8010_0000, for: .read) == nil)  // past RAM
        #expect(bus.directPage(0x1000_0000, for: .read) == nil)  // a device
    }

    @Test func devicesAndHoles() throws {
        let (bus, dev) = try makeBus()
        #expect(bus.store(0x1000_0005, size: 1, value: 0x7f, hart: 0) == .ok)
        #expect(dev.writes.count == 1 && dev.writes[0].0 == 5)
        var v: UInt64 = 0
        #expect(bus.load(0x1000_0005, size: 1, hart: 0, value: &v) == .ok && v == 0x7f)
        #expect(bus.load(0x2000_0000, size: 4, hart: 0, value: &v) == .accessFault)
        #expect(bus.store(0x7fff_fff8, size: 8, value: 0, hart: 0) == .accessFault)
        // An access straddling the end of RAM faults rather than touching host memory.
        #expect(bus.load(0x800f_fffc, size: 8, hart: 0, value: &v) == .accessFault)
        #expect(!bus.copyIn(UnsafeRawBufferPointer(start: nil, count: 0), at: 0x9000_0000))
    }

    @Test func atomicsFollowTheAExtension() throws {
        let (bus, _) = try makeBus()
        let a: UInt64 = 0x8000_0100
        var old: UInt64 = 0
        _ = bus.store(a, size: 4, value: 0xffff_fffe, hart: 0)  // -2 as a word
        #expect(bus.atomic(.add, a, size: 4, operand: 3, expected: 0, hart: 0, old: &old) == .ok)
        #expect(old == 0xffff_fffe)
        var v: UInt64 = 0
        _ = bus.load(a, size: 4, hart: 0, value: &v)
        #expect(v == 1)
        _ = bus.atomic(.min, a, size: 4, operand: 0xffff_ffff, expected: 0, hart: 0, old: &old)  // min(1, -1) = -1
        _ = bus.load(a, size: 4, hart: 0, value: &v)
        #expect(v == 0xffff_ffff)
        _ = bus.atomic(.minu, a, size: 4, operand: 7, expected: 0, hart: 0, old: &old)  // minu(0xffffffff, 7) = 7
        _ = bus.load(a, size: 4, hart: 0, value: &v)
        #expect(v == 7)
        _ = bus.atomic(.compareAndSwap, a, size: 8, operand: 9, expected: 8, hart: 0, old: &old)
        _ = bus.load(a, size: 8, hart: 0, value: &v)
        #expect(v == 7)  // expected value did not match
        _ = bus.atomic(.compareAndSwap, a, size: 8, operand: 9, expected: 7, hart: 0, old: &old)
        _ = bus.load(a, size: 8, hart: 0, value: &v)
        #expect(v == 9)
        #expect(bus.atomic(.swap, 0x2000_0000, size: 4, operand: 1, expected: 0, hart: 0, old: &old) == .accessFault)
    }

    /// QEMU performs AMOs on MMIO as a read and a write; so does the bus.
    @Test func atomicsOnADeviceReadThenWrite() throws {
        let (bus, dev) = try makeBus()
        dev.register = 5
        var old: UInt64 = 0
        #expect(bus.atomic(.or, 0x1000_0000, size: 4, operand: 2, expected: 0, hart: 0, old: &old) == .ok)
        #expect(old == 5 && dev.register == 7)
        #expect(bus.atomic(.compareAndSwap, 0x1000_0000, size: 4, operand: 9, expected: 1, hart: 0, old: &old) == .ok)
        #expect(old == 7 && dev.writes.count == 1)  // no match, no write
    }
}
