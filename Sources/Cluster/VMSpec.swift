import Foundation
import Yams

/// What a user asks for when they start a virtual machine: the VCPUs, memory,
/// firmware, kernel and disks of one QEMU-`virt`-compatible VM.
///
/// A spec comes from a small YAML file, from `disco run` flags, or both (flags win).
/// It is plain data; `validate()` checks it against the limits of the platform and
/// turns every problem into a one-line `SpecError`.
public struct VMSpec: Equatable, Sendable {
    /// Firmware loaded at the start of RAM and entered in M-mode.
    public enum Firmware: Equatable, Sendable {
        /// `-bios none`: the kernel itself is entered in M-mode.
        case none
        case file(String)
    }

    /// A virtio-blk disk backed by a host file: raw, or a qcow2 image (such as a
    /// copy-on-write overlay on a shared base image).
    public struct Disk: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool
        /// The virtio-mmio slot (0...7, at 0x10001000 + 0x1000·slot); nil fills the
        /// free slots from the top, as QEMU does.
        public var slot: Int?
        /// "raw" or "qcow2"; nil detects the format from the file, as QEMU does.
        public var format: String?
        public init(path: String, readOnly: Bool = false, slot: Int? = nil, format: String? = nil) {
            self.path = path
            self.readOnly = readOnly
            self.slot = slot
            self.format = format
        }

        public static let formats = ["raw", "qcow2"]
        public static let keys = ["path", "readonly", "slot", "format"]

        /// A `--disk` value as QEMU writes drive options: `FILE[,slot=N][,readonly=on|off][,format=raw|qcow2]`;
        /// a comma in the file name is written twice.
        public init(parsingOption text: String) throws {
            var fields: [String] = []
            var current = ""
            var chars = text[...]
            while let c = chars.popFirst() {
                if c == "," {
                    if chars.first == "," && fields.isEmpty {
                        current.append(",")
                        chars = chars.dropFirst()
                    } else {
                        fields.append(current)
                        current = ""
                    }
                } else {
                    current.append(c)
                }
            }
            fields.append(current)
            guard let path = fields.first, !path.isEmpty else {
                throw SpecError("--disk '\(text)': no file name (use FILE[,slot=N][,readonly=on][,format=raw|qcow2])")
            }
            self.init(path: path)
            var seen = Set<String>()
            for option in fields.dropFirst() {
                let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else {
                    throw SpecError("--disk '\(text)': '\(option)' is not key=value (known keys: slot, readonly, format)")
                }
                guard seen.insert(parts[0]).inserted else { throw SpecError("--disk '\(text)': '\(parts[0])' given twice") }
                switch parts[0] {
                case "slot":
                    guard let n = Int(parts[1]) else { throw SpecError("--disk '\(text)': slot must be a number 0...7, not '\(parts[1])'") }
                    slot = n
                case "readonly", "read-only":
                    readOnly = try VMSpec.parseSwitch(parts[1], "readonly")
                case "format":
                    format = parts[1]
                default:
                    throw SpecError("--disk '\(text)': unknown option '\(parts[0])' (known: slot, readonly, format)")
                }
            }
            try check()
        }

