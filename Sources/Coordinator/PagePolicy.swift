import Cluster

/// Disco's dynamic page placement policy, as a pure state machine: the nodes' per-page,
/// per-node miss counts come in (the directory's FLASH-style counters), decisions to
/// migrate or replicate a guest page go out. It follows the policy Disco took from
/// Verghese et al. (ASPLOS 1996): per page a miss counter per node, a write counter and
/// a migration counter, all reset every `resetInterval`, and four thresholds.
///
/// - A page is **hot** when one node's misses on it reach `trigger`. A page hot from one
///   node alone migrates once it stayed so for `settle` (the other nodes report later).
/// - It is **shared** when some other node's misses reach `sharing` or its home used
///   it itself this interval (`Report.homeUse`); otherwise the hot
///   node is its only real user and the page **migrates** there (unless it is already
///   homed there, or it moved `migrateLimit` times this interval: ping-pong).
/// - A shared page with fewer than `writeLimit` write misses is read-shared and is
///   **replicated** to every node whose misses reach `sharing` and that has no copy; a
///   page written more is write-shared and stays where it is.
///
/// - A page that keeps coming back is **frozen** (Verghese et al. freeze pages that
///   move too often): each collapse of its replicas, and each migration that follows
///   another within `strikeWindow`, is a strike; a page with `k` recent strikes gets no
///   decision for `resetInterval × 2^(k-1)` (at most `maxFreeze`). Strikes are
///   forgotten after `strikeWindow` without one. Without this, a page that is read by
///   every node and written now and then (a kernel's data) is replicated and collapsed
///   over and over, and a page two nodes take turns writing migrates back and forth,
///   each move costing more than the misses it saves.
///
/// A page with a decision outstanding gets no other until `moveDone` or `moveFailed`;
/// its counters restart after each decision, so the same misses never count twice.
/// The policy only decides: the coordinator sends the commands and the nodes carry
/// them out (recall, copy, switch the pmap, shoot down TLBs) and report back.
public struct PagePolicy: Sendable {
    /// A guest-physical page of one VM.
    public struct Page: Hashable, Sendable, CustomStringConvertible {
        public var vm: UInt32
        /// Guest-physical address of the page (4 KiB aligned).
        public var address: UInt64
        public init(vm: UInt32, address: UInt64) {
            self.vm = vm
            self.address = address & ~0xfff
        }
        public var description: String { "VM \(vm) page 0x\(String(address, radix: 16))" }
    }

    public struct Parameters: Sendable, Equatable {
        /// Misses from one node in an interval that make a page hot.
        public var trigger: UInt64
        /// Misses from a second node that make a hot page shared.
        public var sharing: UInt64
        /// A shared page with this many write misses or more is not replicated.
        public var writeLimit: UInt64
        /// Migrations of one page per interval; the next hot report is ignored.
        public var migrateLimit: UInt64
        /// How often every counter restarts.
        public var resetInterval: Duration
        /// How long a page must stay hot from one node alone before it migrates there:
        /// each node reports on its own schedule (every 20 ms), so the other nodes' and
        /// the home's use of the page may not be known at the first hot report. Longer
        /// than one report period; zero decides at once.
        public var settle: Duration
        /// Off: no decisions at all (`numaPolicy: off`).
        public var enabled: Bool
        /// How long a page's strikes (collapses, migrations in quick succession) are
        /// remembered; a second migration within it is a strike.
        public var strikeWindow: Duration
        /// The longest a page is frozen after strikes.
        public var maxFreeze: Duration

        public init(trigger: UInt64 = 128, sharing: UInt64 = 32, writeLimit: UInt64 = 1, migrateLimit: UInt64 = 1,
                    resetInterval: Duration = .milliseconds(100), settle: Duration = .milliseconds(30), enabled: Bool = true,
                    strikeWindow: Duration = .seconds(2), maxFreeze: Duration = .milliseconds(6400)) {
            self.trigger = trigger
            self.sharing = sharing
            self.writeLimit = writeLimit
            self.migrateLimit = migrateLimit
            self.resetInterval = resetInterval
            self.settle = settle
            self.enabled = enabled
            self.strikeWindow = strikeWindow
            self.maxFreeze = maxFreeze
        }
    }

