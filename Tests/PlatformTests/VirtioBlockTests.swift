import Foundation
import Testing
@testable import Platform

/// virtio-blk driven by hand-built descriptor chains in guest RAM, no hart needed.
@Suite struct VirtioBlockTests {
    let desc: UInt64 = 0x8000_0000, avail: UInt64 = 0x8000_1000, used: UInt64 = 0x8000_2000
    let header: UInt64 = 0x8000_3000, buffer: UInt64 = 0x8000_4000, statusByte: UInt64 = 0x8000_5000

    func setUp(readOnly: Bool = false) throws -> (SystemBus, VirtioBlock, URL, IRQLog) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("disco-blk-\(UUID().uuidString).img")
        var image = [UInt8](repeating: 0, count: 4096)
        for i in 0..<512 { image[512 + i] = UInt8(i & 0xff) }  // sector 1 holds 0, 1, 2, ...
        try Data(image).write(to: url)
        let bus = try SystemBus(ramSize: 1 << 20, clock: { 0 })
        let log = IRQLog()
        let dev = try VirtioBlock(path: url.path, readOnly: readOnly, bus: bus, irq: { log.levels.append($0) })
        dev.write(offset: 0x070, size: 4, value: 0xf)  // ACK | DRIVER | FEATURES_OK | DRIVER_OK
        dev.write(offset: 0x038, size: 4, value: 8)
        dev.write(offset: 0x080, size: 4, value: desc)
        dev.write(offset: 0x090, size: 4, value: avail)
        dev.write(offset: 0x0a0, size: 4, value: used)
        dev.write(offset: 0x044, size: 4, value: 1)
        return (bus, dev, url, log)
    }

    final class IRQLog { var levels: [Bool] = [] }

    func put<T: FixedWidthInteger>(_ bus: SystemBus, _ a: UInt64, _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { _ = bus.copyIn($0, at: a) }
    }

    /// Writes a three-descriptor request (header, data, status) and makes it available.
    func submit(_ bus: SystemBus, type: UInt32, sector: UInt64, dataAddress: UInt64, length: UInt32, deviceWrites: Bool) {
        put(bus, header, type); put(bus, header + 8, sector)
        let chain: [(UInt64, UInt32, UInt16)] = [(header, 16, 1), (dataAddress, length, deviceWrites ? 3 : 1), (statusByte, 1, 2)]
        for (i, d) in chain.enumerated() {
            let at = desc + 16 * UInt64(i)
            put(bus, at, d.0); put(bus, at + 8, d.1); put(bus, at + 12, d.2); put(bus, at + 14, UInt16(i + 1))
        }
        put(bus, avail + 4, UInt16(0))
        put(bus, avail + 2, UInt16(1))
    }

    @Test func transportIdentifiesABlockDevice() throws {
        let (_, dev, url, _) = try setUp(readOnly: true)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(dev.read(offset: 0, size: 4) == 0x7472_6976)
        #expect(dev.read(offset: 4, size: 4) == 2)
        #expect(dev.read(offset: 8, size: 4) == 2)
        #expect(dev.read(offset: 0x100, size: 8) == 8)  // 4096 bytes = 8 sectors
        dev.write(offset: 0x014, size: 4, value: 1)
        #expect(dev.read(offset: 0x010, size: 4) & 1 == 1)  // VIRTIO_F_VERSION_1
        dev.write(offset: 0x014, size: 4, value: 0)
        #expect(dev.read(offset: 0x010, size: 4) & (1 << 5) != 0)  // read-only
    }

    @Test func readsASectorIntoGuestMemory() throws {
        let (bus, dev, url, log) = try setUp()
        defer { try? FileManager.default.removeItem(at: url) }
        submit(bus, type: 0, sector: 1, dataAddress: buffer, length: 512, deviceWrites: true)
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(bus.copyOut(at: buffer, count: 4) == [0, 1, 2, 3])
        #expect(bus.copyOut(at: statusByte, count: 1) == [0])
        #expect(bus.copyOut(at: used + 2, count: 2) == [1, 0])  // used.idx
        #expect(dev.read(offset: 0x060, size: 4) == 1)
        #expect(log.levels == [true])
        dev.write(offset: 0x064, size: 4, value: 1)
        #expect(log.levels == [true, false])
    }

    @Test func writesReachTheImageAndReadOnlyRefuses() throws {
        let (bus, dev, url, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: url) }
        _ = [UInt8](repeating: 0xab, count: 512).withUnsafeBytes { bus.copyIn($0, at: buffer) }
        submit(bus, type: 1, sector: 3, dataAddress: buffer, length: 512, deviceWrites: false)
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(bus.copyOut(at: statusByte, count: 1) == [0])
        let image = [UInt8](try Data(contentsOf: url))
        #expect(image[1536] == 0xab && image[2047] == 0xab && image[2048] == 0)

        let (rbus, rdev, rurl, _) = try setUp(readOnly: true)
        defer { try? FileManager.default.removeItem(at: rurl) }
        submit(rbus, type: 1, sector: 0, dataAddress: buffer, length: 512, deviceWrites: false)
        rdev.write(offset: 0x050, size: 4, value: 0)
        #expect(rbus.copyOut(at: statusByte, count: 1) == [1])  // IOERR
    }

    @Test func readsPastTheEndFailAndBadAddressesBreakOnlyTheDevice() throws {
        let (bus, dev, url, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: url) }
        submit(bus, type: 0, sector: 7, dataAddress: buffer, length: 1024, deviceWrites: true)
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(bus.copyOut(at: statusByte, count: 1) == [1])
        // A data buffer outside guest RAM: the device asks for a reset instead of trapping.
        put(bus, avail + 6, UInt16(0))
        put(bus, header + 8, UInt64(0))
        put(bus, desc + 16 + 8, UInt32(512))
        put(bus, desc + 16, UInt64(0xdead_0000_0000))
        put(bus, avail + 2, UInt16(2))
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(dev.read(offset: 0x070, size: 4) & 64 != 0)  // DEVICE_NEEDS_RESET
        // A reset brings it back.
        dev.write(offset: 0x070, size: 4, value: 0)
        #expect(dev.read(offset: 0x070, size: 4) == 0)
    }

    @Test func descriptorLoopsAreMalformedNotInfinite() throws {
        let (bus, dev, url, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: url) }
        submit(bus, type: 0, sector: 0, dataAddress: buffer, length: 512, deviceWrites: true)
        put(bus, desc + 16 + 14, UInt16(0))  // descriptor 1 points back at 0
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(dev.read(offset: 0x070, size: 4) & 64 != 0)
    }

    /// The same requests on a qcow2 overlay: reads come from the backing file, a write
    /// lands in the overlay only, and FLUSH makes it visible to a fresh reader.
    @Test func aQCow2OverlayServesReadsWritesAndFlush() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        var base = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<512 { base[512 + i] = UInt8(i & 0xff) }
        try writeFile(dir.path("base.raw"), base)
        try QCow2Image.create(path: dir.path("ov.qcow2"), options: .init(backing: "base.raw"))
        let bus = try SystemBus(ramSize: 1 << 20, clock: { 0 })
        let dev = try VirtioBlock(path: dir.path("ov.qcow2"), readOnly: false, bus: bus, irq: { _ in })
        #expect(dev.image.format == .qcow2)
        #expect(dev.read(offset: 0x100, size: 8) == 2048)  // 1 MiB in sectors
        dev.write(offset: 0x070, size: 4, value: 0xf)
        dev.write(offset: 0x038, size: 4, value: 8)
        dev.write(offset: 0x080, size: 4, value: desc)
        dev.write(offset: 0x090, size: 4, value: avail)
        dev.write(offset: 0x0a0, size: 4, value: used)
        dev.write(offset: 0x044, size: 4, value: 1)
        var served: UInt16 = 0
        func request(type: UInt32, sector: UInt64, deviceWrites: Bool) -> UInt8 {
            submit(bus, type: type, sector: sector, dataAddress: buffer, length: 512, deviceWrites: deviceWrites)
            served += 1
            put(bus, avail + 2, served)
            put(bus, avail + 4 + 2 * UInt64((served - 1) % 8), UInt16(0))
            dev.write(offset: 0x050, size: 4, value: 0)
            return bus.copyOut(at: statusByte, count: 1)![0]
        }
        #expect(request(type: 0, sector: 1, deviceWrites: true) == 0)
        #expect(bus.copyOut(at: buffer, count: 4) == [0, 1, 2, 3])
        _ = [UInt8](repeating: 0xcd, count: 512).withUnsafeBytes { bus.copyIn($0, at: buffer) }
        #expect(request(type: 1, sector: 3, deviceWrites: false) == 0)
        #expect(request(type: 4, sector: 0, deviceWrites: false) == 0)  // FLUSH
        // A fresh reader (no lock: the device holds it) sees the flushed write; the base is untouched.
        let reader = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: true, lock: false)
        #expect(try firstDifference(reader.read(at: 1536, count: 512), [UInt8](repeating: 0xcd, count: 512)) == nil)
        #expect(try reader.read(at: 512, count: 4) == [0, 1, 2, 3])
        #expect(try firstDifference(readFile(dir.path("base.raw")), base) == nil)
        // The device holds the image: a second writer is refused.
        #expect(throws: DiskImageError.self) { try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false) }
        dev.close()
        #expect(request(type: 0, sector: 1, deviceWrites: true) == 1)  // closed: IOERR
        _ = try QCow2Image(path: dir.path("ov.qcow2"), readOnly: false)
    }
}
