import Testing
@testable import Cluster

@Suite struct MemorySizeTests {
    static let cases: [(String, UInt64)] = [
        ("256M", 256 * 1_048_576), ("1G", 1_073_741_824), ("512", 512 * 1_048_576), ("64K", 65_536),
        ("2GiB", 2_147_483_648), ("128MB", 128 * 1_048_576), (" 16m ", 16 * 1_048_576),
    ]
    @Test(arguments: cases)
    func parses(text: String, bytes: UInt64) throws {
        #expect(try MemorySize.parse(text) == bytes)
    }

    @Test(arguments: ["", "M", "12X", "-5M", "0", "abc", "99999999999T"])
    func rejects(text: String) {
        #expect(throws: SpecError.self) { try MemorySize.parse(text) }
    }

    @Test func formats() {
        #expect(MemorySize.format(256 << 20) == "256M")
        #expect(MemorySize.format(1 << 30) == "1G")
        #expect(MemorySize.format(1000) == "1000B")
    }
}

@Suite struct VMSpecParsingTests {
    @Test func fullSpec() throws {
        let spec = try VMSpec.parse(yaml: """
            name: demo
            vcpus: 2
            memory: 256M
            bios: none
            kernel: guest.elf
            disks:
              - a.img
              - { path: /abs/b.img, readonly: true }
            bootargs: console=ttyS0
            console-log: out.log
            """, baseDirectory: "/specs")
        #expect(spec == VMSpec(name: "demo", vcpus: 2, memoryBytes: 256 << 20, firmware: VMSpec.Firmware.none,
                               kernel: "/specs/guest.elf",
                               disks: [.init(path: "/specs/a.img"), .init(path: "/abs/b.img", readOnly: true)],
                               bootargs: "console=ttyS0", consoleLog: "/specs/out.log"))
    }

    @Test(arguments: [
        ("vcpu: 2", "unknown spec key 'vcpu'"),
        ("vcpus: two", "whole number"),
        ("memory: 12Q", "unknown suffix"),
        ("- a\n- b", "mapping"),
        ("disks: a.img", "must be a list"),
        ("disks:\n  - {path: a, ro: true}", "unknown disk key 'ro'"),
        ("name: [unclosed", "not valid YAML"),
    ])
    func badSpecsSayWhy(yaml: String, message: String) {
        do {
            _ = try VMSpec.parse(yaml: yaml)
            Issue.record("accepted a bad spec: \(yaml)")
        } catch let error as SpecError {
            #expect(error.description.contains(message), "\(error.description)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func validation() {
        let exists: (String) -> Bool = { $0 != "/missing" }
        #expect(throws: Never.self) { try VMSpec(kernel: "/k").validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec(vcpus: 0, kernel: "/k").validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec(vcpus: 65, kernel: "/k").validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec(memoryBytes: 1000, kernel: "/k").validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec().validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec(firmware: VMSpec.Firmware.none).validate(fileExists: exists) }
        #expect(throws: SpecError.self) { try VMSpec(kernel: "/missing").validate(fileExists: exists) }
        #expect(throws: SpecError.self) {
            try VMSpec(kernel: "/k", disks: Array(repeating: .init(path: "/d"), count: 9)).validate(fileExists: exists)
        }
    }
}

@Suite struct VMSpecYAMLTests {
    @Test func yamlRoundTripsWithAbsolutePaths() throws {
        var spec = VMSpec(name: "two words: and a colon", vcpus: 3, memoryBytes: 96 << 20)
        spec.firmware = .file("fw/fw_jump.bin")
        spec.kernel = "/abs/u-boot.bin"
        spec.bootargs = "console=ttyS0 'quoted' #not a comment"
        spec.disks = [VMSpec.Disk(path: "a.img"), VMSpec.Disk(path: "/b.img", readOnly: true)]
        spec.placement = .node(2)
        let text = spec.yamlText(baseDirectory: "/work/dir")
        let back = try VMSpec.parse(yaml: text)
        var expected = spec
        expected.firmware = .file("/work/dir/fw/fw_jump.bin")
        expected.disks[0].path = "/work/dir/a.img"
        #expect(back == expected)
        // An initrd (QEMU's -initrd) is read from `initrd:` relative to the spec's folder.
        var linux = VMSpec(kernel: "/boot/Image")
        linux.initrd = "initrd.img"
        let linuxBack = try VMSpec.parse(yaml: linux.yamlText(baseDirectory: "/vms"))
        #expect(linuxBack.initrd == "/vms/initrd.img")
        #expect(try VMSpec.parse(yaml: "kernel: Image\ninitrd: rd/initrd.img\n", baseDirectory: "/vms").initrd == "/vms/rd/initrd.img")
        let exists: (String) -> Bool = { $0 != "/missing" }
        #expect(throws: Never.self) { try linuxBack.validate(fileExists: exists) }
        var missing = linuxBack
        missing.initrd = "/missing"
        #expect(throws: SpecError("initrd '/missing': no such readable file")) { try missing.validate(fileExists: exists) }
        var orphan = VMSpec(firmware: .file("/fw"))
        orphan.initrd = "/rd"
        #expect(throws: SpecError.self) { try orphan.validate(fileExists: exists) }
        var none = VMSpec()
        none.firmware = VMSpec.Firmware.none
        none.kernel = "/k.elf"
        #expect(try VMSpec.parse(yaml: none.yamlText()) == none)
    }

