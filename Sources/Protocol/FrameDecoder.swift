/// Splits a byte stream into messages. Bytes arrive in arbitrary pieces (`append`);
/// `next()` returns each complete message in order, `nil` when more bytes are needed,
/// and throws the first protocol violation. A bad header is reported as soon as its
/// 8 bytes are in, before any of an oversized payload is buffered. After an error
/// the stream is unusable: the connection must be closed.
public struct FrameDecoder: Sendable {
    public let payloadLimit: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var failed: WireError?

    public init(payloadLimit: Int = FrameHeader.defaultPayloadLimit) {
        self.payloadLimit = payloadLimit
    }

    /// Bytes received but not yet returned as messages.
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    public mutating func next() throws(WireError) -> Message? {
        if let failed { throw failed }
        let available = buffer.count - start
        guard available >= FrameHeader.size else { return nil }
        let start = self.start, limit = payloadLimit
        let result = buffer.withUnsafeBytes { all -> Result<(Message, Int)?, WireError> in
            do throws(WireError) {
                let header = try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: all[start..<start + FrameHeader.size]),
                                                   payloadLimit: limit)
                guard available - FrameHeader.size >= header.length else { return .success(nil) }
                let from = start + FrameHeader.size
                let m = try Message.decode(header.type, payload: UnsafeRawBufferPointer(rebasing: all[from..<from + header.length]))
                return .success((m, FrameHeader.size + header.length))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(nil):
            return nil
        case .success(let (message, size)?):
            self.start += size
            if self.start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                self.start = 0
            }
            return message
        case .failure(let e):
            failed = e
            throw e
        }
    }
}
