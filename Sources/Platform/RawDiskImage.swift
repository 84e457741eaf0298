/// A raw disk image: the virtual disk is the file, byte for byte.
public final class RawDiskImage: DiskImage {
    private let file: ImageFile
    public let virtualSize: UInt64
    public var path: String { file.path }
    public var format: DiskFormat { .raw }
    public var isReadOnly: Bool { file.readOnly }

    public convenience init(path: String, readOnly: Bool) throws {
        try self.init(path: path, readOnly: readOnly, lock: true)
    }

    init(path: String, readOnly: Bool, lock: Bool) throws {
        file = try ImageFile(path: path, readOnly: readOnly, lock: lock)
        virtualSize = file.length
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(offset, buffer.count)
        try file.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        try checkRange(offset, buffer.count)
        try file.write(at: offset, from: buffer)
    }

    public func flush() throws { try file.sync() }

    public func sharedSource(at offset: UInt64, count: Int) throws -> SharedBlock? {
        guard isReadOnly, offset <= virtualSize, UInt64(count) <= virtualSize - offset,
              let (device, inode) = file.identity() else { return nil }
        return SharedBlock(device: device, inode: inode, offset: offset)
    }

    public func close() {
        if file.isOpen { try? file.sync() }
        file.close()
    }
}
