import Foundation

/// The contents of a virtual disk, whatever file format holds them: what the
/// virtio-blk device reads, writes and flushes.
///
/// Offsets are bytes into the virtual disk; a request must lie inside
/// `virtualSize`. `flush()` returns once every completed write is durable (it is the
/// guest's VIRTIO_BLK_T_FLUSH). `close()` flushes what it can and releases the file;
/// later requests fail. Implementations are used from one thread at a time.
public protocol DiskImage: AnyObject {
    var path: String { get }
    var format: DiskFormat { get }
    var virtualSize: UInt64 { get }
    var isReadOnly: Bool { get }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws
    func flush() throws
    func close()
    /// The read-only file page that the `count` bytes at `offset` are, unchanged, when
    /// they are one (a raw file opened read-only; a qcow2 range this image does not
    /// hold, through its backing file), else nil. The global buffer cache shares only
    /// such pages: nobody can write them while the image is open (the file is locked
    /// shared, which excludes writers).
    func sharedSource(at offset: UInt64, count: Int) throws -> SharedBlock?
}

extension DiskImage {
    public func sharedSource(at offset: UInt64, count: Int) throws -> SharedBlock? { nil }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }

    public func write(at offset: UInt64, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(at: offset, from: $0) }
    }

    /// Throws unless `offset..<offset+count` lies inside the virtual disk.
    func checkRange(_ offset: UInt64, _ count: Int) throws {
        guard offset <= virtualSize, UInt64(count) <= virtualSize - offset else {
            throw DiskImageError(path, "request of \(count) bytes at \(offset) is outside the disk (\(virtualSize) bytes)")
        }
    }
}

/// The file formats a disk can have.
public enum DiskFormat: String, Sendable, CaseIterable {
    case raw
    case qcow2

    /// The qcow2 magic, "QFI\xfb".
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xfb]

    /// The format of the file at `path` as QEMU probes it: qcow2 when it starts
    /// with the qcow2 magic, raw otherwise.
    public static func detect(path: String) throws -> DiskFormat { try detect(path: path, lock: true) }

    static func detect(path: String, lock: Bool) throws -> DiskFormat {
        let file = try ImageFile(path: path, readOnly: true, lock: lock)
        defer { file.close() }
        return try detect(file)
    }

    static func detect(_ file: ImageFile) throws -> DiskFormat {
        guard file.length >= 4 else { return .raw }
        return try file.read(at: 0, count: 4) == qcow2Magic ? .qcow2 : .raw
    }

    public init(parsing text: String) throws {
        guard let f = DiskFormat(rawValue: text) else {
            throw DiskImageError("unknown disk format '\(text)' (known: raw, qcow2)")
        }
        self = f
    }
}

/// Opening disk images.
public enum DiskImages {
    /// Opens `path` as `format`, or as the format its first bytes name when nil.
    public static func open(path: String, format: DiskFormat? = nil, readOnly: Bool) throws -> DiskImage {
        switch try format ?? DiskFormat.detect(path: path) {
        case .raw: return try RawDiskImage(path: path, readOnly: readOnly)
        case .qcow2: return try QCow2Image(path: path, readOnly: readOnly)
        }
    }
}

/// A disk image problem in one line, naming the file.
public struct DiskImageError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    init(_ path: String, _ problem: String) { description = "disk '\(path)': \(problem)" }
}
