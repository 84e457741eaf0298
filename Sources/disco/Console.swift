import Foundation
import Platform
import Cluster
import Node
#if canImport(Glibc)
import Glibc
#endif

/// The host side of a VM's console: guest output to stdout (or a log file), host
/// input from stdin. When stdin is a terminal it is put in raw mode, and Ctrl-A is
/// the escape key (as in QEMU): Ctrl-A x quits, Ctrl-A h shows help, Ctrl-A Ctrl-A
/// sends a Ctrl-A to the guest.
final class HostConsole: ConsoleSink {
    private let outputFD: Int32
    private let ownsOutput: Bool
    private var savedTermios = termios()
    private(set) var isRaw = false
    /// Set when the user pressed the quit escape.
    let quitRequested = LockedFlag()

    init(logPath: String?) throws {
        if let logPath {
            let fd = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw SpecError("console log '\(logPath)': \(String(cString: strerror(errno)))")
            }
            outputFD = fd
            ownsOutput = true
        } else {
            outputFD = STDOUT_FILENO
            ownsOutput = false
        }
    }

    deinit {
        restoreTerminal()
        if ownsOutput { close(outputFD) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(outputFD, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }

    /// Puts the terminal in raw mode if stdin is one.
    func enterRawModeIfTerminal() {
        guard isatty(STDIN_FILENO) == 1, tcgetattr(STDIN_FILENO, &savedTermios) == 0 else { return }
        var raw = savedTermios
        cfmakeraw(&raw)
        raw.c_oflag |= tcflag_t(OPOST | ONLCR)  // keep "\n" → "\r\n" for our own messages
        if tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 {
            isRaw = true
        }
    }

    func restoreTerminal() {
        if isRaw {
            tcsetattr(STDIN_FILENO, TCSANOW, &savedTermios)
            isRaw = false
        }
    }

    /// Reads stdin on a thread of its own and hands bytes to `deliver`, interpreting
    /// the escape key when in raw mode. Calls `quit` on Ctrl-A x, and with `detach`
    /// (`disco console`, where the VM runs on either way) calls it on Ctrl-A d and Ctrl-A x.
    func startInputThread(deliver: @escaping ([UInt8]) -> Void, quit: @escaping () -> Void,
                          detach: (() -> Void)? = nil) {
        let raw = isRaw
        let thread = Thread {
            var escape = false
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // EOF: the guest just gets no more input
                guard raw else {
                    deliver(Array(buffer[0..<n]))
                    continue
                }
                var out: [UInt8] = []
                for byte in buffer[0..<n] {
                    if escape, let detach {
                        escape = false
                        switch byte {
                        case UInt8(ascii: "d"), UInt8(ascii: "D"), UInt8(ascii: "x"), UInt8(ascii: "X"):
                            let msg = "\r\ndisco: detached (the VM runs on)\r\n"
                            _ = msg.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                            if !out.isEmpty { deliver(out) }  // what was typed before the escape
                            detach()
                            return
                        case UInt8(ascii: "h"), UInt8(ascii: "?"):
                            let msg = "\r\nC-a d  detach (the VM runs on)\r\nC-a x  detach too\r\nC-a h  this help\r\nC-a C-a  send C-a\r\n"
                            _ = msg.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                        case 0x01:
                            out.append(0x01)
                        default:
                            break
                        }
                    } else if escape {
                        escape = false
                        switch byte {
                        case UInt8(ascii: "x"), UInt8(ascii: "X"):
                            let msg = "\r\ndisco: quit\r\n"
                            _ = msg.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                            quit()
                            return
                        case UInt8(ascii: "h"), UInt8(ascii: "?"):
                            let msg = "\r\nC-a x  quit\r\nC-a h  this help\r\nC-a C-a  send C-a\r\n"
                            _ = msg.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                        case 0x01:
                            out.append(0x01)
                        default:
                            break
                        }
                    } else if byte == 0x01 {
                        escape = true
                    } else {
                        out.append(byte)
                    }
                }
                if !out.isEmpty { deliver(out) }
            }
        }
        thread.name = "console-input"
        thread.start()
    }
}

/// A flag set from one thread and read from another.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