        /// The slot and format are ones the platform has.
        public func check() throws {
            if let slot, !(0..<VMSpec.maxDisks).contains(slot) {
                throw SpecError("disk '\(path)': slot \(slot) does not exist (virtio-mmio slots are 0...\(VMSpec.maxDisks - 1))")
            }
            if let format, !Self.formats.contains(format) {
                throw SpecError("disk '\(path)': unknown format '\(format)' (known: \(Self.formats.joined(separator: ", ")))")
            }
        }
    }


    /// A virtio-net NIC: on the cluster-wide virtual switch of a named subnet, or on the
    /// host's network through user-mode NAT (as QEMU's `-nic user`).
    public struct NIC: Equatable, Sendable {
        public enum Attachment: Equatable, Sendable {
            case `switch`(String)
            case user
        }
        public var attachment: Attachment
        /// "52:54:00:12:34:56"; nil: derived from the VM id and the NIC's index.
        public var mac: String?
        /// The virtio-mmio slot; nil takes the highest free one after the disks.
        public var slot: Int?
        /// The MTU the NIC announces (as QEMU's `host_mtu`); nil is Ethernet's 1500. Switch
        /// NICs only: jumbo frames between VMs, whose whole pages can move by remapping.
        public var mtu: Int?
        public init(attachment: Attachment, mac: String? = nil, slot: Int? = nil, mtu: Int? = nil) {
            self.attachment = attachment
            self.mac = mac
            self.slot = slot
            self.mtu = mtu
        }

        public static let defaultSubnet = "default"
        public static let keys = ["switch", "user", "mac", "slot", "mtu"]

        /// A `--nic` value: `switch[=NAME][,mac=52:54:..][,slot=N][,mtu=N]` or `user[,mac=..][,slot=N]`.
        public init(parsingOption text: String) throws {
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let head = fields[0]
            if head == "user" {
                self.init(attachment: .user)
            } else if head == "switch" {
                self.init(attachment: .switch(Self.defaultSubnet))
            } else if head.hasPrefix("switch=") {
                self.init(attachment: .switch(String(head.dropFirst(7))))
            } else {
                throw SpecError("--nic '\(text)': say 'switch[=NAME]' or 'user' first (e.g. switch=lan,mac=52:54:00:00:00:01,slot=0)")
            }
            var seen = Set<String>()
            for option in fields.dropFirst() {
                let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw SpecError("--nic '\(text)': '\(option)' is not key=value (known keys: mac, slot, mtu)") }
                guard seen.insert(parts[0]).inserted else { throw SpecError("--nic '\(text)': '\(parts[0])' given twice") }
                switch parts[0] {
                case "mac": mac = parts[1]
                case "slot":
                    guard let n = Int(parts[1]) else { throw SpecError("--nic '\(text)': slot must be a number 0...7, not '\(parts[1])'") }
                    slot = n
                case "mtu":
                    guard let n = Int(parts[1]) else { throw SpecError("--nic '\(text)': mtu must be a number 68...65535, not '\(parts[1])'") }
                    mtu = n
                default: throw SpecError("--nic '\(text)': unknown option '\(parts[0])' (known: mac, slot, mtu)")
                }
            }
            try check()
        }

        /// What the NIC is attached to, in words.
        public var name: String {
            switch attachment {
            case .switch(let subnet): return "NIC on switch '\(subnet)'"
            case .user: return "user NIC"
            }
        }

        /// The subnet name, the MAC and the slot are ones that can be.
        public func check() throws {
            if case .switch(let subnet) = attachment {
                guard !subnet.isEmpty, subnet.utf8.count <= 64,
                      subnet.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
                    throw SpecError("switch name '\(subnet)' must be 1-64 letters, digits, '-', '_' or '.'")
                }
            }
            if let mtu {
                guard (68...65535).contains(mtu) else { throw SpecError("\(name): MTU \(mtu) is not 68...65535") }
                guard case .switch = attachment else {
                    throw SpecError("\(name): the MTU of a user NIC is libslirp's 1500; mtu is for switch NICs")
                }
            }
            if let slot, !(0..<VMSpec.maxDisks).contains(slot) {
                throw SpecError("\(name): slot \(slot) does not exist (virtio-mmio slots are 0...\(VMSpec.maxDisks - 1))")
            }
            if let mac {
                guard let octets = Self.octets(mac) else {
                    throw SpecError("\(name): MAC '\(mac)' is not six hex octets such as 52:54:00:12:34:56")
                }
                guard octets[0] & 1 == 0 else { throw SpecError("\(name): MAC '\(mac)' is a group (multicast) address") }
            }
        }

        /// The six octets of "aa:bb:cc:dd:ee:ff" (or with '-'), nil if it is not one.
        public static func octets(_ text: String) -> [UInt8]? {
            let parts = text.split(omittingEmptySubsequences: false) { $0 == ":" || $0 == "-" }
            guard parts.count == 6 else { return nil }
            let octets = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
            return octets.count == 6 ? octets : nil
        }
    }

    public var name: String
    public var vcpus: Int
    /// Bytes of guest RAM at 0x8000_0000.
    public var memoryBytes: UInt64
    public var firmware: Firmware?
    public var kernel: String?
    public var disks: [Disk]
    public var nics: [NIC] = []
    public var bootargs: String?
    /// An initial RAM disk (QEMU's -initrd): loaded high in RAM, named in /chosen.
    public var initrd: String?
    public var consoleLog: String?
    /// Where the VM's memory is homed on a cluster.
    public var placement: MemoryPlacement = .firstTouch
    /// Whether the monitor moves the VM's pages to the nodes that use them
    /// (`numaPolicy: on|off`, `disco run --numa-policy`).
    public var numaPolicy: Bool = true
    /// The page policy's parameters for this VM (`numaParameters:`); nil ones keep the
    /// coordinator's defaults.
    public var numaParameters = NUMAParameters()

    /// `numaParameters: {trigger: 128, sharing: 32, writeLimit: 1, migrateLimit: 1, resetMillis: 100, settleMillis: 30}`.
    public struct NUMAParameters: Equatable, Sendable {
        public var trigger: UInt64?
        public var sharing: UInt64?
        public var writeLimit: UInt64?
        public var migrateLimit: UInt64?
        public var resetMillis: UInt64?
        public var settleMillis: UInt64?
        public init() {}
        public static let keys = ["trigger", "sharing", "writeLimit", "migrateLimit", "resetMillis", "settleMillis"]
        var isEmpty: Bool { self == NUMAParameters() }
    }

    /// Where a VM's memory lives on a cluster (`placement:` in a spec, `--placement`).
    public enum MemoryPlacement: Equatable, Sendable, CustomStringConvertible {
        /// Each page on the node of the VCPU (or device) that touches it first, as a
        /// commodity OS expects of a NUMA machine (the default).
        case firstTouch
        /// In chunks over the nodes that run the VM's VCPUs.
        case interleave
        /// All of it on one node, wherever the VCPUs run.
        case node(Int)

        public init(parsing text: String) throws {
            if text == "first-touch" { self = .firstTouch; return }
            if text == "interleave" { self = .interleave; return }
            if text.hasPrefix("node:"), let n = Int(text.dropFirst(5)), n >= 0 { self = .node(n); return }
            throw SpecError("bad placement '\(text)' (known: first-touch, interleave, node:N)")
        }

        public var description: String {
            switch self {
            case .firstTouch: return "first-touch"
            case .interleave: return "interleave"
            case .node(let n): return "node:\(n)"
            }
        }
    }

    public static let defaultMemoryBytes: UInt64 = 128 << 20
    public static let maxVCPUs = 64
    public static let maxDisks = 8
    public static let minMemoryBytes: UInt64 = 1 << 20
    public static let maxMemoryBytes: UInt64 = 16 << 30

    public init(name: String = "vm", vcpus: Int = 1, memoryBytes: UInt64 = VMSpec.defaultMemoryBytes,
                firmware: Firmware? = nil, kernel: String? = nil, disks: [Disk] = [],
                bootargs: String? = nil, consoleLog: String? = nil) {
        self.name = name
        self.vcpus = vcpus
        self.memoryBytes = memoryBytes
        self.firmware = firmware
        self.kernel = kernel
        self.disks = disks
        self.bootargs = bootargs
        self.consoleLog = consoleLog
    }

    /// Checks limits and that every named file exists and is readable.
    public func validate(fileExists: (String) -> Bool = { FileManager.default.isReadableFile(atPath: $0) }) throws {
        guard (1...Self.maxVCPUs).contains(vcpus) else {
            throw SpecError("vcpus must be between 1 and \(Self.maxVCPUs), not \(vcpus)")
        }
        guard memoryBytes >= Self.minMemoryBytes, memoryBytes <= Self.maxMemoryBytes else {
            throw SpecError("memory must be between 1M and 16G, not \(MemorySize.format(memoryBytes))")
        }
        guard memoryBytes % 4096 == 0 else {
            throw SpecError("memory must be a multiple of 4K, not \(memoryBytes) bytes")
        }
        guard disks.count <= Self.maxDisks else {
            throw SpecError("at most \(Self.maxDisks) disks (virtio-mmio slots), not \(disks.count)")
        }
        var slotOwner: [Int: String] = [:]
        for disk in disks {
            try disk.check()
            guard let slot = disk.slot else { continue }
            if let other = slotOwner[slot] {
                throw SpecError("disks '\(other)' and '\(disk.path)' both want virtio slot \(slot)")
            }
            slotOwner[slot] = disk.path
        }
        guard disks.count + nics.count <= Self.maxDisks else {
            throw SpecError("at most \(Self.maxDisks) virtio devices (disks and NICs), not \(disks.count) disks and \(nics.count) NICs")
        }
        var macs = Set<String>()
        var nicSlots = Set<Int>()
        for (i, nic) in nics.enumerated() {
            try nic.check()
            if let mac = nic.mac, let octets = NIC.octets(mac), !macs.insert(octets.map { String($0) }.joined(separator: ":")).inserted {
                throw SpecError("two NICs have MAC \(mac)")
            }
            guard let slot = nic.slot else { continue }
            if let other = slotOwner[slot] {
                throw SpecError("\(nicSlots.contains(slot) ? other : "disk '\(other)'") and NIC \(i) (\(nic.name)) both want virtio slot \(slot)")
            }
            slotOwner[slot] = "NIC \(i) (\(nic.name))"
            nicSlots.insert(slot)
        }
        if firmware == nil || firmware == Firmware.none, kernel == nil {
            throw SpecError("nothing to boot: give a firmware (--bios) or a kernel (--kernel)")
        }
        var files: [(String, String)] = []
        if case .file(let path)? = firmware { files.append(("firmware", path)) }
        if let kernel { files.append(("kernel", kernel)) }
        if let initrd {
            guard kernel != nil else { throw SpecError("initrd '\(initrd)' needs a kernel (--kernel) to hand it to") }
            files.append(("initrd", initrd))
        }
        for disk in disks { files.append(("disk", disk.path)) }
        if let log = consoleLog, log.isEmpty { throw SpecError("console log path is empty") }
        for (what, path) in files where !fileExists(path) {
            throw SpecError("\(what) '\(path)': no such readable file")
        }
    }
}

