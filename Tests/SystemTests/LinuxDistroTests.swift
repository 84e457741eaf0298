import Foundation
import Testing

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
    /// the command line, one virtio disk. Both get 900 s: QEMU's 4 VCPU threads on 2
    /// cores while the rest of the suite runs once took more than 300 s.
    func qemu(vcpus: Int, kernel: String, initrd: String?, disk: String) throws -> ProcessResult {
        let linux = initrd.map { ["-initrd", $0, "-append", Self.append] } ?? []
        return try runProcess("/usr/bin/qemu-system-riscv64",
                       ["-machine", "virt", "-nographic", "-smp", "\(vcpus)", "-m", "512M", "-bios", Paths.openSBI,
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
