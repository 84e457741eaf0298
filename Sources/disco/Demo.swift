import ArgumentParser
import Foundation
import Cluster
import Node

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot the embedded default VM: Debian's OpenSBI and U-Boot on 2 VCPUs.",
        discussion: """
            Needs Debian's `opensbi` and `u-boot-qemu` packages. Any `run` flag overrides
            the default, e.g. `disco demo --disk disk.img`; `--nodes 2` spreads the VM
            over two node processes. Ctrl-A x quits.
            """
    )

    static let openSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
    static let uBoot = "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"

    @OptionGroup var vm: VMOptions

    @Option(help: ArgumentHelp("Boot on an embedded local cluster of this many node processes.", valueName: "n"))
    var nodes: Int?

    @Option(help: ArgumentHelp("Disco itself: this many U-Boot VMs side by side on a local cluster (--nodes, default 2) with a global buffer cache, each with its own qcow2 overlay over one base disk and a NIC on one virtual switch; the demo reads 4 MiB of the disk in each, makes pairs of VMs ping each other, prints the memory sharing saved and how to attach to each console, and runs until Ctrl-C.", valueName: "n"))
    var vms: Int?

    mutating func run() throws {
        if let vms {
            guard (1...16).contains(vms) else { fail("--vms must be 1...16") }
            let n = nodes ?? 2
            guard (1...8).contains(n) else { fail("--nodes must be 1...8 with --vms") }
            for path in [Self.openSBI, Self.uBoot] where !FileManager.default.isReadableFile(atPath: path) {
                fail("\(path) is missing (install Debian's opensbi and u-boot-qemu: ./scripts/setup.sh)")
            }
            throw ExitCode(runDemoCluster(vms: vms, nodes: n, openSBI: Self.openSBI, uBoot: Self.uBoot))
        }
        var spec: VMSpec
        do {
            spec = try vm.resolvedSpec()
            if vm.spec.isEmpty {
                spec.name = "demo"
                if vm.bios == nil { spec.firmware = .file(Self.openSBI) }
                if vm.kernel == nil { spec.kernel = Self.uBoot }
                if vm.smp == nil { spec.vcpus = 2 }
                if vm.memory == nil { spec.memoryBytes = 256 << 20 }
            }
            try spec.validate()
        } catch let error as SpecError {
            fail("\(error.description)\(vm.spec.isEmpty ? " (install Debian's opensbi and u-boot-qemu: ./scripts/setup.sh)" : "")")
        }
        if let nodes {
            guard (1...64).contains(nodes) else { fail("--nodes must be 1...64") }
            throw ExitCode(runOnCluster(spec: spec, nodes: nodes))
        }
        throw ExitCode(runVM(spec: spec))
    }
}
