import Foundation

/// A virtio network device on the virtio-mmio transport, version 2 ("modern", virtio
/// 1.x), as QEMU's `virtio-net-device`: queue 0 receives, queue 1 transmits; the
/// features offered are VERSION_1, MAC and STATUS (link up), and MTU when the NIC has
/// one other than 1500 (as QEMU's `host_mtu`); no offloads, no mergeable buffers, so
/// every packet is a 12-byte `virtio_net_hdr_v1` and the frame, spread over any
/// descriptors of one chain (U-Boot and Linux split them differently).
///
/// Transmitted frames go to `transmit` (a switch port or the uplink) as they are taken
/// from the ring. When the bus can lend pages (`PageLendingMemory`, a cluster node), a
/// whole page-aligned page of a frame is lent instead of copied out, and a lent page
/// that lands on a whole page-aligned page of a receive buffer is mapped there instead
/// of copied in (`NetFrame`). Frames for the guest come in through `receive`: into a receive
/// buffer at once if the driver has one posted, else into a short backlog that drains
/// as the driver posts buffers; beyond it they are dropped, as a full NIC drops them.
/// Every guest address goes through the DMA bus with bounds checks: a descriptor
/// outside RAM or a malformed chain marks the device DEVICE_NEEDS_RESET.
public final class VirtioNet: MMIODevice {
    public let mac: MACAddress
    /// The NIC's index in the VM's config.
    public let index: Int
    private let bus: DMAMemory
    private let irq: (Bool) -> Void
    private let transmit: (NetFrame) -> Void
    /// The MTU announced to the driver (VIRTIO_NET_F_MTU) when not the standard 1500.
    public let mtu: Int
    /// The longest frame this NIC sends or takes.
    public var maxFrameBytes: Int { EthernetFrame.maxBytes(mtu: mtu) }
    private var lender: PageLendingMemory? { bus as? PageLendingMemory }

    public struct Counters: Equatable, Sendable {
        public var framesSent: UInt64 = 0
        public var framesReceived: UInt64 = 0
        /// Frames for the guest dropped: no buffer and a full backlog, or a buffer too small.
        public var receiveDropped: UInt64 = 0
        /// Frames from the guest dropped: shorter than a header or longer than the maximum.
        public var transmitDropped: UInt64 = 0
        /// Whole pages of sent frames lent instead of copied out.
        public var pagesLent: UInt64 = 0
        /// Whole pages of received frames mapped instead of copied in.
        public var pagesMapped: UInt64 = 0
    }
    public private(set) var counters = Counters()

    private var deviceFeatureSelect: UInt32 = 0
    private var driverFeatureSelect: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var status: UInt32 = 0
    private var interruptStatus: UInt32 = 0
    private var queueSelect: UInt32 = 0
    private var queues = [Virtqueue(), Virtqueue()]
    private var backlog: [NetFrame] = []
    private var reportedErrors = 0

    public static let backlogFrames = 256
    static let queueNumMax: UInt32 = 256
    static let headerBytes = 12
    static let featureVersion1: UInt64 = 1 << 32
    static let featureMAC: UInt64 = 1 << 5
    static let featureStatus: UInt64 = 1 << 16
    static let featureMTU: UInt64 = 1 << 3
    private var deviceFeatures: UInt64 {
        Self.featureVersion1 | Self.featureMAC | Self.featureStatus | (mtu == EthernetFrame.standardMTU ? 0 : Self.featureMTU)
    }
    static let statusNeedsReset: UInt32 = 64
    static let statusDriverOK: UInt32 = 4

    public init(mac: MACAddress, index: Int = 0, mtu: Int = EthernetFrame.standardMTU, bus: DMAMemory,
                irq: @escaping (Bool) -> Void, transmit: @escaping (NetFrame) -> Void) {
        precondition((68...EthernetFrame.largestMTU).contains(mtu), "an MTU is 68...65535")
        self.mac = mac
        self.index = index
        self.mtu = mtu
        self.bus = bus
        self.irq = irq
        self.transmit = transmit
    }

    /// Whether the driver has set the device up and can take frames.
    public var isRunning: Bool {
        status & Self.statusDriverOK != 0 && status & Self.statusNeedsReset == 0 && queues[0].ready
    }

    // MARK: - Registers

