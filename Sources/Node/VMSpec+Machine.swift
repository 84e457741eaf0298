import Cluster
import Platform

extension VMSpec {
    /// The board configuration for this spec (one process, or one node's share).
    public var machineConfig: MachineConfig {
        let bios: BootFirmware
        switch firmware {
        case .file(let path)?: bios = .file(path)
        case .none?, nil: bios = .none
        }
        return MachineConfig(harts: vcpus, memoryBytes: memoryBytes, bios: bios, kernel: kernel,
                             disks: disks.map { DiskConfig(path: $0.path, readOnly: $0.readOnly, slot: $0.slot,
                                                                      format: $0.format.flatMap(DiskFormat.init(rawValue:))) },
                             nics: nics.map { nic in
                                 let backend: NICConfig.Backend
                                 switch nic.attachment {
                                 case .switch(let subnet): backend = .switch(subnet)
                                 case .user: backend = .user
                                 }
                                 return NICConfig(backend: backend, mac: nic.mac.flatMap(MACAddress.init(parsing:)), slot: nic.slot, mtu: nic.mtu)
                             },
                             bootargs: bootargs, initrd: initrd)
    }
}
