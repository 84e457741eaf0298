import Foundation
import Testing
import TestSupport

/// Debian 13's own riscv64 kernel and busybox (scripts/fetch-debian.sh fetches them and
/// builds the guest: initramfs with guests/linux/init, an ext4 data disk, a U-Boot
/// distro-boot disk): Linux reaches the init script, loads the virtio and ext4
/// modules, mounts the disk, runs the SMP workload and powers off, on disco and on
/// QEMU, with the same "disco-linux: " lines. Serialized: a Linux boot on disco takes
/// half a minute on an idle machine, and several at once would starve each other.
@Suite(.serialized) struct LinuxDistroTests {
    /// Where fetch-debian.sh put the guest: $DISCO_DEBIAN_BUILD (scripts/test.sh sets
    /// it), else the script's default cache folder.
    static let build: String = {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["DISCO_DEBIAN_BUILD"], !dir.isEmpty { return dir }
        if let cache = env["DISCO_DEBIAN_CACHE"], !cache.isEmpty { return cache + "/build" }
        let xdg = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (env["HOME"] ?? NSHomeDirectory()) + "/.cache"
        return xdg + "/disco/debian/build"
    }()
    static let append = "console=ttyS0 panic=-1 quiet"

    /// The built guest's files, or a failure that says how to make them.
    static func guestFile(_ name: String) throws -> String {
        let path = build + "/" + name
        guard FileManager.default.isReadableFile(atPath: path) else {
            Issue.record("\(path) is missing: run scripts/fetch-debian.sh (scripts/test.sh does)")
            throw CancellationError()
        }
        return path
    }

    /// A private copy of a disk image (the guest writes its results to the disk).
    final class DiskCopy {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-linux-\(UUID().uuidString)")
        let path: String
        init(_ source: String) throws {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            path = dir.appendingPathComponent(URL(fileURLWithPath: source).lastPathComponent).path
            try FileManager.default.copyItem(atPath: source, toPath: path)
        }
        deinit { try? FileManager.default.removeItem(at: dir) }
    }

