import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A virtio block device on the virtio-mmio transport, version 2 ("modern",
/// virtio 1.x): split virtqueue 0 carries requests; IN, OUT, FLUSH and GET_ID
/// are served from a `DiskImage` (raw or qcow2); FLUSH returns once the image's
/// metadata and data are on the disk. Every guest address goes through the bus
/// with bounds checks: a descriptor pointing outside RAM or a malformed chain marks
/// the device DEVICE_NEEDS_RESET instead of crashing. A request the image cannot
/// serve (a corrupt table, an I/O error) answers IOERR and is reported once on
/// stderr.
public final class VirtioBlock: MMIODevice {
    private let bus: DMAMemory
    public let image: DiskImage
    public var path: String { image.path }
    public let readOnly: Bool
    public let capacitySectors: UInt64
    private let irq: (Bool) -> Void
    private var reportedErrors = 0
    /// Pages of reads served by mapping a shared page (the global buffer cache).
    public private(set) var pagesShared: UInt64 = 0

    // Transport state.
    private var deviceFeatureSelect: UInt32 = 0
    private var driverFeatureSelect: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var status: UInt32 = 0
    private var interruptStatus: UInt32 = 0
    private var queueNum: UInt32 = 0
    private var queueReady = false
    private var descAddress: UInt64 = 0, driverAddress: UInt64 = 0, deviceAddress: UInt64 = 0
    private var lastAvail: UInt16 = 0
    private var usedIndex: UInt16 = 0

    static let queueNumMax: UInt32 = 256
    static let featureVersion1: UInt64 = 1 << 32
    static let featureFlush: UInt64 = 1 << 9
    static let featureReadOnly: UInt64 = 1 << 5
    static let statusNeedsReset: UInt32 = 64

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens the disk at `path` (`format` nil: detected from the file) as a device.
    public convenience init(path: String, format: DiskFormat? = nil, readOnly: Bool, bus: DMAMemory,
                            irq: @escaping (Bool) -> Void) throws {
        try self.init(image: DiskImages.open(path: path, format: format, readOnly: readOnly), bus: bus, irq: irq)
    }

    public init(image: DiskImage, bus: DMAMemory, irq: @escaping (Bool) -> Void) {
        self.image = image
        self.readOnly = image.isReadOnly
        self.capacitySectors = image.virtualSize / 512
        self.bus = bus
        self.irq = irq
    }

    /// Writes back and syncs the image, then closes it (later requests answer IOERR).
    public func close() { image.close() }

    /// A failed request is the guest's business (IOERR); the reason is the user's.
    private func report(_ error: Error) {
        guard reportedErrors < 10 else { return }
        reportedErrors += 1
        FileHandle.standardError.write(Data("disco: virtio-blk: \(error)\n".utf8))
    }

    private var deviceFeatures: UInt64 {
        Self.featureVersion1 | Self.featureFlush | (readOnly ? Self.featureReadOnly : 0)
    }

    // MARK: - Registers

    public func read(offset: UInt64, size: Int) -> UInt64 {
        if offset >= 0x100 {  // config space: capacity (le64)
            let config = capacitySectors
            return offset < 0x108 ? config.slice(byteOffset: offset - 0x100, size: size) : 0
        }
        switch offset {
        case 0x000: return 0x7472_6976
        case 0x004: return 2
        case 0x008: return 2  // block device
        case 0x00c: return 0x554d_4551
        case 0x010: return deviceFeatureSelect == 0 ? deviceFeatures & 0xffff_ffff
                         : deviceFeatureSelect == 1 ? deviceFeatures >> 32 : 0
        case 0x034: return UInt64(Self.queueNumMax)
        case 0x044: return queueReady ? 1 : 0
        case 0x060: return UInt64(interruptStatus)
        case 0x070: return UInt64(status)
        case 0x0fc: return 0
        default: return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let v = UInt32(truncatingIfNeeded: value)
        switch offset {
        case 0x014: deviceFeatureSelect = v
        case 0x020:
            if driverFeatureSelect == 0 { driverFeatures = (driverFeatures & ~0xffff_ffff) | UInt64(v) }
            else if driverFeatureSelect == 1 { driverFeatures = (driverFeatures & 0xffff_ffff) | UInt64(v) << 32 }
        case 0x024: driverFeatureSelect = v
        case 0x030: break  // one queue: selecting another leaves QueueNumMax reading for queue 0
        case 0x038: queueNum = min(v, Self.queueNumMax)
        case 0x044: queueReady = v & 1 != 0
        case 0x050: if v == 0 { processQueue() }
        case 0x064:
            interruptStatus &= ~v
            irq(interruptStatus != 0)
        case 0x070:
            if v == 0 { reset() } else { status = v }
        case 0x080: descAddress = (descAddress & ~0xffff_ffff) | UInt64(v)
        case 0x084: descAddress = (descAddress & 0xffff_ffff) | UInt64(v) << 32
        case 0x090: driverAddress = (driverAddress & ~0xffff_ffff) | UInt64(v)
        case 0x094: driverAddress = (driverAddress & 0xffff_ffff) | UInt64(v) << 32
        case 0x0a0: deviceAddress = (deviceAddress & ~0xffff_ffff) | UInt64(v)
        case 0x0a4: deviceAddress = (deviceAddress & 0xffff_ffff) | UInt64(v) << 32
        default: break
        }
    }

    private func reset() {
        status = 0
        driverFeatures = 0
        interruptStatus = 0
        queueNum = 0
        queueReady = false
        descAddress = 0; driverAddress = 0; deviceAddress = 0
        lastAvail = 0
        usedIndex = 0
        irq(false)
    }

    // MARK: - Requests

    private struct Broken: Error {}

    private func u16(_ a: UInt64) throws -> UInt16 {
        guard let b = bus.copyOut(at: a, count: 2) else { throw Broken() }
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }
    private func u32(_ a: UInt64) throws -> UInt32 { UInt32(try u16(a)) | UInt32(try u16(a + 2)) << 16 }
    private func u64(_ a: UInt64) throws -> UInt64 { UInt64(try u32(a)) | UInt64(try u32(a + 4)) << 32 }
    private func put(_ a: UInt64, _ bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ bus.copyIn($0, at: a) }) else { throw Broken() }
    }
    private func put32(_ a: UInt64, _ v: UInt32) throws { try put(a, withUnsafeBytes(of: v.littleEndian) { Array($0) }) }
    private func put16(_ a: UInt64, _ v: UInt16) throws { try put(a, withUnsafeBytes(of: v.littleEndian) { Array($0) }) }

    private struct Descriptor { var address: UInt64; var length: UInt32; var writable: Bool }

    /// Serves every request the driver has made available.
    private func processQueue() {
        guard queueReady, queueNum > 0, status & Self.statusNeedsReset == 0 else { return }
        do {
            let availIndex = try u16(driverAddress + 2)
            var served = false
            while lastAvail != availIndex {
                let head = try u16(driverAddress + 4 + 2 * UInt64(UInt32(lastAvail) % queueNum))
                let chain = try descriptors(from: head)
                let written = try serve(chain)
                let slot = deviceAddress + 4 + 8 * UInt64(UInt32(usedIndex) % queueNum)
                try put32(slot, UInt32(head))
                try put32(slot + 4, written)
                usedIndex &+= 1
                try put16(deviceAddress + 2, usedIndex)
                lastAvail &+= 1
                served = true
            }
            if served {
                interruptStatus |= 1
                irq(true)
            }
        } catch {
            status |= Self.statusNeedsReset
            interruptStatus |= 2  // configuration change: tells the driver to look at the status
            irq(true)
        }
    }

    private func descriptors(from head: UInt16) throws -> [Descriptor] {
        var chain: [Descriptor] = []
        var index = head
        while true {
            guard UInt32(index) < queueNum, chain.count < Int(queueNum) else { throw Broken() }  // loops are malformed
            let d = descAddress + 16 * UInt64(index)
            let flags = try u16(d + 12)
            chain.append(Descriptor(address: try u64(d), length: try u32(d + 8), writable: flags & 2 != 0))
            guard flags & 1 != 0 else { return chain }
            index = try u16(d + 14)
        }
    }

    /// Performs one request; returns the bytes written into the driver's buffers.
    private func serve(_ chain: [Descriptor]) throws -> UInt32 {
        guard chain.count >= 2, chain[0].length >= 16, !chain[0].writable,
              let statusDesc = chain.last, statusDesc.writable, statusDesc.length >= 1 else { throw Broken() }
        let type = try u32(chain[0].address)
        let sector = try u64(chain[0].address + 8)
        let data = chain[1..<(chain.count - 1)]
        var written: UInt32 = 0
        var result: UInt8 = 0  // OK
        var offset = Int64(bitPattern: sector &* 512)
        let total = data.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        switch type {
        case 0:  // IN
            if sector > capacitySectors || total > (capacitySectors - sector) * 512 { result = 1; break }
            // With a bus that shares pages (a cluster node's), every whole, page-aligned
            // page of a read-only file is mapped from the global buffer cache instead of
            // copied; the rest is copied in as usual.
            let sharing = bus as? BlockSharingMemory
            reading: for d in data {
                guard d.writable else { throw Broken() }
                var done: UInt32 = 0
                while done < d.length {
                    let address = d.address + UInt64(done)
                    let position = UInt64(offset) + UInt64(done)
                    if let sharing, address & 0xfff == 0, d.length - done >= 4096,
                       let block = try? image.sharedSource(at: position, count: 4096),
                       sharing.shareBlock(block, at: address, fill: { try image.read(at: position, into: $0) }) {
                        pagesShared &+= 1
                        done += 4096
                        continue
                    }
                    let n = sharing == nil ? d.length - done : min(d.length - done, 4096 - UInt32(address & 0xfff))
                    var buffer = [UInt8](repeating: 0, count: Int(n))
                    do {
                        try buffer.withUnsafeMutableBytes { try image.read(at: position, into: $0) }
                    } catch {
                        report(error)
                        result = 1
                        break reading
                    }
                    try put(address, buffer)
                    done += n
                }
                written += d.length
                offset += Int64(d.length)
            }
        case 1:  // OUT
            if readOnly { result = 1; break }
            if sector > capacitySectors || total > (capacitySectors - sector) * 512 { result = 1; break }
            for d in data {
                guard !d.writable, let buffer = bus.copyOut(at: d.address, count: Int(d.length)) else { throw Broken() }
                do {
                    try buffer.withUnsafeBytes { try image.write(at: UInt64(offset), from: $0) }
                } catch {
                    report(error)
                    result = 1
                    break
                }
                offset += Int64(d.length)
            }
        case 4:  // FLUSH
            do {
                try image.flush()
            } catch {
                report(error)
                result = 1
            }
        case 8:  // GET_ID: up to 20 bytes, no terminator needed
            let id = Array("disco-\((path as NSString).lastPathComponent)".utf8.prefix(20))
            if let d = data.first, d.writable {
                let bytes = Array(id.prefix(Int(d.length)))
                try put(d.address, bytes)
                written += UInt32(bytes.count)
            }
        default:
            result = 2  // UNSUPP
        }
        try put(statusDesc.address, [result])
        return written + 1
    }
}

