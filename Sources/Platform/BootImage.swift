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

    /// Reads and checks the images named by `config` for a RAM of `config.memoryBytes`
    /// at `ramBase`. Errors name the file and the problem in one line.
    public init(config: MachineConfig, ramBase: UInt64 = VirtBoard.ramBase) throws {
        let ram = ramBase..<(ramBase + config.memoryBytes)
        chunks = []
        switch config.bios {
        case .file(let firmware):
            entry = try Self.load(firmware, rawAt: ramBase, ram: ram, what: "firmware", into: &chunks)
            if let kernel = config.kernel {
                _ = try Self.load(kernel, rawAt: VirtBoard.kernelBase, ram: ram, what: "kernel", into: &chunks)
            }
        case .none:
            guard let kernel = config.kernel else { throw MachineError("nothing to boot: no firmware and no kernel") }
            entry = try Self.load(kernel, rawAt: ramBase, ram: ram, what: "kernel", into: &chunks)
        }
        let fdt = VirtBoard.deviceTree(harts: config.harts, memoryBytes: config.memoryBytes, bootargs: config.bootargs)
        deviceTreeAddress = VirtBoard.deviceTreeAddress(memoryBytes: config.memoryBytes, blobSize: fdt.count)
        guard deviceTreeAddress >= ram.lowerBound, deviceTreeAddress + UInt64(fdt.count) <= ram.upperBound else {
            throw MachineError("RAM of \(config.memoryBytes) bytes is too small for the device tree")
        }
        chunks.append(Chunk(address: deviceTreeAddress, bytes: fdt))
    }

    /// Loads an ELF at its addresses or a raw image at `rawAt`; returns the entry point.
    private static func load(_ path: String, rawAt address: UInt64, ram: Range<UInt64>, what: String,
                             into chunks: inout [Chunk]) throws -> UInt64 {
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
                return image.entry
            } catch {
                throw MachineError("\(what) '\(path)': \(error)")
            }
        }
        guard address >= ram.lowerBound, UInt64(bytes.count) <= ram.upperBound - address else {
            throw MachineError("\(what) '\(path)' (\(bytes.count) bytes) does not fit in RAM at 0x\(String(address, radix: 16)) (RAM ends at 0x\(String(ram.upperBound, radix: 16)))")
        }
        chunks.append(Chunk(address: address, bytes: bytes))
        return address
    }
}
