import Foundation
import Protocol
import Testing
@testable import Transport

/// A driven transport runs its loop only inside `poll` and `wait(until:)` on the thread
/// that made it (a node's execution thread): it delivers events there, sends what that
/// thread queued on its next call, blocks in `wait` until something happens, and wakes
/// at once when another thread calls `wakeUp`.
@Suite struct DrivenTransportTests {
    /// A driven transport on a thread of its own that echoes every ping as a pong.
    final class Echo: @unchecked Sendable {
        private let lock = NSLock()
        private var stopFlag = false
        private var transport: NetworkTransport?
        private var bound: Endpoint?
        private(set) var waits = 0
        private(set) var shutDownCleanly = false
        private(set) var deliveredOnDrivingThread = true
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        /// Seconds the last `wait(until:)` with a 30 s deadline took.
        private(set) var lastLongWait: TimeInterval = 0

        var address: Endpoint { lock.withLock { bound! } }
        var stopping: Bool { lock.withLock { stopFlag } }

        func start(_ endpoint: Endpoint, longWaits: Bool) {
            let thread = Thread { [self] in
                let me = pthread_self()
                let inbox = Mailbox<TransportEvent>()
                let config = TransportConfiguration(secret: testSecret, identity: identity(.node, 3))
                let t: NetworkTransport
                do {
                    t = try NetworkTransport(configuration: config, driven: true) { [self] event in
                        if pthread_equal(me, pthread_self()) == 0 { lock.withLock { deliveredOnDrivingThread = false } }
                        inbox.post(event)
                    }
                    let b = try t.listen(on: endpoint)
                    lock.withLock {
                        transport = t
                        bound = b
                    }
                } catch {
                    Issue.record("driven transport: \(error)")
                    ready.signal()
                    done.signal()
                    return
                }
                ready.signal()
                while !stopping {
                    let started = Date()
                    // What the last poll delivered is handled before blocking again (as a
                    // node does): otherwise a ping that came in then waits the whole wait.
                    if inbox.count == 0 { t.wait(until: started.addingTimeInterval(longWaits ? 30 : 0.05)) }
                    let took = Date().timeIntervalSince(started)
                    lock.withLock {
                        waits += 1
                        if longWaits { lastLongWait = took }
                    }
                    for case .received(let id, .ping(let seq, let payload)) in inbox.takeAll() {
                        _ = t.send(.pong(sequence: seq, payload: payload), on: id)
                    }
                    t.poll()
                }
                t.shutdown()
                lock.withLock { shutDownCleanly = t.shutDownCleanly }
                done.signal()
            }
            thread.start()
            ready.wait()
        }

        func stop() {
            lock.withLock { stopFlag = true }
            lock.withLock { transport }?.wakeUp()
            _ = done.wait(timeout: .now() + 10)
        }
    }

    @Test(arguments: ["tcp", "unix"])
    func aDrivenTransportAnswersFromItsOwnThreadInOrder(kind: String) throws {
        let echo = Echo()
        echo.start(kind == "unix" ? .unix(path: socketPath("driven")) : .tcp(host: "127.0.0.1", port: 0), longWaits: false)
        let log = EventLog()
        let client = try NetworkTransport(configuration: TransportConfiguration(secret: testSecret, identity: identity(.node, 4))) {
            log.record($0)
        }
        defer { client.shutdown() }
        let id = client.connect(to: echo.address, reconnect: false)
        for i in 0..<500 { _ = client.send(.ping(sequence: UInt64(i), payload: [UInt8(i & 0xff)]), on: id) }
        log.wait(until: { log.received($0).count == 500 })
        #expect(log.received(log.all) == (0..<500).map { .pong(sequence: UInt64($0), payload: [UInt8($0 & 0xff)]) })
        echo.stop()
        #expect(echo.deliveredOnDrivingThread)
        #expect(echo.shutDownCleanly)
    }

    @Test func waitBlocksUntilDataOrAWakeUp() throws {
        let echo = Echo()
        echo.start(.tcp(host: "127.0.0.1", port: 0), longWaits: true)
        let log = EventLog()
        let client = try NetworkTransport(configuration: TransportConfiguration(secret: testSecret, identity: identity(.node, 4))) {
            log.record($0)
        }
        defer { client.shutdown() }
        let id = client.connect(to: echo.address, reconnect: false)
        log.wait(until: { !log.connected($0).isEmpty })
        // A ping wakes a wait of 30 s at once.
        let sent = Date()
        _ = client.send(.ping(sequence: 1, payload: []), on: id)
        log.wait(until: { log.received($0) == [.pong(sequence: 1, payload: [])] })
        #expect(Date().timeIntervalSince(sent) < 5)
        // Blocked with nothing to do, it takes no turns; a wake-up ends the wait.
        Thread.sleep(forTimeInterval: 0.3)
        let turns = echo.waits
        Thread.sleep(forTimeInterval: 0.3)
        #expect(echo.waits == turns, "the driving thread spun while idle")
        let stopping = Date()
        echo.stop()
        #expect(Date().timeIntervalSince(stopping) < 5)
        #expect(echo.lastLongWait < 5)
        #expect(echo.shutDownCleanly)
    }

    /// `queuedBytes` counts what `send` accepted and the kernel has not taken yet: a driven
    /// transport that has not run holds every byte; once it ran and the answers came, none.
    @Test func queuedBytesCountWhatIsNotWrittenYet() throws {
        let echo = Echo()
        echo.start(.unix(path: socketPath("queued")), longWaits: false)
        defer { echo.stop() }
        let inbox = Mailbox<TransportEvent>()
        let client = try NetworkTransport(configuration: TransportConfiguration(secret: testSecret, identity: identity(.node, 5)),
                                          driven: true) { inbox.post($0) }
        defer { client.shutdown() }
        #expect(client.queuedBytes == 0)
        let id = client.connect(to: echo.address, reconnect: false)
        for i in 0..<10 { _ = client.send(.ping(sequence: UInt64(i), payload: [UInt8](repeating: 7, count: 100)), on: id) }
        #expect(client.queuedBytes >= 1000, "ten 100-byte pings are staged until the transport runs")
        var pongs = 0
        let deadline = Date().addingTimeInterval(10)
        while pongs < 10, Date() < deadline {
            client.wait(until: Date().addingTimeInterval(0.05))
            for case .received(_, .pong) in inbox.takeAll() { pongs += 1 }
        }
        #expect(pongs == 10)
        #expect(client.queuedBytes == 0)
    }
}
