import Foundation

/// A wall-clock profile of the guests, for finding where a VM waits across nodes:
/// every millisecond, the pc and scheduling state (running, parked on a line,
/// spinning, waiting for an interrupt, held by a move) of each VCPU on this node.
/// Enabled by `DISCO_GUEST_PROFILE=<folder>`: the node writes `<folder>/<node name>.txt`,
/// a section every `DISCO_GUEST_PROFILE_PERIOD` seconds (default: one at the end), each
/// a line per (VM, VCPU, state, pc) with its samples, most first. Map the pcs to
/// symbols with the guest's symbol table (docs/linux.md).
struct GuestProfile {
    let path: String
    private var next: UInt64 = 0
    private var counts: [Key: Int] = [:]
    private(set) var samples = 0

    struct Key: Hashable {
        var vm: UInt32
        var vcpu: Int
        var state: String
        var pc: UInt64
    }

    static let intervalNanos: UInt64 = 1_000_000

    /// Nanoseconds between sections (0: one section, at the end).
    let periodNanos: UInt64
    private var sectionStart: UInt64 = 0
    private var written = ""
    private var firstSample: UInt64 = 0

    init?(environment: [String: String] = ProcessInfo.processInfo.environment, name: String) {
        guard let dir = environment["DISCO_GUEST_PROFILE"], !dir.isEmpty else { return nil }
        path = dir + "/" + name + ".txt"
        periodNanos = UInt64((Double(environment["DISCO_GUEST_PROFILE_PERIOD"] ?? "") ?? 0) * 1e9)
    }

    /// Closes the section if its period is over: its report is kept for `write`.
    mutating func endSectionIfDue(_ now: UInt64) {
        if sectionStart == 0 { sectionStart = now; firstSample = now }
        guard periodNanos > 0, now &- sectionStart >= periodNanos else { return }
        written += "## \(Double(sectionStart &- firstSample) / 1e9) s to \(Double(now &- firstSample) / 1e9) s\n" + report()
        counts.removeAll(keepingCapacity: true)
        samples = 0
        sectionStart = now
    }

    private var last: UInt64 = 0

    /// The weight of a sample at `now`: 0 if none is due yet, else the milliseconds
    /// since the last one (a node that slept waiting for messages samples when it
    /// wakes, for the whole time it slept).
    mutating func due(_ now: UInt64) -> Int {
        guard now >= next else { return 0 }
        let weight = last == 0 ? 1 : max(1, Int((now &- last) / Self.intervalNanos))
        last = now
        next = now &+ Self.intervalNanos
        samples += weight
        return weight
    }

    mutating func add(vm: UInt32, vcpu: Int, state: String, pc: UInt64, weight: Int) {
        counts[Key(vm: vm, vcpu: vcpu, state: state, pc: pc), default: 0] += weight
    }

    /// The profile as text: a header, then the most sampled (VM, VCPU, state, pc) first.
    func report(limit: Int = 5000) -> String {
        var out = "# \(samples) samples, one per \(Self.intervalNanos / 1000) µs: samples vm vcpu state pc\n"
        for (k, n) in counts.sorted(by: { $0.value > $1.value }).prefix(limit) {
            out += "\(n) \(k.vm) \(k.vcpu) \(k.state) 0x\(String(k.pc, radix: 16))\n"
        }
        return out
    }

    func write() throws {
        try (written + (written.isEmpty ? "" : "## to the end\n") + report()).write(toFile: path, atomically: true, encoding: .utf8)
    }
}

extension NodeRuntime {
    /// One profile sample of every local VCPU, if one is due.
    func sampleGuests(_ now: UInt64) {
        guard guestProfile != nil, case let weight = guestProfile!.due(now), weight > 0 else { return }
        for (id, vm) in vms {
            for h in vm.harts {
                let state = scheduler.states[.init(vm: id, index: h.id)].map { "\($0)" } ?? "stopped"
                guestProfile!.add(vm: id, vcpu: h.id, state: state, pc: h.pc, weight: weight)
            }
        }
        guestProfile!.endSectionIfDue(now)
    }

    func writeGuestProfile() {
        guard let guestProfile else { return }
        do {
            try guestProfile.write()
            logger.info("guest profile (\(guestProfile.samples) samples) written to \(guestProfile.path)")
        } catch {
            logger.warning("cannot write the guest profile to \(guestProfile.path): \(error)")
        }
    }
}
