import Foundation
import Testing
@testable import Platform

/// virtio-net driven by hand-built rings in guest RAM, no hart needed.
@Suite struct VirtioNetTests {
    let rx = (desc: UInt64(0x8000_0000), avail: UInt64(0x8000_1000), used: UInt64(0x8000_2000))
    let tx = (desc: UInt64(0x8000_3000), avail: UInt64(0x8000_4000), used: UInt64(0x8000_5000))
    let buffers: UInt64 = 0x8001_0000
    static let mac = MACAddress(0x5254_00ab_cdef)

    final class Wire { var frames: [[UInt8]] = []; var irqs: [Bool] = [] }

    func setUp(mtu: Int = 1500) throws -> (SystemBus, VirtioNet, Wire) {
        let bus = try SystemBus(ramSize: 1 << 20, clock: { 0 })
        let wire = Wire()
        let dev = VirtioNet(mac: Self.mac, mtu: mtu, bus: bus, irq: { wire.irqs.append($0) }, transmit: { wire.frames.append($0.bytes) })
        dev.write(offset: 0x070, size: 4, value: 1 | 2)
        dev.write(offset: 0x024, size: 4, value: 1)
        dev.write(offset: 0x020, size: 4, value: 1)
        dev.write(offset: 0x024, size: 4, value: 0)
        dev.write(offset: 0x020, size: 4, value: 1 << 5)
        dev.write(offset: 0x070, size: 4, value: 1 | 2 | 8)
        for (i, q) in [rx, tx].enumerated() {
            dev.write(offset: 0x030, size: 4, value: UInt64(i))
            dev.write(offset: 0x038, size: 4, value: 8)
            dev.write(offset: 0x080, size: 4, value: q.desc)
            dev.write(offset: 0x090, size: 4, value: q.avail)
            dev.write(offset: 0x0a0, size: 4, value: q.used)
            dev.write(offset: 0x044, size: 4, value: 1)
        }
        dev.write(offset: 0x070, size: 4, value: 1 | 2 | 8 | 4)
        return (bus, dev, wire)
    }

    func put<T: FixedWidthInteger>(_ bus: SystemBus, _ a: UInt64, _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { _ = bus.copyIn($0, at: a) }
    }
    func get16(_ bus: SystemBus, _ a: UInt64) -> UInt16 { let b = bus.copyOut(at: a, count: 2)!; return UInt16(b[0]) | UInt16(b[1]) << 8 }
    func get32(_ bus: SystemBus, _ a: UInt64) -> UInt32 { bus.copyOut(at: a, count: 4)!.reversed().reduce(0) { $0 << 8 | UInt32($1) } }

    /// Makes a chain of (address, length, writable) descriptors available on a queue.
    func offer(_ bus: SystemBus, _ q: (desc: UInt64, avail: UInt64, used: UInt64), _ chain: [(UInt64, UInt32, Bool)], first: UInt16 = 0) {
        for (i, d) in chain.enumerated() {
            let at = q.desc + 16 * UInt64(Int(first) + i)
            let more = i + 1 < chain.count
            put(bus, at, d.0); put(bus, at + 8, d.1)
            put(bus, at + 12, UInt16((more ? 1 : 0) | (d.2 ? 2 : 0))); put(bus, at + 14, UInt16(Int(first) + i + 1))
        }
        let index = get16(bus, q.avail + 2)
        put(bus, q.avail + 4 + 2 * UInt64(index % 8), first)
        put(bus, q.avail + 2, index &+ 1)
    }

    static func frame(_ n: Int) -> [UInt8] {
        MACAddress.broadcast.bytes + mac.bytes + [0x88, 0xb5] + (0..<n).map { UInt8(truncatingIfNeeded: $0 * 7) }
    }

