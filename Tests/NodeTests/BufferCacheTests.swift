import Cluster
import Coherence
import Platform
import Protocol
import RISCV
import Testing
@testable import Node

/// The global buffer cache: the pure index, and two VMs of one node sharing a disk page
/// through it (mapped read-only, copied on the first write).
@Suite struct BufferCacheTests {
    typealias Sharer = BufferCacheIndex.Sharer
    let blockA = SharedBlock(device: 1, inode: 2, offset: 0)
    let blockB = SharedBlock(device: 1, inode: 2, offset: 4096)

    func share(_ i: inout BufferCacheIndex, _ b: SharedBlock, with s: Sharer) -> BufferCacheIndex.Share { i.share(b, with: s) }
    func release(_ i: inout BufferCacheIndex, _ f: UInt64, by s: Sharer) -> Bool { i.release(f, by: s) }
    func releaseAll(_ i: inout BufferCacheIndex, _ vm: UInt32) -> [UInt64] { i.releaseAll(vm: vm) }

    @Test func aBlockGetsOneFrameSharedByItsReadersAndFreedByTheLast() {
        var index = BufferCacheIndex(base: 0x10_0000, bytes: 2 * 4096)
        let r1 = share(&index, blockA, with: Sharer(vm: 1, guestPage: 0x8020_0000))
        #expect(r1 == .fill(frame: 0x10_0000))
        index.filled(blockA)
        let r2 = share(&index, blockA, with: Sharer(vm: 2, guestPage: 0x8030_0000))
        #expect(r2 == .hit(frame: 0x10_0000))
        #expect(index.framesInUse == 1 && index.mappings == 2 && index.hits == 1 && index.fills == 1)
        #expect(index.block(inFrame: 0x10_0000) == blockA)
        // The first reader lets go: still cached for the other.
        let r3 = release(&index, 0x10_0000, by: Sharer(vm: 1, guestPage: 0x8020_0000))
        #expect(!r3)
        #expect(index.framesInUse == 1 && index.mappings == 1)
        // A release by someone who does not share it changes nothing.
        let r4 = release(&index, 0x10_0000, by: Sharer(vm: 3, guestPage: 0x8020_0000))
        #expect(!r4)
        let r5 = release(&index, 0x10_0000, by: Sharer(vm: 2, guestPage: 0x8030_0000))
        #expect(r5)
        #expect(index.framesInUse == 0 && index.freeFrames == 2 && index.block(inFrame: 0x10_0000) == nil)
    }

    @Test func aFullCacheSharesNothingNewAndAnAbandonedFillFreesItsFrame() {
        var index = BufferCacheIndex(base: 0x10_0000, bytes: 4096)
        let r6 = share(&index, blockA, with: Sharer(vm: 1, guestPage: 0x8000_0000))
        #expect(r6 == .fill(frame: 0x10_0000))
        let r7 = share(&index, blockB, with: Sharer(vm: 1, guestPage: 0x8000_1000))
        #expect(r7 == .full)
        #expect(index.refusedFull == 1)
        index.abandon(blockA)
        #expect(index.framesInUse == 0 && index.freeFrames == 1)
        let r8 = share(&index, blockB, with: Sharer(vm: 1, guestPage: 0x8000_1000))
        #expect(r8 == .fill(frame: 0x10_0000))
    }

    @Test func aVMThatEndsReleasesEveryFrameItShared() {
        var index = BufferCacheIndex(base: 0x10_0000, bytes: 4 * 4096)
        for (i, block) in [blockA, blockB].enumerated() {
            _ = index.share(block, with: Sharer(vm: 1, guestPage: 0x8000_0000 + UInt64(i) * 4096))
            index.filled(block)
        }
        _ = index.share(blockA, with: Sharer(vm: 2, guestPage: 0x8000_0000))
        let r9 = releaseAll(&index, 1)
        #expect(r9 == [0x10_1000])  // blockB's frame; blockA's is still VM 2's
        #expect(index.framesInUse == 1 && index.mappings == 1)
        let r10 = releaseAll(&index, 2)
        #expect(r10 == [0x10_0000])
        #expect(index.framesInUse == 0 && index.freeFrames == 4)
    }

