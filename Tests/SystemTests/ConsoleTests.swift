import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A child process whose stdin, stdout and stderr are the slave side of a new
/// pseudo-terminal; the test is the master side, as a terminal emulator would be.
final class PtyProcess {
    private let process = Process()
    private let master: Int32
    private let lock = NSLock()
    private var buffer = Data()
    private var reader: Thread?

    init(_ executable: String, _ arguments: [String]) throws {
        // openpty(3) from the C library (glibc 2.34 has it in libc; older in libutil);
        // Glibc's Swift module does not export it.
        typealias OpenPty = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>,
                                            UnsafeMutablePointer<CChar>?, UnsafeRawPointer?, UnsafeRawPointer?) -> Int32
        let library = dlopen("libc.so.6", RTLD_NOW)
        let symbol = dlsym(library, "openpty") ?? dlsym(dlopen("libutil.so.1", RTLD_NOW), "openpty")
        guard let symbol else { throw POSIXError(.ENOSYS) }
        let openpty = unsafeBitCast(symbol, to: OpenPty.self)
        var m: Int32 = -1, slave: Int32 = -1
        guard openpty(&m, &slave, nil, nil, nil) == 0 else { throw POSIXError(.ENXIO) }
        master = m
        _ = fcntl(m, F_SETFD, FD_CLOEXEC)
        _ = fcntl(slave, F_SETFD, FD_CLOEXEC)
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        close(slave)
        let master = self.master
        reader = Thread { [weak self] in
            var bytes = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = bytes.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // EIO once the child side is gone
                guard let self else { return }
                self.lock.lock()
                self.buffer.append(contentsOf: bytes[0..<n])
                self.lock.unlock()
            }
        }
        reader!.start()
    }

    var output: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: buffer, as: UTF8.self)
    }

    var isRunning: Bool { process.isRunning }
    var status: Int32 { process.terminationStatus }

    func type(_ text: String) { type(Array(text.utf8)) }

    func type(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Waits until `check(output)` holds (true) or the time is up (false).
    func wait(timeout: TimeInterval, _ check: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if check(output) { return true }
            usleep(50_000)
        }
        return check(output)
    }

    func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            if !waitForExit(timeout: 3) { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        close(master)
    }

    deinit { if process.isRunning { stop() } }
}

/// `disco console` on a real pseudo-terminal against a `disco up` cluster running U-Boot.
@Suite(.serialized) struct ConsoleTests {
    @Test func consoleAttachesTypesDetachesAndReattachesToTheBacklog() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-console-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = try Background("up", Paths.disco, ["up", "--nodes", "2", "--memory", "512M", "--dir", dir + "/cluster"],
                                logDirectory: dir)
        defer { up.stop() }
        #expect(up.wait(for: "Ctrl-C stops everything", timeout: 60), "disco up did not start:\n\(up.output)")
        let secret = try #require(up.line(after: "export DISCO_SECRET="), "no secret:\n\(up.output)")
        let coordinator = "unix:\(dir)/cluster/coordinator.sock"
        let env = ["DISCO_SECRET=\(secret)"]
        func cli(_ args: [String]) throws -> ProcessResult {
            try runProcess("/usr/bin/env", env + [Paths.disco] + args + ["--coordinator", coordinator], timeout: 30)
        }
        func console(_ vm: String) throws -> PtyProcess {
            try PtyProcess("/usr/bin/env", env + [Paths.disco, "console", vm, "--coordinator", coordinator])
        }
        // A VM at the U-Boot prompt, its console logged to a file the spec names (relative
        // to the spec file's directory).
        for name in ["a", "b"] {
            try "name: \(name)\nvcpus: 1\nmemory: 64M\nbios: \(Paths.openSBI)\nkernel: \(Paths.uBoot)\nconsole-log: \(name)-console.log\n"
                .write(toFile: dir + "/\(name).yaml", atomically: true, encoding: .utf8)
        }
        let created = try cli(["vm", "create", "--spec", dir + "/a.yaml"])
        #expect(created.status == 0, "vm create: \(created.output) \(created.errorOutput)")