    public func read(offset: UInt64, size: Int) -> UInt64 {
        if offset >= 0x100 {  // config: mac[6], status le16 (LINK_UP), max_virtqueue_pairs le16, mtu le16
            let config = mac.bytes + [1, 0, 1, 0, UInt8(mtu & 0xff), UInt8(mtu >> 8)]
            let start = Int(offset - 0x100)
            guard start < config.count else { return 0 }
            var v: UInt64 = 0
            for i in 0..<min(size, config.count - start) { v |= UInt64(config[start + i]) << UInt64(8 * i) }
            return v
        }
        let q = queues.indices.contains(Int(queueSelect)) ? queues[Int(queueSelect)] : nil
        switch offset {
        case 0x000: return 0x7472_6976
        case 0x004: return 2
        case 0x008: return 1  // network card
        case 0x00c: return 0x554d_4551
        case 0x010: return deviceFeatureSelect == 0 ? deviceFeatures & 0xffff_ffff
                         : deviceFeatureSelect == 1 ? deviceFeatures >> 32 : 0
        case 0x034: return q == nil ? 0 : UInt64(Self.queueNumMax)
        case 0x044: return q?.ready == true ? 1 : 0
        case 0x060: return UInt64(interruptStatus)
        case 0x070: return UInt64(status)
        case 0x0fc: return 0
        default: return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let v = UInt32(truncatingIfNeeded: value)
        let q = Int(queueSelect)
        let selected = queues.indices.contains(q)
        switch offset {
        case 0x014: deviceFeatureSelect = v
        case 0x020:
            if driverFeatureSelect == 0 { driverFeatures = (driverFeatures & ~0xffff_ffff) | UInt64(v) }
            else if driverFeatureSelect == 1 { driverFeatures = (driverFeatures & 0xffff_ffff) | UInt64(v) << 32 }
        case 0x024: driverFeatureSelect = v
        case 0x030: queueSelect = v
        case 0x038: if selected { queues[q].size = min(v, Self.queueNumMax) }
        case 0x044: if selected { queues[q].ready = v & 1 != 0 }
        case 0x050:
            if v == 0 { drainBacklog() } else if v == 1 { transmitPending() }
        case 0x064:
            interruptStatus &= ~v
            irq(interruptStatus != 0)
        case 0x070:
            if v == 0 { reset() } else {
                status = v
                if isRunning { drainBacklog() }
            }
        case 0x080: if selected { queues[q].desc = (queues[q].desc & ~0xffff_ffff) | UInt64(v) }
        case 0x084: if selected { queues[q].desc = (queues[q].desc & 0xffff_ffff) | UInt64(v) << 32 }
        case 0x090: if selected { queues[q].driver = (queues[q].driver & ~0xffff_ffff) | UInt64(v) }
        case 0x094: if selected { queues[q].driver = (queues[q].driver & 0xffff_ffff) | UInt64(v) << 32 }
        case 0x0a0: if selected { queues[q].device = (queues[q].device & ~0xffff_ffff) | UInt64(v) }
        case 0x0a4: if selected { queues[q].device = (queues[q].device & 0xffff_ffff) | UInt64(v) << 32 }
        default: break
        }
    }

    private func reset() {
        status = 0
        driverFeatures = 0
        interruptStatus = 0
        queueSelect = 0
        queues = [Virtqueue(), Virtqueue()]
        backlog.removeAll()
        irq(false)
    }

    private func report(_ text: String) {
        guard reportedErrors < 10 else { return }
        reportedErrors += 1
        FileHandle.standardError.write(Data("disco: virtio-net \(mac): \(text)\n".utf8))
    }

    /// The driver broke the rings: it must reset the device.
    private func broken() {
        status |= Self.statusNeedsReset
        interruptStatus |= 2
        irq(true)
    }

    private func usedBufferNotification(_ queue: Int) {
        // VIRTQ_AVAIL_F_NO_INTERRUPT: the driver polls and asked not to be interrupted.
        if let flags = try? queues[queue].availFlags(bus), flags & 1 != 0 { return }
        interruptStatus |= 1
        irq(true)
    }

    // MARK: - Transmit

    private func transmitPending() {
        guard status & Self.statusNeedsReset == 0, queues[1].ready, queues[1].size > 0 else { return }
        var sent = false
        do {
            while let head = try queues[1].nextAvailable(bus) {
                let chain = try queues[1].chain(bus, head: head)
                guard chain.allSatisfy({ !$0.writable }) else { throw Virtqueue.Broken() }
                let total = chain.reduce(0) { $0 + Int($1.length) }
                guard total <= Self.headerBytes + maxFrameBytes else {
                    try queues[1].putUsed(bus, head: head, length: 0)
                    sent = true
                    counters.transmitDropped &+= 1
                    report("dropped a frame from the guest: \(total - Self.headerBytes) bytes is larger than the \(maxFrameBytes)-byte maximum (MTU \(mtu))")
                    continue
                }
                let frame = try takeFrame(chain)
                try queues[1].putUsed(bus, head: head, length: 0)
                sent = true
                if let problem = EthernetFrame.problem(frame.bytes) {
                    counters.transmitDropped &+= 1
                    report("dropped a frame from the guest: \(problem)")
                    continue
                }
                counters.framesSent &+= 1
                transmit(frame)
            }
        } catch {
            broken()
            return
        }
        if sent { usedBufferNotification(1) }
    }

    /// The frame of a transmit chain (after the 12-byte header): copied out, but for the
    /// whole page-aligned guest pages that the bus lends (their first bytes are copied
    /// too where they hold the Ethernet header, which the switch reads).
    private func takeFrame(_ chain: [Virtqueue.Descriptor]) throws -> NetFrame {
        var frame = NetFrame([])
        var packetOffset = 0
        for d in chain {
            var address = d.address, left = Int(d.length)
            while left > 0 {
                if packetOffset < Self.headerBytes {  // the virtio header: nothing in it matters for sending
                    let n = min(left, Self.headerBytes - packetOffset)
                    guard bus.copyOut(at: address, count: n) != nil else { throw Virtqueue.Broken() }
                    address += UInt64(n); left -= n; packetOffset += n
                    continue
                }
                if address & 0xfff == 0, left >= 4096, let lender, let token = lender.lendPage(at: address, nic: index) {
                    let at = frame.bytes.count
                    frame.bytes += repeatElement(0, count: 4096)
                    if at < EthernetFrame.headerBytes {
                        let n = EthernetFrame.headerBytes - at
                        guard let head = bus.copyOut(at: address, count: n) else { throw Virtqueue.Broken() }
                        frame.bytes.replaceSubrange(at ..< at + n, with: head)
                    }
                    frame.lent.append(.init(offset: at, token: token))
                    counters.pagesLent &+= 1
                    address += 4096; left -= 4096; packetOffset += 4096
                    continue
                }
                let n = min(left, 4096 - Int(address & 0xfff))
                guard let bytes = bus.copyOut(at: address, count: n) else { throw Virtqueue.Broken() }
                frame.bytes += bytes
                address += UInt64(n); left -= n; packetOffset += n
            }
        }
        return frame
    }

    // MARK: - Receive

    /// A frame for the guest. Dropped (and counted) if the driver is not running or its
    /// buffers and the backlog are full, or if it is longer than this NIC's MTU allows.
    public func receive(_ frame: [UInt8]) { receive(NetFrame(frame)) }

    /// A frame for the guest whose lent pages (if any) may be mapped into its buffer.
    public func receive(_ frame: NetFrame) {
        guard isRunning, frame.bytes.count <= maxFrameBytes else {
            counters.receiveDropped &+= 1
            return
        }
        if backlog.isEmpty, deliver(frame) { return }
        // A lent page may change once its sender runs again: a frame that waits holds bytes.
        guard backlog.count < Self.backlogFrames,
              let bytes = frame.lent.isEmpty ? frame.bytes : frame.materialized({ lender?.lentPageBytes($0) }) else {
            counters.receiveDropped &+= 1
            return
        }
        backlog.append(NetFrame(bytes))
    }

    /// Frames waiting for receive buffers.
    public var backlogCount: Int { backlog.count }

    /// Moves backlog frames into posted buffers.
    public func drainBacklog() {
        while let frame = backlog.first, isRunning, deliver(frame) { backlog.removeFirst() }
    }

    /// Writes `frame` into the next posted receive buffer; false if there is none. A lent
    /// page that falls on a whole page-aligned page of the buffer is mapped there.
    private func deliver(_ frame: NetFrame) -> Bool {
        guard isRunning, queues[0].size > 0 else { return false }
        do {
            guard let head = try queues[0].nextAvailable(bus) else { return false }
            let chain = try queues[0].chain(bus, head: head)
            var packet = [UInt8](repeating: 0, count: Self.headerBytes) + frame.bytes
            packet[10] = 1  // num_buffers
            let room = chain.reduce(0) { $0 + ($1.writable ? Int($1.length) : 0) }
            guard chain.allSatisfy(\.writable) else { throw Virtqueue.Broken() }
            guard room >= packet.count else {
                counters.receiveDropped &+= 1
                report("dropped a \(frame.bytes.count)-byte frame: the guest's receive buffer holds \(room - Self.headerBytes)")
                try queues[0].putUsed(bus, head: head, length: 0)
                usedBufferNotification(0)
                return true
            }
            // Lent pages by their place in the packet; filled in `packet` when copied.
            var lentAt: [Int: UInt64] = [:]
            for p in frame.lent { lentAt[Self.headerBytes + p.offset] = p.token }
            var offset = 0
            for d in chain where offset < packet.count {
                var address = d.address
                var left = min(Int(d.length), packet.count - offset)
                while left > 0 {
                    if let token = lentAt[offset], address & 0xfff == 0, left >= 4096, lender?.mapLentPage(token, at: address) == true {
                        lentAt[offset] = nil
                        counters.pagesMapped &+= 1
                        address += 4096; left -= 4096; offset += 4096
                        continue
                    }
                    let n = min(left, 4096 - Int(address & 0xfff))
                    try fillLent(&packet, &lentAt, offset ..< offset + n)
                    let ok = packet.withUnsafeBytes { bus.copyIn(UnsafeRawBufferPointer(rebasing: $0[offset ..< offset + n]), at: address) }
                    guard ok else { throw Virtqueue.Broken() }
                    address += UInt64(n); left -= n; offset += n
                }
            }
            try queues[0].putUsed(bus, head: head, length: UInt32(packet.count))
            counters.framesReceived &+= 1
            usedBufferNotification(0)
            return true
        } catch {
            broken()
            return false
        }
    }

    /// Writes into `packet` the bytes of every lent page not yet filled that overlaps `range`.
    private func fillLent(_ packet: inout [UInt8], _ lentAt: inout [Int: UInt64], _ range: Range<Int>) throws {
        guard !lentAt.isEmpty else { return }
        for (start, token) in lentAt where start < range.upperBound && start + 4096 > range.lowerBound {
            guard let page = lender?.lentPageBytes(token), page.count == 4096 else { throw Virtqueue.Broken() }
            packet.replaceSubrange(start ..< start + 4096, with: page)
            lentAt[start] = nil
        }
    }
}

/// One split virtqueue as the device sees it: the driver's three areas and the
/// device's position in them. Reads go through the DMA bus; a descriptor index out
/// of range, a chain longer than the queue or an address outside RAM throws.
struct Virtqueue {
    struct Broken: Error {}
    struct Descriptor { var address: UInt64; var length: UInt32; var writable: Bool }

