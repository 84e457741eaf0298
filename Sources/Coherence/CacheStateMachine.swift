import Cluster

/// The requester side of the coherence protocol: a node's remote access cache for
/// lines homed on other nodes. A pure state machine that also holds the cached
/// line data, with a bounded capacity (default 1 MiB, like FLASH's board cache):
/// when full, the least recently used stable line is evicted with an eviction
/// notice (Shared) or a write-back (Modified).
///
/// Stable states: Invalid (absent), Shared, Modified. Transient states:
/// `IS_D`/`IM_D` (waiting for data), `SM_D` (upgrade sent, still holding a Shared
/// copy), `MI_A`/`SI_A` (eviction sent, waiting for the home's acknowledgement).
/// A CPU whose access misses is parked by the shell and retries when the
/// directive `wake(line)` comes out; the retry then hits or issues the next request.
public struct CacheStateMachine: Sendable {
    public enum LineState: Sendable, Equatable {
        case shared, modified
        case waitingSharedData      // IS_D
        case waitingModifiedData    // IM_D
        case waitingUpgrade         // SM_D: holds valid read-only data
        case evictingModified       // MI_A: holds the data until the home acknowledges
        case evictingShared         // SI_A
    }

    /// Messages to a home node.
    public enum Message: Sendable, Equatable {
        case request(CoherenceRequest)
        case invalidateAck
        case recallReply(data: [UInt8])
        case putShared
        case putModified(data: [UInt8])
    }

    public enum Event: Sendable, Equatable {
        /// A CPU wants to read (or write) `line`, homed on `home`.
        case access(line: LineAddress, home: NodeID, write: Bool)
        /// Data from the home: a Shared copy, or ownership if `exclusive`.
        case data(line: LineAddress, exclusive: Bool, data: [UInt8])
        /// The home granted an upgrade: the Shared copy held becomes Modified.
        case grant(line: LineAddress)
        /// The home `from` takes the line away; always acknowledged.
        case invalidate(line: LineAddress, from: NodeID)
        case recall(line: LineAddress, keepShared: Bool)
        case putAck(line: LineAddress)
    }

    public enum Directive: Sendable, Equatable {
        /// The access may proceed now (read the line's data with `data(of:)`, write
        /// with `write(_:at:bytes:)`).
        case hit(line: LineAddress)
        /// The access must wait: park the CPU until `wake(line)`.
        case miss(line: LineAddress)
        case send(Message, line: LineAddress, to: NodeID)
        /// A transaction on the line ended: parked CPUs retry their accesses.
        case wake(line: LineAddress)
        /// The node lost all access to the line (break LR/SC reservations on it, drop
        /// fast-path mappings over it).
        case lost(line: LineAddress)
        /// The node lost write access to the line (drop writable mappings over it).
        case downgraded(line: LineAddress)
    }

    private struct Entry: Sendable {
        var state: LineState
        var home: NodeID
        var data: [UInt8]
        var lastUse: UInt64
    }

    public let geometry: LineGeometry
    /// Stable lines beyond which the least recently used is evicted.
    public let capacityLines: Int
    private var entries: [LineAddress: Entry] = [:]
    private var clock: UInt64 = 0
    private var stableCount = 0
    /// Stable lines in the order they became stable, with their use stamp then.
    private var order: [(line: LineAddress, stamp: UInt64)] = []
    private var orderHead = 0

    public init(geometry: LineGeometry = LineGeometry(), capacityBytes: Int = 1 << 20) {
        self.geometry = geometry
        self.capacityLines = max(1, capacityBytes / geometry.lineSize)
    }

    // MARK: - Queries

    public func state(of line: LineAddress) -> LineState? { entries[line]?.state }

    /// The cached bytes of a line held Shared, Modified or in a transient state that
    /// keeps valid data.
    public func data(of line: LineAddress) -> [UInt8]? { entries[line]?.data }

    public var count: Int { entries.count }

    /// Stores into a Modified line (call only after a `hit` for a write).
    public mutating func write(_ line: LineAddress, at offset: Int, bytes: [UInt8]) {
        guard var e = entries[line], e.state == .modified else {
            preconditionFailure("write to a line not held Modified")
        }
        entries[line] = nil  // keep `data` uniquely referenced while mutating it
        e.data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        entries[line] = e
    }

    /// Reads a line held with valid data in place (call only after a `hit`).
    public func withData<R>(of line: LineAddress, _ body: (UnsafeRawPointer) -> R) -> R {
        guard let e = entries[line], !e.data.isEmpty else { preconditionFailure("read of a line without data") }
        return e.data.withUnsafeBytes { body($0.baseAddress!) }
    }

    /// Updates a Modified line in place (call only after a `hit` for a write).
    public mutating func withMutableData<R>(of line: LineAddress, _ body: (UnsafeMutableRawPointer) -> R) -> R {
        guard entries[line]?.state == .modified else { preconditionFailure("write to a line not held Modified") }
        return entries[line]!.data.withUnsafeMutableBytes { body($0.baseAddress!) }
    }

