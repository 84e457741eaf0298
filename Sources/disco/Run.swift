import ArgumentParser
import Foundation
import Cluster
import Node
import Platform

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot one virtual machine from flags or a spec file.",
        discussion: """
            Flags are named after QEMU's. The console is this terminal (raw mode; press
            Ctrl-A then x to quit, Ctrl-A h for help) or, with --console-log, a file.
            The exit status follows the guest's test finisher: 0 when it powers off or
            passes, its code (or 1) when it fails; 2 for a bad command line or spec.
            A reset through the finisher (OpenSBI's SBI system reset for a reboot)
            boots the VM again from its files, as QEMU does, on one process and on
            a cluster. Linux: see docs/linux.md (--kernel with an Image header,
            --initrd, --append).

            Examples:
              disco run --bios none --kernel guests/build/isa.elf
              disco run --smp 2 --memory 256M \\
                --bios /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin \\
                --kernel /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin --disk disk.img
              disco disk create --backing base.raw vm1.qcow2
              disco run --bios none --kernel guests/build/blk.elf --disk vm1.qcow2,slot=0
              disco run --spec vm.yaml
              disco run --nodes 2 --smp 4 --bios none --kernel guests/build/smp.elf
              disco run --nodes 2 --spec a.yaml --spec b.yaml    # two VMs side by side
              disco run --bios none --kernel guests/build/net.elf --nic user,slot=0
              disco run --smp 2 --memory 1G \\
                --bios /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin \\
                --kernel vmlinux --initrd initrd.img --append "console=ttyS0"
            """
    )

    @OptionGroup var vm: VMOptions

    @Option(help: ArgumentHelp("Boot on an embedded local cluster of this many node processes (⌈vcpus/n⌉ CPUs each; the VM's VCPUs fill them, its memory is homed on them) instead of in this process.", valueName: "n"))
    var nodes: Int?

    @Option(help: ArgumentHelp("With --nodes: CPUs per node (default ⌈vcpus/n⌉). Fewer CPUs than VCPUs works: a node's VCPUs share its CPUs by time slices (docs/monitor.md, \"VCPU scheduling\").", valueName: "n"))
    var cpus: Int?

    @Flag(inversion: .prefixedNo, help: """
        Park a VCPU that spins (polls memory that does not change, with or without the \
        pause hint) until memory may have changed, instead of letting it burn a host CPU \
        (default: on; off to measure what it saves).
        """)
    var parkSpinning = true

    @Flag(help: "With --nodes: when the VM ends, print its page statistics (migrations, replications, collapses, move times, sampled local and remote misses) as the coordinator has them, on standard error.")
    var stats = false

    mutating func run() throws {
        // Started by a bench or an experiment: stop with it.
        ParentWatch.arm()
        if vm.spec.count > 1, let nodes {
            let specs: [VMSpec]
            do {
                specs = try vm.resolvedSpecs()
                for s in specs { try s.validate() }
            } catch let error as SpecError {
                fail(error.description)
            }
            guard (1...64).contains(nodes) else { fail("--nodes must be 1...64") }
            if let cpus, !(1...1024).contains(cpus) { fail("--cpus must be 1...1024") }
            throw ExitCode(runSideBySide(specs: specs, nodes: nodes, cpus: cpus))
        }
        let spec: VMSpec
        do {
            spec = try vm.resolvedSpec()
            try spec.validate()
        } catch let error as SpecError {
            fail(error.description)
        }
        if let nodes {
            guard (1...64).contains(nodes) else { fail("--nodes must be 1...64") }
            if let cpus, !(1...1024).contains(cpus) { fail("--cpus must be 1...1024") }
            throw ExitCode(runOnCluster(spec: spec, nodes: nodes, cpus: cpus, printStats: stats, parkSpinning: parkSpinning))
        }
        if cpus != nil { fail("--cpus needs --nodes (it sizes the embedded cluster's nodes)") }
        if stats { fail("--stats needs --nodes (the statistics are the cluster's)") }
        let outcome = runVM(spec: spec, parkSpinning: parkSpinning)
        throw ExitCode(outcome)
    }
}

