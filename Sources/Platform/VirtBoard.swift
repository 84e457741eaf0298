/// The guest-physical map of QEMU's `virt` board (QEMU 7.2), which every VM gets.
public enum VirtBoard {
    public static let testDevice: UInt64 = 0x10_0000
    public static let clint: UInt64 = 0x200_0000
    public static let clintSize: UInt64 = 0x1_0000
    public static let plic: UInt64 = 0xc00_0000
    public static let plicSize: UInt64 = 0x60_0000
    public static let plicSources: UInt32 = 0x60
    public static let uart: UInt64 = 0x1000_0000
    public static let uartIRQ: UInt32 = 10
    public static let uartClock: UInt32 = 3_686_400
    public static let virtioBase: UInt64 = 0x1000_1000
    public static let virtioStride: UInt64 = 0x1000
    public static let virtioSlots = 8
    public static let ramBase: UInt64 = 0x8000_0000
    public static let timebaseFrequency: UInt32 = 10_000_000
    /// Where `fw_jump` firmware hands over: the kernel's load address.
    public static let kernelBase: UInt64 = 0x8020_0000
    public static let isa = "rv64imafdc_zicsr_zifencei_zicntr_zihintpause_sstc"

    /// The device tree QEMU's virt board would pass for `harts` harts and
    /// `memoryBytes` of RAM: the same nodes, compatibles, registers, interrupt
    /// wiring and phandle structure (OpenSBI, U-Boot and Linux read it).
    public static func deviceTree(harts: Int, memoryBytes: UInt64, bootargs: String? = nil,
                                  initrd: Range<UInt64>? = nil) -> [UInt8] {
        precondition(harts >= 1)
        // phandles: one per hart interrupt controller, then the PLIC and the test device.
        let intc = (0..<harts).map { UInt32(1 + $0) }
        let plicPhandle = UInt32(harts + 1), testPhandle = UInt32(harts + 2)
        var t = FlattenedDeviceTree()
        t.begin("")
        t.property("#address-cells", cells: [2])
        t.property("#size-cells", cells: [2])
        t.property("compatible", string: "riscv-virtio")
        t.property("model", string: "riscv-virtio,qemu")

        t.begin("chosen")
        if let bootargs { t.property("bootargs", string: bootargs) }
        if let initrd {
            // QEMU 7.2 writes both as one 32-bit cell (RAM starts at 2 GiB, and an
            // initrd sits within its first 4 GiB); Linux reads either width.
            func cells(_ v: UInt64) -> [UInt32] {
                v <= UInt64(UInt32.max) ? [UInt32(v)] : [UInt32(v >> 32), UInt32(truncatingIfNeeded: v)]
            }
            t.property("linux,initrd-start", cells: cells(initrd.lowerBound))
            t.property("linux,initrd-end", cells: cells(initrd.upperBound))
        }
        t.property("stdout-path", string: "/soc/serial@\(hex(uart))")
        t.end()

        t.begin("memory@\(hex(ramBase))")
        t.property("device_type", string: "memory")
        t.property("reg", pairs: [ramBase, memoryBytes])
        t.end()

        t.begin("cpus")
        t.property("#address-cells", cells: [1])
        t.property("#size-cells", cells: [0])
        t.property("timebase-frequency", cells: [timebaseFrequency])
        for h in 0..<harts {
            t.begin("cpu@\(h)")
            t.property("phandle", cells: [intc[h] + 0x100])
            t.property("device_type", string: "cpu")
            t.property("reg", cells: [UInt32(h)])
            t.property("status", string: "okay")
            t.property("compatible", string: "riscv")
            t.property("riscv,isa", string: isa)
            t.property("mmu-type", string: "riscv,sv39")
            t.begin("interrupt-controller")
            t.property("#interrupt-cells", cells: [1])
            t.property("interrupt-controller")
            t.property("compatible", string: "riscv,cpu-intc")
            t.property("phandle", cells: [intc[h]])
            t.end()
            t.end()
        }
        t.begin("cpu-map")
        t.begin("cluster0")
        for h in 0..<harts {
            t.begin("core\(h)")
            t.property("cpu", cells: [intc[h] + 0x100])
            t.end()
        }
        t.end()
        t.end()
        t.end()

        t.begin("soc")
        t.property("#address-cells", cells: [2])
        t.property("#size-cells", cells: [2])
        t.property("compatible", string: "simple-bus")
        t.property("ranges")

        t.begin("test@\(hex(testDevice))")
        t.property("phandle", cells: [testPhandle])
        t.property("reg", pairs: [testDevice, 0x1000])
        t.property("compatible", strings: ["sifive,test1", "sifive,test0", "syscon"])
        t.end()

        t.begin("clint@\(hex(clint))")
        t.property("interrupts-extended", cells: intc.flatMap { [$0, 3, $0, 7] })
        t.property("reg", pairs: [clint, clintSize])
        t.property("compatible", strings: ["sifive,clint0", "riscv,clint0"])
        t.end()

        t.begin("plic@\(hex(plic))")
        t.property("phandle", cells: [plicPhandle])
        t.property("riscv,ndev", cells: [plicSources])
        t.property("reg", pairs: [plic, plicSize])
        t.property("interrupts-extended", cells: intc.flatMap { [$0, 11, $0, 9] })
        t.property("interrupt-controller")
        t.property("compatible", strings: ["sifive,plic-1.0.0", "riscv,plic0"])
        t.property("#address-cells", cells: [0])
        t.property("#interrupt-cells", cells: [1])
        t.end()

        t.begin("serial@\(hex(uart))")
        t.property("interrupts", cells: [uartIRQ])
        t.property("interrupt-parent", cells: [plicPhandle])
        t.property("clock-frequency", cells: [uartClock])
        t.property("reg", pairs: [uart, 0x100])
        t.property("compatible", string: "ns16550a")
        t.end()

        for i in (0..<virtioSlots).reversed() {
            let base = virtioBase + UInt64(i) * virtioStride
            t.begin("virtio_mmio@\(hex(base))")
            t.property("interrupts", cells: [UInt32(1 + i)])
            t.property("interrupt-parent", cells: [plicPhandle])
            t.property("reg", pairs: [base, virtioStride])
            t.property("compatible", string: "virtio,mmio")
            t.end()
        }
        t.end()  // soc

        for (node, value) in [("poweroff", UInt32(0x5555)), ("reboot", 0x7777)] {
            t.begin(node)
            t.property("value", cells: [value])
            t.property("offset", cells: [0])
            t.property("regmap", cells: [testPhandle])
            t.property("compatible", string: "syscon-\(node)")
            t.end()
        }

        t.end()  // root
        return t.finish()
    }

    /// Where QEMU 7.2 puts the device tree: at the end of RAM (below 3 GiB past its
    /// start), aligned down to 2 MiB.
    public static func deviceTreeAddress(memoryBytes: UInt64, blobSize: Int) -> UInt64 {
        let top = min(ramBase + memoryBytes, ramBase + (3 << 30))
        return (top - UInt64(blobSize)) & ~UInt64((2 << 20) - 1)
    }

    private static func hex(_ v: UInt64) -> String { String(v, radix: 16) }
}
