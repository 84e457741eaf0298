import Testing
@testable import Platform

/// The `--nic user` uplink: a DHCP DISCOVER put into libslirp comes back as an OFFER
/// of 10.0.2.15 from 10.0.2.2, as QEMU's user network answers (no socket leaves the
/// process: DHCP is answered inside the stack).
@Suite struct SlirpUplinkTests {
    static let mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        for i in stride(from: 0, to: bytes.count, by: 2) {
            sum += UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    /// A DHCPDISCOVER from `mac`, broadcast, as U-Boot's `dhcp` sends it.
    static func discover() -> [UInt8] {
        var bootp: [UInt8] = [1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x80, 0]
        bootp += [UInt8](repeating: 0, count: 16)        // ciaddr yiaddr siaddr giaddr
        bootp += mac + [UInt8](repeating: 0, count: 10)  // chaddr
        bootp += [UInt8](repeating: 0, count: 192)       // sname, file
        bootp += [0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255]
        bootp += [UInt8](repeating: 0, count: max(0, 300 - bootp.count))
        let udp = be16(68) + be16(67) + be16(8 + bootp.count) + [0, 0] + bootp
        var ip: [UInt8] = [0x45, 0] + be16(20 + udp.count) + [0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]
        let sum = checksum(ip)
        ip[10] = UInt8(sum >> 8); ip[11] = UInt8(sum & 0xff)
        return [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x00] + ip + udp
    }

    @Test func dhcpDiscoverGetsAnOfferOf10_0_2_15() throws {
        let uplink = try SlirpUplink()
        var got: [[UInt8]] = []
        uplink.deliver = { got.append($0) }
        uplink.input(Self.discover())
        for _ in 0..<10 where got.isEmpty { uplink.poll() }
        let offer = try #require(got.first { $0.count > 282 && $0[12] == 0x08 && $0[13] == 0x00 && $0[23] == 17 },
                                 "no IPv4/UDP answer from libslirp (got \(got.count) frames)")
        let udp = 14 + Int(offer[14] & 0x0f) * 4
        #expect(Array(offer[udp..<udp + 4]) == [0, 67, 0, 68])   // server port to client port
        let bootp = udp + 8
        #expect(offer[bootp] == 2)                                // BOOTREPLY
        #expect(Array(offer[bootp + 4..<bootp + 8]) == [0xde, 0xad, 0xbe, 0xef])
        #expect(Array(offer[bootp + 16..<bootp + 20]) == [10, 0, 2, 15])   // yiaddr
        #expect(Array(offer[26..<30]) == [10, 0, 2, 2])          // from the gateway
        #expect(Array(offer[6..<12]) != Self.mac)
        #expect(uplink.framesIn == 1 && uplink.framesOut >= 1)
    }

    @Test func userNetworksTakeOnlyUserNICs() throws {
        let config = MachineConfig(harts: 1, memoryBytes: 1 << 20, bios: .none, kernel: nil, disks: [],
                                   nics: [NICConfig(backend: .switch("lan")), NICConfig(backend: .user)], bootargs: nil)
        let users = try UserNetworks(config: config)
        #expect(!users.isEmpty)
        #expect(!users.transmit(nic: 0, frame: Self.discover()))
        #expect(users.transmit(nic: 1, frame: Self.discover()))
    }
}
