import Cluster

/// The home side of the coherence protocol: one directory per node, covering the
/// machine memory homed there. A pure state machine: events in, directives out; the
/// node shell carries the directives out (reads and writes home memory, sends
/// messages, revokes the home CPUs' fast-path mappings).
///
/// Protocol: home-based MSI invalidation with a *blocking* directory. Per line the
/// state is Uncached, Shared(sharers) or Exclusive(owner), or Busy while one
/// transaction waits for invalidation acknowledgements or an owner's recall reply.
/// Requests that reach a busy line wait in that line's queue, in arrival order, and
/// are handled when it settles. The home collects the acknowledgements itself and
/// only then answers the requester (no three-hop forwarding), so a requester never
/// sees a reply before the line is safe to use.
///
/// The home's own CPUs take part as requester `home`, without messages: in
/// Uncached they may read and write home memory directly; in Shared they may read;
/// in Exclusive(remote) not at all. `localRights(_:)` says which, and the directory
/// emits `revokeLocal` whenever a transition takes a right away, so the node drops
/// fast-path TLB entries over that line's page.
///
/// Messages between a pair of nodes are delivered in order (one TCP connection
/// per pair); the race handling below relies on it. See docs/coherence.md.
public struct DirectoryStateMachine: Sendable {
    public let home: NodeID
    public let geometry: LineGeometry

    /// Stable states plus the busy state of a line. A line absent from `lines` is
    /// Uncached with an empty queue.
    public enum State: Sendable, Equatable {
        case uncached
        case shared(NodeSet)
        case exclusive(NodeID)
        case busy(Transaction)
    }

    /// The transaction a busy line is completing.
    public struct Transaction: Sendable, Equatable {
        public var requester: NodeID
        public var request: CoherenceRequest
        /// Sharers whose invalidation acknowledgement is still awaited.
        public var awaitingAcks: NodeSet
        /// The owner whose recall reply is awaited, if any.
        public var awaitingRecallFrom: NodeID?
        /// Sharers that remain when the transaction completes (recall to Shared).
        public var sharersAfter: NodeSet
        /// Whether the requester still held a Shared copy when its upgrade was taken on
        /// (then it needs a grant without data).
        public var requesterHadCopy: Bool
    }

    /// An input to the directory.
    public enum Event: Sendable, Equatable {
        /// A request for `line` from `from` (which is `home` for the home's own CPUs).
        case request(CoherenceRequest, line: LineAddress, from: NodeID)
        case invalidateAck(line: LineAddress, from: NodeID)
        /// The owner's answer to a recall: the line's current data.
        case recallReply(line: LineAddress, from: NodeID, data: [UInt8])
        /// Eviction notice of a Shared copy.
        case putShared(line: LineAddress, from: NodeID)
        /// Write-back of an evicted Exclusive copy.
        case putModified(line: LineAddress, from: NodeID, data: [UInt8])
    }

    /// What the node shell must do.
    public enum Directive: Sendable, Equatable {
        /// Read `line` from home memory and send it to `to` (a read-only copy or, if
        /// `exclusive`, ownership).
        case sendData(line: LineAddress, to: NodeID, exclusive: Bool)
        /// Tell `to` its upgrade is granted: it owns the copy it holds.
        case sendGrant(line: LineAddress, to: NodeID)
        case sendInvalidate(line: LineAddress, to: NodeID)
        /// Ask the owner for the line; it keeps a Shared copy if `keepShared`.
        case sendRecall(line: LineAddress, to: NodeID, keepShared: Bool)
        case sendPutAck(line: LineAddress, to: NodeID)
        /// Store data returned by an owner into home memory.
        case writeMemory(line: LineAddress, data: [UInt8])
        /// The home's CPUs may now access the line (`exclusive`: for writing too).
        case localGrant(line: LineAddress, exclusive: Bool)
        /// The home's CPUs lose write (`keepRead`) or all access to the line: drop
        /// fast-path mappings over its page before anything else touches it.
        case revokeLocal(line: LineAddress, keepRead: Bool)
    }

    private struct Entry: Sendable {
        var state: State = .uncached
        var queue: [Event] = []
        var isBusy: Bool {
            if case .busy = state { return true }
            return false
        }
    }

    private var lines: [LineAddress: Entry] = [:]
    /// How many of each 4 KiB page's lines are in `lines` (not Uncached, or with events
    /// queued): a page without any is wholly the home CPUs', which `pageRights` answers
    /// with one lookup instead of one per line (a hart's TLB refill asks it).
    private var trackedPerPage: [UInt64: Int] = [:]

