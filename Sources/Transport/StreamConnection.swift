import CLibUV
import Foundation
import Logging
import Protocol

/// One logical connection over TCP or a Unix socket. Everything here but `outbox` is
/// touched only on the loop thread. The connection owns at most one stream handle at a
/// time (one per incarnation) and one timer (handshake timeout, reconnect delay); each
/// handle's `data` holds a retained reference released in its close callback, so the
/// object lives until libuv is done with every handle.
final class StreamConnection {
    enum Direction { case incoming, outgoing(Endpoint, reconnect: Bool) }

    let id: ConnectionID
    let direction: Direction
    let outbox: Outbox
    unowned let core: TransportCore
    private var logger: Logger

    private var stream: UnsafeMutablePointer<uv_stream_t>?
    private var timer: UnsafeMutablePointer<uv_timer_t>?
    private var writeRequest = uvAllocate(uv_write_t.self)
    private var writeBuffer: UnsafeMutableRawPointer
    private var writeCapacity: Int
    private var writeCount = 0
    private var writing = false
    private var spare: [UInt8] = []
    /// Handshake frames (and a final error frame), written ahead of application data.
    private var control: [UInt8] = []
    private let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 16)

    private var handshake: HandshakeStateMachine
    private var decoder: FrameDecoder
    private var backoff: Backoff
    private var wasEstablished = false
    /// Closed by the user or by shutdown: no reconnect; close once the output drained.
    private var closingForGood = false
    private var drainThenClose = false
    private var streamClosing = false
    private var pendingReason = ""
    private var finished = false

    init(id: ConnectionID, direction: Direction, core: TransportCore) {
        self.id = id
        self.direction = direction
        self.core = core
        self.outbox = Outbox(limit: core.configuration.maxQueuedBytes)
        self.logger = core.logger
        self.logger[metadataKey: "connection"] = "\(id)"
        writeCapacity = 64 << 10
        writeBuffer = UnsafeMutableRawPointer.allocate(byteCount: writeCapacity, alignment: 16)
        handshake = HandshakeStateMachine(local: core.identity(), secret: core.configuration.secret)
        decoder = FrameDecoder(payloadLimit: core.configuration.payloadLimit)
        backoff = core.configuration.backoff
    }

    deinit {
        writeRequest.deallocate()
        writeBuffer.deallocate()
        readBuffer.deallocate()
    }

    private var retainedSelf: UnsafeMutableRawPointer { Unmanaged.passRetained(self).toOpaque() }
    static func from(_ data: UnsafeMutableRawPointer?) -> StreamConnection {
        Unmanaged<StreamConnection>.fromOpaque(data!).takeUnretainedValue()
    }

    var isOutgoingWithReconnect: Bool {
        if case .outgoing(_, true) = direction { return true }
        return false
    }

    // MARK: - Incarnations

    /// An accepted stream: start the handshake on it.
    func adopt(_ accepted: UnsafeMutablePointer<uv_stream_t>) {
        accepted.pointee.data = retainedSelf
        stream = accepted
        begin()
    }

    /// Dials the endpoint (first time or after a backoff delay).
    func dial() {
        guard case .outgoing(let endpoint, _) = direction, !closingForGood else { return }
        let request = uvAllocate(uv_connect_t.self)
        request.pointee.data = retainedSelf
        func dropRequest() {
            Unmanaged<StreamConnection>.fromOpaque(request.pointee.data).release()
            request.deallocate()
        }
        let status: Int32
        switch endpoint {
        case .tcp(let host, let port):
            let tcp = uvAllocate(uv_tcp_t.self)
            let initStatus = core.uv("uv_tcp_init") { uv_tcp_init(core.loop.loop, tcp) }
            guard initStatus >= 0 else {
                tcp.deallocate()  // never initialized: libuv knows nothing of it
                dropRequest()
                return setUpFailed(uvError(initStatus, "connect to \(endpoint): uv_tcp_init"))
            }
            setNoDelay(tcp)
            tcp.pointee.data = retainedSelf
            stream = asStream(tcp)
            switch SocketAddress.resolve(host: host, port: port) {
            case .success(var address):
                status = address.withSockaddr { uv_tcp_connect(request, tcp, $0, connectCallback) }
            case .failure(let error):
                status = error.code
            }
        case .unix(let path):
            let pipe = uvAllocate(uv_pipe_t.self)
            let initStatus = core.uv("uv_pipe_init") { uv_pipe_init(core.loop.loop, pipe, 0) }
            guard initStatus >= 0 else {
                pipe.deallocate()
                dropRequest()
                return setUpFailed(uvError(initStatus, "connect to \(endpoint): uv_pipe_init"))
            }
            pipe.pointee.data = retainedSelf
            stream = asStream(pipe)
            uv_pipe_connect(request, pipe, path, connectCallback)
            status = 0
        }
        if status < 0 {
            dropRequest()
            connectFailed(status)
        }
    }

    fileprivate func connected(_ status: Int32) {
        if status < 0 {
            connectFailed(status)
        } else {
            begin()
        }
    }

    private func connectFailed(_ status: Int32) {
        guard case .outgoing(let endpoint, _) = direction else { return }
        let reason = "connect to \(endpoint) failed: \(uvErrorName(Int(status)))"
        logger.debug("\(reason)")
        closeStream(reason: reason)
    }

    /// A libuv call setting up this incarnation failed: it ends (and, if it may, dials
    /// again later), with the call and uv_strerror's text as the reason.
    private func setUpFailed(_ error: TransportError) {
        let reason = "\(error)"
        logger.warning("\(reason)")
        closeStream(reason: reason)
    }

    private func begin() {
        guard let stream else { return }
        handshake = HandshakeStateMachine(local: core.identity(), secret: core.configuration.secret)
        decoder = FrameDecoder(payloadLimit: core.configuration.payloadLimit)
        control.removeAll()
        pendingReason = ""
        let status = core.uv("uv_read_start") { uv_read_start(stream, { handle, _, buf in
            let c = StreamConnection.from(handle!.pointee.data)
            buf!.pointee = uv_buf_init(c.readBuffer.assumingMemoryBound(to: CChar.self), 64 << 10)
        }, { handle, nread, _ in
            StreamConnection.from(handle!.pointee.data).didRead(nread)
        }) }
        if status < 0 { return setUpFailed(uvError(status, "uv_read_start")) }
        do {
            try armTimer(core.configuration.handshakeTimeoutMillis)
        } catch {
            return setUpFailed(error)
        }
        sendControl(handshake.hello)
    }

    // MARK: - Reading

    private func didRead(_ nread: Int) {
        if nread < 0 {
            let reason: String
            if nread == Int(UV_EOF.rawValue) {
                reason = decoder.bufferedBytes > 0 ? "peer closed the connection in the middle of a frame" : "peer closed the connection"
            } else {
                reason = "read failed: \(uvErrorName(nread))"
            }
            closeStream(reason: reason)
            return
        }
        guard nread > 0, !streamClosing else { return }
        decoder.append(UnsafeRawBufferPointer(start: readBuffer, count: nread))
        do {
            while !streamClosing, let message = try decoder.next() {
                if wasEstablished {
                    core.deliver(.received(id, message))
                } else {
                    handleHandshake(message)
                }
            }
        } catch {
            let code: ErrorCode
            if case .unsupportedVersion = error { code = .versionMismatch } else { code = .malformedFrame }
            fail(code, "bad frame from peer: \(error)")
        }
    }

    private func handleHandshake(_ message: Message) {
        switch handshake.receive(message) {
        case .none:
            break
        case .send(let reply):
            sendControl(reply)
        case .established(let peer):
            wasEstablished = true
            backoff.reset()
            stopTimer()
            outbox.setEstablished(true)
            logger.debug("established with \(peer.role) \(peer.nodeID) \(peer.name)")
            core.deliver(.connected(id, peer: peer))
            flush()
        case .fail(let code, let reason):
            fail(code, reason)
        }
    }

    /// Drops this incarnation for a protocol reason, telling the peer why first.
    private func fail(_ code: ErrorCode, _ reason: String) {
        logger.warning("dropping connection: \(reason)")
        if let stream, !streamClosing {
            // Best effort, without waiting: the peer may be the one misbehaving.
            var frame = control
            frame += Message.error(code: code, message: reason).frame()
            frame.withUnsafeMutableBytes { raw in
                var buf = uv_buf_init(raw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(raw.count))
                // Any failure or short write only loses this goodbye: the stream closes next.
                _ = uv_try_write(stream, &buf, 1)
            }
            control.removeAll()
        }
        // A peer that fails authentication is not worth redialling quickly; the backoff grows.
        closeStream(reason: reason)
    }

    // MARK: - Writing

    private func sendControl(_ message: Message) {
        var w = WireWriter(appendingTo: control)
        message.encodeFrame(into: &w)
        control = w.bytes
        flush()
    }

    /// Writes control frames and everything staged, as one write, unless a write is
    /// already in flight (its completion flushes again).
    func flush() {
        guard let stream, !writing, !streamClosing else { return }
        outbox.take(into: &spare)
        let taken = spare.count
        let total = control.count + taken
        guard total > 0 else { return }
        if total > writeCapacity {
            writeBuffer.deallocate()
            writeCapacity = max(total, writeCapacity * 2)
            writeBuffer = UnsafeMutableRawPointer.allocate(byteCount: writeCapacity, alignment: 16)
        }
        control.withUnsafeBytes { writeBuffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        spare.withUnsafeBytes { writeBuffer.advanced(by: control.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        control.removeAll(keepingCapacity: true)
        spare.removeAll(keepingCapacity: true)
        writeCount = taken
        var buf = uv_buf_init(writeBuffer.assumingMemoryBound(to: CChar.self), UInt32(total))
        writeRequest.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let status = uv_write(writeRequest, stream, &buf, 1) { request, status in
            StreamConnection.from(request!.pointee.data).didWrite(status)
        }
        if status < 0 {
            _ = outbox.written(taken)
            closeStream(reason: "write failed: \(uvErrorName(Int(status)))")
            return
        }
        writing = true
    }

    private func didWrite(_ status: Int32) {
        writing = false
        let (wake, more) = outbox.written(writeCount)
        writeCount = 0
        if status < 0 {
            if status != UV_ECANCELED.rawValue { closeStream(reason: "write failed: \(uvErrorName(Int(status)))") }
            return
        }
        if wake { core.deliver(.writable(id)) }
        if more || !control.isEmpty {
            flush()
        } else if drainThenClose && !outbox.hasStaged {
            closeStream(reason: "closed")
        }
    }

    // MARK: - Closing

    /// The user closes this connection: queued messages are written first.
    func close() {
        closingForGood = true
        if stream != nil, !streamClosing, writing || outbox.hasStaged {
            drainThenClose = true
            flush()
        } else {
            closeStream(reason: "closed")
        }
    }

    /// Shutdown: close now.
    func closeImmediately() {
        closingForGood = true
        closeStream(reason: "transport shut down")
    }

    private func closeStream(reason: String) {
        guard let stream, !streamClosing else {
            if stream == nil { finishIncarnation(reason: reason) }
            return
        }
        streamClosing = true
        pendingReason = reason
        stopTimer()
        uv_close(asHandle(stream)) { handle in
            let c = Unmanaged<StreamConnection>.fromOpaque(handle!.pointee.data)
            let connection = c.takeUnretainedValue()
            handle!.deallocate()
            connection.streamClosed()
            c.release()
        }
    }

    private func streamClosed() {
        stream = nil
        streamClosing = false
        writing = false
        finishIncarnation(reason: pendingReason)
    }

    private func finishIncarnation(reason: String) {
        guard !finished else { return }
        let established = wasEstablished
        wasEstablished = false
        var reason = reason
        var reconnect = isOutgoingWithReconnect && !closingForGood && !core.isShuttingDown
        if reconnect {
            // Armed before anyone hears of the loss, so that what they hear is true.
            var rng = SystemRandomNumberGenerator()
            do {
                try armTimer(backoff.nextDelay(using: &rng))
            } catch {
                reconnect = false
                reason += "; cannot reconnect: \(error)"
                logger.warning("\(reason)")
            }
        }
        outbox.reset(closeForGood: !reconnect)
        if established || !reconnect {
            // Our own close or shutdown is routine; a peer going away is news.
            if established { closingForGood ? logger.debug("disconnected: \(reason)") : logger.info("disconnected: \(reason)") }
            core.deliver(.disconnected(id, reason: reason, willReconnect: reconnect))
        }
        if !reconnect {
            finished = true
            closeTimer()
            core.forget(self)
        }
    }

    // MARK: - Timer (handshake timeout, then reconnect delay)

    private func armTimer(_ millis: UInt64) throws(TransportError) {
        if timer == nil {
            let t = uvAllocate(uv_timer_t.self)
            let status = core.uv("uv_timer_init") { uv_timer_init(core.loop.loop, t) }
            if status < 0 {
                t.deallocate()  // never initialized: libuv knows nothing of it
                throw uvError(status, "uv_timer_init")
            }
            t.pointee.data = retainedSelf
            timer = t
        }
        try uvCheck(core.uv("uv_timer_start") { uv_timer_start(timer, { t in
            StreamConnection.from(t!.pointee.data).timerFired()
        }, millis, 0) }, "uv_timer_start")
    }

    private func stopTimer() {
        // uv_timer_stop has no failure: it answers 0 on any timer, armed or not.
        if let timer { uv_timer_stop(timer) }
    }

    private func closeTimer() {
        guard let t = timer else { return }
        timer = nil
        uv_close(asHandle(t)) { handle in
            Unmanaged<StreamConnection>.fromOpaque(handle!.pointee.data).release()
            handle!.deallocate()
        }
    }

    private func timerFired() {
        if stream != nil {
            fail(.authenticationFailed, "handshake timed out")
        } else {
            dial()
        }
    }
}

private func connectCallback(_ request: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    let c = Unmanaged<StreamConnection>.fromOpaque(request!.pointee.data)
    request!.deallocate()
    if status != UV_ECANCELED.rawValue { c.takeUnretainedValue().connected(status) }
    c.release()
}