    @Test func identifiesANetworkCardWithItsAddressAndLinkUp() throws {
        let (_, dev, _) = try setUp()
        #expect(dev.read(offset: 0, size: 4) == 0x7472_6976)
        #expect(dev.read(offset: 4, size: 4) == 2)
        #expect(dev.read(offset: 8, size: 4) == 1)
        dev.write(offset: 0x014, size: 4, value: 0)
        let low = dev.read(offset: 0x010, size: 4)
        #expect(low & (1 << 5) != 0 && low & (1 << 16) != 0)   // MAC, STATUS
        #expect(low & ~UInt64((1 << 5) | (1 << 16)) == 0)       // no offloads, no mergeable buffers
        dev.write(offset: 0x014, size: 4, value: 1)
        #expect(dev.read(offset: 0x010, size: 4) == 1)           // VERSION_1
        #expect((0..<6).map { UInt8(dev.read(offset: 0x100 + UInt64($0), size: 1)) } == Self.mac.bytes)
        #expect(dev.read(offset: 0x106, size: 2) == 1)           // VIRTIO_NET_S_LINK_UP
        #expect(dev.read(offset: 0x100, size: 4) == 0xab00_5452)
    }

    @Test func aLargerMTUIsAnnouncedAndBoundsWhatGoesBothWays() throws {
        let (bus, dev, wire) = try setUp(mtu: 9000)
        dev.write(offset: 0x014, size: 4, value: 0)
        #expect(dev.read(offset: 0x010, size: 4) & (1 << 3) != 0)   // VIRTIO_NET_F_MTU
        #expect(dev.read(offset: 0x10a, size: 2) == 9000)
        // A 9018-byte frame goes out; one byte more is dropped.
        offer(bus, tx, [(buffers, 12 + 9018, false)], first: 0)
        offer(bus, tx, [(buffers, 12 + 9019, false)], first: 1)
        dev.write(offset: 0x050, size: 4, value: 1)
        #expect(wire.frames.map(\.count) == [9018])
        #expect(dev.counters.transmitDropped == 1)
        // In: a jumbo frame fills a buffer spread over descriptors; a longer one is dropped.
        offer(bus, rx, [(buffers + 0x8000, 12, true), (buffers + 0x9000, 0x4000, true)])
        let f = Self.frame(9000)
        dev.receive(f)
        #expect(get32(bus, rx.used + 8) == UInt32(12 + f.count))
        #expect(bus.copyOut(at: buffers + 0x9000, count: f.count)! == f)
        dev.receive(Self.frame(9005))
        #expect(dev.counters.receiveDropped == 1 && dev.counters.framesReceived == 1)
        // The standard NIC does not announce an MTU.
        let (_, plain, _) = try setUp()
        plain.write(offset: 0x014, size: 4, value: 0)
        #expect(plain.read(offset: 0x010, size: 4) & (1 << 3) == 0)
    }

    @Test func transmitsAFrameSplitOverDescriptorsWithoutItsHeader() throws {
        let (bus, dev, wire) = try setUp()
        let f = Self.frame(100)
        _ = ([UInt8](repeating: 0, count: 12) + f).withUnsafeBytes { bus.copyIn($0, at: buffers) }
        // The header in two pieces, the frame in two more, as a driver may split them.
        offer(bus, tx, [(buffers, 5, false), (buffers + 5, 7, false), (buffers + 12, 20, false), (buffers + 32, UInt32(f.count - 20), false)])
        dev.write(offset: 0x050, size: 4, value: 1)
        #expect(wire.frames == [f])
        #expect(get16(bus, tx.used + 2) == 1)
        #expect(get32(bus, tx.used + 4) == 0)   // the head's id
        #expect(wire.irqs.last == true)
        #expect(dev.read(offset: 0x060, size: 4) & 1 == 1)
        dev.write(offset: 0x064, size: 4, value: 1)
        #expect(wire.irqs.last == false)
        #expect(dev.counters.framesSent == 1)
    }

    @Test func receivesIntoAPostedBufferWithAHeader() throws {
        let (bus, dev, wire) = try setUp()
        offer(bus, rx, [(buffers, 1526, true)])
        let f = Self.frame(1500)
        dev.receive(f)
        #expect(get16(bus, rx.used + 2) == 1)
        #expect(get32(bus, rx.used + 8) == UInt32(12 + f.count))
        let got = bus.copyOut(at: buffers, count: 12 + f.count)!
        #expect(Array(got[0..<10]) == [UInt8](repeating: 0, count: 10))
        #expect(got[10] == 1 && got[11] == 0)   // num_buffers
        #expect(Array(got[12...]) == f)
        #expect(wire.irqs.last == true)
        #expect(dev.counters.framesReceived == 1)
    }

