import RISCV

/// The devices of one VM on QEMU's virt board, wired in one place for the
/// single-process `Machine` and for a cluster node's part of a VM: the CLINT, and
/// where the VM's I/O lives also the PLIC, the UART (IRQ 10), the test finisher and the
/// eight virtio-mmio slots (IRQs 1..8, disks filling from the top as QEMU's
/// `-drive if=virtio` does). Who receives the interrupt lines, where console bytes go
/// and how DMA reaches memory are the caller's: a `Machine` has one bus, a node routes
/// lines and DMA across the cluster.
public final class BoardDevices {
    public struct Region {
        public var base: UInt64
        public var size: UInt64
        public var device: MMIODevice
    }

    public let clint: CLINT
    public let plic: PLIC?
    public let uart: UART16550?
    public let finisher: TestFinisher?
    /// Every device with its guest-physical window, lowest address first.
    public let regions: [Region]

    /// Checks `config` against the board's limits and builds its devices. `io`: build
    /// the VM's I/O devices here (a cluster node without them has only the CLINT of
    /// the VCPUs it runs). `clock` is mtime (10 MHz ticks). NIC i (addresses derived
    /// from `vm` where the config names none) sends its frames to `transmit(i, frame)`.
    public init(config: MachineConfig, io: Bool, clock: @escaping () -> UInt64,
                clintSink: InterruptSink, plicSink: InterruptSink, console: ConsoleSink, dma: DMAMemory,
                vm: UInt32 = 0, transmit: @escaping (_ nic: Int, _ frame: NetFrame) -> Void = { _, _ in }) throws {
        guard config.harts >= 1, config.harts <= 64 else { throw MachineError("harts must be 1...64, not \(config.harts)") }
        guard config.disks.count <= VirtBoard.virtioSlots else {
            throw MachineError("at most \(VirtBoard.virtioSlots) disks, not \(config.disks.count)")
        }
        guard config.disks.count + config.nics.count <= VirtBoard.virtioSlots else {
            throw MachineError("at most \(VirtBoard.virtioSlots) virtio devices, not \(config.disks.count) disks and \(config.nics.count) NICs")
        }
        clint = CLINT(harts: config.harts, sink: clintSink, clock: clock)
        var regions = [Region(base: VirtBoard.clint, size: VirtBoard.clintSize, device: clint)]
        if io {
            let plic = PLIC(harts: config.harts, sink: plicSink)
            let uart = UART16550(console: console, irq: { [unowned plic] in plic.setSourceLevel(Int(VirtBoard.uartIRQ), $0) })
            let finisher = TestFinisher()
            regions.append(Region(base: VirtBoard.testDevice, size: 0x1000, device: finisher))
            regions.append(Region(base: VirtBoard.plic, size: VirtBoard.plicSize, device: plic))
            regions.append(Region(base: VirtBoard.uart, size: 0x100, device: uart))
            let nics = config.nics.indices.map { (config: config.nics[$0], mac: config.mac(ofNIC: $0, vm: vm)) }
            for (base, device) in try VirtBoard.virtioSlots(disks: config.disks, nics: nics, dma: dma,
                                                            irq: { [unowned plic] in plic.setSourceLevel($0, $1) },
                                                            transmit: transmit) {
                regions.append(Region(base: base, size: VirtBoard.virtioStride, device: device))
            }
            self.plic = plic
            self.uart = uart
            self.finisher = finisher
        } else {
            plic = nil
            uart = nil
            finisher = nil
        }
        self.regions = regions.sorted { $0.base < $1.base }
    }

    /// The device answering `address` and the offset into its window.
    public func device(at address: UInt64) -> (MMIODevice, UInt64)? {
        for r in regions where address >= r.base && address - r.base < r.size { return (r.device, address - r.base) }
        return nil
    }

    /// Time-driven device state (timer lines, UART receive), once per scheduling turn.
    public func poll() {
        clint.updateTimers()
        uart?.poll()
    }

    /// The VM's disks, in slot order.
    public var disks: [VirtioBlock] { regions.compactMap { $0.device as? VirtioBlock } }

    /// The VM's NICs, in the config's order (NIC i is `nics[i]`).
    public private(set) lazy var nics: [VirtioNet] = {
        let all = regions.compactMap { $0.device as? VirtioNet }
        return all.sorted { $0.index < $1.index }
    }()

    /// Writes every disk's metadata back, syncs and closes it: when the VM ends (the
    /// process may exit without running deinitializers) or before a reset reopens them.
    public func closeDisks() {
        for disk in disks { disk.close() }
    }

    /// How the guest asked to end, if it wrote the finisher since the last call.
    public func takeExit() -> MachineExit? {
        switch finisher?.take() {
        case .pass?: return .pass
        case .fail(let code)?: return .fail(code)
        case .reset?: return .reset
        case nil: return nil
        }
    }

    /// The earliest mtime at which a timer of `harts` (the CLINT's mtimecmp or a hart's
    /// Sstc stimecmp) needs attention, if any: how long an idle VM may sleep.
    public func nextDeadline(harts: [Hart]) -> UInt64? { nextDeadline(harts: harts) { _ in true } }

    /// The same, counting only the harts (by id) that `counts` accepts.
    public func nextDeadline(harts: [Hart], counting counts: (Int) -> Bool) -> UInt64? {
        var d = clint.nextDeadline(counting: counts)
        for h in harts where counts(h.id) { if let s = h.supervisorTimerDeadline { d = min(d ?? .max, s) } }
        return d
    }
}

extension BootImage {
    /// Points `harts` at the entry as QEMU's virt board does: pc = entry, a0 = hart id,
    /// a1 = the device tree's address.
    public func start(_ harts: [Hart]) {
        for hart in harts {
            hart.pc = entry
            hart[register: 10] = UInt64(hart.id)
            hart[register: 11] = deviceTreeAddress
        }
    }
}