/// A problem with a VM spec, described in one line.
public struct SpecError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Sizes

/// Memory sizes as QEMU's `-m` takes them: a number with an optional binary
/// suffix K, M, G or T (`B`/`iB` allowed after it); a bare number means MiB.
public enum MemorySize {
    public static func parse(_ text: String) throws -> UInt64 {
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        for suffix in ["iB", "ib", "B", "b"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits = digits.dropLast(suffix.count)
            break
        }
        var shift: UInt64 = 20
        if let last = digits.last, last.isLetter {
            switch last.uppercased() {
            case "K": shift = 10
            case "M": shift = 20
            case "G": shift = 30
            case "T": shift = 40
            default: throw SpecError("bad memory size '\(text)': unknown suffix '\(last)' (use K, M, G or T)")
            }
            digits = digits.dropLast()
        }
        guard let value = UInt64(digits), value > 0 else {
            throw SpecError("bad memory size '\(text)': expected a number such as 256M or 1G")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw SpecError("bad memory size '\(text)': too large") }
        return bytes
    }

    public static func format(_ bytes: UInt64) -> String {
        for (suffix, shift) in [("G", UInt64(30)), ("M", 20), ("K", 10)] where bytes % (1 << shift) == 0 && bytes >= (1 << shift) {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)B"
    }
}