    @Test func numaPolicyAndItsParametersRoundTrip() throws {
        let spec = try VMSpec.parse(yaml: "kernel: /k\nnumaPolicy: off\nnumaParameters: {trigger: 64, resetMillis: 50}\n")
        #expect(spec.numaPolicy == false)
        #expect(spec.numaParameters.trigger == 64 && spec.numaParameters.resetMillis == 50 && spec.numaParameters.sharing == nil)
        #expect(try VMSpec.parse(yaml: spec.yamlText()) == spec)
        #expect(try VMSpec.parse(yaml: "kernel: /k\n").numaPolicy == true)
        for bad in ["numaPolicy: maybe", "numaParameters: 5", "numaParameters: {trigger: 0}", "numaParameters: {trigger: x}",
                    "numaParameters: {speed: 3}"] {
            #expect(throws: SpecError.self, "\(bad)") { try VMSpec.parse(yaml: "kernel: /k\n\(bad)\n") }
        }
    }

    @Test func placementIsFirstTouchInterleaveOrOneNode() throws {
        #expect(try VMSpec.parse(yaml: "placement: node:3").placement == .node(3))
        #expect(try VMSpec.parse(yaml: "placement: interleave").placement == .interleave)
        #expect(try VMSpec.parse(yaml: "placement: first-touch").placement == .firstTouch)
        #expect(try VMSpec.parse(yaml: "name: x").placement == .firstTouch)
        for bad in ["node:", "node:-1", "first", "node:x"] {
            #expect(throws: SpecError("bad placement '\(bad)' (known: first-touch, interleave, node:N)")) {
                try VMSpec.parse(yaml: "placement: '\(bad)'")
            }
        }
    }
}

