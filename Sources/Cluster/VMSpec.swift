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

    /// A virtio-blk disk backed by a host file.
    public struct Disk: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool
        public init(path: String, readOnly: Bool = false) {
            self.path = path
            self.readOnly = readOnly
        }
    }

    public var name: String
    public var vcpus: Int
    /// Bytes of guest RAM at 0x8000_0000.
    public var memoryBytes: UInt64
    public var firmware: Firmware?
    public var kernel: String?
    public var disks: [Disk]
    public var bootargs: String?
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
        if firmware == nil || firmware == Firmware.none, kernel == nil {
            throw SpecError("nothing to boot: give a firmware (--bios) or a kernel (--kernel)")
        }
        var files: [(String, String)] = []
        if case .file(let path)? = firmware { files.append(("firmware", path)) }
        if let kernel { files.append(("kernel", kernel)) }
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
    /// bootargs: console=ttyS0
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
                    guard let m = item.mapping else { throw SpecError("each disk is a path or {path:, readonly:}") }
                    var disk = Disk(path: "")
                    for (k, v) in m {
                        switch k.scalar?.string {
                        case "path": disk.path = resolve(try scalar(v, "path"))
                        case "readonly", "read-only":
                            guard let b = v.bool else { throw SpecError("disk 'readonly' must be true or false") }
                            disk.readOnly = b
                        default: throw SpecError("unknown disk key '\(k.scalar?.string ?? "?")' (known: path, readonly)")
                        }
                    }
                    guard !disk.path.isEmpty else { throw SpecError("a disk needs a path") }
                    return disk
                }
            default:
                throw SpecError("unknown spec key '\(key)' (known: name, vcpus, memory, bios, kernel, disks, bootargs, console-log, placement, numaPolicy, numaParameters)")
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
            root["disks"] = disks.map { ["path": absolute($0.path), "readonly": $0.readOnly] as [String: Any] }
        }
        return (try? Yams.dump(object: root, sortKeys: true)) ?? ""
    }
}
