// Address translation (Sv39), the software TLB, and loads/stores/fetches.

/// One cached translation: virtual page → guest-physical page, with a host pointer
/// when the memory handed the page out for direct access and the page's block map:
/// for instruction fetches from such a page, the map the cursor uses; for stores, the
/// mark that the page holds blocks, which keeps stores to it off the fast path
/// (Hart+Blocks.swift).
struct TLBEntry {
    var tag: UInt64 = .max
    var physicalPage: UInt64 = .max
    var host: UnsafeMutableRawPointer? = nil
    var decoded: BlockMap? = nil
}

/// The loads' and stores' fast-path copy (Threaded.swift) of a read or write TLB entry
/// whose page the hart may access directly (for writes: a page without blocks): the
/// page's virtual address and the distance from it to the host bytes. Any other entry
/// has the tag `.max`.
///
/// A load or store compares its address, masked to the page and to the bits that must
/// be zero for natural alignment, with the tag: one compare finds a hit that neither
/// crosses the page nor is misaligned (those go out of line).
struct FastTLBEntry {
    var tag: UInt64 = .max
    var addend: UInt = 0
}

extension Hart {
    static let tlbSize = 256

    /// Drops every cached translation (on satp, sfence.vma, privilege or mstatus changes),
    /// the code cursor included.
    func flushTLB() {
        for i in 0..<(3 * Self.tlbSize) { tlb[i].tag = .max }
        for i in 0..<(2 * Self.tlbSize) { fastTLB[i].tag = .max }
        invalidateCodeCursor()
    }

    /// Privilege used for loads and stores (MPRV lets M-mode use MPP's).
    @inline(__always) var dataPrivilege: PrivilegeMode {
        privilege == .machine && mstatus & Self.mstatusMPRV != 0
            ? PrivilegeMode(rawValue: UInt8((mstatus & Self.mstatusMPP) >> Self.mstatusMPPShift)) ?? .user
            : privilege
    }

    @inline(__always) func entry(_ vaddr: UInt64, _ kind: AccessType) throws(Trap) -> TLBEntry {
        let vpn = vaddr >> 12
        let slot = Int(kind.rawValue) &* Self.tlbSize &+ Int(truncatingIfNeeded: vpn & UInt64(Self.tlbSize - 1))
        let e = tlb[slot]
        if e.tag == vpn { return e }
        return try refill(slot, vaddr, kind)
    }

    @inline(never)
    func refill(_ slot: Int, _ vaddr: UInt64, _ kind: AccessType) throws(Trap) -> TLBEntry {
        let page = try translate(vaddr, kind)
        let host = memory.directPage(page, for: kind)
        let decoded: BlockMap?
        switch kind {
        case .execute: decoded = host != nil ? blockMap(page) : nil
        case .write: decoded = decodedPages[page]
        case .read: decoded = nil
        }
        let fresh = TLBEntry(tag: vaddr >> 12, physicalPage: page, host: host, decoded: decoded)
        tlb[slot] = fresh
        if kind != .execute {
            let pageAddress = vaddr & ~0xfff
            if let host, decoded == nil {
                fastTLB[slot] = FastTLBEntry(tag: pageAddress, addend: UInt(bitPattern: host) &- UInt(pageAddress))
            } else {
                fastTLB[slot] = FastTLBEntry()
            }
        }
        return fresh
    }

