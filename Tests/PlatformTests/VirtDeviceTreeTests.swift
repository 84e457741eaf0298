import Foundation
import Testing
@testable import Platform

/// The generated device tree, read back by `dtc` (Debian's device-tree-compiler)
/// and compared with the one QEMU's virt board generates.
@Suite struct VirtDeviceTreeTests {
    /// Decompiles a blob with dtc; throws if dtc rejects it.
    static func decompile(_ blob: [UInt8]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-fdt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("t.dtb")
        try Data(blob).write(to: file)
        return try run("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", file.path])
    }

    static func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Failed(what: "\(tool) \(args) exited \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }

    struct Failed: Error { var what: String }

    /// Node paths of a dts text, and each node's properties as written by dtc.
    static func nodes(_ dts: String) -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        var path: [String] = []
        for raw in dts.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("{") {
                let name = String(line.dropLast()).trimmingCharacters(in: .whitespaces)
                path.append(name == "/" ? "" : name)
                result["/" + path.dropFirst().joined(separator: "/"), default: [:]] = [:]
            } else if line == "};" {
                path.removeLast()
            } else if line.hasSuffix(";"), !path.isEmpty {
                let body = line.dropLast()
                let parts = body.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                result["/" + path.dropFirst().joined(separator: "/"), default: [:]][parts[0]] = parts.count > 1 ? parts[1] : ""
            }
        }
        return result
    }

    @Test(arguments: [1, 2, 4])
    func dtcReadsWhatWeWrite(harts: Int) throws {
        let blob = VirtBoard.deviceTree(harts: harts, memoryBytes: 256 << 20, bootargs: "console=ttyS0")
        let tree = Self.nodes(try Self.decompile(blob))
        #expect(tree["/"]?["compatible"] == "\"riscv-virtio\"")
        #expect(tree["/chosen"]?["stdout-path"] == "\"/soc/serial@10000000\"")
        #expect(tree["/chosen"]?["bootargs"] == "\"console=ttyS0\"")
        #expect(tree["/memory@80000000"]?["reg"] == "<0x00 0x80000000 0x00 0x10000000>")
        #expect(tree["/cpus"]?["timebase-frequency"] == "<0x989680>")
        for h in 0..<harts {
            let cpu = tree["/cpus/cpu@\(h)"]
            #expect(cpu?["riscv,isa"] == "\"\(VirtBoard.isa)\"")
            #expect(cpu?["mmu-type"] == "\"riscv,sv39\"")
            #expect(tree["/cpus/cpu@\(h)/interrupt-controller"]?["compatible"] == "\"riscv,cpu-intc\"")
        }
        #expect(tree["/cpus/cpu@\(harts)"] == nil)
        #expect(tree["/soc/serial@10000000"]?["interrupts"] == "<0x0a>")
        #expect(tree["/soc/plic@c000000"]?["riscv,ndev"] == "<0x60>")
        // Per hart: M external (11) and S external (9) at the PLIC; M soft (3) and timer (7) at the CLINT.
        let plicWiring = tree["/soc/plic@c000000"]?["interrupts-extended"] ?? ""
        #expect(plicWiring.split(separator: " ").count == 4 * harts)
        #expect(plicWiring.hasPrefix("<0x01 0x0b 0x01 0x09"))
        #expect(tree["/soc/clint@2000000"]?["interrupts-extended"]?.hasPrefix("<0x01 0x03 0x01 0x07") == true)
        for i in 1...8 {
            #expect(tree["/soc/virtio_mmio@1000\(i)000"]?["interrupts"] == "<0x0\(i)>")
        }
        #expect(tree["/poweroff"]?["value"] == "<0x5555>")
        #expect(tree["/reboot"]?["value"] == "<0x7777>")
    }

    /// Every node QEMU's virt board has is here too, except the devices we do not
    /// emulate; and nothing is here that QEMU lacks.
    @Test func sameNodesAsQEMU() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-qdtb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let dump = dir.appendingPathComponent("q.dtb").path
        _ = try Self.run("/usr/bin/qemu-system-riscv64",
                         ["-machine", "virt,dumpdtb=\(dump)", "-bios", "none", "-nographic", "-smp", "2", "-m", "256M"])
        let qemu = Self.nodes(try Self.run("/usr/bin/dtc", ["-I", "dtb", "-O", "dts", dump]))
        let ours = Self.nodes(try Self.decompile(VirtBoard.deviceTree(harts: 2, memoryBytes: 256 << 20)))
        let notEmulated = ["/pmu", "/fw-cfg@10100000", "/flash@20000000", "/platform-bus@4000000",
                           "/soc/rtc@101000", "/soc/pci@30000000"]
        let expected = Set(qemu.keys).subtracting(notEmulated)
        #expect(Set(ours.keys) == expected)
        // Device registers, interrupt numbers and compatibles agree node by node.
        for node in expected {
            for key in ["reg", "interrupts", "compatible", "riscv,ndev", "value", "#interrupt-cells", "device_type"] {
                #expect(ours[node]?[key] == qemu[node]?[key], "\(node) \(key)")
            }
        }
    }

    @Test func placedLikeQEMU() {
        // At the top of RAM, aligned down to 2 MiB; never above 3 GiB past the RAM base.
        #expect(VirtBoard.deviceTreeAddress(memoryBytes: 128 << 20, blobSize: 0x1800) == 0x87e0_0000)
        #expect(VirtBoard.deviceTreeAddress(memoryBytes: 8 << 30, blobSize: 0x1800) == 0x1_3fe0_0000)
    }
}
