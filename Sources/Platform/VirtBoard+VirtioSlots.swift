extension VirtBoard {
    /// Which virtio-mmio slot each disk sits in, by index into `disks`: a disk that
    /// names a slot gets it; the others take the free slots from the highest down, in
    /// order, as QEMU's `-device virtio-blk-device` without `bus=` does (the first
    /// such disk lands in slot 7, at 0x10008000). Two disks on one slot, a slot out of
    /// range or more disks than slots is an error.
    public static func slotAssignment(_ disks: [DiskConfig]) throws -> [Int] {
        guard disks.count <= virtioSlots else {
            throw MachineError("at most \(virtioSlots) disks, not \(disks.count)")
        }
        var owner = [Int?](repeating: nil, count: virtioSlots)
        for (i, disk) in disks.enumerated() {
            guard let slot = disk.slot else { continue }
            guard (0..<virtioSlots).contains(slot) else {
                throw MachineError("disk '\(disk.path)': slot \(slot) does not exist (0...\(virtioSlots - 1))")
            }
            if let other = owner[slot] {
                throw MachineError("disks '\(disks[other].path)' and '\(disk.path)' both want slot \(slot)")
            }
            owner[slot] = i
        }
        var free = (0..<virtioSlots).reversed().filter { owner[$0] == nil }[...]
        return disks.enumerated().map { i, disk in
            if let slot = disk.slot { return slot }
            let slot = free.removeFirst()
            owner[slot] = i
            return slot
        }
    }

    /// The eight virtio-mmio slots of a VM: a virtio-blk device for each disk (in its
    /// slot, see `slotAssignment`), empty slots for the rest. Slot i, at
    /// `virtioBase + i·virtioStride`, raises PLIC source 1 + i through `irq`.
    public static func virtioSlots(disks: [DiskConfig], dma: DMAMemory, irq: @escaping (_ source: Int, _ level: Bool) -> Void)
        throws -> [(base: UInt64, device: MMIODevice)]
    {
        let slots = try slotAssignment(disks)
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
        return devices.enumerated().map { (virtioBase + UInt64($0.offset) * virtioStride, $0.element) }
    }
}
