import CSlirp
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The host's network for one NIC, the way QEMU's `-nic user` gives it: libslirp's
/// user-mode TCP/IP stack on the guest's side of a private subnet 10.0.2.0/24 with
/// its gateway at 10.0.2.2, DNS at 10.0.2.3 and a DHCP server that hands out
/// 10.0.2.15 first; the guest's connections leave as ordinary sockets of this
/// process (NAT), no privileges needed.
///
/// Not thread-safe: `input`, `poll` and the `deliver` callback run on the thread
/// that owns the VM's devices (the node's execution thread, or the machine's).
public final class SlirpUplink {
    /// Where frames for the guest go.
    public var deliver: ([UInt8]) -> Void = { _ in }

    private var slirp: OpaquePointer?
    private let callbacks: UnsafeMutablePointer<SlirpCb>
    private var timers: [UnsafeMutableRawPointer: Timer] = [:]
    private var pollFDs: [pollfd] = []
    private let start = DispatchTime.now().uptimeNanoseconds
    private var reportedErrors = 0

    /// Frames that went to libslirp and came back from it.
    public private(set) var framesIn: UInt64 = 0
    public private(set) var framesOut: UInt64 = 0

    private final class Timer {
        let id: SlirpTimerId
        let opaque: UnsafeMutableRawPointer?
        var expiresMillis: Int64?
        init(id: SlirpTimerId, opaque: UnsafeMutableRawPointer?) { self.id = id; self.opaque = opaque }
    }

    public struct StartError: Error, CustomStringConvertible { public var description: String }

    public init() throws {
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: SlirpCb())
        callbacks.pointee.send_packet = { buffer, length, opaque in
            guard let buffer, let opaque else { return -1 }
            let me = Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue()
            me.framesOut &+= 1
            me.deliver(Array(UnsafeRawBufferPointer(start: buffer, count: length)))
            return length
        }
        callbacks.pointee.guest_error = { message, opaque in
            guard let message, let opaque else { return }
            Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue().report("guest error: \(String(cString: message))")
        }
        callbacks.pointee.clock_get_ns = { opaque in
            guard let opaque else { return 0 }
            return Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue().nowNanos
        }
        callbacks.pointee.timer_new_opaque = { id, cbOpaque, opaque in
            guard let opaque else { return nil }
            let me = Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue()
            let timer = Timer(id: id, opaque: cbOpaque)
            let key = Unmanaged.passUnretained(timer).toOpaque()
            me.timers[key] = timer
            return key
        }
        callbacks.pointee.timer_free = { timer, opaque in
            guard let timer, let opaque else { return }
            Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue().timers[timer] = nil
        }
        callbacks.pointee.timer_mod = { timer, expireMillis, opaque in
            guard let timer, let opaque else { return }
            Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue().timers[timer]?.expiresMillis = expireMillis
        }
        // Every poll asks libslirp for its sockets afresh (slirp_pollfds_fill).
        callbacks.pointee.register_poll_fd = { _, _ in }
        callbacks.pointee.unregister_poll_fd = { _, _ in }
        callbacks.pointee.notify = { _ in }