    // MARK: - Two VMs on one node

    static let base: UInt64 = 0x1_0000_0000
    static let cacheBase: UInt64 = base + (32 << 20)

    /// A 1-VCPU VM of 256 KiB all on node 0 (its VCPU, devices and frames).
    func vm(_ id: UInt32, agent: CoherenceAgent, cache: BufferCache?, frames: UInt64, vcpuNode: Int32 = 0, node: Int = 0) throws -> NodeVM {
        let placement = VMPlacement(
            vm: id, spec: "", vcpuNodes: [vcpuNode], deviceNode: 0, chunkPages: 64,
            chunks: [MemoryChunk(node: 0, frameBase: Self.base + frames)],
            nodes: [NodeAddress(nodeID: 0, listenAddress: "", memoryBase: Self.base, memoryBytes: 64 << 20)],
            epochNanos: 0, lineSize: 128)
        let config = MachineConfig(harts: 1, memoryBytes: 256 << 10, bios: .none, kernel: nil, disks: [], bootargs: nil)
        return try NodeVM(placement: placement, config: config, node: node, agent: agent, clock: ClusterClock(), bufferCache: cache)
    }

    func pattern(_ seed: UInt8) -> (UnsafeMutableRawBufferPointer) throws -> Void {
        { buffer in for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i) &+ seed } }
    }

    func load(_ vm: NodeVM, _ address: UInt64) -> UInt64 {
        var v: UInt64 = 0
        #expect(vm.load(address, size: 8, hart: 0, value: &v) == .ok)
        return v
    }

    @Test func twoVMsMapOneFrameAndAWriteCopiesItFirst() throws {
        let agent = try CoherenceAgent(node: 0, slices: [.init(node: 0, base: Self.base, size: 64 << 20)])
        let cache = BufferCache(base: Self.cacheBase, bytes: 16 * 4096)
        let a = try vm(1, agent: agent, cache: cache, frames: 0)
        let b = try vm(2, agent: agent, cache: cache, frames: 1 << 20)
        #expect(a.sharesBlocks && b.sharesBlocks)
        let page: UInt64 = 0x8001_0000
        var filled = 0
        #expect(a.shareBlock(blockA, at: page, fill: { filled += 1; try pattern(7)($0) }))
        #expect(b.shareBlock(blockA, at: page, fill: { filled += 1; try pattern(9)($0) }))
        #expect(filled == 1)  // read from the disk once
        #expect(a.sharedFrame(ofGuestPage: page) == Self.cacheBase && b.sharedFrame(ofGuestPage: page) == Self.cacheBase)
        #expect(cache.index.framesInUse == 1 && cache.index.mappings == 2)
        let expected = UInt64(7) | UInt64(8) << 8 | UInt64(9) << 16 | UInt64(10) << 24 | UInt64(11) << 32 | UInt64(12) << 40
            | UInt64(13) << 48 | UInt64(14) << 56
        #expect(load(a, page) == expected && load(b, page) == expected)
        // Hart fast paths: reads get the shared frame, never a writable pointer to it.
        #expect(a.directPage(page, for: .read) == agent.directPage(Self.cacheBase, write: false))
        // A's write: A gets its own copy, B still reads the disk's bytes.
        #expect(a.store(page + 8, size: 1, value: 0xff, hart: 0) == .ok)
        #expect(a.sharedFrame(ofGuestPage: page) == nil && b.sharedFrame(ofGuestPage: page) == Self.cacheBase)
        #expect(load(a, page + 8) & 0xff == 0xff && load(a, page) == expected)
        #expect(load(b, page + 8) & 0xff == 15)
        #expect(cache.copiesOnWrite == 1 && cache.index.mappings == 1)
        // The writable fast path copies too (B's last sharer: the frame is freed).
        #expect(b.directPage(page, for: .write) != nil)
        #expect(b.sharedFrame(ofGuestPage: page) == nil && cache.index.framesInUse == 0)
        #expect(load(b, page + 8) & 0xff == 15)
        #expect(a.guestPagesTouched == 1 && a.privateFramesTouched == 1)
    }

    @Test func anotherReadReplacesTheMappingAndAnEndingVMLetsGo() throws {
        let agent = try CoherenceAgent(node: 0, slices: [.init(node: 0, base: Self.base, size: 64 << 20)])
        let cache = BufferCache(base: Self.cacheBase, bytes: 16 * 4096)
        let a = try vm(1, agent: agent, cache: cache, frames: 0)
        let page: UInt64 = 0x8001_0000
        #expect(a.shareBlock(blockA, at: page, fill: pattern(1)))
        #expect(a.shareBlock(blockB, at: page, fill: pattern(2)))
        #expect(cache.index.framesInUse == 1 && cache.index.entries[blockB] != nil)
        #expect(load(a, page) & 0xff == 2)
        #expect(a.shareBlock(blockA, at: page + 4096, fill: pattern(1)))
        #expect(a.sharedPages == 2 && a.privateFramesTouched == 0)
        a.releaseSharedPages()
        #expect(cache.index.framesInUse == 0 && cache.index.freeFrames == 16)
        // A failed fill shares nothing and keeps no frame.
        struct Broken: Error {}
        #expect(!a.shareBlock(blockA, at: page, fill: { _ in throw Broken() }))
        #expect(cache.index.framesInUse == 0)
        // Unaligned pages do not qualify.
        #expect(!a.shareBlock(blockA, at: page + 8, fill: pattern(1)))
    }

    @Test func aMergedIdenticalPageIsReadFromTheCacheAndCopiedOnWrite() throws {
        let agent = try CoherenceAgent(node: 0, slices: [.init(node: 0, base: Self.base, size: 64 << 20)])
        let cache = BufferCache(base: Self.cacheBase, bytes: 16 * 4096)
        let a = try vm(1, agent: agent, cache: cache, frames: 0)
        let page: UInt64 = 0x8002_0000
        #expect(a.pageForContentScan(0x20) == nil)  // never used
        #expect(a.store(page + 16, size: 8, value: 0x1234, hart: 0) == .ok)
        guard let (gpa, own) = a.pageForContentScan(0x20) else { Issue.record("a used page is not offered"); return }
        #expect(gpa == page)
        // The scanner's merge: the cache frame gets the bytes, the page maps it.
        let key = SharedBlock(device: .max, inode: 42, offset: 0)
        guard case .fill(let f) = cache.index.share(key, with: .init(vm: 1, guestPage: page)), let bytes = agent.readPage(own) else {
            Issue.record("no frame"); return
        }
        #expect(bytes.withUnsafeBytes { agent.initialize($0, at: f) })
        cache.index.filled(key)
        a.mapShared(page, frame: f)
        #expect(a.sharedFrame(ofGuestPage: page) == f && a.pageForContentScan(0x20) == nil)
        #expect(load(a, page + 16) == 0x1234)
        #expect(a.store(page + 24, size: 8, value: 7, hart: 0) == .ok)
        #expect(a.sharedFrame(ofGuestPage: page) == nil && cache.index.framesInUse == 0)
        #expect(load(a, page + 16) == 0x1234 && load(a, page + 24) == 7)
    }

    @Test func aVMWithoutACacheOrDevicesHereSharesNothing() throws {
        let agent = try CoherenceAgent(node: 1, slices: [.init(node: 0, base: Self.base, size: 64 << 20),
                                                         .init(node: 1, base: Self.base + (64 << 20), size: 64 << 20)])
        let cache = BufferCache(base: Self.base + (64 << 20) + (32 << 20), bytes: 16 * 4096)
        // Node 1 runs the VCPU of a VM whose devices (and memory) are on node 0.
        let far = try vm(1, agent: agent, cache: cache, frames: 0, vcpuNode: 1, node: 1)
        #expect(!far.sharesBlocks)
        #expect(!far.shareBlock(blockA, at: 0x8001_0000, fill: pattern(1)))
        let local = try CoherenceAgent(node: 0, slices: [.init(node: 0, base: Self.base, size: 64 << 20)])
        let none = try vm(2, agent: local, cache: nil, frames: 1 << 20)
        #expect(!none.shareBlock(blockA, at: 0x8001_0000, fill: pattern(1)))
        #expect(cache.index.framesInUse == 0)
    }

    /// A VM whose VCPU runs on node 1 and whose devices and memory are on node 0: its disk
    /// reads on node 0 map cached frames; node 1 reads such a page from the cached frame
    /// through node 0's directory, and node 1's write has node 0 copy the page first.
    @Test func aVMSpanningNodesSharesPagesThatOtherNodesThenReadAndWriteCoherently() throws {
        let slices = [CoherenceAgent.Slice(node: 0, base: Self.base, size: 64 << 20),
                      CoherenceAgent.Slice(node: 1, base: Self.base + (64 << 20), size: 64 << 20)]
        let agents = try (0..<2).map { try CoherenceAgent(node: $0, slices: slices) }
        func drain() {
            var moved = true
            while moved {
                moved = false
                for (n, a) in agents.enumerated() {
                    let out = a.outgoing
                    a.outgoing.removeAll()
                    for (to, m) in out {
                        #expect(agents[to].receive(m, from: n), "rejected \(m.type)")
                        moved = true
                    }
                }
            }
        }
        func complete(_ access: () -> BusStatus) -> Bool {
            if access() == .ok { return true }
            drain()
            return access() == .ok
        }
        let cache = BufferCache(base: Self.cacheBase, bytes: 16 * 4096)
        let home = try vm(1, agent: agents[0], cache: cache, frames: 0, vcpuNode: 1, node: 0)
        let far = try vm(1, agent: agents[1], cache: nil, frames: 0, vcpuNode: 1, node: 1)
        agents[0].aliasWritten = { _ = home.aliasWritten($0) }
        #expect(home.sharesBlocks && !home.isWhollyLocal)
        let page: UInt64 = 0x8001_0000
        #expect(home.shareBlock(blockA, at: page, fill: pattern(7)))
        #expect(home.sharedFrame(ofGuestPage: page) == Self.cacheBase && agents[0].aliasCount == 1)
        let expected = (0..<8).reduce(UInt64(0)) { $0 | UInt64(7 + $1) << (8 * $1) }
        // Node 1 reads the block's bytes, served from the cached frame.
        var v: UInt64 = 0
        #expect(complete { far.load(page, size: 8, hart: 0, value: &v) } && v == expected)
        // Node 1 writes: node 0 copies the page into its own frame first, then grants.
        #expect(complete { far.store(page + 8, size: 8, value: 0xff, hart: 0) })
        #expect(home.sharedFrame(ofGuestPage: page) == nil && agents[0].aliasCount == 0)
        #expect(cache.index.framesInUse == 0 && cache.copiesOnWrite == 1)
        #expect(complete { far.load(page + 16, size: 8, hart: 0, value: &v) } && v == expected &+ 0x1010_1010_1010_1010)
        // Node 0's own view (its VM's DMA, say) sees node 1's write and the block's other bytes.
        #expect(complete { home.load(page + 8, size: 8, hart: 0, value: &v) } && v == 0xff)
        #expect(complete { home.load(page, size: 8, hart: 0, value: &v) } && v == expected)
        // A page node 1 holds a line of is not shared: node 1 would go on reading its copy.
        let held: UInt64 = 0x8002_0000
        #expect(complete { far.load(held, size: 8, hart: 0, value: &v) })
        #expect(!home.shareBlock(blockB, at: held, fill: pattern(9)))
        // The VM ends on node 0: its aliases go with its shared pages.
        #expect(home.shareBlock(blockB, at: 0x8003_0000, fill: pattern(9)) && agents[0].aliasCount == 1)
        home.releaseSharedPages()
        #expect(agents[0].aliasCount == 0 && cache.index.framesInUse == 0)
    }
}
