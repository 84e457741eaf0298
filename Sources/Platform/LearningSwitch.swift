/// A 48-bit Ethernet address, kept in the low 48 bits of a UInt64 (first octet on
/// the wire in bits 47..40).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value & 0xffff_ffff_ffff }

    /// The address in six octets, as on the wire.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.init(bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    /// `52:54:00:12:34:56` (also with `-` between octets).
    public init?(parsing text: String) {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == ":" || $0 == "-" }
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard p.count == 2, let octet = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(octet)
        }
        self.init(v)
    }

    public static let broadcast = MACAddress(0xffff_ffff_ffff)

    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (5 - $0))) } }

    /// The group bit (broadcast included): such a frame goes to every port.
    public var isMulticast: Bool { value >> 40 & 1 != 0 }

    /// The locally administered bit: addresses the monitor makes up have it.
    public var isLocallyAdministered: Bool { value >> 40 & 2 != 0 }

    /// The default address of NIC `nic` of VM `vm`: 52:54 (QEMU's prefix, locally
    /// administered, unicast), then the VM id in three octets and the NIC index, so
    /// that it is the same every time the VM runs and differs between VMs of a cluster.
    public static func derived(vm: UInt32, nic: Int) -> MACAddress {
        MACAddress(0x5254 << 32 | UInt64(vm & 0xff_ffff) << 8 | UInt64(nic & 0xff))
    }

    public var description: String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.value < b.value }
}

/// The frame sizes the virtual Ethernet carries: an Ethernet header and up to the MTU
/// of payload (1500 unless a NIC is given a larger one, as QEMU's `host_mtu`), plus 4 for
/// one 802.1Q tag, without the FCS (nobody adds it here). Shorter frames are fine (no
/// padding to 60 is required between VMs). The switch carries frames up to the largest
/// MTU virtio can announce (65535); each NIC drops what exceeds its own MTU.
public enum EthernetFrame {
    public static let headerBytes = 14
    public static let standardMTU = 1500
    public static let largestMTU = 65535
    /// The longest frame for a NIC of MTU `mtu`.
    public static func maxBytes(mtu: Int) -> Int { mtu + headerBytes + 4 }
    /// The standard maximum (1518 bytes).
    public static let maxBytes = maxBytes(mtu: standardMTU)
    /// The longest frame the switch carries.
    public static let largestBytes = maxBytes(mtu: largestMTU)

    /// Why `frame` cannot be switched, or nil when it can.
    public static func problem(_ frame: some Collection<UInt8>) -> String? {
        if frame.count < headerBytes { return "\(frame.count)-byte frame is shorter than an Ethernet header (14 bytes)" }
        if frame.count > largestBytes { return "\(frame.count)-byte frame is larger than the \(largestBytes)-byte maximum" }
        return nil
    }

    public static func destination(_ frame: [UInt8]) -> MACAddress { MACAddress(bytes: frame[0..<6])! }
    public static func source(_ frame: [UInt8]) -> MACAddress { MACAddress(bytes: frame[6..<12])! }
}

/// One learning switch of a virtual subnet (IEEE 802.1D's transparent bridge without
/// spanning tree): pure logic, no I/O, so that a test can drive it.
///
/// Ports are whatever the caller names them by: on a node, the local NICs of the
/// subnet and one *trunk* port per peer node. The nodes form a full mesh, so a frame
/// that came in on a trunk goes out on local ports only (split horizon: the sending
/// node already sent it to every other node it had to reach); a loop is impossible.
///
/// Invariants: the table never maps a group address; an entry older than `agingNanos`
/// is never used (and is removed by `expire`); a frame never goes back out of the
/// port it came in on.
public struct LearningSwitch<Port: Hashable & Sendable>: Sendable {
    public struct Entry: Equatable, Sendable {
        public var port: Port
        public var lastSeen: UInt64
    }

    public enum Decision: Equatable, Sendable {
        /// Send the frame out of these ports (in this order).
        case forward([Port])
        /// Drop it; `reason` says why when it is worth saying (a malformed frame).
        case drop(reason: String?)
    }

    /// Learned source addresses: where each was last seen, and when.
    public private(set) var table: [MACAddress: Entry] = [:]
    /// Ports whose frames are only flooded to local ports (the links to peer nodes).
    public var isTrunk: @Sendable (Port) -> Bool
    public var agingNanos: UInt64
    /// At most this many entries; a full table learns nothing new until entries age out
    /// (unknown destinations are flooded, as on a real switch).
    public var capacity: Int

    public init(agingNanos: UInt64 = 300_000_000_000, capacity: Int = 4096,
                isTrunk: @escaping @Sendable (Port) -> Bool = { _ in false }) {
        self.agingNanos = agingNanos
        self.capacity = capacity
        self.isTrunk = isTrunk
    }

    /// Where a frame that came in on `ingress` goes, given the switch's `ports` now.
    /// Learns the frame's source on the way.
    public mutating func forward(_ frame: [UInt8], from ingress: Port, ports: [Port], now: UInt64) -> Decision {
        if let problem = EthernetFrame.problem(frame) { return .drop(reason: problem) }
        let source = EthernetFrame.source(frame), destination = EthernetFrame.destination(frame)
        if source.isMulticast { return .drop(reason: "source address \(source) is a group address") }
        learn(source, on: ingress, now: now)
        let fromTrunk = isTrunk(ingress)
        if !destination.isMulticast, let entry = table[destination], now &- entry.lastSeen < agingNanos,
           ports.contains(entry.port) {
            // A known station: one port, unless that is where the frame came from (it
            // stays on its segment) or a trunk-to-trunk hop.
            if entry.port == ingress || (fromTrunk && isTrunk(entry.port)) { return .drop(reason: nil) }
            return .forward([entry.port])
        }
        // Broadcast, multicast, unknown unicast: flood.
        return .forward(ports.filter { $0 != ingress && !(fromTrunk && isTrunk($0)) })
    }

    /// Records that `address` sits behind `port`.
    public mutating func learn(_ address: MACAddress, on port: Port, now: UInt64) {
        guard !address.isMulticast else { return }
        if table[address] == nil && table.count >= capacity { return }
        table[address] = Entry(port: port, lastSeen: now)
    }

    /// Removes entries older than the aging time.
    public mutating func expire(now: UInt64) {
        table = table.filter { now &- $0.value.lastSeen < agingNanos }
    }

    /// Forgets every address learned on `port` (a NIC went away, a peer node died).
    public mutating func forget(port: Port) {
        table = table.filter { $0.value.port != port }
    }
}