    /// FLASH-style miss counters: per 4 KiB page, per requesting node, the number of
    /// requests the home served (the home's own CPUs included when they had to wait).
    public private(set) var missCounts: [UInt64: [NodeID: UInt64]] = [:]
    /// The part of `missCounts` that asked to write (getModified, upgrade): the page
    /// policy must not replicate a page that is written.
    public private(set) var writeMissCounts: [UInt64: [NodeID: UInt64]] = [:]

    /// Requests the home served since it started, by what serving them took: how many
    /// messages lie on the requester's path (never reset; the node's counters).
    public struct Served: Sendable, Equatable {
        /// A remote request answered at once: request and reply, two messages.
        public var remoteDirect: UInt64 = 0
        /// A remote request that first invalidated other sharers: four messages
        /// (request, invalidations, acknowledgements, reply).
        public var remoteAfterInvalidations: UInt64 = 0
        /// A remote request for a line another node held written: four messages
        /// (request, recall, recall reply, data), the one a three-hop protocol would
        /// shorten by one (the owner answering the requester itself).
        public var remoteAfterRecall: UInt64 = 0
        /// A request of the home's own CPUs that had to take the line back from other
        /// nodes (invalidations or a recall): two messages.
        public var localAfterRemote: UInt64 = 0
    }
    public private(set) var served = Served()

    public init(home: NodeID, geometry: LineGeometry = LineGeometry()) {
        self.home = home
        self.geometry = geometry
    }

    // MARK: - Queries

    public func state(of line: LineAddress) -> State { lines[line]?.state ?? .uncached }

    /// Number of events waiting behind a busy line.
    public func queuedCount(of line: LineAddress) -> Int { lines[line]?.queue.count ?? 0 }

    /// Lines that are not Uncached (for statistics and tests).
    public var trackedLines: [LineAddress] { Array(lines.keys) }

    /// The tracked lines of [base, base + bytes) in address order (`base` page-aligned):
    /// pages without any cost one lookup each, so a page move does not scan every line
    /// the home tracks.
    public func trackedLines(in base: UInt64, _ bytes: UInt64) -> [LineAddress] {
        guard !lines.isEmpty else { return [] }
        if bytes / 4096 > UInt64(lines.count) {
            return lines.keys.filter { $0 >= base && $0 - base < bytes }.sorted()
        }
        var out: [LineAddress] = []
        var page = base
        while page < base + bytes {
            if trackedPerPage[page] != nil {
                var line = page
                while line < page + 4096 {
                    if lines[line] != nil { out.append(line) }
                    line += UInt64(geometry.lineSize)
                }
            }
            page += 4096
        }
        return out
    }

    /// What the home's own CPUs may do with `line` right now without asking.
    public func localRights(_ line: LineAddress) -> (read: Bool, write: Bool) {
        switch state(of: line) {
        case .uncached: return (true, true)
        case .shared: return (true, false)
        case .exclusive: return (false, false)
        case .busy(let t):
            // While sharers are being invalidated the memory copy is still current and
            // nobody can write it, so reads are safe; everything else waits.
            return (t.awaitingRecallFrom == nil, false)
        }
    }

    /// What the home's own CPUs may do with every line of the 4 KiB page at `page`
    /// (page-aligned): the weakest of the lines' `localRights`. One lookup when no line
    /// of the page is tracked (the common case), otherwise one per tracked line's page.
    public func pageRights(_ page: UInt64) -> (read: Bool, write: Bool) {
        guard trackedPerPage[page] != nil else { return (true, true) }
        var read = true, write = true
        var line = page
        while line < page + 4096 {
            let r = localRights(line)
            read = read && r.read
            write = write && r.write
            if !read { break }
            line += UInt64(geometry.lineSize)
        }
        return (read, write)
    }

    /// Clears the miss counters (the policy reads them once per interval).
    public mutating func resetMissCounts() {
        missCounts.removeAll(keepingCapacity: true)
        writeMissCounts.removeAll(keepingCapacity: true)
    }

    /// Forgets the counters of one page (it moved away: its next misses are another's).
    public mutating func forgetCounts(page: UInt64) {
        missCounts[page] = nil
        writeMissCounts[page] = nil
    }

    // MARK: - Events