    /// The guest-physical page holding `vaddr` for an access of `kind`, walking Sv39
    /// page tables when translation applies.
    func translate(_ vaddr: UInt64, _ kind: AccessType) throws(Trap) -> UInt64 {
        let priv = kind == .execute ? privilege : dataPrivilege
        guard priv != .machine, satp >> 60 == 8 else { return vaddr & ~0xfff }
        let pageFault = Trap(cause: kind == .execute ? Trap.instructionPage : kind == .read ? Trap.loadPage : Trap.storePage,
                             value: vaddr)
        let accessFault = Trap(cause: kind == .execute ? Trap.instructionAccess : kind == .read ? Trap.loadAccess : Trap.storeAccess,
                               value: vaddr)
        guard UInt64(bitPattern: Int64(bitPattern: vaddr << 25) >> 25) == vaddr else { throw pageFault }
        let ppnMask: UInt64 = (1 << 44) - 1
        var table = (satp & ppnMask) << 12
        var level = 2
        while true {
            let vpn = (vaddr >> UInt64(12 + 9 * level)) & 0x1ff
            let pteAddress = table &+ vpn &* 8
            var pte: UInt64 = 0
            switch memory.load(pteAddress, size: 8, hart: id, value: &pte) {
            case .ok: break
            case .accessFault: throw accessFault
            case .retry: throw Trap(cause: Trap.park, value: 0)
            }
            let v = pte & 1 != 0, r = pte & 2 != 0, w = pte & 4 != 0, x = pte & 8 != 0, u = pte & 16 != 0
            guard v, !(w && !r), pte >> 54 == 0 else { throw pageFault }
            if r || x {
                // Leaf: permissions.
                if priv == .user && !u { throw pageFault }
                if priv == .supervisor && u && (kind == .execute || mstatus & Self.mstatusSUM == 0) { throw pageFault }
                switch kind {
                case .read: if !(r || (x && mstatus & Self.mstatusMXR != 0)) { throw pageFault }
                case .write: if !w { throw pageFault }
                case .execute: if !x { throw pageFault }
                }
                let ppn = (pte >> 10) & ppnMask
                let lowMask: UInt64 = (1 << UInt64(9 * level)) - 1
                if ppn & lowMask != 0 { throw pageFault }  // misaligned superpage
                // Hardware A/D updates.
                let need: UInt64 = kind == .write ? 0xc0 : 0x40
                if pte & need != need {
                    // A write to memory: only a page table on a page holding blocks
                    // (page tables rarely share a page with code) changes any of them.
                    if decodedPages[pteAddress & ~0xfff] != nil { codeEpoch &+= 1 }
                    var old: UInt64 = 0
                    switch memory.atomic(.or, pteAddress, size: 8, operand: need, expected: 0, hart: id, old: &old) {
                    case .ok: break
                    case .accessFault: throw accessFault
                    case .retry: throw Trap(cause: Trap.park, value: 0)
                    }
                }
                return ((ppn | ((vaddr >> 12) & lowMask)) << 12)
            }
            guard level > 0 else { throw pageFault }
            level -= 1
            table = ((pte >> 10) & ppnMask) << 12
        }
    }

    // MARK: - Data access

    /// The host address of a naturally aligned `size`-byte access at `vaddr` if the
    /// TLB maps its page directly for `kind` (for stores: a page without blocks): the
    /// loads' and stores' fast path (the handlers in Threaded.swift do the same).
    @inline(__always) func directAddress(_ vaddr: UInt64, _ size: Int, _ kind: AccessType) -> UnsafeMutableRawPointer? {
        let e = fastTLB + (Int(kind.rawValue) &* Self.tlbSize &+ Int(truncatingIfNeeded: (vaddr &>> 12) & UInt64(Self.tlbSize - 1)))
        guard e.pointee.tag == vaddr & (~0xfff | UInt64(size &- 1)) else { return nil }
        return UnsafeMutableRawPointer(bitPattern: e.pointee.addend &+ UInt(vaddr)).unsafelyUnwrapped
    }

    /// A little-endian load of `size` bytes (1, 2, 4, 8) from host memory, any alignment.
    @inline(__always) static func hostLoad(_ p: UnsafeMutableRawPointer, _ size: Int) -> UInt64 {
        switch size {
        case 1: return UInt64(p.load(as: UInt8.self))
        case 2: return UInt64(p.loadUnaligned(as: UInt16.self))
        case 4: return UInt64(p.loadUnaligned(as: UInt32.self))
        default: return p.loadUnaligned(as: UInt64.self)
        }
    }

