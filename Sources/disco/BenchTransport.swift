import ArgumentParser
import Foundation
import Logging
import Protocol
import Transport

struct BenchTransport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Measure the cluster transport on loopback against a minimal C libuv program.",
        discussion: """
            For TCP and Unix sockets, in one run: small-message round trip (median, p99)
            with replies sent from the event loop and with the request made from another
            thread (as a node's execution thread does); one-way throughput of 64-byte
            messages and of 4 KiB line transfers. The baseline is `uv-pingpong` (built
            beside disco), the same exchange written directly against libuv in C with no
            framing, queues or authentication; ratios are Swift/C.
              swift build -c release && .build/release/disco bench transport
            """
    )

    @Option(help: "Round trips measured per test (after 1000 warm-up).")
    var rounds = 20_000

    @Option(help: "64-byte messages in the throughput test.")
    var messages = 2_000_000

    @Option(help: "4 KiB transfers in the throughput test.")
    var pages = 100_000

    @Option(help: "Socket kinds: tcp, unix or both.")
    var sockets: [String] = ["tcp", "unix"]

    @Option(help: ArgumentHelp("The C baseline program (default: uv-pingpong next to this executable).", valueName: "path"))
    var baseline: String?

    mutating func run() throws {
        guard rounds >= 100, messages >= 1000, pages >= 100 else { fail("counts are too small to measure") }
        for kind in sockets where kind != "tcp" && kind != "unix" { fail("unknown socket kind '\(kind)' (tcp or unix)") }
        let cProgram = baseline ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("uv-pingpong").path
        guard FileManager.default.isExecutableFile(atPath: cProgram) else {
            fail("baseline '\(cProgram)' not found (swift build -c release builds it)")
        }
        let ping = Message.ping(sequence: 0, payload: [UInt8](repeating: 0x5A, count: 48))
        let small = Message.ping(sequence: 0, payload: [UInt8](repeating: 0x5A, count: 44))
        let page = Message.lineData(line: 0x8000_0000, exclusive: true, data: [UInt8](repeating: 0xA5, count: 4096))
        let pingSize = ping.frame().count, smallSize = small.frame().count, pageSize = page.frame().count

        for kind in sockets {
            print("== \(kind) loopback ==")
            let c = try cBaseline(cProgram, ["rtt", kind, String(rounds), String(pingSize)])
            let loop = try measureRoundTrips(kind: kind, fromOtherThread: false, message: ping)
            let cross = try measureRoundTrips(kind: kind, fromOtherThread: true, message: ping)
            let cMedian = c["median_ns"] ?? .nan, cP99 = c["p99_ns"] ?? .nan
            print(String(format: "round trip, %d-byte frames      median %7.1f µs  p99 %7.1f µs", pingSize, cMedian / 1e3, cP99 / 1e3)
                + "   (C libuv baseline)")
            for (name, r) in [("replies on the loop", loop), ("request from a thread", cross)] {
                let label = ("  disco, " + name).padding(toLength: 32, withPad: " ", startingAt: 0)
                print(label + String(format: "median %7.1f µs  p99 %7.1f µs   ratio %.2fx / %.2fx (median / p99)",
                                     r.median / 1e3, r.p99 / 1e3, r.median / cMedian, r.p99 / cP99))
            }
            let cSmall = try cBaseline(cProgram, ["stream", kind, String(messages), String(smallSize)])
            let sSmall = try measureStream(kind: kind, count: messages, message: small)
            print(String(format: "%d-byte messages, one way      disco %6.2f M msg/s   C %6.2f M msg/s (raw bytes, no framing)",
                         smallSize, sSmall.messagesPerSecond / 1e6, (cSmall["msgs_per_s"] ?? .nan) / 1e6))
            let cPage = try cBaseline(cProgram, ["stream", kind, String(pages), String(pageSize)])
            let sPage = try measureStream(kind: kind, count: pages, message: page)
            print(String(format: "4 KiB line transfers, one way   disco %7.0f MB/s   C %7.0f MB/s  (%.0f transfers/s)",
                         sPage.messagesPerSecond * 4096 / 1e6, (cPage["msgs_per_s"] ?? .nan) * 4096 / 1e6,
                         sPage.messagesPerSecond))
        }
    }

    // MARK: - Baseline

    private func cBaseline(_ program: String, _ arguments: [String]) throws -> [String: Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { fail("\(program) \(arguments.joined(separator: " ")) failed") }
        var values: [String: Double] = [:]
        for field in String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let kv = field.split(separator: "=")
            if kv.count == 2, let v = Double(kv[1]) { values[String(kv[0])] = v }
        }
        return values
    }

    // MARK: - Swift transport

    private func endpoint(_ kind: String) -> Endpoint {
        kind == "tcp" ? .tcp(host: "127.0.0.1", port: 0)
            : .unix(path: NSTemporaryDirectory() + "disco-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock")
    }

    private func configuration(_ role: PeerRole) -> TransportConfiguration {
        TransportConfiguration(secret: Array("benchmark".utf8),
                               identity: Hello(role: role, nodeID: role == .node ? 1 : -1, nonce: [UInt8](repeating: 0, count: 32)),
                               maxQueuedBytes: 4 << 20)
    }

    /// A server that answers every ping with a pong, from its event loop.
    private func echoServer() throws -> NetworkTransport {
        final class Box: @unchecked Sendable { weak var transport: NetworkTransport? }
        let box = Box()
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let server = try NetworkTransport(configuration: configuration(.coordinator), logger: logger) { event in
            if case .received(let id, .ping(let seq, let payload)) = event {
                _ = box.transport?.send(.pong(sequence: seq, payload: payload), on: id)
            }
        }
        box.transport = server
        return server
    }

    struct Latency { var median: Double; var p99: Double }

    /// The round trip a node's execution thread sees (request from a thread).
    func roundTrip(kind: String) throws -> Latency {
        try measureRoundTrips(kind: kind, fromOtherThread: true,
                              message: .ping(sequence: 0, payload: [UInt8](repeating: 0x5A, count: 48)))
    }

    private func measureRoundTrips(kind: String, fromOtherThread: Bool, message: Message) throws -> Latency {
        guard case .ping(_, let payload) = message else { fatalError() }
        let server = try echoServer()
        defer { server.shutdown() }
        let address = try server.listen(on: endpoint(kind))
        let warmup = 1000, total = rounds + warmup
        final class State: @unchecked Sendable {
            weak var transport: NetworkTransport?
            var samples: [UInt64] = []
            var sentAt: UInt64 = 0
            var id = ConnectionID(rawValue: 0)
            let connected = DispatchSemaphore(value: 0)
            let reply = DispatchSemaphore(value: 0)
            let done = DispatchSemaphore(value: 0)
        }
        let state = State()
        state.samples.reserveCapacity(total)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = try NetworkTransport(configuration: configuration(.node), logger: logger) { event in
            switch event {
            case .connected(let id, _):
                state.id = id
                state.connected.signal()
            case .received(let id, .pong(let seq, _)):
                if fromOtherThread {
                    state.reply.signal()
                    return
                }
                state.samples.append(DispatchTime.now().uptimeNanoseconds - state.sentAt)
                if state.samples.count == total {
                    state.done.signal()
                } else {
                    state.sentAt = DispatchTime.now().uptimeNanoseconds
                    _ = state.transport?.send(.ping(sequence: seq + 1, payload: payload), on: id)
                }
            default: break
            }
        }
        state.transport = client
        defer { client.shutdown() }
        let id = client.connect(to: address, reconnect: false)
        guard state.connected.wait(timeout: .now() + 10) == .success else { fail("benchmark connection failed") }
        if fromOtherThread {
            for i in 0..<total {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = client.send(.ping(sequence: UInt64(i), payload: payload), on: id)
                state.reply.wait()
                state.samples.append(DispatchTime.now().uptimeNanoseconds - start)
            }
        } else {
            state.sentAt = DispatchTime.now().uptimeNanoseconds
            _ = client.send(.ping(sequence: 0, payload: payload), on: id)
            state.done.wait()
        }
        let sorted = state.samples.dropFirst(warmup).sorted()
        return Latency(median: Double(sorted[sorted.count / 2]), p99: Double(sorted[sorted.count * 99 / 100]))
    }

    private struct Throughput { var messagesPerSecond: Double }

    private func measureStream(kind: String, count: Int, message: Message) throws -> Throughput {
        final class State: @unchecked Sendable {
            var received = 0
            var end: UInt64 = 0
            let done = DispatchSemaphore(value: 0)
            let connected = DispatchSemaphore(value: 0)
            let writable = DispatchSemaphore(value: 0)
        }
        let state = State()
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let server = try NetworkTransport(configuration: configuration(.coordinator), logger: logger) { event in
            if case .received = event {
                state.received += 1
                if state.received == count {
                    state.end = DispatchTime.now().uptimeNanoseconds
                    state.done.signal()
                }
            }
        }
        defer { server.shutdown() }
        let address = try server.listen(on: endpoint(kind))
        let client = try NetworkTransport(configuration: configuration(.node), logger: logger) { event in
            switch event {
            case .connected: state.connected.signal()
            case .writable: state.writable.signal()
            default: break
            }
        }
        defer { client.shutdown() }
        let id = client.connect(to: address, reconnect: false)
        guard state.connected.wait(timeout: .now() + 10) == .success else { fail("benchmark connection failed") }
        let start = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while sent < count {
            switch client.send(message, on: id) {
            case .queued: sent += 1
            case .full: _ = state.writable.wait(timeout: .now() + .milliseconds(50))
            case .closed: fail("benchmark connection closed")
            }
        }
        guard state.done.wait(timeout: .now() + 120) == .success else { fail("benchmark receiver stalled at \(state.received)") }
        return Throughput(messagesPerSecond: Double(count) / (Double(state.end - start) / 1e9))
    }
}
