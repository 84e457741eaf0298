import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One host file under a disk image, the only place disk images call the system:
/// whole-range `pread`/`pwrite` (short transfers are errors), `fdatasync`, and an
/// advisory `flock` so two processes cannot write one image (readers share the lock).
///
/// `length` is the file's size as this process knows it: read at open and grown by
/// our own writes. Every read is checked against it first, so a malformed image can
/// never make us read past the end of the file.
final class ImageFile {
    let path: String
    let readOnly: Bool
    private var fd: Int32
    private(set) var length: UInt64

    /// Test hook: the number of writes still allowed before the file behaves as if its
    /// process had been killed (nil: no limit). The write that exhausts the budget is
    /// applied only up to `tornPrefix` bytes, as a SIGKILL between pages can leave it.
    var writeBudget: Int?
    var tornPrefix = 0
    /// True once the write budget is spent: the simulated process is dead.
    var crashed: Bool { writeBudget.map { $0 <= 0 } ?? false }
    /// Test hook: counts `pwrite` calls and syncs.
    private(set) var writes = 0
    private(set) var syncs = 0
    /// Writes since the last sync: a barrier is needed before anything points at them.
    private(set) var writesSinceSync = 0

    /// `lock: false` skips the advisory lock (tests that look at a file a writer holds).
    init(path: String, readOnly: Bool, create: Bool = false, lock: Bool = true) throws {
        let flags = create ? (O_RDWR | O_CREAT | O_EXCL) : (readOnly ? O_RDONLY : O_RDWR)
        let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DiskImageError(path, ImageFile.errnoText()) }
        if lock {
            // A child another thread forks holds our descriptors until it execs (they are
            // close-on-exec), and with them the lock: a conflict that lasts is real.
            var tries = 0
            while flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
                let busy = errno == EWOULDBLOCK
                if busy && tries < 100 {
                    tries += 1
                    usleep(5_000)
                    continue
                }
                let text = ImageFile.errnoText()
                Glibc.close(fd)
                throw DiskImageError(path, busy ? "in use by another VM or process (it holds a lock on the file)" : text)
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let text = ImageFile.errnoText()
            Glibc.close(fd)
            throw DiskImageError(path, text)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFBLK else {
            Glibc.close(fd)
            throw DiskImageError(path, "not a regular file or block device")
        }
        self.fd = fd
        self.path = path
        self.readOnly = readOnly
        if (st.st_mode & S_IFMT) == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            length = end > 0 ? UInt64(end) : 0
        } else {
            length = UInt64(st.st_size)
        }
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    /// The device and inode, to recognise one file under two names (backing loops).
    func identity() -> (UInt64, UInt64)? {
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)  // also drops the flock
        fd = -1
    }

    /// Reads exactly `buffer.count` bytes at `offset`, all of them inside the file.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard fd >= 0 else { throw DiskImageError(path, "image is closed") }
        guard offset <= length, UInt64(buffer.count) <= length - offset else {
            throw DiskImageError(path, "read of \(buffer.count) bytes at offset \(offset) goes past the end of the file (\(length) bytes): image truncated or corrupt")
        }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + UInt64(done)))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw DiskImageError(path, n == 0 ? "file shrank under us: read at \(offset) hit its end" : ImageFile.errnoText())
            }
            done += n
        }
    }

    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }

    /// Writes all of `bytes` at `offset`, growing the file if needed.
    func write(at offset: UInt64, from bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw DiskImageError(path, "image is closed") }
        guard !readOnly else { throw DiskImageError(path, "image is read-only") }
        var count = bytes.count
        if let budget = writeBudget {
            if budget <= 0 { throw DiskImageError(path, "simulated crash: write refused") }
            writeBudget = budget - 1
            if budget == 1 { count = min(count, tornPrefix) }
        }
        writes += 1
        writesSinceSync += 1
        var done = 0
        while done < count {
            let n = pwrite(fd, bytes.baseAddress! + done, count - done, off_t(offset + UInt64(done)))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DiskImageError(path, "write at offset \(offset): \(ImageFile.errnoText())") }
            done += n
        }
        length = max(length, offset + UInt64(count))
        if count < bytes.count { throw DiskImageError(path, "simulated crash: write torn after \(count) bytes") }
    }

    func write(at offset: UInt64, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(at: offset, from: $0) }
    }

    /// Makes every completed write durable (data and the file size).
    func sync() throws {
        guard fd >= 0 else { throw DiskImageError(path, "image is closed") }
        if readOnly { return }
        if let budget = writeBudget, budget <= 0 { throw DiskImageError(path, "simulated crash: sync refused") }
        syncs += 1
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw DiskImageError(path, "fdatasync: \(ImageFile.errnoText())") }
        }
        writesSinceSync = 0
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