    public mutating func handle(_ event: Event) -> [Directive] {
        var out: [Directive] = []
        handle(event, into: &out)
        return out
    }

    public mutating func handle(_ event: Event, into out: inout [Directive]) {
        let line = event.line
        precondition(line == geometry.line(of: line), "unaligned line address")
        var entry = lines[line] ?? Entry()
        if case .busy = entry.state {
            switch event {
            case .invalidateAck(_, let from):
                guard case .busy(var t) = entry.state, t.awaitingAcks.contains(from) else { break }
                t.awaitingAcks.remove(from)
                entry.state = .busy(t)
                if t.awaitingAcks.isEmpty && t.awaitingRecallFrom == nil { complete(line, &entry, &out) }
            case .recallReply(_, let from, let data):
                guard case .busy(var t) = entry.state, t.awaitingRecallFrom == from else { break }
                out.append(.writeMemory(line: line, data: data))
                t.awaitingRecallFrom = nil
                entry.state = .busy(t)
                if t.awaitingAcks.isEmpty { complete(line, &entry, &out) }
            default:
                entry.queue.append(event)
            }
        } else {
            start(event, line, &entry, &out)
        }
        // Settled: serve the queue until a request makes the line busy again.
        while !entry.queue.isEmpty, !entry.isBusy {
            let next = entry.queue.removeFirst()
            start(next, line, &entry, &out)
        }
        let wasTracked = lines[line] != nil
        if case .uncached = entry.state, entry.queue.isEmpty {
            lines[line] = nil
            if wasTracked {
                let page = line & ~4095
                let n = trackedPerPage[page, default: 1] - 1
                trackedPerPage[page] = n > 0 ? n : nil
            }
        } else {
            lines[line] = entry
            if !wasTracked { trackedPerPage[line & ~4095, default: 0] += 1 }
        }
    }

    // MARK: - Transitions

    /// Handles an event on a line that is not busy.
    private mutating func start(_ event: Event, _ line: LineAddress, _ entry: inout Entry, _ out: inout [Directive]) {
        switch event {
        case .request(let kind, _, let from) where from == home:
            startLocal(kind, line, &entry, &out)
        case .request(let kind, _, let from):
            countMiss(line, from, write: kind != .getShared)
            startRemote(kind, line, from, &entry, &out)
        case .putShared(_, let from):
            if case .shared(var sharers) = entry.state {
                sharers.remove(from)
                entry.state = sharers.isEmpty ? .uncached : .shared(sharers)
            }
            out.append(.sendPutAck(line: line, to: from))
        case .putModified(_, let from, let data):
            switch entry.state {
            case .exclusive(let owner) where owner == from:
                out.append(.writeMemory(line: line, data: data))
                entry.state = .uncached
            case .shared(var sharers):
                // A stale write-back: the owner was recalled to Shared while its
                // eviction was in flight and its recall reply already gave us the data.
                sharers.remove(from)
                entry.state = sharers.isEmpty ? .uncached : .shared(sharers)
            default:
                break  // stale: the data reached us through a recall reply
            }
            out.append(.sendPutAck(line: line, to: from))
        case .invalidateAck, .recallReply:
            break  // stale answers are impossible with in-order channels; ignore defensively
        }
    }

