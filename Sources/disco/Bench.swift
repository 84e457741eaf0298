import ArgumentParser
import Foundation
import Cluster
import Node
import Platform

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: guest MIPS against QEMU (cpu), the transport against raw libuv (transport), the distributed machine (cluster), the virtual Ethernet (net), the global buffer cache (sharing), Debian's Linux boot (linux), the monitor's overhead beside idle VMs (overhead).",
        subcommands: [BenchCPU.self, BenchTransport.self, BenchCluster.self, BenchNUMA.self, BenchNet.self, BenchSharing.self, BenchLinux.self, BenchOverhead.self],
        defaultSubcommand: BenchCPU.self
    )
}

struct BenchCPU: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpu",
        abstract: "Measure single-hart guest MIPS, and the same guest's wall time on QEMU.",
        discussion: """
            Runs the benchmark guest (guests/build/bench.elf, built by `make -C guests`)
            in this process, counts retired instructions, then runs the same ELF on
            `qemu-system-riscv64 -machine virt -bios none` and reports the ratio of wall
            times. Build disco in release mode for meaningful figures:
              swift build -c release && .build/release/disco bench
            """
    )

    @Option(help: ArgumentHelp("The benchmark guest ELF.", valueName: "path"))
    var guest: String = "guests/build/bench.elf"

    @Option(help: "Runs of each side; the best is reported.")
    var repeats: Int = 3

    @Flag(help: "Skip the QEMU comparison.")
    var noQemu = false

    mutating func run() throws {
        guard FileManager.default.isReadableFile(atPath: guest) else {
            fail("benchmark guest '\(guest)' not found (build it with: make -C guests)")
        }
        guard repeats >= 1 else { fail("--repeats must be at least 1") }
        var best = (seconds: Double.infinity, instructions: UInt64(0))
        for i in 1...repeats {
            let sink = CapturingConsole()
            let config = MachineConfig(harts: 1, memoryBytes: 128 << 20, bios: .none, kernel: guest,
                                       disks: [], bootargs: nil)
            let machine: Machine
            do { machine = try Machine(config: config, console: sink) } catch { fail("\(error)") }
            let start = DispatchTime.now().uptimeNanoseconds
            let exit = machine.run()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard exit == .pass else {
                fail("benchmark guest did not pass on disco (\(exit)); output:\n\(sink.text)")
            }
            let instructions = machine.instructionsRetired
            print(String(format: "disco run %d: %.3f s, %llu instructions, %.1f MIPS", i, seconds, instructions,
                         Double(instructions) / seconds / 1e6))
            if seconds < best.seconds { best = (seconds, instructions) }
        }
        let mips = Double(best.instructions) / best.seconds / 1e6
        print(String(format: "disco: %.1f MIPS (best of %d, %llu instructions in %.3f s)", mips, repeats, best.instructions, best.seconds))

        guard !noQemu else { return }
        var qemuBest = Double.infinity
        for i in 1...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let status = runQEMU(elf: guest)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard status == 0 else { fail("QEMU run failed with status \(status)") }
            print(String(format: "qemu run %d: %.3f s", i, seconds))
            qemuBest = min(qemuBest, seconds)
        }
        print(String(format: "qemu: %.3f s wall (%.1f guest MIPS incl. start-up); disco/qemu wall-time ratio %.2f",
                     qemuBest, Double(best.instructions) / qemuBest / 1e6, best.seconds / qemuBest))
    }

    private func runQEMU(elf: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["qemu-system-riscv64", "-machine", "virt", "-bios", "none", "-nographic",
                             "-m", "128M", "-smp", "1", "-kernel", elf]
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { fail("cannot start qemu-system-riscv64: \(error)") }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A console that keeps what the guest prints.
final class CapturingConsole: ConsoleSink, @unchecked Sendable {
    private(set) var bytes: [UInt8] = []
    func write(_ buffer: UnsafeRawBufferPointer) { bytes.append(contentsOf: buffer) }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A benchmark run that went wrong (a refused VM, a guest that failed or hung), with why.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
