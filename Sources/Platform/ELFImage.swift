/// A parsed RISC-V ELF64 executable: its entry point and the segments to load.
///
/// Parsing is pure and total: every malformed input (truncated header, bad magic,
/// wrong class, endianness or machine, segment table or segment bytes outside the
/// file, overflowing addresses) is an `ELFError`, never a trap.
public struct ELFImage: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        /// Physical load address (p_paddr, as QEMU loads it).
        public var address: UInt64
        /// The bytes from the file (p_filesz of them).
        public var fileOffset: Int
        public var fileSize: Int
        /// Bytes in memory (p_memsz ≥ p_filesz; the rest is zero).
        public var memorySize: UInt64
    }

    public var entry: UInt64
    public var segments: [Segment]

    static let machineRISCV: UInt16 = 243
    static let typeLoad: UInt32 = 1
    static let maxSegments = 256

    /// True if `bytes` start with the ELF magic (so a loader can fall back to raw).
    public static func looksLikeELF(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x7f && bytes[1] == 0x45 && bytes[2] == 0x4c && bytes[3] == 0x46
    }

    public init(parsing bytes: [UInt8]) throws(ELFError) {
        guard bytes.count >= 64 else { throw .truncated("the header needs 64 bytes, the file has \(bytes.count)") }
        guard Self.looksLikeELF(bytes) else { throw .notELF }
        guard bytes[4] == 2 else { throw .unsupported("not a 64-bit ELF (class \(bytes[4]))") }
        guard bytes[5] == 1 else { throw .unsupported("not little-endian (data \(bytes[5]))") }
        let reader = Reader(bytes: bytes)
        let type = reader.u16(16), machine = reader.u16(18)
        guard machine == Self.machineRISCV else { throw .unsupported("machine \(machine) is not RISC-V (243)") }
        guard type == 2 || type == 3 else { throw .unsupported("ELF type \(type) is not an executable") }
        entry = reader.u64(24)
        let phoff = reader.u64(32)
        let phentsize = Int(reader.u16(54)), phnum = Int(reader.u16(56))
        guard phnum > 0 else { throw .malformed("no program headers") }
        guard phnum <= Self.maxSegments else { throw .malformed("\(phnum) program headers is too many") }
        guard phentsize >= 56 else { throw .malformed("program header size \(phentsize) is too small") }
        guard phoff < UInt64(bytes.count), UInt64(bytes.count) - phoff >= UInt64(phnum * phentsize) else {
            throw .truncated("the program headers lie outside the file")
        }
        segments = []
        for i in 0..<phnum {
            let at = Int(phoff) + i * phentsize
            guard reader.u32(at) == Self.typeLoad else { continue }
            let offset = reader.u64(at + 8), paddr = reader.u64(at + 24)
            let filesz = reader.u64(at + 32), memsz = reader.u64(at + 40)
            guard filesz <= memsz else { throw .malformed("segment \(i) has more file bytes than memory bytes") }
            guard offset <= UInt64(bytes.count), filesz <= UInt64(bytes.count) - offset else {
                throw .truncated("segment \(i) lies outside the file")
            }
            guard paddr.addingReportingOverflow(memsz).overflow == false else {
                throw .malformed("segment \(i) wraps around the address space")
            }
            if memsz == 0 { continue }
            segments.append(Segment(address: paddr, fileOffset: Int(offset), fileSize: Int(filesz), memorySize: memsz))
        }
        guard !segments.isEmpty else { throw .malformed("no loadable segments") }
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.address + a.memorySize > b.address {
            throw .malformed("segments at 0x\(String(a.address, radix: 16)) and 0x\(String(b.address, radix: 16)) overlap")
        }
    }

    /// The lowest and one-past-highest addresses the segments occupy.
    public var extent: Range<UInt64> {
        let low = segments.map(\.address).min()!
        let high = segments.map { $0.address + $0.memorySize }.max()!
        return low..<high
    }

    /// Checks that every segment lies inside `region` (guest RAM).
    public func check(fitsIn region: Range<UInt64>) throws(ELFError) {
        for s in segments where s.address < region.lowerBound || s.address + s.memorySize > region.upperBound {
            throw .outsideMemory(address: s.address, size: s.memorySize)
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
    }
}

/// Why an ELF file cannot be loaded, in words a user can act on.
public enum ELFError: Error, Equatable, Sendable, CustomStringConvertible {
    case notELF
    case truncated(String)
    case unsupported(String)
    case malformed(String)
    case outsideMemory(address: UInt64, size: UInt64)

    public var description: String {
        switch self {
        case .notELF: return "not an ELF file"
        case .truncated(let why): return "truncated ELF: \(why)"
        case .unsupported(let why): return "unsupported ELF: \(why)"
        case .malformed(let why): return "malformed ELF: \(why)"
        case .outsideMemory(let address, let size):
            return "ELF segment at 0x\(String(address, radix: 16)) (\(size) bytes) lies outside guest RAM"
        }
    }
}