    private mutating func startRemote(_ kind: CoherenceRequest, _ line: LineAddress, _ from: NodeID,
                                      _ entry: inout Entry, _ out: inout [Directive]) {
        switch entry.state {
        case .shared(let sharers) where kind != .getShared && sharers.bits & ~(1 << UInt64(from)) != 0:
            served.remoteAfterInvalidations &+= 1
        case .exclusive(let owner) where owner != from:
            served.remoteAfterRecall &+= 1
        default:
            served.remoteDirect &+= 1
        }
        switch (entry.state, kind) {
        case (.uncached, .getShared):
            out.append(.revokeLocal(line: line, keepRead: true))
            entry.state = .shared(NodeSet([from]))
            out.append(.sendData(line: line, to: from, exclusive: false))
        case (.uncached, _):
            out.append(.revokeLocal(line: line, keepRead: false))
            entry.state = .exclusive(from)
            out.append(.sendData(line: line, to: from, exclusive: true))
        case (.shared(var sharers), .getShared):
            sharers.insert(from)
            entry.state = .shared(sharers)
            out.append(.sendData(line: line, to: from, exclusive: false))
        case (.shared(let sharers), _):
            let hadCopy = kind == .upgrade && sharers.contains(from)
            var others = sharers
            others.remove(from)
            out.append(.revokeLocal(line: line, keepRead: false))
            if others.isEmpty {
                entry.state = .exclusive(from)
                out.append(hadCopy ? .sendGrant(line: line, to: from) : .sendData(line: line, to: from, exclusive: true))
            } else {
                entry.state = .busy(Transaction(requester: from, request: kind, awaitingAcks: others,
                                                awaitingRecallFrom: nil, sharersAfter: NodeSet(),
                                                requesterHadCopy: hadCopy))
                for node in others { out.append(.sendInvalidate(line: line, to: node)) }
            }
        case (.exclusive(let owner), _) where owner == from:
            // Cannot happen with in-order channels (the owner's write-back would come
            // first); answer with the home's data rather than wedge.
            out.append(.sendData(line: line, to: from, exclusive: true))
        case (.exclusive(let owner), .getShared):
            entry.state = .busy(Transaction(requester: from, request: .getShared, awaitingAcks: NodeSet(),
                                            awaitingRecallFrom: owner, sharersAfter: NodeSet([owner]),
                                            requesterHadCopy: false))
            out.append(.sendRecall(line: line, to: owner, keepShared: true))
        case (.exclusive(let owner), _):
            entry.state = .busy(Transaction(requester: from, request: kind, awaitingAcks: NodeSet(),
                                            awaitingRecallFrom: owner, sharersAfter: NodeSet(),
                                            requesterHadCopy: false))
            out.append(.sendRecall(line: line, to: owner, keepShared: false))
        case (.busy, _):
            preconditionFailure("start() on a busy line")
        }
    }

    private mutating func startLocal(_ kind: CoherenceRequest, _ line: LineAddress,
                                     _ entry: inout Entry, _ out: inout [Directive]) {
        let write = kind != .getShared
        switch entry.state {
        case .uncached:
            out.append(.localGrant(line: line, exclusive: true))
        case .shared(let sharers):
            if !write {
                out.append(.localGrant(line: line, exclusive: false))
                return
            }
            countMiss(line, home, write: true)
            served.localAfterRemote &+= 1
            entry.state = .busy(Transaction(requester: home, request: kind, awaitingAcks: sharers,
                                            awaitingRecallFrom: nil, sharersAfter: NodeSet(),
                                            requesterHadCopy: false))
            for node in sharers { out.append(.sendInvalidate(line: line, to: node)) }
        case .exclusive(let owner):
            countMiss(line, home, write: write)
            served.localAfterRemote &+= 1
            entry.state = .busy(Transaction(requester: home, request: kind, awaitingAcks: NodeSet(),
                                            awaitingRecallFrom: owner,
                                            sharersAfter: write ? NodeSet() : NodeSet([owner]),
                                            requesterHadCopy: false))
            out.append(.sendRecall(line: line, to: owner, keepShared: !write))
        case .busy:
            preconditionFailure("start() on a busy line")
        }
    }

    /// All acknowledgements and the recall reply are in: hand the line to the requester.
    private func complete(_ line: LineAddress, _ entry: inout Entry, _ out: inout [Directive]) {
        guard case .busy(let t) = entry.state else { return }
        let exclusive = t.request != .getShared
        if t.requester == home {
            entry.state = exclusive ? .uncached : .shared(t.sharersAfter)
            out.append(.localGrant(line: line, exclusive: exclusive))
            return
        }
        if exclusive {
            entry.state = .exclusive(t.requester)
            out.append(t.requesterHadCopy ? .sendGrant(line: line, to: t.requester)
                                          : .sendData(line: line, to: t.requester, exclusive: true))
        } else {
            var sharers = t.sharersAfter
            sharers.insert(t.requester)
            entry.state = .shared(sharers)
            out.append(.sendData(line: line, to: t.requester, exclusive: false))
        }
    }

    private mutating func countMiss(_ line: LineAddress, _ node: NodeID, write: Bool) {
        let page = LineGeometry.page(of: line)
        missCounts[page, default: [:]][node, default: 0] += 1
        if write { writeMissCounts[page, default: [:]][node, default: 0] += 1 }
    }
}


extension DirectoryStateMachine.Event {
    /// The line the event is about.
    public var line: LineAddress {
        switch self {
        case .request(_, let line, _), .invalidateAck(let line, _), .recallReply(let line, _, _),
             .putShared(let line, _), .putModified(let line, _, _):
            return line
        }
    }
}