    /// What the coordinator knows of a page's copies.
    public struct Placement: Sendable, Equatable {
        public var home: NodeID
        /// Nodes holding a read-only replica (not the home).
        public var replicas: Set<NodeID>
        public init(home: NodeID, replicas: Set<NodeID> = []) {
            self.home = home
            self.replicas = replicas
        }
    }

    /// How the page's home used it itself.
    public enum HomeUse: Sendable, Equatable {
        case read, write
    }

    /// Misses on a page since the last report, by requesting node.
    ///
    /// In this emulation a home's CPUs never miss on their own pages (they reach them
    /// through host pointers, uncounted), so the home reports instead whether it used
    /// the page since its last report (`homeUse`): a page its home reads is shared with
    /// it, one its home writes is write-shared.
    public struct Report: Sendable, Equatable {
        public var page: Page
        public var placement: Placement
        public var misses: [NodeID: UInt64]
        public var writeMisses: UInt64
        public var homeUse: HomeUse?
        public init(page: Page, placement: Placement, misses: [NodeID: UInt64], writeMisses: UInt64, homeUse: HomeUse? = nil) {
            self.page = page
            self.placement = placement
            self.misses = misses
            self.writeMisses = writeMisses
            self.homeUse = homeUse
        }
    }

    public enum Event: Sendable, Equatable {
        case misses([Report])
        /// The move or replication of `page` finished (`migrated`: it was a migration).
        case moveDone(Page, migrated: Bool)
        case moveFailed(Page)
        /// A write collapsed the page's replicas: it is write-shared for the rest of the
        /// interval.
        case collapsed(Page)
        /// Time passed: counters restart every reset interval.
        case tick
    }

    public enum Decision: Sendable, Equatable {
        case migrate(Page, from: NodeID, to: NodeID)
        case replicate(Page, to: [NodeID])
    }

    struct Counters: Sendable {
        var misses: [NodeID: UInt64] = [:]
        var writeMisses: UInt64 = 0
        var migrations: UInt64 = 0
        /// The home used the page itself this interval.
        var homeUsed = false
        /// When the page was first seen hot from one node alone (a migration waits `settle`).
        var hotSince: UInt64?
    }

    /// What a page's past moves say about its future (kept across counter resets).
    struct History: Sendable {
        var strikes = 0
        var lastStrike: UInt64 = 0
        var frozenUntil: UInt64 = 0
        var lastMigration: UInt64?
    }

    public var defaults: Parameters
    /// Per-VM overrides of `defaults`.
    public private(set) var perVM: [UInt32: Parameters] = [:]
    private var counters: [Page: Counters] = [:]
    private var history: [Page: History] = [:]
    /// Pages frozen by strikes so far (for statistics).
    public private(set) var freezes = 0
    /// Pages with a decision not yet carried out.
    public private(set) var outstanding: Set<Page> = []
    private var lastReset: [UInt32: UInt64] = [:]

    public init(defaults: Parameters = Parameters()) {
        self.defaults = defaults
    }

    public func parameters(for vm: UInt32) -> Parameters { perVM[vm] ?? defaults }

    public mutating func set(_ parameters: Parameters, for vm: UInt32) { perVM[vm] = parameters }

    /// Forgets a VM that ended.
    public mutating func remove(vm: UInt32) {
        perVM[vm] = nil
        lastReset[vm] = nil
        counters = counters.filter { $0.key.vm != vm }
        history = history.filter { $0.key.vm != vm }
        outstanding = outstanding.filter { $0.vm != vm }
    }

