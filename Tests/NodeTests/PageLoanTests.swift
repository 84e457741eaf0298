import Cluster
import Coherence
import Platform
import Protocol
import RISCV
import Testing
@testable import Node

/// Pages of frames that move between VMs of one node by remapping: the pure index, and
/// two VMs of one node lending and mapping a page through their DMA views' calls.
@Suite struct PageLoanTests {
    typealias Sharer = PageLoanIndex.Sharer

    @Test func aLoanKeepsItsBorrowersUntilItEndsOrNobodyHoldsIt() {
        var index = PageLoanIndex()
        let lender = Sharer(vm: 1, guestPage: 0x8010_0000)
        #expect(!index.isLent(0x10_0000))
        index.lend(0x10_0000, by: lender)
        index.lend(0x10_0000, by: lender)  // a second frame carrying it: one loan
        let took2 = index.borrow(0x10_0000, by: Sharer(vm: 2, guestPage: 0x8020_0000))
        let took3 = index.borrow(0x10_0000, by: Sharer(vm: 3, guestPage: 0x8030_0000))
        let notLent = index.borrow(0x20_0000, by: Sharer(vm: 2, guestPage: 0x8021_0000))
        #expect(took2 && took3 && !notLent)
        #expect(index.mappings == 2)
        index.lend(0x30_0000, by: Sharer(vm: 1, guestPage: 0x8011_0000))
        // Settling ends only the loan nobody took.
        let idle = index.settle()
        #expect(idle == [Sharer(vm: 1, guestPage: 0x8011_0000)])
        #expect(index.isLent(0x10_0000) && !index.isLent(0x30_0000))
        index.giveBack(0x10_0000, by: Sharer(vm: 3, guestPage: 0x8030_0000))
        #expect(index.mappings == 1)
        // The lender writes: the borrowers left must copy.
        let mustCopy = index.end(0x10_0000)
        #expect(mustCopy == [Sharer(vm: 2, guestPage: 0x8020_0000)])
        let again = index.end(0x10_0000)
        #expect(index.loans.isEmpty && again.isEmpty)
        // An ending VM gives back what it borrowed.
        index.lend(0x40_0000, by: lender)
        _ = index.borrow(0x40_0000, by: Sharer(vm: 2, guestPage: 0x8020_0000))
        _ = index.borrow(0x40_0000, by: Sharer(vm: 3, guestPage: 0x8020_0000))
        index.giveBackAll(vm: 2)
        #expect(index.loans[0x40_0000]?.borrowers == [Sharer(vm: 3, guestPage: 0x8020_0000)])
    }

    // MARK: - Two VMs on one node

    static let base: UInt64 = 0x1_0000_0000

    /// A 1-VCPU VM of 256 KiB with a NIC on switch "lan", all on node 0 (or its VCPU elsewhere).
    func vm(_ id: UInt32, agent: CoherenceAgent, loans: PageLoans, frames: UInt64, vcpuNode: Int32 = 0) throws -> NodeVM {
        let placement = VMPlacement(
            vm: id, spec: "", vcpuNodes: [vcpuNode], deviceNode: 0, chunkPages: 64,
            chunks: [MemoryChunk(node: 0, frameBase: Self.base + frames)],
            nodes: [NodeAddress(nodeID: 0, listenAddress: "", memoryBase: Self.base, memoryBytes: 64 << 20)],
            epochNanos: 0, lineSize: 128)
        let config = MachineConfig(harts: 1, memoryBytes: 256 << 10, bios: .none, kernel: nil, disks: [],
                                   nics: [NICConfig(backend: .switch("lan"))], bootargs: nil)
        return try NodeVM(placement: placement, config: config, node: 0, agent: agent, clock: ClusterClock(), loans: loans)
    }

    func load(_ vm: NodeVM, _ address: UInt64) -> UInt64 {
        var v: UInt64 = 0
        #expect(vm.load(address, size: 8, hart: 0, value: &v) == .ok)
        return v
    }

    func setUp() throws -> (CoherenceAgent, PageLoans, NodeVM, NodeVM) {
        let agent = try CoherenceAgent(node: 0, slices: [.init(node: 0, base: Self.base, size: 64 << 20)])
        let loans = PageLoans()
        let a = try vm(1, agent: agent, loans: loans, frames: 0)
        let b = try vm(2, agent: agent, loans: loans, frames: 1 << 20)
        let vms = [UInt32(1): a, 2: b]
        loans.vm = { vms[$0] }
        return (agent, loans, a, b)
    }