// MARK: - YAML

extension VMSpec {
    /// Parses a spec file. Relative paths in it are taken relative to `baseDirectory`
    /// (the file's directory). Unknown keys and wrong types are errors, so a typo
    /// never silently boots something else.
    ///
    /// ```yaml
    /// name: demo
    /// vcpus: 2
    /// memory: 256M
    /// bios: /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin   # or: none
    /// kernel: /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin
    /// disks:
    ///   - disk.img
    ///   - { path: base.img, readonly: true }
    ///   - { path: vm1.qcow2, slot: 0 }      # at 0x10001000; format detected (raw or qcow2)
    /// nics:
    ///   - { switch: lan, mac: "52:54:00:00:00:01" }   # the virtual switch of subnet 'lan'
    ///   - user                                       # the host's network (NAT), as QEMU's -nic user
    /// bootargs: console=ttyS0
    /// initrd: initramfs.cpio.gz      # loaded high in RAM, as QEMU's -initrd
    /// console-log: demo.log
    /// ```
    public static func parse(yaml text: String, baseDirectory: String = ".") throws -> VMSpec {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw SpecError("spec is not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let root else { throw SpecError("spec is empty") }
        guard let mapping = root.mapping else { throw SpecError("spec must be a mapping of keys to values") }

        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path)
        }
        func scalar(_ node: Yams.Node, _ key: String) throws -> String {
            guard let s = node.scalar?.string else { throw SpecError("spec key '\(key)' must be a single value") }
            return s
        }

