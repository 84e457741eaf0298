/// An empty virtio-mmio slot, as QEMU virt shows one: the magic, version 2 and the
/// vendor read back, device id 0 says "nothing here", everything else reads 0.
public final class EmptyVirtioSlot: MMIODevice {
    public init() {}
    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case 0x000: return 0x7472_6976
        case 0x004: return 2
        case 0x00c: return 0x554d_4551
        default: return 0
        }
    }
    public func write(offset: UInt64, size: Int, value: UInt64) {}
}
