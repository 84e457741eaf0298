import Testing
@testable import Platform
@testable import RISCV

/// The one wiring of the virt board's devices that `Machine` and cluster nodes share.
@Suite struct BoardDevicesTests {
    final class NullConsole: ConsoleSink { func write(_ bytes: UnsafeRawBufferPointer) {} }

    func config(harts: Int = 2, disks: Int = 0) -> MachineConfig {
        MachineConfig(harts: harts, memoryBytes: 1 << 20, bios: .none, kernel: nil,
                      disks: (0..<disks).map { _ in DiskConfig(path: "/nonexistent") }, bootargs: nil)
    }

    func board(io: Bool, config: MachineConfig? = nil, sink: RecordingSink = RecordingSink()) throws -> BoardDevices {
        let bus = try SystemBus(ramSize: 1 << 20, clock: { 0 })
        return try BoardDevices(config: config ?? self.config(), io: io, clock: { 0 }, clintSink: sink, plicSink: sink,
                                console: NullConsole(), dma: bus)
    }

    @Test func theDeviceNodeHasTheWholeVirtMapAndAnotherNodeOnlyTheCLINT() throws {
        let whole = try board(io: true)
        #expect(whole.regions.map(\.base) == [VirtBoard.testDevice, VirtBoard.clint, VirtBoard.plic, VirtBoard.uart]
                + (0..<8).map { VirtBoard.virtioBase + UInt64($0) * VirtBoard.virtioStride })
        #expect(whole.device(at: VirtBoard.uart + 5).map { $0.1 } == 5)
        #expect(whole.device(at: VirtBoard.plic + VirtBoard.plicSize) == nil)
        let cpuOnly = try board(io: false)
        #expect(cpuOnly.regions.map(\.base) == [VirtBoard.clint])
        #expect(cpuOnly.uart == nil && cpuOnly.takeExit() == nil)
    }

    @Test func theFinisherEndsTheGuestOnceForEachWrite() throws {
        let b = try board(io: true)
        let (finisher, offset) = try #require(b.device(at: VirtBoard.testDevice))
        finisher.write(offset: offset, size: 4, value: (7 << 16) | 0x3333)
        #expect(b.takeExit() == .fail(7))
        #expect(b.takeExit() == nil)
        finisher.write(offset: offset, size: 4, value: 0x5555)
        #expect(b.takeExit() == .pass)
    }

    @Test func limitsAreCheckedForEveryCaller() {
        #expect(throws: MachineError("harts must be 1...64, not 65")) { try board(io: false, config: config(harts: 65)) }
        #expect(throws: MachineError("at most 8 disks, not 9")) { try board(io: true, config: config(disks: 9)) }
    }

    @Test func theIdleDeadlineIsTheEarliestTimer() throws {
        let sink = RecordingSink()
        let b = try board(io: false, sink: sink)
        let memory = try SystemBus(ramSize: 1 << 20, clock: { 0 })
        let harts = [Hart(id: 0, memory: memory), Hart(id: 1, memory: memory)]
        let (clint, base) = try #require(b.device(at: VirtBoard.clint))
        clint.write(offset: base + 0x4000, size: 8, value: 900)       // hart 0's mtimecmp (resets to 0)
        clint.write(offset: base + 0x4000 + 8, size: 8, value: 500)   // hart 1's
        #expect(b.nextDeadline(harts: harts) == 500)
    }
}
