import Foundation
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
        // OpenSBI's SBI system reset stores halfwords (QEMU's device takes 2 to 4 bytes).
        finisher.write(offset: offset, size: 2, value: 0x7777)
        #expect(b.takeExit() == .reset)
        finisher.write(offset: offset, size: 2, value: 0xffff_5555)
        #expect(b.takeExit() == .pass)
        finisher.write(offset: offset, size: 1, value: 0x55)
        #expect(b.takeExit() == nil)
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
        // Hart 1 parked on a line: an idle node sleeps until hart 0's timer.
        #expect(b.nextDeadline(harts: harts, counting: { $0 == 0 }) == 900)
        #expect(b.nextDeadline(harts: harts, counting: { _ in false }) == nil)
    }

    @Test func disksWithoutASlotFillFromTheTopAndNamedSlotsAreKept() throws {
        func slots(_ wanted: [Int?]) throws -> [Int] {
            try VirtBoard.slotAssignment(wanted.enumerated().map { DiskConfig(path: "d\($0.offset)", slot: $0.element) })
        }
        #expect(try slots([nil]) == [7])
        #expect(try slots([nil, nil, nil]) == [7, 6, 5])
        #expect(try slots([0]) == [0])
        #expect(try slots([0, nil]) == [0, 7])
        #expect(try slots([nil, 7, nil]) == [6, 7, 5])  // order-independent, unlike QEMU's command line
        #expect(try slots([3, nil, nil, nil, nil, nil, nil, nil]) == [3, 7, 6, 5, 4, 2, 1, 0])
        #expect(throws: MachineError("disks 'd0' and 'd1' both want slot 2")) { try slots([2, 2]) }
        #expect(throws: MachineError("disk 'd0': slot 8 does not exist (0...7)")) { try slots([8]) }
        #expect(throws: MachineError("disk 'd0': slot -1 does not exist (0...7)")) { try slots([-1]) }
    }

    @Test func aDiskInSlotZeroAnswersAt0x10001000() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        try writeFile(dir.path("a.raw"), [UInt8](repeating: 0, count: 4096))
        try QCow2Image.create(path: dir.path("b.qcow2"), options: .init(size: 8192))
        let b = try board(io: true, config: MachineConfig(harts: 1, memoryBytes: 1 << 20, bios: .none, kernel: nil,
                                                        disks: [DiskConfig(path: dir.path("a.raw"), slot: 0),
                                                                DiskConfig(path: dir.path("b.qcow2"))], bootargs: nil))
        let ids = (0..<8).map { b.device(at: VirtBoard.virtioBase + 0x1000 * UInt64($0)).map { $0.0.read(offset: 8, size: 4) } }
        #expect(ids == [2, 0, 0, 0, 0, 0, 0, 2])
        #expect(b.device(at: VirtBoard.virtioBase)?.0.read(offset: 0x100, size: 8) == 8)
        #expect(b.device(at: VirtBoard.virtioBase + 0x7000)?.0.read(offset: 0x100, size: 8) == 16)
        #expect(b.disks.map { $0.image.format } == [.raw, .qcow2])
        b.closeDisks()
        // A disk that cannot be opened names itself; the ones opened before it are released.
        #expect(throws: MachineError.self) {
            try board(io: true, config: MachineConfig(harts: 1, memoryBytes: 1 << 20, bios: .none, kernel: nil,
                                                      disks: [DiskConfig(path: dir.path("a.raw")), DiskConfig(path: dir.path("none"))],
                                                      bootargs: nil))
        }
        _ = try RawDiskImage(path: dir.path("a.raw"), readOnly: false)
    }

    /// Devices that DMA hold the bus that holds them: a machine that goes away must
    /// break that cycle, or its RAM leaks and its disks stay open and locked (a second
    /// machine in the same process could not open them).
    @Test func aMachineThatGoesAwayReleasesItsBusAndDisks() throws {
        let guest = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("guests/build/mmio.elf").path
        try #require(FileManager.default.fileExists(atPath: guest), "run make -C guests")
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        try writeFile(dir.path("d.raw"), [UInt8](repeating: 0, count: 4096))
        weak var bus: SystemBus?
        weak var disk: VirtioBlock?
        do {
            let m = try Machine(config: MachineConfig(harts: 1, memoryBytes: 1 << 20, bios: .none, kernel: guest,
                                                      disks: [DiskConfig(path: dir.path("d.raw"))], bootargs: nil),
                                console: NullConsole())
            bus = m.bus
            disk = m.devices.disks.first
            #expect(disk != nil)
        }
        #expect(bus == nil && disk == nil)
        _ = try RawDiskImage(path: dir.path("d.raw"), readOnly: false)
    }
}

