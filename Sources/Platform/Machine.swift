import Foundation
import RISCV

/// Firmware entered in M-mode at the start of RAM.
public enum BootFirmware: Equatable, Sendable {
    /// `-bios none`: the kernel itself is entered in M-mode.
    case none
    case file(String)
}

/// A virtio-blk disk of a VM: the image file, its format (nil: detected from the
/// file, raw or qcow2) and the virtio-mmio slot it sits in (nil: the slots fill from
/// the top, as QEMU's `-device virtio-blk-device` without `bus=` does).
public struct DiskConfig: Equatable, Sendable {
    public var path: String
    public var readOnly: Bool
    public var slot: Int?
    public var format: DiskFormat?
    public init(path: String, readOnly: Bool = false, slot: Int? = nil, format: DiskFormat? = nil) {
        self.path = path
        self.readOnly = readOnly
        self.slot = slot
        self.format = format
    }
}

/// A virtio-net NIC of a VM: what it is plugged into, its MAC address (nil: derived
/// from the VM id and the NIC's index, `MACAddress.derived`) and its virtio-mmio slot
/// (nil: the free slots from the top, after the disks), and its MTU (nil: 1500).
public struct NICConfig: Equatable, Sendable {
    public enum Backend: Equatable, Sendable {
        /// A port on the cluster-wide virtual switch of the subnet with this name.
        case `switch`(String)
        /// The host's network through user-mode NAT (libslirp), as QEMU's `-nic user`.
        case user
    }
    public var backend: Backend
    public var mac: MACAddress?
    public var slot: Int?
    public var mtu: Int?
    public init(backend: Backend, mac: MACAddress? = nil, slot: Int? = nil, mtu: Int? = nil) {
        self.backend = backend
        self.mac = mac
        self.slot = slot
        self.mtu = mtu
    }
}

public struct MachineConfig: Equatable, Sendable {
    public var harts: Int
    public var memoryBytes: UInt64
    public var bios: BootFirmware
    public var kernel: String?
    public var disks: [DiskConfig]
    public var nics: [NICConfig]
    public var bootargs: String?
    /// An initial RAM disk loaded high in RAM, as QEMU's -initrd.
    public var initrd: String?

    public init(harts: Int, memoryBytes: UInt64, bios: BootFirmware, kernel: String?, disks: [DiskConfig],
                nics: [NICConfig] = [], bootargs: String?, initrd: String? = nil) {
        self.harts = harts
        self.memoryBytes = memoryBytes
        self.bios = bios
        self.kernel = kernel
        self.disks = disks
        self.nics = nics
        self.bootargs = bootargs
        self.initrd = initrd
    }

    /// NIC `i`'s address: the configured one, else the one derived from `vm` and `i`.
    public func mac(ofNIC i: Int, vm: UInt32) -> MACAddress { nics[i].mac ?? .derived(vm: vm, nic: i) }
}

public enum MachineExit: Equatable, Sendable {
    case pass
    case fail(UInt32)
    case reset
    case stopped
}

/// Why a machine cannot be built, in one line naming the culprit.
public struct MachineError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One VM in this process: QEMU virt's board around `harts` harts, run round-robin
/// on the calling thread. A cluster node replaces the loop and the bus, not the
/// devices.
public final class Machine: InterruptSink {
    public let config: MachineConfig
    public let bus: SystemBus
    public private(set) var harts: [Hart] = []
    let devices: BoardDevices
    private let userNetworks: UserNetworks
    private let clock = MonotonicClock()
    private let stopLock = NSLock()
    private var stopRequested = false
    private let wakeUp = NSCondition()

    public init(config: MachineConfig, console: ConsoleSink) throws {
        self.config = config
        let clock = self.clock
        do {
            bus = try SystemBus(ramSize: config.memoryBytes, clock: { clock.ticks() })
        } catch {
            throw MachineError("\(error)")
        }
        // Devices raise lines through `sink`, which reaches this machine once it exists.
        let sink = Sink()
        let users = try UserNetworks(config: config)
        userNetworks = users
        // One VM in the process: a NIC on a switch is alone on it, its frames reach no one.
        devices = try BoardDevices(config: config, io: true, clock: { clock.ticks() }, clintSink: sink, plicSink: sink,
                                   console: console, dma: bus, transmit: { _ = users.transmit(nic: $0, frame: $1.bytes) })
        for r in devices.regions { bus.attach(r.device, at: r.base, size: r.size) }
        harts = (0..<config.harts).map { Hart(id: $0, memory: bus) }
        sink.machine = self
        try boot()
    }

    /// The disks go back to their files (and release their locks) and the devices let go
    /// of the bus, which they hold for DMA while it holds them.
    deinit {
        devices.closeDisks()
        bus.detachAll()
    }