    /// Handles one event at `now` (nanoseconds); returns the decisions it makes, in
    /// page order.
    public mutating func handle(_ event: Event, now: UInt64) -> [Decision] {
        switch event {
        case .misses(let reports):
            var out: [Decision] = []
            for r in reports.sorted(by: { ($0.page.vm, $0.page.address) < ($1.page.vm, $1.page.address) }) {
                if let d = absorb(r, now: now) { out.append(d) }
            }
            return out
        case .moveDone(let page, let migrated):
            outstanding.remove(page)
            if migrated {
                counters[page, default: Counters()].migrations += 1
                let window = parameters(for: page.vm).strikeWindow.wholeNanoseconds
                if let last = history[page]?.lastMigration, now &- last < window { strike(page, now: now) }
                history[page, default: History()].lastMigration = now
            }
            return []
        case .moveFailed(let page):
            outstanding.remove(page)
            return []
        case .collapsed(let page):
            let limit = parameters(for: page.vm).writeLimit
            counters[page, default: Counters()].writeMisses = max(counters[page]?.writeMisses ?? 0, limit)
            strike(page, now: now)
            return []
        case .tick:
            let vms = Set(counters.keys.map(\.vm)).union(lastReset.keys)
            for vm in vms {
                let interval = parameters(for: vm).resetInterval.wholeNanoseconds
                let since = lastReset[vm] ?? 0
                guard now >= since &+ interval else { continue }
                lastReset[vm] = now
                counters = counters.filter { $0.key.vm != vm || outstanding.contains($0.key) }
            }
            return []
        }
    }

    private mutating func absorb(_ r: Report, now: UInt64) -> Decision? {
        let p = parameters(for: r.page.vm)
        if lastReset[r.page.vm] == nil { lastReset[r.page.vm] = now }
        guard p.enabled, !outstanding.contains(r.page), !isFrozen(r.page, now: now) else { return nil }
        var c = counters[r.page, default: Counters()]
        for (n, m) in r.misses where n != r.placement.home { c.misses[n, default: 0] += m }
        c.writeMisses += r.writeMisses
        if let use = r.homeUse {
            c.homeUsed = true
            if use == .write { c.writeMisses = max(c.writeMisses, p.writeLimit) }
        }
        defer { counters[r.page] = c }
        // The node with the most misses (the lowest id on a tie) decides whether it is hot.
        guard let (hot, hotMisses) = c.misses.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }),
              hotMisses >= p.trigger else { return nil }
        let sharers = c.misses.filter { $0.key != hot && $0.value >= p.sharing }.map(\.key)
        if sharers.isEmpty && !c.homeUsed {
            // One real user. At its home already, or moved too often: leave it.
            guard hot != r.placement.home, c.migrations < p.migrateLimit else { return nil }
            if c.hotSince == nil { c.hotSince = now }
            guard now &- c.hotSince! >= p.settle.wholeNanoseconds else { return nil }
            restart(&c)
            outstanding.insert(r.page)
            return .migrate(r.page, from: r.placement.home, to: hot)
        }
        // Shared: replicate when read-shared, leave write-shared pages alone.
        guard c.writeMisses < p.writeLimit else { return nil }
        let readers = ([hot] + sharers).filter { $0 != r.placement.home && !r.placement.replicas.contains($0) }.sorted()
        guard !readers.isEmpty else { return nil }
        restart(&c)
        outstanding.insert(r.page)
        return .replicate(r.page, to: readers)
    }

    /// The page came back once more: it is frozen for twice as long as the last time
    /// (once `strikeWindow` passed without a strike, it starts again from one interval).
    private mutating func strike(_ page: Page, now: UInt64) {
        let p = parameters(for: page.vm)
        var h = history[page, default: History()]
        if h.strikes > 0, now &- h.lastStrike >= p.strikeWindow.wholeNanoseconds { h.strikes = 0 }
        h.strikes = min(h.strikes + 1, 20)
        h.lastStrike = now
        let freeze = min(p.resetInterval.wholeNanoseconds << UInt64(h.strikes - 1), p.maxFreeze.wholeNanoseconds)
        h.frozenUntil = now &+ freeze
        history[page] = h
        freezes += 1
    }

    /// Whether the page gets no decision now (frozen by strikes).
    public func isFrozen(_ page: Page, now: UInt64) -> Bool { (history[page]?.frozenUntil ?? 0) > now }

    /// A decision was made on the page: its misses start counting again.
    private func restart(_ c: inout Counters) {
        c.misses.removeAll()
        c.writeMisses = 0
        c.homeUsed = false
        c.hotSince = nil
    }
}
