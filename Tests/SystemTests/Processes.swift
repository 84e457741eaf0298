import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Paths of the things the system tests start.
enum Paths {
    /// The package root (this file is Tests/SystemTests/Processes.swift).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let guests = root.appendingPathComponent("guests/build")
    static let openSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
    static let uBoot = "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"

    /// The `disco` binary under test: $DISCO_BIN (the test script builds a release
    /// one), else the release or debug build in .build.
    static var disco: String {
        if let env = ProcessInfo.processInfo.environment["DISCO_BIN"], !env.isEmpty { return env }
        for config in ["release", "debug"] {
            let path = root.appendingPathComponent(".build/\(config)/disco").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root.appendingPathComponent(".build/debug/disco").path
    }

    static func guest(_ name: String) -> String { guests.appendingPathComponent(name).path }
}

/// The outcome of a bounded child process.
struct ProcessResult {
    var status: Int32
    var output: String
    var errorOutput: String
    /// True when the deadline or the `until` predicate ended the process.
    var stoppedEarly: Bool
}

/// Runs a child process with a deadline, collecting stdout and stderr. When `until`
/// returns true for the output so far, the process gets SIGTERM (then SIGKILL), so
/// tests can stop a guest that sits at a prompt. Nothing outlives the call.
func runProcess(_ executable: String, _ arguments: [String], input: String? = nil,
                respond: [(after: String, send: String)] = [],
                timeout: TimeInterval = 60, until: ((String) -> Bool)? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    let collected = Collected()
    out.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        if data.isEmpty { handle.readabilityHandler = nil } else { collected.appendOut(data) }
    }
    err.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        if data.isEmpty { handle.readabilityHandler = nil } else { collected.appendErr(data) }
    }
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    var responses = respond[...]
    var answeredUpTo = "".endIndex
    if responses.isEmpty { try? inPipe.fileHandleForWriting.close() }

    let deadline = Date().addingTimeInterval(timeout)
    var stoppedEarly = false
    while process.isRunning {
        // Type the next answer once its prompt appears (after what was answered already).
        if let next = responses.first {
            let text = collected.outText
            let start = min(answeredUpTo, text.endIndex)
            if let hit = text.range(of: next.after, range: start..<text.endIndex) {
                inPipe.fileHandleForWriting.write(Data(next.send.utf8))
                responses.removeFirst()
                answeredUpTo = hit.upperBound
            }
        }
        if Date() > deadline || (until?(collected.outText) ?? false) {
            stoppedEarly = true
            process.terminate()
            let killAt = Date().addingTimeInterval(3)
            while process.isRunning && Date() < killAt { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            break
        }
        usleep(5_000)
    }
    process.waitUntilExit()
    try? inPipe.fileHandleForWriting.close()
    // Drain what is left in the pipes.
    out.fileHandleForReading.readabilityHandler = nil
    err.fileHandleForReading.readabilityHandler = nil
    if let rest = try? out.fileHandleForReading.readToEnd() { collected.appendOut(rest) }
    if let rest = try? err.fileHandleForReading.readToEnd() { collected.appendErr(rest) }
    return ProcessResult(status: process.terminationStatus, output: collected.outText,
                         errorOutput: collected.errText, stoppedEarly: stoppedEarly)
}

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()
    func appendOut(_ d: Data) { lock.lock(); out.append(d); lock.unlock() }
    func appendErr(_ d: Data) { lock.lock(); err.append(d); lock.unlock() }
    var outText: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
    var errText: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
}

/// Runs a bare-metal guest on QEMU's virt board, the oracle.
func runOnQEMU(_ elf: String, harts: Int, memory: String = "128M", extra: [String] = [],
               timeout: TimeInterval = 120) throws -> ProcessResult {
    try runProcess("/usr/bin/qemu-system-riscv64",
                   ["-machine", "virt", "-nographic", "-bios", "none", "-m", memory, "-smp", "\(harts)",
                    "-kernel", elf] + extra, timeout: timeout)
}

/// Runs a bare-metal guest on `disco run`.
func runOnDisco(_ elf: String, harts: Int, memory: String = "128M", extra: [String] = [],
                timeout: TimeInterval = 120) throws -> ProcessResult {
    try runProcess(Paths.disco, ["run", "--bios", "none", "--memory", memory, "--smp", "\(harts)",
                                 "--kernel", elf] + extra, timeout: timeout)
}

/// Console text normalised for comparison: CRLF → LF, lines that report
/// measurements (`instret:`) dropped.
func comparable(_ text: String) -> String {
    text.replacingOccurrences(of: "\r\n", with: "\n")
        .split(separator: "\n", omittingEmptySubsequences: false)
        .filter { !$0.hasPrefix("instret:") }
        .joined(separator: "\n")
}