    /// Forwards device interrupt lines to the harts once the machine exists.
    private final class Sink: InterruptSink {
        weak var machine: Machine?
        func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool) {
            machine?.setInterrupt(hart: hart, line: line, asserted: asserted)
        }
    }

    public func setInterrupt(hart: Int, line: InterruptLine, asserted: Bool) {
        guard hart < harts.count else { return }
        harts[hart].setInterrupt(line, asserted)
    }

    public var instructionsRetired: UInt64 { harts.reduce(0) { $0 &+ $1.instructionsRetired } }

    // MARK: - Boot

    private func boot() throws {
        let image = try BootImage(config: config, ramBase: bus.ramBase)
        for chunk in image.chunks {
            guard chunk.bytes.withUnsafeBytes({ bus.copyIn($0, at: chunk.address) }) else {
                throw MachineError("image at 0x\(String(chunk.address, radix: 16)) does not fit in RAM")
            }
        }
        image.start(harts)
    }

    // MARK: - Running

    /// Stops `run()` from another thread.
    public func requestStop() {
        stopLock.lock(); stopRequested = true; stopLock.unlock()
        wakeUp.lock(); wakeUp.signal(); wakeUp.unlock()
    }

    private var shouldStop: Bool { stopLock.lock(); defer { stopLock.unlock() }; return stopRequested }

    /// Writes back, syncs and closes the VM's disks; call it once `run()` has returned
    /// and before another machine opens the same disks (a reset).
    public func closeDisks() { devices.closeDisks() }

    /// Feeds console input to the UART (any thread).
    public func consoleInput(_ bytes: [UInt8]) {
        devices.uart?.enqueueInput(bytes)
        wakeUp.lock(); wakeUp.signal(); wakeUp.unlock()
    }

    /// Runs the harts round-robin until the guest finishes or `requestStop()`.
    ///
    /// A hart that spins (`HartExit.spinning`: it polls memory that has not changed)
    /// gets only a short probe slice per round while another hart works, and when
    /// every hart that can run spins, nothing but devices and time can change what
    /// they poll: the machine sleeps a little (at most `spinPark`) instead.
    public func run() -> MachineExit {
        var waiting = [Bool](repeating: false, count: harts.count)
        var spinning = [Bool](repeating: false, count: harts.count)
        let budget = Self.sliceBudget
        while true {
            if shouldStop { return .stopped }
            devices.poll()
            if !userNetworks.isEmpty { userNetworks.poll(nics: devices.nics) }
            var ran = false, worked = false
            for (h, hart) in harts.enumerated() {
                if waiting[h] {
                    guard hart.hasWakeUpInterrupt else { continue }
                    waiting[h] = false
                }
                ran = true
                switch hart.run(budget: spinning[h] ? Self.spinProbeBudget : budget) {
                case .waitingForInterrupt: waiting[h] = true; spinning[h] = false
                case .spinning: spinning[h] = true
                case .budgetExhausted, .parked: spinning[h] = false; worked = true
                }
                if let exit = devices.takeExit() { return exit }
            }
            if !ran { idle() } else if !worked { idle(atMost: Self.spinPark) }
        }
    }

    /// A hart's slice, with one hart or several. Every slice start makes the hart check
    /// its decoded blocks against memory again (another hart or a device may have
    /// written code), so short slices with several harts cost that check over and over:
    /// with 10,000 instructions Debian's kernel on 4 harts spent 7.5% of its boot in it
    /// and reached init in 3.86 s (median of 3), with 100,000 in 3.24 s. A spinning hart
    /// still gets only a probe slice, so a lock's waiter does not hold up its holder; a
    /// slice is about a millisecond at most, which is how late another hart's interrupt
    /// can be taken.
    static let sliceBudget = 100_000
    /// A spinning hart's slice: long enough for its loop to come round again.
    static let spinProbeBudget = 256
    /// How long the machine sleeps when every hart spins (timer ticks of 100 ns: 250 µs).
    static let spinPark: UInt64 = 2_500

    /// Every hart waits for an interrupt (or spins): sleep until the next timer or
    /// console input, or `atMost` ticks.
    private func idle(atMost: UInt64 = 100_000) {
        let now = clock.ticks()
        let deadline = devices.nextDeadline(harts: harts) ?? .max
        let ticks = deadline > now ? min(deadline - now, atMost) : 0  // at most 10 ms
        guard ticks > 0 else { return }
        wakeUp.lock()
        _ = wakeUp.wait(until: Date(timeIntervalSinceNow: Double(ticks) / 10_000_000))
        wakeUp.unlock()
    }
}