    var size: UInt32 = 0
    var ready = false
    var desc: UInt64 = 0, driver: UInt64 = 0, device: UInt64 = 0
    var lastAvail: UInt16 = 0
    var usedIndex: UInt16 = 0

    private static func u16(_ bus: DMAMemory, _ a: UInt64) throws -> UInt16 {
        guard let b = bus.copyOut(at: a, count: 2) else { throw Broken() }
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }
    private static func u32(_ bus: DMAMemory, _ a: UInt64) throws -> UInt32 {
        guard let b = bus.copyOut(at: a, count: 4) else { throw Broken() }
        return b.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    private static func u64(_ bus: DMAMemory, _ a: UInt64) throws -> UInt64 {
        guard let b = bus.copyOut(at: a, count: 8) else { throw Broken() }
        return b.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    private static func put(_ bus: DMAMemory, _ a: UInt64, _ bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ bus.copyIn($0, at: a) }) else { throw Broken() }
    }

    func availFlags(_ bus: DMAMemory) throws -> UInt16 { try Self.u16(bus, driver) }

    /// The head of the next chain the driver made available, consumed; nil if none.
    mutating func nextAvailable(_ bus: DMAMemory) throws -> UInt16? {
        guard ready, size > 0 else { return nil }
        let availIndex = try Self.u16(bus, driver + 2)
        guard availIndex != lastAvail else { return nil }
        let head = try Self.u16(bus, driver + 4 + 2 * UInt64(UInt32(lastAvail) % size))
        lastAvail &+= 1
        return head
    }

    func chain(_ bus: DMAMemory, head: UInt16) throws -> [Descriptor] {
        var chain: [Descriptor] = []
        var index = head
        while true {
            guard UInt32(index) < size, chain.count < Int(size) else { throw Broken() }
            let d = desc + 16 * UInt64(index)
            let flags = try Self.u16(bus, d + 12)
            guard flags & 4 == 0 else { throw Broken() }  // indirect descriptors were not offered
            chain.append(Descriptor(address: try Self.u64(bus, d), length: try Self.u32(bus, d + 8), writable: flags & 2 != 0))
            guard flags & 1 != 0 else { return chain }
            index = try Self.u16(bus, d + 14)
        }
    }

    mutating func putUsed(_ bus: DMAMemory, head: UInt16, length: UInt32) throws {
        let slot = device + 4 + 8 * UInt64(UInt32(usedIndex) % size)
        try Self.put(bus, slot, withUnsafeBytes(of: UInt32(head).littleEndian) { Array($0) } + withUnsafeBytes(of: length.littleEndian) { Array($0) })
        usedIndex &+= 1
        try Self.put(bus, device + 2, withUnsafeBytes(of: usedIndex.littleEndian) { Array($0) })
    }
}