        var spec = VMSpec()
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { throw SpecError("spec keys must be plain words") }
            switch key {
            case "name":
                spec.name = try scalar(value, key)
            case "vcpus", "smp":
                guard let n = Int(try scalar(value, key)) else { throw SpecError("spec key '\(key)' must be a whole number") }
                spec.vcpus = n
            case "memory":
                spec.memoryBytes = try MemorySize.parse(try scalar(value, key))
            case "bios", "firmware":
                let s = try scalar(value, key)
                spec.firmware = s == "none" ? Firmware.none : .file(resolve(s))
            case "kernel":
                spec.kernel = resolve(try scalar(value, key))
            case "initrd":
                spec.initrd = resolve(try scalar(value, key))
            case "placement":
                spec.placement = try MemoryPlacement(parsing: try scalar(value, key))
            case "numaPolicy", "numa-policy":
                spec.numaPolicy = try parseSwitch(try scalar(value, key), key)
            case "numaParameters":
                guard let m = value.mapping else { throw SpecError("spec key 'numaParameters' must be a mapping (\(NUMAParameters.keys.joined(separator: ", ")))") }
                for (k, v) in m {
                    let name = k.scalar?.string ?? "?"
                    guard let n = UInt64(try scalar(v, name)), n >= 1 else {
                        throw SpecError("numaParameters '\(name)' must be a whole number of at least 1")
                    }
                    switch name {
                    case "trigger": spec.numaParameters.trigger = n
                    case "sharing": spec.numaParameters.sharing = n
                    case "writeLimit": spec.numaParameters.writeLimit = n
                    case "migrateLimit": spec.numaParameters.migrateLimit = n
                    case "resetMillis": spec.numaParameters.resetMillis = n
                    case "settleMillis": spec.numaParameters.settleMillis = n
                    default: throw SpecError("unknown numaParameters key '\(name)' (known: \(NUMAParameters.keys.joined(separator: ", ")))")
                    }
                }
            case "bootargs", "append":
                spec.bootargs = try scalar(value, key)
            case "console-log":
                spec.consoleLog = resolve(try scalar(value, key))
            case "disks":
                guard let items = value.sequence else { throw SpecError("spec key 'disks' must be a list") }
                spec.disks = try items.map { item in
                    if let path = item.scalar?.string { return Disk(path: resolve(path)) }
                    guard let m = item.mapping else { throw SpecError("each disk is a path or {path:, readonly:, slot:, format:}") }
                    var disk = Disk(path: "")
                    for (k, v) in m {
                        switch k.scalar?.string {
                        case "path": disk.path = resolve(try scalar(v, "path"))
                        case "readonly", "read-only":
                            guard let b = v.bool else { throw SpecError("disk 'readonly' must be true or false") }
                            disk.readOnly = b
                        case "slot":
                            guard let n = Int(try scalar(v, "slot")) else { throw SpecError("disk 'slot' must be a number 0...\(maxDisks - 1)") }
                            disk.slot = n
                        case "format":
                            disk.format = try scalar(v, "format")
                        default: throw SpecError("unknown disk key '\(k.scalar?.string ?? "?")' (known: \(Disk.keys.joined(separator: ", ")))")
                        }
                    }
                    guard !disk.path.isEmpty else { throw SpecError("a disk needs a path") }
                    try disk.check()
                    return disk
                }
            case "nics":
                guard let items = value.sequence else { throw SpecError("spec key 'nics' must be a list") }
                spec.nics = try items.map { item in
                    if let text = item.scalar?.string { return try NIC(parsingOption: text) }
                    guard let m = item.mapping else { throw SpecError("each NIC is 'user', 'switch=NAME' or {switch: NAME, mac:, slot:}") }
                    var attachment: NIC.Attachment?
                    var nic = NIC(attachment: .user)
                    for (k, v) in m {
                        switch k.scalar?.string {
                        case "switch":
                            guard attachment == nil else { throw SpecError("a NIC is on a switch or 'user', not both") }
                            attachment = .switch(try scalar(v, "switch"))
                        case "user":
                            guard v.bool == true else { throw SpecError("NIC 'user' must be true") }
                            guard attachment == nil else { throw SpecError("a NIC is on a switch or 'user', not both") }
                            attachment = .user
                        case "mac": nic.mac = try scalar(v, "mac")
                        case "slot":
                            guard let n = Int(try scalar(v, "slot")) else { throw SpecError("NIC 'slot' must be a number 0...\(maxDisks - 1)") }
                            nic.slot = n
                        case "mtu":
                            guard let n = Int(try scalar(v, "mtu")) else { throw SpecError("NIC 'mtu' must be a number 68...65535") }
                            nic.mtu = n
                        default: throw SpecError("unknown NIC key '\(k.scalar?.string ?? "?")' (known: \(NIC.keys.joined(separator: ", ")))")
                        }
                    }
                    guard let attachment else { throw SpecError("a NIC needs 'switch: NAME' or 'user: true'") }
                    nic.attachment = attachment
                    try nic.check()
                    return nic
                }
            default:
                throw SpecError("unknown spec key '\(key)' (known: name, vcpus, memory, bios, kernel, initrd, disks, nics, bootargs, console-log, placement, numaPolicy, numaParameters)")
            }
        }
        return spec
    }

    /// `on`/`off` (also true/false, yes/no).
    public static func parseSwitch(_ text: String, _ key: String) throws -> Bool {
        switch text.lowercased() {
        case "on", "true", "yes": return true
        case "off", "false", "no": return false
        default: throw SpecError("spec key '\(key)' must be on or off, not '\(text)'")
        }
    }

    public static func load(file path: String) throws -> VMSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SpecError("spec '\(path)': cannot read file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SpecError("spec '\(path)': not UTF-8 text")
        }
        return try parse(yaml: text, baseDirectory: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
    }
}