    /// A store of the low `size` bytes of `value` to host memory, any alignment.
    @inline(__always) static func hostStore(_ p: UnsafeMutableRawPointer, _ size: Int, _ value: UInt64) {
        switch size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value), toByteOffset: 0, as: UInt16.self)
        case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value), toByteOffset: 0, as: UInt32.self)
        default: p.storeBytes(of: value, toByteOffset: 0, as: UInt64.self)
        }
    }

    @inline(__always) func load(_ vaddr: UInt64, _ size: Int) throws(Trap) -> UInt64 {
        if let p = directAddress(vaddr, size, .read) { return Self.hostLoad(p, size) }
        return try loadSlowly(vaddr, size)
    }

    /// A load that misses the TLB, crosses a page or reaches a page without direct access.
    @inline(never)
    func loadSlowly(_ vaddr: UInt64, _ size: Int) throws(Trap) -> UInt64 {
        let offset = Int(vaddr & 0xfff)
        if offset &+ size > 4096 {
            var v: UInt64 = 0
            for i in 0..<size { v |= try loadSlowly(vaddr &+ UInt64(i), 1) << UInt64(8 * i) }
            return v
        }
        let e = try entry(vaddr, .read)
        if let host = e.host { return Self.hostLoad(host + offset, size) }
        let paddr = e.physicalPage | UInt64(offset)
        if vaddr & UInt64(size - 1) != 0 {  // misaligned device access: bytewise
            var v: UInt64 = 0
            for i in 0..<size { v |= try busLoad(paddr &+ UInt64(i), 1, vaddr) << UInt64(8 * i) }
            return v
        }
        return try busLoad(paddr, size, vaddr)
    }

    @inline(__always) func busLoad(_ paddr: UInt64, _ size: Int, _ vaddr: UInt64) throws(Trap) -> UInt64 {
        var v: UInt64 = 0
        switch memory.load(paddr, size: size, hart: id, value: &v) {
        case .ok: return v
        case .accessFault: throw Trap(cause: Trap.loadAccess, value: vaddr)
        case .retry: throw Trap(cause: Trap.park, value: 0)
        }
    }

    /// A store that misses the TLB, crosses a page or reaches a page without direct access.
    @inline(never)
    func storeSlowly(_ vaddr: UInt64, _ size: Int, _ value: UInt64) throws(Trap) {
        let offset = Int(vaddr & 0xfff)
        if offset &+ size > 4096 {
            // Translate both pages first so a fault leaves memory untouched.
            _ = try entry(vaddr, .write)
            _ = try entry(vaddr &+ UInt64(size - 1), .write)
            for i in 0..<size { try storeSlowly(vaddr &+ UInt64(i), 1, value >> UInt64(8 * i)) }
            return
        }
        let e = try entry(vaddr, .write)
        // A store may write code: to a page holding blocks (such a page never takes the
        // fast path), or through a device (a device's DMA happens inside an MMIO write).
        // A store to RAM without blocks — directly mapped or not (a remote line) —
        // changes none of this hart's blocks, and other writers are covered by the
        // epoch each `run` starts.
        if mayWriteCode(e) { codeEpoch &+= 1 }
        if let host = e.host {
            Self.hostStore(host + offset, size, value)
            return
        }
        let paddr = e.physicalPage | UInt64(offset)
        if vaddr & UInt64(size - 1) != 0 {
            for i in 0..<size { try busStore(paddr &+ UInt64(i), 1, value >> UInt64(8 * i), vaddr) }
            return
        }
        try busStore(paddr, size, value, vaddr)
    }

    /// Whether a write through `e` may change decoded code: its page holds blocks, or
    /// it goes out of line to a device (whose DMA may write anything).
    @inline(__always) func mayWriteCode(_ e: TLBEntry) -> Bool {
        e.decoded != nil || (e.host == nil && memory.isDevicePage(e.physicalPage))
    }

    @inline(__always) func busStore(_ paddr: UInt64, _ size: Int, _ value: UInt64, _ vaddr: UInt64) throws(Trap) {
        switch memory.store(paddr, size: size, value: value, hart: id) {
        case .ok: return
        case .accessFault: throw Trap(cause: Trap.storeAccess, value: vaddr)
        case .retry: throw Trap(cause: Trap.park, value: 0)
        }
    }

    /// An atomic read-modify-write at a naturally aligned address; returns the old value.
    func amo(_ op: AtomicOp, _ vaddr: UInt64, _ size: Int, _ operand: UInt64, expected: UInt64 = 0) throws(Trap) -> UInt64 {
        guard vaddr & UInt64(size - 1) == 0 else { throw Trap(cause: Trap.storeMisaligned, value: vaddr) }
        let e = try entry(vaddr, .write)
        if mayWriteCode(e) { codeEpoch &+= 1 }
        var old: UInt64 = 0
        switch memory.atomic(op, e.physicalPage | (vaddr & 0xfff), size: size, operand: operand, expected: expected,
                             hart: id, old: &old) {
        case .ok: return old
        case .accessFault: throw Trap(cause: Trap.storeAccess, value: vaddr)
        case .retry: throw Trap(cause: Trap.park, value: 0)
        }
    }

    // MARK: - Fetch

    /// The instruction at pc: 32 bits, or a compressed one in the low 16 bits.
    @inline(__always) func fetch() throws(Trap) -> UInt32 {
        // Fast path: both parcels in one directly accessible page, one TLB lookup.
        let offset = Int(pc & 0xfff)
        if offset <= 4092 {
            let e = try entry(pc, .execute)
            if let host = e.host {
                let word = host.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                return word & 3 == 3 ? word : word & 0xffff
            }
        }
        let low = try fetch16(pc)
        if low & 3 != 3 { return UInt32(low) }
        let high = try fetch16(pc &+ 2)
        return UInt32(low) | UInt32(high) << 16
    }

    @inline(__always) func fetch16(_ vaddr: UInt64) throws(Trap) -> UInt16 {
        let e = try entry(vaddr, .execute)
        if let host = e.host { return host.loadUnaligned(fromByteOffset: Int(vaddr & 0xfff), as: UInt16.self) }
        var v: UInt64 = 0
        switch memory.load(e.physicalPage | (vaddr & 0xfff), size: 2, hart: id, value: &v) {
        case .ok: return UInt16(truncatingIfNeeded: v)
        case .accessFault: throw Trap(cause: Trap.instructionAccess, value: vaddr)
        case .retry: throw Trap(cause: Trap.park, value: 0)
        }
    }
}