    static func lines(_ output: String) -> [String] {
        output.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasPrefix("disco-linux: ") }
    }

    /// A second OpenSBI banner means the VM reset (a kernel panic with panic=-1): stop.
    static func rebooted(_ output: String) -> Bool { output.components(separatedBy: "OpenSBI v").count > 2 }

    /// What every run must print: the init's lines, in order, with the workload's four
    /// results read back from the disk.
    static func expectWorkload(_ lines: [String], vcpus: Int, _ context: String) {
        #expect(lines.first == "disco-linux: init", "\(context)")
        #expect(lines.contains("disco-linux: cpus \(vcpus)"), "\(context)")
        #expect(lines.contains("disco-linux: mounted disco-linux-data"), "\(context)")
        #expect(lines.filter { $0.hasPrefix("disco-linux: worker ") }.count == 4, "\(context)")
        #expect(!lines.contains { $0.hasPrefix("disco-linux: FAIL") }, "\(context)")
        #expect(lines.last == "disco-linux: done", "\(context)")
    }

    /// QEMU's flags and disco's for the same VM: a kernel, optionally an initramfs and
    /// the command line, one virtio disk. Both get 900 s. QEMU runs its VCPUs on one
    /// thread (`-accel tcg,thread=single`): with a thread per VCPU (MTTCG), 4 of them on
    /// 2 cores shared with the rest of the suite spin on locks whose holder the host
    /// preempted, and a run once took more than 900 s; on one thread it took 83 s under
    /// the same load. The oracle's output is the same either way.
    static let qemuAccel = ["-accel", "tcg,thread=single"]

    func qemu(vcpus: Int, kernel: String, initrd: String?, disk: String) throws -> ProcessResult {
        let linux = initrd.map { ["-initrd", $0, "-append", Self.append] } ?? []
        return try runProcess("/usr/bin/qemu-system-riscv64",
                       ["-machine", "virt"] + Self.qemuAccel + ["-nographic", "-smp", "\(vcpus)", "-m", "512M", "-bios", Paths.openSBI,
                        "-kernel", kernel] + linux + ["-drive", "file=\(disk),format=raw,if=virtio", "-no-reboot"],
                       timeout: 900, until: Self.rebooted)
    }

    /// `nodes`: run the VM over that many node processes (`disco run --nodes`).
    func disco(vcpus: Int, kernel: String, initrd: String?, disk: String, nodes: Int? = nil) throws -> ProcessResult {
        let linux = initrd.map { ["--initrd", $0, "--append", Self.append] } ?? []
        let cluster = nodes.map { ["--nodes", "\($0)"] } ?? []
        return try runProcess(Paths.disco, ["run"] + cluster + ["--smp", "\(vcpus)", "--memory", "512M", "--bios", Paths.openSBI,
                                     "--kernel", kernel] + linux + ["--disk", disk],
                       timeout: 900, until: Self.rebooted)
    }

    /// Debian's kernel with the busybox initramfs and the ext4 data disk, 1, 2 and 4
    /// VCPUs on one node: the same lines as QEMU's, and a power-off that ends both with 0.
    @Test(.serialized, arguments: [1, 2, 4])
    func debianKernelRunsTheWorkloadAsOnQEMU(vcpus: Int) throws {
        let kernel = try Self.guestFile("kernel.Image"), initrd = try Self.guestFile("initrd.gz")
        let data = try Self.guestFile("data.img")
        let qDisk = try DiskCopy(data), dDisk = try DiskCopy(data)
        let q = try qemu(vcpus: vcpus, kernel: kernel, initrd: initrd, disk: qDisk.path)
        let d = try disco(vcpus: vcpus, kernel: kernel, initrd: initrd, disk: dDisk.path)
        #expect(!q.stoppedEarly && q.status == 0, "QEMU: \(q.status) \(q.output.suffix(1500))")
        #expect(!d.stoppedEarly && d.status == 0, "disco: \(d.status) \(d.errorOutput.suffix(800)) \(d.output.suffix(1500))")
        Self.expectWorkload(Self.lines(q.output), vcpus: vcpus, "QEMU:\n\(q.output.suffix(1500))")
        #expect(Self.lines(d.output) == Self.lines(q.output), "disco:\n\(d.output.suffix(2000))")
    }

    /// The same VM, 4 VCPUs, over 2 node processes: the kernel's memory starts homed
    /// where it is first touched and moves and is copied as the page policy sees it
    /// used; its page walks, A/D updates, SBI IPIs and remote fences cross the
    /// nodes. Same lines as QEMU's, and a power-off that ends the cluster with 0.
    @Test func debianKernelRunsTheWorkloadOverTwoNodesAsOnQEMU() throws {
        let kernel = try Self.guestFile("kernel.Image"), initrd = try Self.guestFile("initrd.gz")
        let data = try Self.guestFile("data.img")
        let qDisk = try DiskCopy(data), dDisk = try DiskCopy(data)
        let q = try qemu(vcpus: 4, kernel: kernel, initrd: initrd, disk: qDisk.path)
        let d = try disco(vcpus: 4, kernel: kernel, initrd: initrd, disk: dDisk.path, nodes: 2)
        #expect(!q.stoppedEarly && q.status == 0, "QEMU: \(q.status) \(q.output.suffix(1500))")
        #expect(!d.stoppedEarly && d.status == 0, "disco: \(d.status) \(d.errorOutput.suffix(800)) \(d.output.suffix(1500))")
        Self.expectWorkload(Self.lines(q.output), vcpus: 4, "QEMU:\n\(q.output.suffix(1500))")
        #expect(Self.lines(d.output) == Self.lines(q.output), "disco:\n\(d.output.suffix(2000))")
    }

    /// Two Linux VMs, one VCPU each, on different nodes of a local cluster
    /// (`disco run --nodes 2 --spec a --spec b`) with a virtio-net NIC each on one
    /// switch: each brings eth0 up (the init's `disco.ip=`) and pings the other
    /// (`disco.ping=`) through the cluster's virtual Ethernet. The same two guests on
    /// two QEMUs joined by a socket netdev on loopback print the same lines.
    @Test func twoLinuxVMsOnDifferentNodesPingEachOtherAsOnQEMU() throws {
        let kernel = try Self.guestFile("kernel.Image"), initrd = try Self.guestFile("initrd.gz")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-linux-net-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vms = [(name: "linux1", mac: "52:54:00:00:00:01", ip: "10.0.2.11", peer: "10.0.2.12"),
                   (name: "linux2", mac: "52:54:00:00:00:02", ip: "10.0.2.12", peer: "10.0.2.11")]
        func append(_ vm: (name: String, mac: String, ip: String, peer: String)) -> String {
            "\(Self.append) disco.ip=\(vm.ip) disco.ping=\(vm.peer)"
        }
        var specs: [String] = []
        for vm in vms {
            let path = dir + "/\(vm.name).yaml"
            try """
                name: \(vm.name)
                vcpus: 1
                memory: 256M
                bios: \(Paths.openSBI)
                kernel: \(kernel)
                initrd: \(initrd)
                bootargs: \(append(vm))
                nics: [{switch: lan, mac: "\(vm.mac)"}]
                """.write(toFile: path, atomically: true, encoding: .utf8)
            specs.append(path)
        }
        let d = try runProcess(Paths.disco, ["run", "--nodes", "2"] + specs.flatMap { ["--spec", $0] }, timeout: 600)
        #expect(!d.stoppedEarly && d.status == 0, "disco: \(d.status) \(d.errorOutput.suffix(1500)) \(d.output.suffix(2000))")
        // The two VMs on different nodes (disco prints its `vm list` rows), so their
        // frames cross between node processes.
        let rows = d.errorOutput.split(whereSeparator: \.isNewline)
        let nodes = vms.map { vm in
            rows.first { $0.contains("name: \(vm.name),") }?.components(separatedBy: "vcpu_nodes: ").dropFirst().first?
                .split(separator: "]").first.map(String.init)
        }
        #expect(nodes[0] != nil && nodes[1] != nil && nodes[0] != nodes[1], "\(nodes) \(d.errorOutput.suffix(1500))")

        // QEMU: the first listens on a loopback port, the second connects.
        let port = try freeLoopbackPort()
        func qemu(_ vm: (name: String, mac: String, ip: String, peer: String), _ netdev: String) -> [String] {
            ["-machine", "virt"] + Self.qemuAccel + ["-nographic", "-smp", "1", "-m", "256M", "-bios", Paths.openSBI, "-kernel", kernel,
             "-initrd", initrd, "-append", append(vm), "-global", "virtio-mmio.force-legacy=false",
             "-netdev", "socket,id=n0,\(netdev)=127.0.0.1:\(port)", "-device", "virtio-net-device,netdev=n0,mac=\(vm.mac)",
             "-no-reboot"]
        }
        let first = try Background("qemu-linux1", "/usr/bin/qemu-system-riscv64", qemu(vms[0], "listen"), logDirectory: dir)
        defer { first.stop() }
        Thread.sleep(forTimeInterval: 0.5)
        let second = try runProcess("/usr/bin/qemu-system-riscv64", qemu(vms[1], "connect"), timeout: 600, until: Self.rebooted)
        #expect(first.wait(for: "disco-linux: done", timeout: 120), "QEMU linux1: \(first.output.suffix(1500))")
        #expect(!second.stoppedEarly, "QEMU linux2: \(second.output.suffix(1500))")

        for (vm, q) in zip(vms, [first.output, second.output]) {
            let want = ["disco-linux: init", "disco-linux: cpus 1", "disco-linux: eth0 \(vm.ip) mac \(vm.mac)",
                        "disco-linux: ping \(vm.peer): 3 packets received", "disco-linux: done"]
            #expect(Self.lines(q) == want, "QEMU \(vm.name):\n\(q.suffix(1500))")
            let mine = d.output.split(whereSeparator: \.isNewline).compactMap { line -> String? in
                line.hasPrefix("[\(vm.name)] ") ? String(line.dropFirst(vm.name.count + 3)) : nil
            }
            #expect(Self.lines(mine.joined(separator: "\n")) == want, "disco \(vm.name):\n\(d.output.suffix(2500))")
        }
    }

    /// OpenSBI, then U-Boot, then nothing typed: U-Boot's distro boot finds
    /// /extlinux/extlinux.conf on the disk's bootable partition, loads the Image and the
    /// initramfs it names and boots Linux, which mounts that partition and runs the
    /// workload, as on QEMU.
    @Test func uBootDistroBootStartsLinux() throws {
        let image = try Self.guestFile("uboot.img")
        let qDisk = try DiskCopy(image), dDisk = try DiskCopy(image)
        let q = try qemu(vcpus: 2, kernel: Paths.uBoot, initrd: nil, disk: qDisk.path)
        let d = try disco(vcpus: 2, kernel: Paths.uBoot, initrd: nil, disk: dDisk.path)
        #expect(!q.stoppedEarly && q.status == 0, "QEMU: \(q.status) \(q.output.suffix(1500))")
        #expect(!d.stoppedEarly && d.status == 0, "disco: \(d.status) \(d.errorOutput.suffix(800)) \(d.output.suffix(2500))")
        for (name, out) in [("QEMU", q.output), ("disco", d.output)] {
            #expect(out.contains("Found /extlinux/extlinux.conf"), "\(name):\n\(out.suffix(2500))")
            #expect(out.contains("Starting kernel ..."), "\(name):\n\(out.suffix(2500))")
        }
        Self.expectWorkload(Self.lines(q.output), vcpus: 2, "QEMU:\n\(q.output.suffix(1500))")
        #expect(Self.lines(d.output) == Self.lines(q.output), "disco:\n\(d.output.suffix(2500))")
    }
}