        let first = try console("a")
        defer { first.stop() }
        #expect(first.wait(timeout: 20) { $0.contains("attached to VM") }, "no attach:\n\(first.output)")
        // Stop the autoboot countdown if it is still running, then wait for the prompt.
        var stopped = false
        let prompt = first.wait(timeout: 240) { out in
            if !stopped && out.contains("Hit any key") && !out.contains("=> ") { stopped = true; first.type("x") }
            return out.hasSuffix("=> ") || out.contains("=> \r\n=> ")
        }
        #expect(prompt, "no U-Boot prompt:\n\(first.output.suffix(2000))")
        first.type("version\r")
        let versionShown = first.wait(timeout: 30) { out in
            guard let typed = out.range(of: "=> version") else { return false }
            return out[typed.upperBound...].contains("U-Boot 20")
        }
        #expect(versionShown, "no version line after typing version:\n\(first.output.suffix(2000))")
        // Ctrl-A d detaches; the console ends, the VM runs on.
        first.type([0x01, UInt8(ascii: "d")])
        #expect(first.waitForExit(timeout: 10), "Ctrl-A d did not detach:\n\(first.output.suffix(500))")
        #expect(first.status == 0)
        #expect(first.output.contains("detached"))
        let list = try cli(["vm", "list"])
        #expect(list.output.contains("state: running"), "VM not running after detach:\n\(list.output)")

        // A second console gets the backlog: the typed command and its answer.
        let second = try console("1")
        defer { second.stop() }
        #expect(second.wait(timeout: 20) { out in
            guard let typed = out.range(of: "=> version") else { return false }
            return out[typed.upperBound...].contains("U-Boot 20")
        }, "the backlog lacks the earlier session:\n\(second.output.suffix(2000))")
        second.type([0x01, UInt8(ascii: "x")])
        #expect(second.waitForExit(timeout: 10))

        // The spec's console-log and the cluster's per-VM log hold the output.
        for path in [dir + "/a-console.log", dir + "/cluster/consoles/vm-1-a.log"] {
            let log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            #expect(log.contains("OpenSBI") && log.contains("=> version") && log.contains("U-Boot 20"), "\(path):\n\(log.suffix(1000))")
        }

        // Two VMs, two consoles: each one's input reaches its own VM only.
        let other = try cli(["vm", "create", "--spec", dir + "/b.yaml"])
        #expect(other.status == 0, "vm create: \(other.output) \(other.errorOutput)")
        let toA = try console("a"), toB = try console("b")
        defer { toA.stop(); toB.stop() }
        var stoppedB = false
        #expect(toB.wait(timeout: 240) { out in
            if !stoppedB && out.contains("Hit any key") && !out.contains("=> ") { stoppedB = true; toB.type("x") }
            return out.hasSuffix("=> ") || out.contains("=> \r\n=> ")
        }, "VM b: no prompt:\n\(toB.output.suffix(2000))")
        #expect(toA.wait(timeout: 20) { $0.contains("attached to VM") })
        toA.type("setexpr v 6 * 7; echo into-a-${v}\r")
        toB.type("setexpr v 7 * 7; echo into-b-${v}\r")
        #expect(toA.wait(timeout: 30) { $0.contains("into-a-2a") }, "a:\n\(toA.output.suffix(1000))")
        #expect(toB.wait(timeout: 30) { $0.contains("into-b-31") }, "b:\n\(toB.output.suffix(1000))")
        #expect(!toA.output.contains("into-b"), "a got b's input or output:\n\(toA.output.suffix(1000))")
        #expect(!toB.output.contains("into-a"), "b got a's input or output:\n\(toB.output.suffix(1000))")
        for c in [toA, toB] {
            c.type([0x01, UInt8(ascii: "d")])
            #expect(c.waitForExit(timeout: 10))
        }
    }

    @Test func attachingToAVMThatDoesNotRunIsAClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disco-console-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = try Background("up", Paths.disco, ["up", "--nodes", "1", "--memory", "256M", "--dir", dir + "/cluster"],
                                logDirectory: dir)
        defer { up.stop() }
        #expect(up.wait(for: "Ctrl-C stops everything", timeout: 60), "disco up did not start:\n\(up.output)")
        let secret = try #require(up.line(after: "export DISCO_SECRET="))
        let coordinator = "unix:\(dir)/cluster/coordinator.sock"
        let r = try runProcess("/usr/bin/env", ["DISCO_SECRET=\(secret)", Paths.disco, "console", "nosuch", "--coordinator", coordinator], timeout: 30)
        #expect(r.status == 2)
        #expect((r.output + r.errorOutput).contains("no VM named 'nosuch'"), "\(r.output) \(r.errorOutput)")
        // A console-log the coordinator cannot write refuses the VM.
        try "name: c\nvcpus: 1\nmemory: 64M\nbios: \(Paths.openSBI)\nkernel: \(Paths.uBoot)\nconsole-log: /proc/no/such.log\n"
            .write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let c = try runProcess("/usr/bin/env", ["DISCO_SECRET=\(secret)", Paths.disco, "vm", "create", "--spec", dir + "/c.yaml", "--coordinator", coordinator], timeout: 30)
        #expect(c.status != 0)
        #expect((c.output + c.errorOutput).contains("console-log /proc/no/such.log"), "\(c.output) \(c.errorOutput)")
    }
}