/// The VM flags shared by `run` and the commands that boot something.
struct VMOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A YAML spec file (name, vcpus, memory, bios, kernel, initrd, disks, nics, bootargs, console-log, placement, numaPolicy, numaParameters); flags override it. With --nodes it may be given several times: the VMs boot side by side on the embedded cluster, each output line prefixed with '[name] '.", valueName: "file"))
    var spec: [String] = []

    @Option(help: ArgumentHelp("Firmware entered in M-mode at 0x80000000, or 'none' to enter the kernel in M-mode.", valueName: "path|none"))
    var bios: String?

    @Option(help: ArgumentHelp("Kernel: an ELF loaded at its addresses; a Linux RISC-V Image (its header checked: image_size and text_offset must fit the RAM) at the first 2 MiB boundary after the firmware, as QEMU does (0x80200000 after OpenSBI's fw_jump; 0x80000000 with --bios none); another raw image at 0x80200000 (0x80000000 with --bios none).", valueName: "path"))
    var kernel: String?

    @Option(help: ArgumentHelp("An initial RAM disk (e.g. an initramfs), loaded as QEMU's -initrd: at the kernel's start plus half the RAM or 128 MiB, whichever is less; its bounds go to the device tree's /chosen linux,initrd-start and linux,initrd-end. Needs --kernel.", valueName: "path"))
    var initrd: String?

    @Option(help: ArgumentHelp("Number of virtual CPUs (harts).", valueName: "n"))
    var smp: Int?

    @Option(help: ArgumentHelp("Guest RAM size, e.g. 256M or 1G (a bare number means MiB).", valueName: "size"))
    var memory: String?

    @Option(help: ArgumentHelp("A disk on a virtio-blk device (repeatable, up to 8): raw or qcow2 (detected from the file), optionally ',slot=N' (virtio-mmio slot 0-7, at 0x10001000+0x1000*N; without it disks fill from slot 7 down), ',readonly=on', ',format=raw|qcow2'.", valueName: "file[,slot=N]"))
    var disk: [String] = []

    @Option(help: ArgumentHelp("A virtio-net NIC (repeatable; NICs and disks share the 8 virtio slots): 'switch[=NAME]' puts it on the cluster-wide virtual switch of subnet NAME (default 'default'), where every VM with a NIC on that subnet hears its broadcasts; 'user' gives it the host's network through user-mode NAT as QEMU's -nic user (DHCP hands out 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3). Options: ',mac=52:54:00:12:34:56' (default: 52:54 then the VM id and the NIC's index), ',slot=N', and for a switch NIC ',mtu=N' (68-65535, default 1500; announced to the driver as QEMU's host_mtu: jumbo frames between VMs, whose whole page-aligned pages move between VMs of one node by remapping, not copying).", valueName: "switch[=NAME]|user[,mac=M][,slot=N][,mtu=N]"))
    var nic: [String] = []

    @Option(help: ArgumentHelp("Kernel command line placed in /chosen/bootargs.", valueName: "args"))
    var append: String?

    @Option(help: ArgumentHelp("Write the console output to this file instead of the terminal.", valueName: "path"))
    var consoleLog: String?

    @Option(help: ArgumentHelp("On a cluster: 'first-touch' (each page on the node of the VCPU that touches it first, the default), 'interleave' (memory in chunks over the VCPUs' nodes) or 'node:N' (all of it on node N).", valueName: "first-touch|interleave|node:N"))
    var placement: String?

    @Option(help: ArgumentHelp("On a cluster: 'on' (the default) moves pages to the nodes that use them; 'off' leaves them where they were placed.", valueName: "on|off"))
    var numaPolicy: String?

    func resolvedSpec() throws -> VMSpec {
        guard spec.count <= 1 else { throw SpecError("several --spec files boot side by side only on a cluster: add --nodes N") }
        return try resolve(try spec.first.map { try VMSpec.load(file: $0) } ?? VMSpec())
    }

    /// Every --spec file (at least one VM), each with the flags applied.
    func resolvedSpecs() throws -> [VMSpec] {
        guard !spec.isEmpty else { return [try resolvedSpec()] }
        return try spec.map { try resolve(try VMSpec.load(file: $0)) }
    }

    private func resolve(_ loaded: VMSpec) throws -> VMSpec {
        var spec = loaded
        if let bios { spec.firmware = bios == "none" ? VMSpec.Firmware.none : .file(bios) }
        if let kernel { spec.kernel = kernel }
        if let initrd { spec.initrd = initrd }
        if let smp { spec.vcpus = smp }
        if let memory { spec.memoryBytes = try MemorySize.parse(memory) }
        if !disk.isEmpty { spec.disks = try disk.map { try VMSpec.Disk(parsingOption: $0) } }
        if !nic.isEmpty { spec.nics = try nic.map { try VMSpec.NIC(parsingOption: $0) } }
        if let append { spec.bootargs = append }
        if let consoleLog { spec.consoleLog = consoleLog }
        if let placement { spec.placement = try VMSpec.MemoryPlacement(parsing: placement) }
        if let numaPolicy { spec.numaPolicy = try VMSpec.parseSwitch(numaPolicy, "--numa-policy") }
        return spec
    }
}

