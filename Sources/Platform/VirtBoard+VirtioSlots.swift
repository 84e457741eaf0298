extension VirtBoard {
    /// Which virtio-mmio slot each disk sits in, by index into `disks`: a disk that
    /// names a slot gets it; the others take the free slots from the highest down, in
    /// order, as QEMU's `-device virtio-blk-device` without `bus=` does (the first
    /// such disk lands in slot 7, at 0x10008000). Two disks on one slot, a slot out of
    /// range or more disks than slots is an error.
    public static func slotAssignment(_ disks: [DiskConfig]) throws -> [Int] {
        try slotAssignment(disks: disks, nics: []).disks
    }

    /// Slots for disks and NICs together: the ones that name a slot get it; then the
    /// other disks take the free slots from the highest down, then the other NICs.
    public static func slotAssignment(disks: [DiskConfig], nics: [NICConfig]) throws -> (disks: [Int], nics: [Int]) {
        guard disks.count + nics.count <= virtioSlots else {
            throw MachineError(nics.isEmpty ? "at most \(virtioSlots) disks, not \(disks.count)"
                                            : "at most \(virtioSlots) virtio devices, not \(disks.count) disks and \(nics.count) NICs")
        }
        let names = disks.map { "disk '\($0.path)'" } + nics.indices.map { "NIC \($0)" }
        let wanted = disks.map(\.slot) + nics.map(\.slot)
        var owner = [Int?](repeating: nil, count: virtioSlots)
        for (i, slot) in wanted.enumerated() {
            guard let slot else { continue }
            guard (0..<virtioSlots).contains(slot) else {
                throw MachineError("\(names[i]): slot \(slot) does not exist (0...\(virtioSlots - 1))")
            }
            if let other = owner[slot] {
                let both = i < disks.count && other < disks.count
                    ? "disks '\(disks[other].path)' and '\(disks[i].path)'" : "\(names[other]) and \(names[i])"
                throw MachineError("\(both) both want slot \(slot)")
            }
            owner[slot] = i
        }
        var free = (0..<virtioSlots).reversed().filter { owner[$0] == nil }[...]
        let slots = wanted.map { slot -> Int in slot ?? free.removeFirst() }
        return (Array(slots[..<disks.count]), Array(slots[disks.count...]))
    }

    /// The eight virtio-mmio slots of a VM: a virtio-blk device for each disk and a
    /// virtio-net device for each NIC (in its slot, see `slotAssignment`; NIC i's frames
    /// go to `transmit(i, frame)`), empty slots for the rest. Slot i, at
    /// `virtioBase + i·virtioStride`, raises PLIC source 1 + i through `irq`.
    public static func virtioSlots(disks: [DiskConfig], nics: [(config: NICConfig, mac: MACAddress)] = [], dma: DMAMemory,
                                   irq: @escaping (_ source: Int, _ level: Bool) -> Void,
                                   transmit: @escaping (_ nic: Int, _ frame: NetFrame) -> Void = { _, _ in })
        throws -> [(base: UInt64, device: MMIODevice)]
    {
        let (slots, nicSlots) = try slotAssignment(disks: disks, nics: nics.map(\.config))
        var devices: [MMIODevice] = (0..<virtioSlots).map { _ in EmptyVirtioSlot() }
        var opened: [VirtioBlock] = []
        do {
            for (disk, slot) in zip(disks, slots) {
                let device = try VirtioBlock(path: disk.path, format: disk.format, readOnly: disk.readOnly, bus: dma,
                                             irq: { irq(1 + slot, $0) })
                opened.append(device)
                devices[slot] = device
            }
        } catch {
            for d in opened { d.close() }
            throw MachineError("\(error)")
        }
        for (i, (nic, slot)) in zip(nics, nicSlots).enumerated() {
            devices[slot] = VirtioNet(mac: nic.mac, index: i, mtu: nic.config.mtu ?? EthernetFrame.standardMTU, bus: dma, irq: { irq(1 + slot, $0) }, transmit: { transmit(i, $0) })
        }
        return devices.enumerated().map { (virtioBase + UInt64($0.offset) * virtioStride, $0.element) }
    }
}