@Suite struct VMSpecDiskTests {
    @Test func diskOptionsReadLikeQEMUDriveOptions() throws {
        #expect(try VMSpec.Disk(parsingOption: "disk.img") == VMSpec.Disk(path: "disk.img"))
        #expect(try VMSpec.Disk(parsingOption: "vm.qcow2,slot=0") == VMSpec.Disk(path: "vm.qcow2", slot: 0))
        #expect(try VMSpec.Disk(parsingOption: "b.raw,readonly=on,slot=7,format=raw")
                == VMSpec.Disk(path: "b.raw", readOnly: true, slot: 7, format: "raw"))
        #expect(try VMSpec.Disk(parsingOption: "odd,,name.img,slot=2") == VMSpec.Disk(path: "odd,name.img", slot: 2))
        #expect(try VMSpec.Disk(parsingOption: "dir=x/a.img") == VMSpec.Disk(path: "dir=x/a.img"))
        for (bad, message) in [("", "no file name"), (",slot=1", "no file name"), ("a,slot=8", "slot 8 does not exist"),
                               ("a,slot=x", "slot must be a number"), ("a,bus=1", "unknown option 'bus'"),
                               ("a,slot", "is not key=value"), ("a,format=vmdk", "unknown format 'vmdk'"),
                               ("a,readonly=maybe", "must be on or off"), ("a,slot=1,slot=2", "'slot' given twice")] {
            #expect(throws: SpecError.self, "\(bad)") { try VMSpec.Disk(parsingOption: bad) }
            do { _ = try VMSpec.Disk(parsingOption: bad) } catch let e as SpecError {
                #expect(e.description.contains(message), "\(e.description)")
            }
        }
    }

    @Test func specDisksTakeASlotAndAFormatAndRoundTrip() throws {
        let spec = try VMSpec.parse(yaml: """
            kernel: /k
            disks:
              - { path: vm.qcow2, slot: 0 }
              - { path: base.raw, readonly: true, format: raw }
              - c.img
            """, baseDirectory: "/d")
        #expect(spec.disks == [VMSpec.Disk(path: "/d/vm.qcow2", slot: 0), VMSpec.Disk(path: "/d/base.raw", readOnly: true, format: "raw"),
                               VMSpec.Disk(path: "/d/c.img")])
        #expect(try VMSpec.parse(yaml: spec.yamlText()) == spec)
        for (bad, message) in [("{path: a, slot: 9}", "slot 9 does not exist"), ("{path: a, slot: x}", "must be a number"),
                               ("{path: a, format: vhd}", "unknown format 'vhd'"), ("{path: a, bus: 1}", "unknown disk key 'bus'")] {
            do {
                _ = try VMSpec.parse(yaml: "kernel: /k\ndisks:\n  - \(bad)\n")
                Issue.record("accepted \(bad)")
            } catch let e as SpecError {
                #expect(e.description.contains(message), "\(e.description)")
            }
        }
    }

    @Test func twoDisksOnOneSlotAreRefused() {
        let spec = VMSpec(kernel: "/k", disks: [.init(path: "/a", slot: 3), .init(path: "/b"), .init(path: "/c", slot: 3)])
        #expect(throws: SpecError("disks '/a' and '/c' both want virtio slot 3")) { try spec.validate(fileExists: { _ in true }) }
        let fine = VMSpec(kernel: "/k", disks: [.init(path: "/a", slot: 3), .init(path: "/b"), .init(path: "/c", slot: 4)])
        #expect(throws: Never.self) { try fine.validate(fileExists: { _ in true }) }
    }

    @Test func nicOptionsReadLikeQEMUs() throws {
        #expect(try VMSpec.NIC(parsingOption: "switch") == .init(attachment: .switch("default")))
        #expect(try VMSpec.NIC(parsingOption: "switch=lan,mac=52:54:00:00:00:01,slot=0")
                == .init(attachment: .switch("lan"), mac: "52:54:00:00:00:01", slot: 0))
        #expect(try VMSpec.NIC(parsingOption: "user,slot=3") == .init(attachment: .user, slot: 3))
        #expect(try VMSpec.NIC(parsingOption: "switch=lan,mtu=16384") == .init(attachment: .switch("lan"), mtu: 16384))
        for (bad, message) in [("tap", "say 'switch[=NAME]' or 'user' first"), ("user,mac=52:54:00", "is not six hex octets"),
                               ("user,mac=01:00:5e:00:00:01", "is a group (multicast) address"),
                               ("switch=lan,slot=9", "slot 9 does not exist"), ("switch=a b", "must be 1-64 letters"),
                               ("user,speed=10", "unknown option 'speed'"), ("switch,mtu=big", "mtu must be a number"), ("switch,mtu=67", "MTU 67 is not"),
                               ("user,mtu=9000", "mtu is for switch NICs"), ("user,slot=1,slot=2", "'slot' given twice")] {
            do {
                _ = try VMSpec.NIC(parsingOption: bad)
                Issue.record("accepted \(bad)")
            } catch let e as SpecError {
                #expect(e.description.contains(message), "\(e.description)")
            }
        }
    }

    @Test func specNICsParseValidateAndRoundTrip() throws {
        let spec = try VMSpec.parse(yaml: """
            kernel: /k
            disks: [{path: /d, slot: 7}]
            nics:
              - {switch: lan, mac: "52:54:00:00:00:07", slot: 0}
              - user
              - switch=dmz
              - {switch: jumbo, mtu: 16384}
            """)
        #expect(spec.nics == [.init(attachment: .switch("lan"), mac: "52:54:00:00:00:07", slot: 0), .init(attachment: .user),
                              .init(attachment: .switch("dmz")), .init(attachment: .switch("jumbo"), mtu: 16384)])
        #expect(try VMSpec.parse(yaml: spec.yamlText()) == spec)
        #expect(throws: Never.self) { try spec.validate(fileExists: { _ in true }) }
        var clash = spec
        clash.nics[1].slot = 7
        #expect(throws: SpecError("disk '/d' and NIC 1 (user NIC) both want virtio slot 7")) { try clash.validate(fileExists: { _ in true }) }
        var twins = spec
        twins.nics[2].mac = "52:54:00:00:00:07"
        #expect(throws: SpecError("two NICs have MAC 52:54:00:00:00:07")) { try twins.validate(fileExists: { _ in true }) }
        var many = spec
        many.nics = Array(repeating: .init(attachment: .user), count: 8)
        #expect(throws: SpecError("at most 8 virtio devices (disks and NICs), not 1 disks and 8 NICs")) {
            try many.validate(fileExists: { _ in true })
        }
        #expect(throws: SpecError("user NIC: the MTU of a user NIC is libslirp's 1500; mtu is for switch NICs")) {
            try VMSpec.parse(yaml: "nics: [{user: true, mtu: 9000}]")
        }
        #expect(throws: SpecError("NIC on switch 'lan': MTU 70000 is not 68...65535")) { try VMSpec.parse(yaml: "nics: [{switch: lan, mtu: 70000}]") }
        #expect(throws: SpecError("a NIC needs 'switch: NAME' or 'user: true'")) { try VMSpec.parse(yaml: "nics: [{mac: '52:54:00:00:00:01'}]") }
        #expect(throws: SpecError("unknown NIC key 'model' (known: switch, user, mac, slot, mtu)")) {
            try VMSpec.parse(yaml: "nics: [{user: true, model: e1000}]")
        }
    }
}
