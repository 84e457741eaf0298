import Platform

/// The identical-page scanner's state: where it is, pages seen once by content, and
/// what it cost.
struct ContentScan {
    var vmCursor: UInt32 = 0
    var pageCursor = 0
    /// Content hash → a page that had it when scanned (checked again before merging).
    var candidates: [UInt64: (vm: UInt32, gpa: UInt64)] = [:]
    var scanned: UInt64 = 0
    var merged: UInt64 = 0
    var nanoseconds: UInt64 = 0
    /// Every 10 ms: pages hashed at most, and pages looked at (most unused or merged).
    static let pagesPerTurn = 512
    static let visitsPerTurn = 4096
    static let intervalNanos: UInt64 = 10_000_000
    var next: UInt64 = 0
    static let maxCandidates = 1 << 16
}

/// Beyond Disco: content-based sharing (docs/memory.md, "Identical pages"). Every 10 ms
/// the node hashes up to 512 pages of its VMs that may share (the buffer cache's VMs: all on
/// this node) and merges pages of equal contents into one frame of the buffer cache,
/// mapped read-only into every one of them; a write copies, as for a disk page. Bytes
/// are compared before every merge, so a hash collision merges nothing.
extension NodeRuntime {
    func scanForIdenticalPages() {
        guard let cache = bufferCache, let agent else { return }
        let now = clock.localNanoseconds()
        guard now >= contentScan.next else { return }
        contentScan.next = now + ContentScan.intervalNanos
        let ids = vms.keys.filter { vms[$0]!.sharesBlocks }.sorted()
        guard !ids.isEmpty else { return }
        let start = clock.localNanoseconds()
        defer { contentScan.nanoseconds &+= clock.localNanoseconds() &- start }
        var hashed = 0
        for _ in 0..<ContentScan.visitsPerTurn where hashed < ContentScan.pagesPerTurn {
            // The next page: the cursor's VM (or the next one), page by page.
            if !ids.contains(contentScan.vmCursor) { contentScan.vmCursor = ids.first { $0 > contentScan.vmCursor } ?? ids[0]; contentScan.pageCursor = 0 }
            let vm = vms[contentScan.vmCursor]!
            let page = contentScan.pageCursor
            contentScan.pageCursor += 1
            if contentScan.pageCursor >= vm.pageCount {
                contentScan.vmCursor = ids.first { $0 > vm.vm } ?? ids[0]
                contentScan.pageCursor = 0
            }
            guard let (gpa, frame) = vm.pageForContentScan(page), let bytes = agent.readPage(frame) else { continue }
            contentScan.scanned &+= 1
            hashed += 1
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            bytes.withUnsafeBytes { raw in
                for word in raw.bindMemory(to: UInt64.self) { hash = (hash ^ word) &* 0x100_0000_01b3 }
            }
            let key = SharedBlock(device: .max, inode: hash, offset: 0)
            let me = BufferCacheIndex.Sharer(vm: vm.vm, guestPage: gpa)
            if let entry = cache.index.entries[key] {
                guard entry.filled, agent.readPage(entry.frame) == bytes,
                      case .hit(let f) = cache.index.share(key, with: me) else { continue }
                vm.mapShared(gpa, frame: f)
                contentScan.merged &+= 1
            } else if let c = contentScan.candidates[hash], c.vm != vm.vm || c.gpa != gpa, let other = vms[c.vm],
                      let (og, oframe) = other.pageForContentScan(Int((c.gpa - VirtBoard.ramBase) >> 12)), og == c.gpa,
                      agent.readPage(oframe) == bytes {
                guard case .fill(let f) = cache.index.share(key, with: .init(vm: other.vm, guestPage: og)) else { return }  // full
                guard bytes.withUnsafeBytes({ agent.initialize($0, at: f) }) else { cache.index.abandon(key); return }
                cache.index.filled(key)
                other.mapShared(og, frame: f)
                _ = cache.index.share(key, with: me)
                vm.mapShared(gpa, frame: f)
                contentScan.candidates[hash] = nil
                contentScan.merged &+= 2
            } else {
                if contentScan.candidates.count >= ContentScan.maxCandidates { contentScan.candidates.removeAll() }
                contentScan.candidates[hash] = (vm.vm, gpa)
            }
        }
    }
}