    @Test func framesWaitInTheBacklogUntilBuffersArePosted() throws {
        let (bus, dev, _) = try setUp()
        dev.receive(Self.frame(10))
        dev.receive(Self.frame(20))
        #expect(dev.backlogCount == 2)
        offer(bus, rx, [(buffers, 1526, true)], first: 0)
        offer(bus, rx, [(buffers + 2048, 1526, true)], first: 1)
        dev.write(offset: 0x050, size: 4, value: 0)
        #expect(dev.backlogCount == 0)
        #expect(get16(bus, rx.used + 2) == 2)
        #expect(Array(bus.copyOut(at: buffers + 2048 + 12, count: Self.frame(20).count)!) == Self.frame(20))
        // Beyond the backlog frames are dropped and counted.
        for _ in 0..<(VirtioNet.backlogFrames + 3) { dev.receive(Self.frame(1)) }
        #expect(dev.backlogCount == VirtioNet.backlogFrames)
        #expect(dev.counters.receiveDropped == 3)
    }

    @Test func aFrameLargerThanTheBufferIsDroppedAndTheBufferReturned() throws {
        let (bus, dev, _) = try setUp()
        offer(bus, rx, [(buffers, 100, true)])
        dev.receive(Self.frame(200))
        #expect(dev.counters.receiveDropped == 1)
        #expect(get16(bus, rx.used + 2) == 1 && get32(bus, rx.used + 8) == 0)
        #expect(dev.read(offset: 0x070, size: 4) & 64 == 0)
    }

    @Test func anOversizedOrShortFrameFromTheGuestIsDroppedAlone() throws {
        let (bus, dev, wire) = try setUp()
        offer(bus, tx, [(buffers, 12 + 1519, false)], first: 0)
        offer(bus, tx, [(buffers, 12 + 13, false)], first: 1)
        offer(bus, tx, [(buffers, 12 + 60, false)], first: 2)
        dev.write(offset: 0x050, size: 4, value: 1)
        #expect(wire.frames.count == 1 && wire.frames[0].count == 60)
        #expect(dev.counters.transmitDropped == 2)
        #expect(get16(bus, tx.used + 2) == 3)
        #expect(dev.read(offset: 0x070, size: 4) & 64 == 0)
    }

    @Test func aBrokenChainNeedsAReset() throws {
        let (bus, dev, wire) = try setUp()
        offer(bus, tx, [(0x1_0000_0000, 64, false)])   // outside RAM
        dev.write(offset: 0x050, size: 4, value: 1)
        #expect(wire.frames.isEmpty)
        #expect(dev.read(offset: 0x070, size: 4) & 64 != 0)
        #expect(dev.read(offset: 0x060, size: 4) & 2 != 0)
        dev.receive(Self.frame(10))
        #expect(dev.counters.receiveDropped == 1)   // not running any more
        dev.write(offset: 0x070, size: 4, value: 0)
        #expect(dev.read(offset: 0x070, size: 4) == 0)
    }

    @Test func disksAndNICsShareTheSlots() throws {
        let d = [DiskConfig(path: "a"), DiskConfig(path: "b", slot: 0)]
        let n = [NICConfig(backend: .switch("lan")), NICConfig(backend: .user, slot: 6)]
        let (disks, nics) = try VirtBoard.slotAssignment(disks: d, nics: n)
        #expect(disks == [7, 0] && nics == [5, 6])
        #expect(throws: MachineError("disk 'b' and NIC 0 both want slot 0")) {
            try VirtBoard.slotAssignment(disks: d, nics: [NICConfig(backend: .user, slot: 0)])
        }
        #expect(throws: MachineError("at most 8 virtio devices, not 4 disks and 5 NICs")) {
            try VirtBoard.slotAssignment(disks: Array(repeating: DiskConfig(path: "x"), count: 4),
                                         nics: Array(repeating: NICConfig(backend: .user), count: 5))
        }
    }
}
