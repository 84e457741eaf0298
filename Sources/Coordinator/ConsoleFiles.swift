import Foundation

/// The coordinator's console logs on disk: each VM's spec `console-log` file, and with a
/// console directory a file per VM there (`vm-<id>-<name>.log`), so no output is lost.
/// Files are opened for appending on first output and kept open until `closeAll`.
final class ConsoleFiles {
    let directory: String?
    private var open: [String: Int32] = [:]
    private var failed: Set<String> = []
    private let warn: (String) -> Void

    init(directory: String?, warn: @escaping (String) -> Void) {
        self.directory = directory
        self.warn = warn
    }

    /// Whether `path` can be opened for appending here: nil if so, else why not.
    static func check(_ path: String) -> String? {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { return String(cString: strerror(errno)) }
        Glibc.close(fd)
        return nil
    }

    func write(vm: UInt32, name: String, log: String?, bytes: [UInt8]) {
        if let log { append(bytes, to: log) }
        if let directory {
            let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
            append(bytes, to: directory + "/vm-\(vm)-\(safe).log")
        }
    }

    private func append(_ bytes: [UInt8], to path: String) {
        guard !failed.contains(path) else { return }
        var fd = open[path] ?? -1
        if fd < 0 {
            fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                failed.insert(path)
                return warn("cannot open console log \(path): \(String(cString: strerror(errno)))")
            }
            open[path] = fd
        }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                failed.insert(path)
                return warn("cannot write console log \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    func closeAll() {
        for fd in open.values { Glibc.close(fd) }
        open = [:]
    }
}
