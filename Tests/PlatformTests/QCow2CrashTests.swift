import Foundation
import Testing
@testable import Platform

/// Crash consistency: a scenario of writes and flushes is cut short after every
/// possible number of file writes (the last one torn at a random 512-byte boundary,
/// as a killed process or a power cut can leave it). Each time, a fresh open of the
/// image must find no errors (leaks are allowed), `qemu-img check` must agree, every
/// write completed before the last completed flush must read back, every other
/// sector must hold a version the guest wrote (or what was there), and the image
/// must take further writes.
@Suite struct QCow2CrashTests {
    enum Step { case write(UInt64, [UInt8]), flush }

    /// Runs `steps` until the file refuses a write; returns how many flushes completed.
    @discardableResult
    func run(_ steps: [Step], on image: QCow2Image) -> Int {
        var flushes = 0
        for step in steps {
            do {
                switch step {
                case .write(let at, let bytes): try image.write(at: at, bytes)
                case .flush: try image.flush(); flushes += 1
                }
            } catch {
                break
            }
        }
        return flushes
    }

    /// The versions each 512-byte sector may hold after a crash that followed `flushes`
    /// completed flushes: the content at the last completed flush, plus every version
    /// written after it.
    func acceptable(_ steps: [Step], initial: [UInt8], flushes: Int) -> [[[UInt8]]] {
        var durable = initial
        var seen = 0
        var index = 0
        while index < steps.count && seen < flushes {
            switch steps[index] {
            case .write(let at, let bytes): durable.replaceSubrange(Int(at)..<(Int(at) + bytes.count), with: bytes)
            case .flush: seen += 1
            }
            index += 1
        }
        let sectors = initial.count / 512
        var versions = (0..<sectors).map { [Array(durable[($0 * 512)..<($0 * 512 + 512)])] }
        var current = durable
        for step in steps[index...] {
            guard case .write(let at, let bytes) = step else { continue }
            current.replaceSubrange(Int(at)..<(Int(at) + bytes.count), with: bytes)
            for s in (Int(at) / 512)...((Int(at) + bytes.count - 1) / 512) {
                versions[s].append(Array(current[(s * 512)..<(s * 512 + 512)]))
            }
        }
        return versions
    }

    /// Crashes `steps` at every write count on copies of `pristine`; returns the runs made.
    func crashEverywhere(pristine: String, dir: ScratchDirectory, steps: [Step], initial: [UInt8],
                         sample: (Int) -> Bool = { _ in true }) throws -> Int {
        // How many writes the whole scenario makes.
        let full = dir.path("full.qcow2")
        try? FileManager.default.removeItem(atPath: full)
        try FileManager.default.copyItem(atPath: pristine, toPath: full)
        let totalWrites: Int
        do {
            let image = try QCow2Image(path: full, readOnly: false)
            run(steps, on: image)
            totalWrites = image.file.writes
            image.close()
        }
        var rng = SplitMix(state: 77)
        var runs = 0
        for budget in 1...totalWrites where sample(budget) {
            let path = dir.path("crash.qcow2")
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.copyItem(atPath: pristine, toPath: path)
            var flushes = 0
            do {
                let image = try QCow2Image(path: path, readOnly: false)
                image.file.writeBudget = budget
                image.file.tornPrefix = 512 * Int.random(in: 0...8, using: &rng)
                flushes = run(steps, on: image)
                image.close()  // its write-back fails too: the process is gone
            }
            runs += 1
            let after = try QCow2Image(path: path, readOnly: false)
            let report = try after.report(refcounts: true)
            #expect(report.errors == [], "crash after \(budget) writes: \(report.errors)")
            let versions = acceptable(steps, initial: initial, flushes: flushes)
            let content = try after.read(at: 0, count: initial.count)
            for (s, allowed) in versions.enumerated() where !allowed.contains(Array(content[(s * 512)..<(s * 512 + 512)])) {
                Issue.record("crash after \(budget) writes (\(flushes) flushes done): sector \(s) holds data nobody wrote")
                break
            }
            if qemuImgInstalled {
                after.close()
                let (status, output) = try qemuImgCheck(path)
                #expect(status == 0 || status == 3, "crash after \(budget) writes: qemu-img check says\n\(output)")
            }
            // The image goes on working: more writes, a flush, still no errors.
            let again = try QCow2Image(path: path, readOnly: false)
            try again.write(at: 1000, [UInt8](repeating: 0x5a, count: 3000))
            try again.flush()
            #expect(try firstDifference(again.read(at: 1000, count: 3000), [UInt8](repeating: 0x5a, count: 3000)) == nil)
            #expect(try again.report(refcounts: true).errors == [], "after a crash at \(budget) and more writes")
            again.close()
        }
        return runs
    }