        var config = SlirpConfig()
        config.version = 4
        config.restricted = 0
        config.in_enabled = true
        config.vnetwork = in_addr(s_addr: inet_addr("10.0.2.0"))
        config.vnetmask = in_addr(s_addr: inet_addr("255.255.255.0"))
        config.vhost = in_addr(s_addr: inet_addr("10.0.2.2"))
        config.vdhcp_start = in_addr(s_addr: inet_addr("10.0.2.15"))
        config.vnameserver = in_addr(s_addr: inet_addr("10.0.2.3"))
        config.in6_enabled = false
        config.disable_host_loopback = false
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        slirp = slirp_new(&config, callbacks, opaque)
        guard slirp != nil else {
            callbacks.deinitialize(count: 1)
            callbacks.deallocate()
            throw StartError(description: "libslirp could not start the user-mode network (10.0.2.0/24)")
        }
    }

    deinit {
        if let slirp { slirp_cleanup(slirp) }
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    private var nowNanos: Int64 { Int64(DispatchTime.now().uptimeNanoseconds - start) }

    private func report(_ text: String) {
        guard reportedErrors < 10 else { return }
        reportedErrors += 1
        FileHandle.standardError.write(Data("disco: user network: \(text)\n".utf8))
    }

    /// A frame from the guest. Answers (ARP, DHCP, DNS...) may come back through
    /// `deliver` before this returns.
    public func input(_ frame: [UInt8]) {
        guard let slirp else { return }
        framesIn &+= 1
        frame.withUnsafeBufferPointer { slirp_input(slirp, $0.baseAddress, Int32($0.count)) }
    }

    /// Services libslirp's sockets and timers without blocking: call it every
    /// scheduling turn. Returns how long (ms) libslirp could wait before the next call.
    @discardableResult
    public func poll() -> UInt32 {
        guard let slirp else { return 1000 }
        let now = nowNanos / 1_000_000
        for timer in timers.values {
            guard let at = timer.expiresMillis, at <= now else { continue }
            timer.expiresMillis = nil
            slirp_handle_timer(slirp, timer.id, timer.opaque)
        }
        var timeout: UInt32 = 1000
        pollFDs.removeAll(keepingCapacity: true)
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        slirp_pollfds_fill(slirp, &timeout, { fd, events, opaque in
            guard let opaque else { return -1 }
            let me = Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue()
            var e: Int16 = 0
            if events & Int32(SLIRP_POLL_IN) != 0 { e |= Int16(POLLIN) }
            if events & Int32(SLIRP_POLL_OUT) != 0 { e |= Int16(POLLOUT) }
            if events & Int32(SLIRP_POLL_PRI) != 0 { e |= Int16(POLLPRI) }
            me.pollFDs.append(pollfd(fd: fd, events: e, revents: 0))
            return Int32(me.pollFDs.count - 1)
        }, opaque)
        var error: Int32 = 0
        if !pollFDs.isEmpty {
            error = pollFDs.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), 0) } < 0 ? 1 : 0
        }
        slirp_pollfds_poll(slirp, error, { index, opaque in
            guard let opaque else { return 0 }
            let me = Unmanaged<SlirpUplink>.fromOpaque(opaque).takeUnretainedValue()
            guard index >= 0, Int(index) < me.pollFDs.count else { return 0 }
            let r = me.pollFDs[Int(index)].revents
            var out: Int32 = 0
            if r & Int16(POLLIN) != 0 { out |= Int32(SLIRP_POLL_IN) }
            if r & Int16(POLLOUT) != 0 { out |= Int32(SLIRP_POLL_OUT) }
            if r & Int16(POLLPRI) != 0 { out |= Int32(SLIRP_POLL_PRI) }
            if r & Int16(POLLERR) != 0 { out |= Int32(SLIRP_POLL_ERR) }
            if r & Int16(POLLHUP) != 0 { out |= Int32(SLIRP_POLL_HUP) }
            return out
        }, opaque)
        return timeout
    }
}

/// The uplinks of one VM's `--nic user` NICs, one libslirp stack each (as QEMU gives
/// each `-nic user` its own). Frames from libslirp wait here until `poll` hands them
/// to the NIC, so the device is never re-entered while it transmits.
public final class UserNetworks {
    private var uplinks: [Int: SlirpUplink] = [:]
    private var inbound: [(nic: Int, frame: [UInt8])] = []

    public init(config: MachineConfig) throws {
        for (i, nic) in config.nics.enumerated() where nic.backend == .user {
            let uplink = try SlirpUplink()
            uplink.deliver = { [unowned self] in self.inbound.append((i, $0)) }
            uplinks[i] = uplink
        }
    }

    public var isEmpty: Bool { uplinks.isEmpty }

    /// Takes NIC `nic`'s frame if that NIC is a user one; false otherwise.
    public func transmit(nic: Int, frame: [UInt8]) -> Bool {
        guard let uplink = uplinks[nic] else { return false }
        uplink.input(frame)
        return true
    }

    /// Services the stacks and hands what they sent to the NICs (`nics[i]` is NIC i).
    public func poll(nics: [VirtioNet]) {
        for uplink in uplinks.values { uplink.poll() }
        let frames = inbound
        inbound.removeAll()
        for (i, frame) in frames where i < nics.count { nics[i].receive(frame) }
        for nic in nics where nic.backlogCount > 0 { nic.drainBacklog() }
    }
}
