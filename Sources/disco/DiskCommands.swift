import ArgumentParser
import Foundation
import Platform

/// `disco disk create|info|check`: copy-on-write overlays and what is in an image.
struct DiskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk",
        abstract: "Create and inspect disk images (raw and qcow2).",
        discussion: """
            A VM's disk can be a read-only base image shared by many VMs plus a qcow2
            overlay per VM that holds only what that VM wrote. The files are QEMU's:
            `qemu-img info/check/compare/convert` read them.

            Examples:
              disco disk create --backing base.raw vm1.qcow2
              disco disk create --size 1G blank.qcow2
              disco disk info vm1.qcow2
              disco run --bios none --kernel guests/build/blk.elf --disk vm1.qcow2,slot=0
            """,
        subcommands: [DiskCreate.self, DiskInfo.self, DiskCheck.self]
    )
}

struct DiskCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a qcow2 image, empty or as an overlay on a backing file.",
        discussion: """
            As `qemu-img create -f qcow2 [-b BASE -F FMT] FILE [SIZE]`: a version 3 image
            with 64 KiB clusters. A relative backing name is stored as given and resolved
            relative to the overlay's directory, as QEMU does. The backing file is
            opened read-only and never written. An existing FILE is not overwritten.
            """
    )

    @Option(help: ArgumentHelp("The backing file (raw or qcow2) the overlay reads unwritten clusters from.", valueName: "base"))
    var backing: String?

    @Option(help: ArgumentHelp("The backing file's format; detected from the file when omitted.", valueName: "raw|qcow2"))
    var backingFormat: String?

    @Option(help: ArgumentHelp("Virtual size, e.g. 10G or 512M (a bare number is bytes); defaults to the backing file's size.", valueName: "size"))
    var size: String?

    @Option(help: ArgumentHelp("Cluster size, a power of two from 512 to 2M.", valueName: "size"))
    var clusterSize: String = "64K"

    @Argument(help: ArgumentHelp("The image to create.", valueName: "file"))
    var file: String

    func run() throws {
        do {
            let clusterBytes = try parseDiskSize(clusterSize)
            guard clusterBytes.nonzeroBitCount == 1 else { throw DiskImageError("cluster size must be a power of two") }
            var options = QCow2Image.CreateOptions(size: try size.map(parseDiskSize), backing: backing,
                                                   clusterBits: UInt32(clusterBytes.trailingZeroBitCount))
            if let backingFormat { options.backingFormat = try DiskFormat(parsing: backingFormat) }
            try QCow2Image.create(path: file, options: options)
            let image = try QCow2Image(path: file, readOnly: true)
            defer { image.close() }
            var line = "created '\(file)': qcow2, virtual size \(formatSize(image.virtualSize)), cluster size \(formatSize(UInt64(image.clusterSize)))"
            if let name = image.backingName, let base = image.backing { line += ", backing file '\(name)' (\(base.format.rawValue))" }
            print(line)
        } catch let error as DiskImageError {
            fail(error.description)
        }
    }
}

struct DiskInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print an image's format, virtual size, backing file and allocation."
    )

    @Argument(help: ArgumentHelp("The image.", valueName: "file"))
    var file: String

    func run() throws {
        do {
            let image = try DiskImages.open(path: file, readOnly: true)
            defer { image.close() }
            let fileSize = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)??.uint64Value ?? 0
            print("image: \(file)")
            guard let q = image as? QCow2Image else {
                print("format: raw\nvirtual size: \(formatSize(image.virtualSize)) (\(image.virtualSize) bytes)")
                return
            }
            let report = try q.report(refcounts: false)
            print("format: qcow2 (version \(q.version))")
            print("virtual size: \(formatSize(q.virtualSize)) (\(q.virtualSize) bytes)")
            print("file size: \(formatSize(fileSize)) (\(fileSize) bytes)")
            print("cluster size: \(formatSize(UInt64(q.clusterSize)))")
            print("refcount bits: \(q.refcountBits)")
            if let name = q.backingName, let base = q.backing, let path = q.backingPath {
                print("backing file: \(name) (\(base.format.rawValue), \(formatSize(base.virtualSize)))" + (path == name ? "" : " at \(path)"))
            }
            let percent = report.guestClusters == 0 ? 0 : Double(report.dataClusters) * 100 / Double(report.guestClusters)
            print("allocated clusters: \(report.dataClusters) of \(report.guestClusters) (\(String(format: "%.1f", percent))%)")
            if report.zeroClusters > 0 { print("zero clusters: \(report.zeroClusters)") }
        } catch let error as DiskImageError {
            fail(error.description)
        }
    }
}

struct DiskCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Recount a qcow2 image's references and compare them with its refcounts.",
        discussion: """
            Like `qemu-img check` without repairs. Exit status 0 when consistent, 3 when
            clusters leaked (lost space, harmless), 2 for errors or an unreadable image.
            """
    )

    @Argument(help: ArgumentHelp("The qcow2 image.", valueName: "file"))
    var file: String

    func run() throws {
        let report: QCow2Image.Report
        do {
            let image = try QCow2Image(path: file, readOnly: true)
            defer { image.close() }
            report = try image.report(refcounts: true)
        } catch let error as DiskImageError {
            fail(error.description)
        }
        for e in report.errors { print("ERROR \(e)") }
        for l in report.leaks { print("Leaked \(l)") }
        if report.errors.isEmpty && report.leaks.isEmpty { print("No errors were found on the image.") }
        print("\(report.dataClusters)/\(report.guestClusters) clusters allocated")
        if !report.errors.isEmpty { throw ExitCode(2) }
        if !report.leaks.isEmpty { throw ExitCode(3) }
    }
}

/// A size as `qemu-img` takes it: a number with an optional binary suffix K, M, G, T
/// or P (`B`/`iB` allowed after it); a bare number is bytes.
func parseDiskSize(_ text: String) throws -> UInt64 {
    var digits = Substring(text.trimmingCharacters(in: .whitespaces))
    for suffix in ["iB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
        digits = digits.dropLast(suffix.count)
        break
    }
    var shift: UInt64 = 0
    if let last = digits.last, last.isLetter {
        guard let i = "KMGTP".firstIndex(of: Character(last.uppercased())) else {
            throw DiskImageError("bad size '\(text)': unknown suffix '\(last)' (use K, M, G, T or P)")
        }
        shift = 10 * UInt64("KMGTP".distance(from: "KMGTP".startIndex, to: i) + 1)
        digits = digits.dropLast()
    }
    guard let value = UInt64(digits), value > 0 else {
        throw DiskImageError("bad size '\(text)': expected a number such as 10G or 512M")
    }
    let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    guard !overflow else { throw DiskImageError("bad size '\(text)': too large") }
    return bytes
}

/// Bytes in the largest binary unit that divides them, as `10G` or `196K`.
func formatSize(_ bytes: UInt64) -> String {
    for (suffix, shift) in [("T", UInt64(40)), ("G", 30), ("M", 20), ("K", 10)] where bytes >= (1 << shift) && bytes % (1 << shift) == 0 {
        return "\(bytes >> shift)\(suffix)"
    }
    if bytes >= 1 << 20 { return String(format: "%.1fM", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1fK", Double(bytes) / Double(1 << 10)) }
    return "\(bytes)B"
}
