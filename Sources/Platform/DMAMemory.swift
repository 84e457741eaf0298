/// Guest-physical memory as a device's DMA engine sees it: whole byte ranges copied in
/// and out. The single-process bus is one; a cluster node provides another that keeps
/// DMA coherent with every node's caches.
public protocol DMAMemory: AnyObject {
    /// Copies `bytes` to guest-physical `address`; false if the range is not RAM.
    func copyIn(_ bytes: UnsafeRawBufferPointer, at address: UInt64) -> Bool
    /// The `count` bytes at guest-physical `address`, or nil if the range is not RAM.
    func copyOut(at address: UInt64, count: Int) -> [UInt8]?
}

extension SystemBus: DMAMemory {}
