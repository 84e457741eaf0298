import Foundation
import RISCV

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

    struct Key: Hashable {
        var vm: UInt32
        var vcpu: Int
        var state: String
        var pc: UInt64
        /// For a parked VCPU: the guest-physical line it waits for (0: unknown).
        var line: UInt64 = 0
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

    /// Closes the section if its period is over: its report is kept for `write`,
    /// followed by `vcpus` (where the VCPUs are as it ends).
    mutating func endSectionIfDue(_ now: UInt64, vcpus: () -> String = { "" }) {
        if sectionStart == 0 { sectionStart = now; firstSample = now }
        guard periodNanos > 0, now &- sectionStart >= periodNanos else { return }
        written += "## \(Double(sectionStart &- firstSample) / 1e9) s to \(Double(now &- firstSample) / 1e9) s\n" + report() + vcpus()
        counts.removeAll(keepingCapacity: true)
        micros = 0
        sectionStart = now
    }

    private var last: UInt64 = 0

    /// The weight of a sample at `now`, in microseconds: 0 if none is due yet (one a
    /// millisecond), else the time since the last one. `force` takes one whenever the
    /// node is about to sleep or has just woken, before it handles what woke it: the
    /// time it slept then counts in the states its VCPUs slept in, not in the states
    /// that what woke it put them in (a parked VCPU woken by its line).
    mutating func due(_ now: UInt64, force: Bool = false) -> Int {
        guard force || now >= next else { return 0 }
        let weight = last == 0 ? Int(Self.intervalNanos / 1000) : Int((now &- last) / 1000)
        last = now
        next = now &+ Self.intervalNanos
        micros += weight
        return weight
    }

    /// Microseconds sampled, and the same in milliseconds (the report's unit).
    private var micros = 0
    var samples: Int { micros / 1000 }

    /// Adds `weight` microseconds to (VM, VCPU, state, pc, line).
    mutating func add(vm: UInt32, vcpu: Int, state: String, pc: UInt64, line: UInt64 = 0, weight: Int) {
        counts[Key(vm: vm, vcpu: vcpu, state: state, pc: pc, line: line), default: 0] += weight
    }

    /// The profile as text: a header, then the most sampled (VM, VCPU, state, pc) first.
    func report(limit: Int = 5000) -> String {
        var out = "# \(samples) samples, one per \(Self.intervalNanos / 1000) µs (milliseconds of VCPU time): samples vm vcpu state pc [line]\n"
        for (k, n) in counts.sorted(by: { $0.value > $1.value }).prefix(limit) where n >= 500 {
            out += "\((n + 500) / 1000) \(k.vm) \(k.vcpu) \(k.state) 0x\(String(k.pc, radix: 16))"
            out += k.line == 0 ? "\n" : " 0x\(String(k.line, radix: 16))\n"
        }
        // Where parked VCPUs wait, by line (guest-physical, or the machine address where
        // no VM of this node maps it), over every VCPU, pc and kind of access.
        var lines: [UInt64: Int] = [:]
        for (k, n) in counts where k.line != 0 { lines[k.line, default: 0] += n }
        if !lines.isEmpty {
            out += "# parked samples by line: samples line\n"
            for (l, n) in lines.sorted(by: { $0.value > $1.value }).prefix(200) where n >= 500 {
                out += "\((n + 500) / 1000) 0x\(String(l, radix: 16))\n"
            }
        }
        return out
    }

    func write(trailer: String = "") throws {
        try (written + (written.isEmpty ? "" : "## to the end\n") + report() + trailer).write(toFile: path, atomically: true, encoding: .utf8)
    }
}

extension NodeRuntime {
    /// One profile sample of every local VCPU, if one is due.
    func sampleGuests(_ now: UInt64, force: Bool = false) {
        guard guestProfile != nil, case let weight = guestProfile!.due(now, force: force), weight > 0 else { return }
        for (id, vm) in vms {
            for h in vm.harts {
                var state = scheduler.states[.init(vm: id, index: h.id)].map { "\($0)" } ?? "stopped"
                var line: UInt64 = 0
                if state == "parked", let agent, let w = agent.waitingAccess(requester: vm.requester(h.id)) {
                    state += w.write ? "-write" : "-read"
                    state += w.localHome ? "-homehere" : "-homeaway"
                    line = (vm.guestPhysical(ofMachine: w.address) ?? w.address) & ~0x3f
                }
                guestProfile!.add(vm: id, vcpu: h.id, state: state, pc: h.pc, line: line, weight: weight)
            }
        }
        guestProfile!.endSectionIfDue(now, vcpus: describeVCPUs)
    }

    func writeGuestProfile() {
        guard guestProfile != nil else { return }
        // The node's counters at the end, beside the samples (what `disco stats` would
        // have shown): misses, parks and their time, the requests its homes served.
        var me = -1
        if let n = state.nodeID { me = Int(n) }
        let report = statsReport(me)
        var trailer = ""
        for c in report.counters { trailer += "# \(c.name) \(c.value)\n" }
        trailer += describeVCPUs()
        let profile = guestProfile!
        do {
            try profile.write(trailer: trailer)
            logger.info("guest profile (\(profile.samples) samples) written to \(profile.path)")
        } catch {
            logger.warning("cannot write the guest profile to \(profile.path): \(error)")
        }
    }

    /// Where each local VCPU is (`# vcpu VM ID` and `describe`), a line each: what
    /// tells a hung guest's trap loop from a wait. Every section ends with them; the
    /// trailer has them only for VMs still here when the node stops.
    func describeVCPUs() -> String {
        var out = ""
        for (id, vm) in vms.sorted(by: { $0.key < $1.key }) {
            for h in vm.harts { out += "# vcpu \(id) \(h.id) \(Self.describe(h.state))\n" }
        }
        return out
    }

    /// A VCPU's pc, privilege, trap CSRs and a few registers, one line of hex.
    static func describe(_ st: HartState) -> String {
        let names: [UInt16: String] = [0x105: "stvec", 0x141: "sepc", 0x142: "scause", 0x143: "stval", 0x180: "satp",
                                       0x300: "mstatus", 0x304: "mie", 0x341: "mepc", 0x342: "mcause", 0x343: "mtval",
                                       0x344: "mip"]
        var parts = ["pc=\(String(st.pc, radix: 16))", "priv=\(st.privilege)"]
        for c in st.csrs { if let n = names[c.number] { parts.append("\(n)=\(String(c.value, radix: 16))") } }
        for (i, n) in [(1, "ra"), (2, "sp"), (3, "gp"), (4, "tp"), (10, "a0"), (11, "a1")] {
            parts.append("\(n)=\(String(st.registers[i], radix: 16))")
        }
        return parts.joined(separator: " ")
    }
}
