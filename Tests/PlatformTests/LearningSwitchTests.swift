import Testing
@testable import Platform

/// The pure switch: learning, forwarding, flooding, split horizon, aging, bad frames.
@Suite struct LearningSwitchTests {
    enum Port: Hashable, Sendable { case nic(Int), trunk(Int) }

    static let a = MACAddress(0x5254_0000_0001), b = MACAddress(0x5254_0000_0002), c = MACAddress(0x5254_0000_0003)

    func frame(from src: MACAddress, to dst: MACAddress, payload: Int = 46) -> [UInt8] {
        dst.bytes + src.bytes + [0x88, 0xb5] + [UInt8](repeating: 7, count: payload)
    }

    func makeSwitch(aging: UInt64 = 1_000) -> LearningSwitch<Port> {
        LearningSwitch(agingNanos: aging, isTrunk: { if case .trunk = $0 { return true } else { return false } })
    }

    let ports: [Port] = [.nic(1), .nic(2), .nic(3), .trunk(7), .trunk(8)]

    @Test func unknownUnicastAndBroadcastFloodEveryOtherPort() {
        var s = makeSwitch()
        #expect(s.forward(frame(from: Self.a, to: Self.b), from: .nic(1), ports: ports, now: 0)
                == .forward([.nic(2), .nic(3), .trunk(7), .trunk(8)]))
        #expect(s.forward(frame(from: Self.a, to: .broadcast), from: .nic(1), ports: ports, now: 1)
                == .forward([.nic(2), .nic(3), .trunk(7), .trunk(8)]))
        // A multicast destination (group bit) floods too.
        #expect(s.forward(frame(from: Self.a, to: MACAddress(0x0100_5e00_0001)), from: .nic(1), ports: ports, now: 2)
                == .forward([.nic(2), .nic(3), .trunk(7), .trunk(8)]))
    }

    @Test func learnedStationsGetUnicastToOnePort() {
        var s = makeSwitch()
        _ = s.forward(frame(from: Self.a, to: .broadcast), from: .nic(1), ports: ports, now: 0)
        _ = s.forward(frame(from: Self.b, to: .broadcast), from: .trunk(7), ports: ports, now: 0)
        #expect(s.table[Self.a]?.port == .nic(1))
        #expect(s.table[Self.b]?.port == .trunk(7))
        #expect(s.forward(frame(from: Self.c, to: Self.a), from: .nic(3), ports: ports, now: 1) == .forward([.nic(1)]))
        #expect(s.forward(frame(from: Self.a, to: Self.b), from: .nic(1), ports: ports, now: 1) == .forward([.trunk(7)]))
        // A station that moves is learned on its new port.
        _ = s.forward(frame(from: Self.a, to: .broadcast), from: .nic(2), ports: ports, now: 2)
        #expect(s.forward(frame(from: Self.c, to: Self.a), from: .nic(3), ports: ports, now: 3) == .forward([.nic(2)]))
    }

    @Test func framesFromATrunkNeverGoToAnotherTrunk() {
        var s = makeSwitch()
        #expect(s.forward(frame(from: Self.b, to: .broadcast), from: .trunk(7), ports: ports, now: 0)
                == .forward([.nic(1), .nic(2), .nic(3)]))
        _ = s.forward(frame(from: Self.c, to: .broadcast), from: .trunk(8), ports: ports, now: 0)
        // b (on trunk 7) to c (learned on trunk 8): the sender's node sends to c's node itself.
        #expect(s.forward(frame(from: Self.b, to: Self.c), from: .trunk(7), ports: ports, now: 1) == .drop(reason: nil))
        // A frame to a station on the port it came from stays there.
        _ = s.forward(frame(from: Self.a, to: .broadcast), from: .nic(1), ports: ports, now: 1)
        #expect(s.forward(frame(from: Self.c, to: Self.a), from: .nic(1), ports: ports, now: 2) == .drop(reason: nil))
    }

    @Test func entriesAgeOutAndDepartedPortsAreForgotten() {
        var s = makeSwitch(aging: 100)
        _ = s.forward(frame(from: Self.a, to: .broadcast), from: .nic(1), ports: ports, now: 0)
        #expect(s.forward(frame(from: Self.c, to: Self.a), from: .nic(3), ports: ports, now: 99) == .forward([.nic(1)]))
        // c was learned at 99; a (learned at 0) is too old at 100: flooded again.
        #expect(s.forward(frame(from: Self.c, to: Self.a), from: .nic(3), ports: ports, now: 100)
                == .forward([.nic(1), .nic(2), .trunk(7), .trunk(8)]))
        s.expire(now: 150)
        #expect(s.table[Self.a] == nil && s.table[Self.c] != nil)
        s.forget(port: .nic(3))
        #expect(s.table.isEmpty)
        // A learned port that is no longer among the ports: flood.
        _ = s.forward(frame(from: Self.b, to: .broadcast), from: .nic(2), ports: ports, now: 200)
        #expect(s.forward(frame(from: Self.a, to: Self.b), from: .nic(1), ports: [.nic(1), .nic(3)], now: 201) == .forward([.nic(3)]))
    }

    @Test func malformedFramesAreDroppedWithAReasonAndNotLearned() {
        var s = makeSwitch()
        guard case .drop(let short?) = s.forward([1, 2, 3], from: .trunk(7), ports: ports, now: 0) else {
            Issue.record("a 3-byte frame was not dropped with a reason"); return
        }
        #expect(short.contains("shorter than an Ethernet header"))
        guard case .drop(let long?) = s.forward(frame(from: Self.a, to: Self.b, payload: 65540), from: .trunk(7), ports: ports, now: 0) else {
            Issue.record("a 65554-byte frame was not dropped with a reason"); return
        }
        #expect(long.contains("65554-byte frame is larger than the 65553-byte maximum"))
        guard case .drop(let group?) = s.forward(frame(from: .broadcast, to: Self.b), from: .nic(1), ports: ports, now: 0) else {
            Issue.record("a frame from the broadcast address was not dropped"); return
        }
        #expect(group.contains("group address"))
        #expect(s.table.isEmpty)
        // The largest frame (65553 bytes: MTU 65535, a header and a tag) and the shortest pass.
        #expect(s.forward(frame(from: Self.a, to: Self.b, payload: 65539), from: .nic(1), ports: ports, now: 1) != .drop(reason: nil))
        #expect(s.forward(frame(from: Self.a, to: Self.b, payload: 0), from: .nic(1), ports: ports, now: 1)
                == .forward([.nic(2), .nic(3), .trunk(7), .trunk(8)]))
    }

    @Test func aFullTableStillFloods() {
        var s = LearningSwitch<Port>(agingNanos: 1_000, capacity: 1)
        _ = s.forward(frame(from: Self.a, to: .broadcast), from: .nic(1), ports: ports, now: 0)
        _ = s.forward(frame(from: Self.b, to: .broadcast), from: .nic(2), ports: ports, now: 0)
        #expect(s.table.count == 1 && s.table[Self.b] == nil)
        #expect(s.forward(frame(from: Self.a, to: Self.b), from: .nic(1), ports: ports, now: 1)
                == .forward([.nic(2), .nic(3), .trunk(7), .trunk(8)]))
    }

    @Test func addressesParseAndDerive() {
        #expect(MACAddress(parsing: "52:54:00:12:34:56")?.value == 0x5254_0012_3456)
        #expect(MACAddress(parsing: "52-54-00-12-34-5F")?.description == "52:54:00:12:34:5f")
        #expect(MACAddress(parsing: "52:54:00:12:34") == nil)
        #expect(MACAddress(parsing: "52:54:00:12:34:5g") == nil)
        let m = MACAddress.derived(vm: 0x0102_0304, nic: 5)
        #expect(m.description == "52:54:02:03:04:05")
        #expect(m.isLocallyAdministered && !m.isMulticast)
        #expect(MACAddress.derived(vm: 1, nic: 0) != MACAddress.derived(vm: 2, nic: 0))
        #expect(MACAddress.derived(vm: 1, nic: 0) != MACAddress.derived(vm: 1, nic: 1))
        #expect(MACAddress.broadcast.isMulticast)
    }
}