    /// A CPU access that hits: the same as `handle(.access(line:home:write:))` answering
    /// `.hit` (the line becomes the most recently used), with `body` run on the line's
    /// bytes, in one lookup and without directives. nil — and no change at all — when the
    /// access would not hit; the caller then goes through `handle(.access...)`. For a
    /// read (`write` false) `body` must only read: a Shared copy is not this node's to change.
    public mutating func withHit<R>(_ line: LineAddress, write: Bool, _ body: (UnsafeMutableRawPointer) -> R) -> R? {
        guard let i = entries.index(forKey: line) else { return nil }
        let state = entries.values[i].state
        guard state == .modified || (!write && state == .shared) else { return nil }
        clock &+= 1
        entries.values[i].lastUse = clock
        if write {
            return entries.values[i].data.withUnsafeMutableBytes { body($0.baseAddress!) }
        }
        return entries.values[i].data.withUnsafeBytes { body(UnsafeMutableRawPointer(mutating: $0.baseAddress!)) }
    }

    // MARK: - Events

    public mutating func handle(_ event: Event) -> [Directive] {
        var out: [Directive] = []
        handle(event, into: &out)
        return out
    }

    public mutating func handle(_ event: Event, into out: inout [Directive]) {
        switch event {
        case .access(let line, let home, let write):
            access(line, home, write, &out)
        case .data(let line, let exclusive, let data):
            guard var e = entries[line] else { return }
            switch e.state {
            case .waitingSharedData, .waitingModifiedData, .waitingUpgrade:
                e.state = exclusive ? .modified : .shared
                e.data = data
                entries[line] = e
                stableCount += 1
                order.append((line, e.lastUse))
                out.append(.wake(line: line))
                evictIfNeeded(keeping: line, &out)
            default:
                break  // no transaction wants data: ignore a stray reply
            }
        case .grant(let line):
            guard var e = entries[line], e.state == .waitingUpgrade else { return }
            e.state = .modified
            entries[line] = e
            stableCount += 1
            order.append((line, e.lastUse))
            out.append(.wake(line: line))
            evictIfNeeded(keeping: line, &out)
        case .invalidate(let line, let from):
            out.append(.send(.invalidateAck, line: line, to: from))
            guard var e = entries[line] else { return }  // evicted and acknowledged already
            switch e.state {
            case .shared:
                entries[line] = nil
                stableCount -= 1
                out.append(.lost(line: line))
            case .waitingUpgrade:
                // Lost the copy while upgrading: the home will now answer with data.
                e.state = .waitingModifiedData
                e.data = []
                entries[line] = e
                out.append(.lost(line: line))
            default:
                break  // SI_A: the ack is all the home needs
            }
        case .recall(let line, let keepShared):
            guard var e = entries[line] else { return }
            switch e.state {
            case .modified:
                out.append(.send(.recallReply(data: e.data), line: line, to: e.home))
                if keepShared {
                    e.state = .shared
                    entries[line] = e
                    out.append(.downgraded(line: line))
                } else {
                    entries[line] = nil
                    stableCount -= 1
                    out.append(.lost(line: line))
                }
            case .evictingModified:
                // The write-back is on its way, behind this reply; the data is the same.
                out.append(.send(.recallReply(data: e.data), line: line, to: e.home))
            default:
                break
            }
        case .putAck(let line):
            guard let e = entries[line], e.state == .evictingModified || e.state == .evictingShared else { return }
            entries[line] = nil
            out.append(.wake(line: line))
        }
    }

    private mutating func access(_ line: LineAddress, _ home: NodeID, _ write: Bool, _ out: inout [Directive]) {
        clock &+= 1
        guard var e = entries[line] else {
            entries[line] = Entry(state: write ? .waitingModifiedData : .waitingSharedData, home: home,
                                  data: [], lastUse: clock)
            out.append(.miss(line: line))
            out.append(.send(.request(write ? .getModified : .getShared), line: line, to: home))
            return
        }
        e.lastUse = clock
        switch e.state {
        case .modified:
            entries[line] = e
            out.append(.hit(line: line))
        case .shared where !write:
            entries[line] = e
            out.append(.hit(line: line))
        case .shared:
            e.state = .waitingUpgrade
            entries[line] = e
            stableCount -= 1
            out.append(.miss(line: line))
            out.append(.send(.request(.upgrade), line: line, to: e.home))
        default:
            entries[line] = e
            out.append(.miss(line: line))  // a transaction is under way; retry on wake
        }
    }

    /// Evicts least recently used stable lines until the stable ones fit, in amortized
    /// constant time: `order` holds lines in the order they became stable, each with the
    /// use stamp it had then. The oldest entry is the victim unless its line was used
    /// since (then it goes to the back with its new stamp: a second chance) or is no
    /// longer stable (the entry is stale and dropped). A line used since it was queued
    /// is never the victim while an unused one is queued ahead of it: least recently
    /// used, to within the order in which lines arrived.
    private mutating func evictIfNeeded(keeping keep: LineAddress, _ out: inout [Directive]) {
        while stableCount > capacityLines, orderHead < order.count {
            let (line, stamp) = order[orderHead]
            orderHead += 1
            if orderHead > 4096 && orderHead * 2 > order.count {
                order.removeFirst(orderHead)
                orderHead = 0
            }
            guard var e = entries[line], e.state == .shared || e.state == .modified else { continue }
            if line == keep || e.lastUse > stamp {
                order.append((line, e.lastUse))
                continue
            }
            stableCount -= 1
            if e.state == .modified {
                e.state = .evictingModified
                out.append(.send(.putModified(data: e.data), line: line, to: e.home))
            } else {
                e.state = .evictingShared
                out.append(.send(.putShared, line: line, to: e.home))
            }
            entries[line] = e
            out.append(.lost(line: line))
        }
    }
}
