import Platform
import Testing
@testable import Node

/// A node's part of the virtual switch: local NICs, trunks to the subnet's other
/// nodes as the coordinator names them, split horizon, bad frames from the wire.
@Suite struct NodeSwitchTests {
    static let a = MACAddress(0x5254_0000_0001), b = MACAddress(0x5254_0000_0002), far = MACAddress(0x5254_0000_0009)

    func frame(from src: MACAddress, to dst: MACAddress) -> [UInt8] {
        dst.bytes + src.bytes + [0x88, 0xb5] + [UInt8](repeating: 1, count: 50)
    }

    let locals: [NodeSwitch.Port] = [.nic(vm: 1, index: 0), .nic(vm: 2, index: 0)]

    @Test func broadcastsReachLocalNICsAndTheSubnetsNodes() {
        var s = NodeSwitch()
        s.setMembers("lan", [0, 1, 3], me: 0)
        let f = frame(from: Self.a, to: .broadcast)
        let (out, dropped) = s.fromNIC(vm: 1, index: 0, subnet: "lan", frame: f, locals: locals, now: 0)
        #expect(dropped == nil)
        #expect(out == [.nic(vm: 2, index: 0, frame: f), .node(1, subnet: "lan", frame: f), .node(3, subnet: "lan", frame: f)])
        // Another subnet's members are not this one's.
        let (other, _) = s.fromNIC(vm: 1, index: 0, subnet: "dmz", frame: f, locals: [.nic(vm: 1, index: 0)], now: 0)
        #expect(other.isEmpty)
    }

    @Test func unicastGoesToTheNodeTheAddressWasLearnedFrom() {
        var s = NodeSwitch()
        s.setMembers("lan", [0, 1, 3], me: 0)
        let hello = frame(from: Self.far, to: .broadcast)
        let (fromFar, _) = s.fromNode(3, subnet: "lan", frame: hello, locals: locals, now: 0)
        // From a trunk: local NICs only, never on to node 1.
        #expect(fromFar == [.nic(vm: 1, index: 0, frame: hello), .nic(vm: 2, index: 0, frame: hello)])
        #expect(s.table("lan")[Self.far] == .node(3))
        let reply = frame(from: Self.a, to: Self.far)
        let (out, _) = s.fromNIC(vm: 1, index: 0, subnet: "lan", frame: reply, locals: locals, now: 1)
        #expect(out == [.node(3, subnet: "lan", frame: reply)])
        // Node 3 leaves the subnet: what was learned on it goes, and so do floods to it.
        s.setMembers("lan", [0, 1], me: 0)
        #expect(s.table("lan")[Self.far] == nil)
        let (after, _) = s.fromNIC(vm: 1, index: 0, subnet: "lan", frame: reply, locals: locals, now: 2)
        #expect(after == [.nic(vm: 2, index: 0, frame: reply), .node(1, subnet: "lan", frame: reply)])
    }

    @Test func aBadFrameFromAnotherNodeIsDroppedAloneWithAReason() {
        var s = NodeSwitch()
        s.setMembers("lan", [0, 1], me: 0)
        let huge = Self.b.bytes + Self.far.bytes + [0x08, 0] + [UInt8](repeating: 0, count: 70000)
        let (out, dropped) = s.fromNode(1, subnet: "lan", frame: huge, locals: locals, now: 0)
        #expect(out.isEmpty)
        #expect(dropped == "dropped a frame from node 1 on subnet 'lan': 70014-byte frame is larger than the 65553-byte maximum")
        let (short, why) = s.fromNode(1, subnet: "lan", frame: [1, 2], locals: locals, now: 0)
        #expect(short.isEmpty && why?.contains("2-byte frame is shorter than an Ethernet header") == true)
        #expect(s.counters.malformed == 2)
        // The next good frame from that node goes through.
        let good = frame(from: Self.far, to: Self.b)
        #expect(s.fromNode(1, subnet: "lan", frame: good, locals: locals, now: 1).deliveries.count == 2)
        // A subnet with no NIC here: dropped quietly, counted.
        #expect(s.fromNode(1, subnet: "other", frame: good, locals: [], now: 1) == ([], nil))
        #expect(s.counters.noPort == 1)
    }

    @Test func aDepartedNICIsForgotten() {
        var s = NodeSwitch()
        _ = s.fromNIC(vm: 2, index: 0, subnet: "lan", frame: frame(from: Self.b, to: .broadcast), locals: locals, now: 0)
        #expect(s.table("lan")[Self.b] == .nic(vm: 2, index: 0))
        s.remove(.nic(vm: 2, index: 0))
        #expect(s.table("lan").isEmpty)
    }
}