    func randomSteps(count: Int, span: UInt64, maxLength: Int, flushEvery: Int, seed: UInt64) -> [Step] {
        var rng = SplitMix(state: seed)
        var steps: [Step] = []
        for i in 0..<count {
            let length = Int.random(in: 1...maxLength, using: &rng)
            let at = UInt64.random(in: 0...(span - UInt64(length)), using: &rng)
            steps.append(.write(at, pattern(length, at: at, tag: UInt8(truncatingIfNeeded: i + 1))))
            if i % flushEvery == flushEvery - 1 { steps.append(.flush) }
        }
        return steps
    }

    /// An overlay with 512-byte clusters and 64-bit refcounts (64 clusters per refcount
    /// block): new L2 tables, new refcount blocks and copy-on-write from the backing
    /// file all happen within a few dozen writes.
    @Test func aCrashAtAnyWriteLeavesAConsistentOverlay() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let base = pattern(192 << 10, at: 0, tag: 200)
        try writeFile(dir.path("base.raw"), base)
        let pristine = dir.path("pristine.qcow2")
        try QCow2Image.create(path: pristine, options: .init(size: 256 << 10, backing: "base.raw", clusterBits: 9, refcountOrder: 6))
        let steps = randomSteps(count: 60, span: 256 << 10, maxLength: 1500, flushEvery: 20, seed: 3)
        let initial = base + [UInt8](repeating: 0, count: 64 << 10)
        let runs = try crashEverywhere(pristine: pristine, dir: dir, steps: steps, initial: initial)
        #expect(runs > 100)
    }

    /// An image whose refcount table is nearly full: the crash points include every
    /// step of moving the table (new table and blocks, header switch, freeing the old).
    @Test func aCrashWhileTheRefcountTableMovesLeavesAConsistentImage() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let pristine = dir.path("pristine.qcow2")
        // 512-byte clusters, 64-bit refcounts: the one-cluster table covers 64 × 64 clusters (2 MiB).
        try QCow2Image.create(path: pristine, options: .init(size: 4 << 20, clusterBits: 9, refcountOrder: 6))
        var initial = [UInt8](repeating: 0, count: 4 << 20)
        do {
            let image = try QCow2Image(path: pristine, readOnly: false)
            var at = 0
            while image.file.length < (4096 - 70) * 512 {  // 70 clusters short of the table's reach
                let bytes = pattern(8192, at: UInt64(at), tag: 1)
                try image.write(at: UInt64(at), bytes)
                initial.replaceSubrange(at..<(at + bytes.count), with: bytes)
                at += bytes.count
                try image.flush()
            }
            #expect(image.refcountTableMove == nil && image.header.refcountTableClusters == 1)
            image.close()
        }
        var steps: [Step] = []
        for i in 0..<40 {
            let at = UInt64(3_000_000 + i * 1024)
            steps.append(.write(at, pattern(1024, at: at, tag: 2)))
        }
        steps.append(.flush)
        steps.append(.write(100, pattern(700, at: 100, tag: 3)))
        steps.append(.flush)
        // The table moves during this scenario.
        let check = dir.path("check.qcow2")
        try FileManager.default.copyItem(atPath: pristine, toPath: check)
        do {
            let image = try QCow2Image(path: check, readOnly: false)
            run(steps, on: image)
            #expect(image.header.refcountTableClusters > 1)
            image.close()
        }
        let runs = try crashEverywhere(pristine: pristine, dir: dir, steps: steps, initial: initial)
        #expect(runs > 40)
    }
}
