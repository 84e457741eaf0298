import Foundation

/// What a VM's memory holds at power-on and where its harts start: firmware and
/// kernel (ELF segments or raw images) and the device tree, as guest-physical byte
/// ranges. Built once from a MachineConfig; the single-process Machine copies it into
/// its RAM, a cluster node copies the parts that fall into the frames it homes.
public struct BootImage: Sendable {
    public struct Chunk: Sendable {
        public var address: UInt64
        public var bytes: [UInt8]
    }

    public var entry: UInt64
    public var deviceTreeAddress: UInt64
    public var chunks: [Chunk]
    /// Where the kernel went: its first byte (for an ELF, its entry point, as QEMU
    /// counts it) and, for a raw image, where its bytes (or its Image header's
    /// image_size) end.
    public var kernelStart: UInt64?
    /// The initial RAM disk's guest-physical bytes, also in the device tree's
    /// /chosen linux,initrd-start and linux,initrd-end.
    public var initrd: Range<UInt64>?

    /// Reads and checks the images named by `config` for a RAM of `config.memoryBytes`
    /// at `ramBase`. Errors name the file and the problem in one line.
    public init(config: MachineConfig, ramBase: UInt64 = VirtBoard.ramBase) throws {
        let ram = ramBase..<(ramBase + config.memoryBytes)
        chunks = []
        var kernelEnd: UInt64?
        switch config.bios {
        case .file(let firmware):
            let fw = try Self.load(firmware, rawAt: ramBase, ram: ram, what: "firmware", into: &chunks)
            entry = fw.entry
            if let kernel = config.kernel {
                // QEMU puts a kernel after the firmware, at the next 2 MiB boundary
                // (0x80200000 for OpenSBI's fw_jump); a headerless raw image keeps
                // disco's fixed 0x80200000, which fw_jump jumps to.
                let imageAddress = Self.alignUp(fw.end, to: 2 << 20)
                let k = try Self.load(kernel, rawAt: VirtBoard.kernelBase, imageAt: imageAddress, ram: ram,
                                      what: "kernel", into: &chunks)
                kernelStart = k.entry
                kernelEnd = k.end
            }
        case .none:
            guard let kernel = config.kernel else { throw MachineError("nothing to boot: no firmware and no kernel") }
            let k = try Self.load(kernel, rawAt: ramBase, imageAt: ramBase, ram: ram, what: "kernel", into: &chunks)
            entry = k.entry
            kernelStart = k.entry
            kernelEnd = k.end
        }
        if let path = config.initrd {
            guard let kernelStart, let kernelEnd else {
                throw MachineError("initrd '\(path)': an initrd needs a kernel (--kernel) to hand it to")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw MachineError("initrd '\(path)': cannot read file")
            }
            let range = try Self.placeInitrd(size: UInt64(data.count), kernelStart: kernelStart, kernelEnd: kernelEnd,
                                             ram: ram, path: path)
            chunks.append(Chunk(address: range.lowerBound, bytes: [UInt8](data)))
            initrd = range
        }
        let fdt = VirtBoard.deviceTree(harts: config.harts, memoryBytes: config.memoryBytes, bootargs: config.bootargs,
                                       initrd: initrd)
        deviceTreeAddress = VirtBoard.deviceTreeAddress(memoryBytes: config.memoryBytes, blobSize: fdt.count)
        guard deviceTreeAddress >= ram.lowerBound, deviceTreeAddress + UInt64(fdt.count) <= ram.upperBound else {
            throw MachineError("RAM of \(config.memoryBytes) bytes is too small for the device tree")
        }
        if let initrd, initrd.overlaps(deviceTreeAddress..<(deviceTreeAddress + UInt64(fdt.count))) {
            throw MachineError("initrd '\(config.initrd ?? "")' (\(initrd.count) bytes at 0x\(Self.hex(initrd.lowerBound))) runs into the device tree at 0x\(Self.hex(deviceTreeAddress)): give the VM more memory")
        }
        chunks.append(Chunk(address: deviceTreeAddress, bytes: fdt))
    }

    /// Where QEMU 7.2's virt board puts an initrd of `size` bytes: past the kernel's
    /// start by half the RAM or 128 MiB, whichever is less (far enough that an
    /// uncompressing kernel does not overwrite it, low enough for small RAMs). It must
    /// lie inside RAM and clear of the kernel.
    public static func placeInitrd(size: UInt64, kernelStart: UInt64, kernelEnd: UInt64, ram: Range<UInt64>,
                                   path: String = "initrd") throws -> Range<UInt64> {
        let ramSize = ram.upperBound - ram.lowerBound
        let start = kernelStart + min(ramSize / 2, 128 << 20)
        guard start >= kernelEnd else {
            throw MachineError("initrd '\(path)' would start at 0x\(hex(start)), inside the kernel (which ends at 0x\(hex(kernelEnd))): give the VM more memory")
        }
        guard start < ram.upperBound, size <= ram.upperBound - start else {
            throw MachineError("initrd '\(path)' (\(size) bytes) does not fit in RAM at 0x\(hex(start)): \(ram.upperBound > start ? ram.upperBound - start : 0) bytes are left up to the end of RAM at 0x\(hex(ram.upperBound)); give the VM more memory")
        }
        return start..<(start + size)
    }

    static func alignUp(_ v: UInt64, to a: UInt64) -> UInt64 { (v + a - 1) & ~(a - 1) }
    static func hex(_ v: UInt64) -> String { String(v, radix: 16) }

    /// Loads an ELF at its addresses, a Linux RISC-V Image at `imageAt` (checked
    /// against its header) or another raw image at `rawAt`; returns the entry point
    /// and where the image ends in memory.
    private static func load(_ path: String, rawAt address: UInt64, imageAt imageAddress: UInt64? = nil,
                             ram: Range<UInt64>, what: String,
                             into chunks: inout [Chunk]) throws -> (entry: UInt64, end: UInt64) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MachineError("\(what) '\(path)': cannot read file")
        }
        let bytes = [UInt8](data)
        if ELFImage.looksLikeELF(bytes) {
            do {
                let image = try ELFImage(parsing: bytes)
                try image.check(fitsIn: ram)
                for s in image.segments where s.fileSize > 0 {
                    // The rest of each segment (.bss) is already zero in fresh RAM.
                    chunks.append(Chunk(address: s.address, bytes: Array(bytes[s.fileOffset..<(s.fileOffset + s.fileSize)])))
                }
                return (image.entry, image.extent.upperBound)
            } catch {
                throw MachineError("\(what) '\(path)': \(error)")
            }
        }
        if let imageAddress, LinuxImageHeader.isPresent(in: bytes) {
            do {
                let header = try LinuxImageHeader(parsing: bytes)
                try header.check(loadAddress: imageAddress, ram: ram)
                chunks.append(Chunk(address: imageAddress, bytes: bytes))
                return (imageAddress, imageAddress + header.imageSize)
            } catch {
                throw MachineError("\(what) '\(path)': \(error)")
            }
        }
        guard address >= ram.lowerBound, UInt64(bytes.count) <= ram.upperBound - address else {
            throw MachineError("\(what) '\(path)' (\(bytes.count) bytes) does not fit in RAM at 0x\(String(address, radix: 16)) (RAM ends at 0x\(String(ram.upperBound, radix: 16)))")
        }
        chunks.append(Chunk(address: address, bytes: bytes))
        return (address, address + UInt64(bytes.count))
    }
}
