import Cluster
import Coherence
import Platform
import Protocol
import RISCV
import Testing
@testable import Node

/// A VM's part on one node, without a network: its MMIO forwarding and the guest
/// memory map built from a placement's chunks.
@Suite struct NodeVMTests {
    static let base0: UInt64 = 0x1_0000_0000
    static let base1: UInt64 = 0x1_4000_0000

    /// Node 1's part of a 2-VCPU VM whose devices live on node 0; VCPU 1 runs here.
    func vm(_ id: UInt32, agent: CoherenceAgent, frames: UInt64) throws -> NodeVM {
        let memory: UInt64 = 256 << 10
        var chunks: [MemoryChunk] = []
        for i in 0..<4 {
            let base: UInt64 = i % 2 == 0 ? Self.base0 : Self.base1
            chunks.append(MemoryChunk(node: Int32(i % 2), frameBase: base + frames + (UInt64(i / 2) << 16)))
        }
        let placement = VMPlacement(
            vm: id, spec: "", vcpuNodes: [0, 1], deviceNode: 0, chunkPages: 16, chunks: chunks,
            nodes: [NodeAddress(nodeID: 0, listenAddress: "", memoryBase: Self.base0, memoryBytes: 64 << 20),
                    NodeAddress(nodeID: 1, listenAddress: "", memoryBase: Self.base1, memoryBytes: 64 << 20)],
            epochNanos: 0, lineSize: 128)
        let config = MachineConfig(harts: 2, memoryBytes: memory, bios: .none, kernel: nil, disks: [], bootargs: nil)
        return try NodeVM(placement: placement, config: config, node: 1, agent: agent, clock: ClusterClock())
    }

    func agent() throws -> CoherenceAgent {
        try CoherenceAgent(node: 1, slices: [.init(node: 0, base: Self.base0, size: 64 << 20),
                                             .init(node: 1, base: Self.base1, size: 64 << 20)])
    }

    /// VCPU 1 leaves node 1 with its registers and CLINT registers; its CLINT accesses
    /// go to its new node at once; interrupts routed back here before it returns are kept
    /// for it; it comes back with all of it.
    @Test func aVCPULeavesWithItsStateAndComesBackToItsKeptInterrupts() throws {
        let agent = try agent()
        let a = try vm(1, agent: agent, frames: 0)
        var value: UInt64 = 0
        let h = try #require(a.hart(1))
        h.pc = 0x8000_0040
        h[register: 5] = 0x1234
        h[floatRegister: 7] = 0x4000_0000_0000_0000
        #expect(a.store(VirtBoard.clint + 4, size: 4, value: 1, hart: 1) == .ok)           // msip of hart 1
        #expect(a.store(VirtBoard.clint + 0x4008, size: 8, value: 777, hart: 1) == .ok)    // its mtimecmp
        #expect(a.outgoing.isEmpty)  // both local: hart 1's CLINT registers live with it
        #expect(a.busyReason(1) == nil && a.busyReason(0) == "VCPU 0 is not on node 1")
        let st = try #require(a.detach(1, to: 0))
        #expect(st.vcpu == 1 && st.pc == 0x8000_0040 && st.registers[5] == 0x1234 && st.floatRegisters[7] == 0x4000_0000_0000_0000)
        #expect(st.msip && st.mtimecmp == 777 && st.csrs.contains { $0.number == 0x344 && $0.value & 8 != 0 })
        #expect(a.hart(1) == nil && a.harts.isEmpty && a.vcpuNodes == [0, 0])
        #expect(a.detach(1, to: 0) == nil)
        // Its CLINT registers are node 0's now: a write to them is forwarded there.
        #expect(a.store(VirtBoard.clint + 4, size: 4, value: 0, hart: 0) == .ok)
        guard case (0, .mmioRequest(let r))? = a.outgoing.last.map({ ($0.to, $0.message) }) else { Issue.record("\(a.outgoing)"); return }
        #expect(r.address == VirtBoard.clint + 4 && r.isWrite)
        // An interrupt for it here is not this node's business until it is routed back.
        let seip = Message.interrupt(vm: 1, vcpu: 1, cause: 9, level: true)
        #expect(!a.receive(seip, from: 0))
        a.route(1, to: 1)
        #expect(a.receive(seip, from: 0))
        let back = try a.attach(st)
        #expect(back.id == 1 && a.hart(1) === back && a.vcpuNodes == [0, 1])
        #expect(back.pc == 0x8000_0040 && back[register: 5] == 0x1234 && back[floatRegister: 7] == 0x4000_0000_0000_0000)
        let mip = back.state.csrs.first { $0.number == 0x344 }!.value
        #expect(mip & (1 << 3) != 0 && mip & (1 << 9) != 0, "msip restored and the kept SEIP applied: \(mip)")
        #expect(a.load(VirtBoard.clint + 0x4008, size: 8, hart: 1, value: &value) == .ok && value == 777)
        #expect(throws: MachineError.self) { try a.attach(st) }
        // A VCPU with a device read in flight cannot leave.
        #expect(a.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .retry)
        #expect(a.busyReason(1) == "a device read is in flight" && a.detach(1, to: 0) == nil)
    }

