import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The process's own figures under the names Prometheus's client libraries give them:
/// CPU time (user + system), resident memory, start time.
struct ProcessFigures {
    /// When this process started (seconds since the epoch), from /proc.
    let startTime: Double? = ProcessFigures.readStartTime()

    func state(into m: SeriesMirror) {
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            let seconds = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
            m.counter("process_cpu_seconds_total", total: seconds)
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            m.gauge("process_resident_memory_bytes", [], pages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let startTime { m.gauge("process_start_time_seconds", [], startTime) }
    }

    /// /proc/self/stat's start time (clock ticks after boot) plus /proc/stat's boot time.
    private static func readStartTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"),
              let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let btime = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") })?
                  .split(separator: " ").last.flatMap({ Double($0) }) else { return nil }
        // Fields after the command name: state is field 3, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        return btime + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