    @Test func aMappedPageSeesTheSentBytesThroughEveryLaterWriteOfEitherSide() throws {
        let (agent, loans, a, b) = try setUp()
        let page: UInt64 = 0x8001_0000, into: UInt64 = 0x8002_0000
        #expect(a.store(page, size: 8, value: 0x1111, hart: 0) == .ok)
        #expect(b.store(into, size: 8, value: 0x2222, hart: 0) == .ok)
        let token = try #require(a.lendPage(at: page, nic: 0))
        #expect(token == a.frame(ofGuestPage: page))
        #expect(a.lendPage(at: page + 8, nic: 0) == nil)  // whole pages only
        #expect(b.mapLentPage(token, at: into))
        #expect(b.sharedFrame(ofGuestPage: into) == token && load(b, into) == 0x1111)
        // The borrower's fast path is the lender's frame, read-only; the lender has no writable one.
        #expect(b.directPage(into, for: .read) == agent.directPage(token, write: false))
        // The lender writes: the borrower copies first and keeps the sent bytes.
        #expect(a.store(page, size: 8, value: 0x3333, hart: 0) == .ok)
        #expect(load(a, page) == 0x3333 && load(b, into) == 0x1111)
        #expect(b.sharedFrame(ofGuestPage: into) == nil && loans.index.loans.isEmpty && loans.copiesOnWrite == 1)
        // Lent again and mapped; this time the borrower writes: only it changes.
        let again = try #require(a.lendPage(at: page, nic: 0))
        #expect(b.mapLentPage(again, at: into))
        #expect(b.directPage(into, for: .write) != nil)  // a writable fast path copies first
        #expect(b.store(into, size: 8, value: 0x4444, hart: 0) == .ok)
        #expect(load(a, page) == 0x3333 && load(b, into) == 0x4444)
        #expect(loans.copiesOnWrite == 2 && loans.index.mappings == 0)
        // Nobody holds the loan now: settling gives the lender its page back.
        loans.settle()
        #expect(a.lentPages == 0 && loans.index.loans.isEmpty)
        #expect(loans.pagesLent == 2 && loans.pagesRemapped == 2)
    }

    @Test func aLenderThatEndsMakesItsBorrowersCopyAndABorrowerThatEndsGivesBack() throws {
        let (_, loans, a, b) = try setUp()
        let page: UInt64 = 0x8001_0000
        #expect(a.store(page + 16, size: 8, value: 0xabcd, hart: 0) == .ok)
        let token = try #require(a.lendPage(at: page, nic: 0))
        #expect(b.mapLentPage(token, at: 0x8003_0000) && b.mapLentPage(token, at: 0x8003_2000))
        #expect(loans.index.mappings == 2)
        a.releaseSharedPages()  // A ends
        #expect(load(b, 0x8003_0010) == 0xabcd && load(b, 0x8003_2010) == 0xabcd)
        #expect(b.sharedFrame(ofGuestPage: 0x8003_0000) == nil && loans.index.loans.isEmpty)
        // B borrows from a new loan and ends: the loan has no borrower left.
        let t2 = try #require(a.lendPage(at: page, nic: 0))
        #expect(b.mapLentPage(t2, at: 0x8003_0000))
        b.releaseSharedPages()
        #expect(loans.index.mappings == 0)
    }

    @Test func pagesThatCannotTakePartAreCopied() throws {
        let (agent, loans, a, _) = try setUp()
        // A VM whose VCPU is on another node may not map a lent frame: other nodes would read its own.
        let away = try vm(3, agent: agent, loans: loans, frames: 2 << 20, vcpuNode: 1)
        #expect(!away.isWhollyLocal)
        let token = try #require(a.lendPage(at: 0x8001_0000, nic: 0))
        #expect(!away.mapLentPage(token, at: 0x8001_0000))
        #expect(away.lendPage(at: 0x8001_0000, nic: 0) == nil)
        // A page cannot map its own frame, nor a frame nobody lent.
        #expect(!a.mapLentPage(token, at: 0x8001_0000))
        #expect(!a.mapLentPage(Self.base + (3 << 20), at: 0x8002_0000))
        // A page frozen for a move is not lent.
        a.freeze(0x8005_0000)
        #expect(a.lendPage(at: 0x8005_0000, nic: 0) == nil)
    }
}