extension VMSpec {
    /// The spec as YAML that `parse(yaml:)` reads back to the same spec. Paths are
    /// made absolute against `baseDirectory` so that another process (a node) finds
    /// the same files.
    public func yamlText(baseDirectory: String = FileManager.default.currentDirectoryPath) -> String {
        func absolute(_ p: String) -> String {
            p.hasPrefix("/") ? p : (baseDirectory as NSString).appendingPathComponent(p)
        }
        var root: [String: Any] = ["name": name, "vcpus": vcpus, "memory": MemorySize.format(memoryBytes)]
        switch firmware {
        case .none?: root["bios"] = "none"
        case .file(let path)?: root["bios"] = absolute(path)
        case nil: break
        }
        if let kernel { root["kernel"] = absolute(kernel) }
        if let initrd { root["initrd"] = absolute(initrd) }
        if let bootargs { root["bootargs"] = bootargs }
        if let consoleLog { root["console-log"] = absolute(consoleLog) }
        if placement != .firstTouch { root["placement"] = placement.description }
        if !numaPolicy { root["numaPolicy"] = "off" }
        if !numaParameters.isEmpty {
            var m: [String: Any] = [:]
            if let v = numaParameters.trigger { m["trigger"] = Int(v) }
            if let v = numaParameters.sharing { m["sharing"] = Int(v) }
            if let v = numaParameters.writeLimit { m["writeLimit"] = Int(v) }
            if let v = numaParameters.migrateLimit { m["migrateLimit"] = Int(v) }
            if let v = numaParameters.resetMillis { m["resetMillis"] = Int(v) }
            if let v = numaParameters.settleMillis { m["settleMillis"] = Int(v) }
            root["numaParameters"] = m
        }
        if !disks.isEmpty {
            root["disks"] = disks.map { disk -> [String: Any] in
                var m: [String: Any] = ["path": absolute(disk.path), "readonly": disk.readOnly]
                if let slot = disk.slot { m["slot"] = slot }
                if let format = disk.format { m["format"] = format }
                return m
            }
        }
        if !nics.isEmpty {
            root["nics"] = nics.map { nic -> [String: Any] in
                var m: [String: Any] = [:]
                switch nic.attachment {
                case .switch(let subnet): m["switch"] = subnet
                case .user: m["user"] = true
                }
                if let mac = nic.mac { m["mac"] = mac }
                if let slot = nic.slot { m["slot"] = slot }
                if let mtu = nic.mtu { m["mtu"] = mtu }
                return m
            }
        }
        return (try? Yams.dump(object: root, sortKeys: true)) ?? ""
    }
}