    @Test func remoteMMIOAnswersReachOnlyTheVMAndVCPUThatAsked() throws {
        let agent = try agent()
        let a = try vm(1, agent: agent, frames: 0)
        let b = try vm(2, agent: agent, frames: 1 << 20)
        var value: UInt64 = 0
        // Both VMs' VCPU 1 read their UART's line status register (on node 0): the same
        // request id in each VM.
        #expect(a.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .retry)
        #expect(b.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .retry)
        guard case (0, .mmioRequest(let ra))? = a.outgoing.first.map({ ($0.to, $0.message) }),
              case (0, .mmioRequest(let rb))? = b.outgoing.first.map({ ($0.to, $0.message) }) else {
            Issue.record("no MMIO requests: \(a.outgoing) \(b.outgoing)"); return
        }
        #expect(ra.id == rb.id)
        // B's answer offered to A is refused; A keeps waiting.
        let forB = Message.mmioResponse(MMIOResponse(id: rb.id, vm: 2, vcpu: 1, status: .ok, value: 0x60))
        #expect(!a.receive(forB, from: 0))
        #expect(a.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .retry)
        #expect(b.receive(forB, from: 0))
        #expect(b.woken == [1])  // hart ids
        value = 0
        #expect(b.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .ok)
        #expect(value == 0x60)
        // An answer naming another VCPU, or an id nobody asked, is refused too.
        #expect(!a.receive(.mmioResponse(MMIOResponse(id: ra.id, vm: 1, vcpu: 0, status: .ok, value: 1)), from: 0))
        #expect(!a.receive(.mmioResponse(MMIOResponse(id: ra.id + 7, vm: 1, vcpu: 1, status: .ok, value: 1)), from: 0))
        #expect(a.receive(.mmioResponse(MMIOResponse(id: ra.id, vm: 1, vcpu: 1, status: .ok, value: 0x20)), from: 0))
        #expect(a.load(VirtBoard.uart + 5, size: 1, hart: 1, value: &value) == .ok && value == 0x20)
    }

    @Test func guestMemoryFollowsThePlacementsChunksBothWays() throws {
        let v = try vm(1, agent: try agent(), frames: 0)
        // 64 KiB chunks: 0 and 2 on node 0, 1 and 3 on node 1.
        #expect(v.machineAddress(0x8000_0000) == Self.base0)
        #expect(v.machineAddress(0x8001_0004) == Self.base1 + 4)
        #expect(v.machineAddress(0x8002_1000) == Self.base0 + 0x1_1000)
        #expect(v.machineAddress(0x8003_ffff) == Self.base1 + 0x1_ffff)
        #expect(v.machineAddress(0x8004_0000) == nil)   // past the 256 KiB of RAM
        for gpa in stride(from: UInt64(0x8000_0000), to: 0x8004_0000, by: 4096) {
            #expect(v.guestPage(ofMachinePage: v.machineAddress(gpa)!) == gpa)
        }
        #expect(v.guestPage(ofMachinePage: Self.base1 + 0x2_0000) == nil)
    }
}
