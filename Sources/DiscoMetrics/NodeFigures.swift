import Protocol

/// A node's counters report (`StatsReport`, what `disco stats` shows) as series labelled
/// with the node's id. The same series come from the node's own endpoint and, relayed,
/// from the coordinator's (docs/operations.md lists them).
enum NodeFigures {
    /// Report counters that are totals since the node started: counter name → metric.
    static let counters: [String: String] = [
        "instructions_total": "disco_instructions_total",
        "remote_misses": "disco_remote_misses_total",
        "prefetches": "disco_prefetched_lines_total",
        "lines_received": "disco_lines_received_total",
        "lines_sent": "disco_lines_sent_total",
        "rejected_messages": "disco_rejected_messages_total",
        "replicas_installed": "disco_replicas_installed_total",
        "replicas_dropped": "disco_replicas_dropped_total",
        "vcpu_spin_parks": "disco_vcpu_spin_parks_total",
        "parked_performed_dropped": "disco_parked_performed_dropped_total",
        "performed_unused_loads": "disco_performed_unused_loads_total",
        "performed_unused_writes": "disco_performed_unused_writes_total",
        "parks": "disco_vcpu_parks_total",
        "park_ms_total": "disco_vcpu_park_milliseconds_total",
        "home_cpu_waits_for_remote": "disco_home_cpu_waits_for_remote_total",
        "buffer_cache_hits": "disco_buffer_cache_hits_total",
        "buffer_cache_fills": "disco_buffer_cache_fills_total",
        "buffer_cache_full": "disco_buffer_cache_full_total",
        "buffer_cache_copies_on_write": "disco_buffer_cache_copies_on_write_total",
        "identical_pages_scanned": "disco_identical_pages_scanned_total",
        "identical_pages_merged": "disco_identical_pages_merged_total",
    ]

    /// Report counters that are current values.
    static let gauges: [String: String] = [
        "vms": "disco_node_vms",
        "park_us_p50": "disco_vcpu_park_microseconds_p50",
        "park_us_p99": "disco_vcpu_park_microseconds_p99",
        "vcpus": "disco_node_vcpus",
        "deferred_events": "disco_deferred_events",
        "send_queue_bytes": "disco_send_queue_bytes",
        "pages_with_remote_misses": "disco_pages_with_remote_misses",
        "home_misses_served": "disco_home_misses_counted",
        "hottest_page_misses": "disco_hottest_page_misses",
        "guest_pages_mapped": "disco_guest_pages_mapped",
        "machine_frames_used": "disco_machine_frames_used",
        "buffer_cache_frames": "disco_buffer_cache_frames",
        "buffer_cache_frames_used": "disco_buffer_cache_frames_used",
        "buffer_cache_mappings": "disco_buffer_cache_mappings",
    ]

    /// Counters folded into a label of one metric.
    static let labelled: [String: (metric: String, label: String, value: String, counter: Bool)] = [
        "pages_migrated_in": ("disco_page_migrations_total", "direction", "in", true),
        "pages_migrated_out": ("disco_page_migrations_total", "direction", "out", true),
        "home_served_direct": ("disco_home_requests_served_total", "path", "direct", true),
        "home_served_after_invalidations": ("disco_home_requests_served_total", "path", "after_invalidations", true),
        "home_served_after_recall": ("disco_home_requests_served_total", "path", "after_recall", true),
        "vcpus_runnable": ("disco_vcpus", "state", "runnable", false),
        "vcpus_parked": ("disco_vcpus", "state", "parked", false),
        "vcpus_waiting": ("disco_vcpus", "state", "waiting", false),
        "vcpus_spinning": ("disco_vcpus", "state", "spinning", false),
        "vcpus_held": ("disco_vcpus", "state", "held", false),
    ]

    /// Shown in `disco stats` only: the current VMs' instructions (`instructions_total`
    /// is the counter), and the hottest page's address (a value, not a figure).
    static let skipped: Set<String> = ["instructions", "hottest_page"]

    static func state(_ report: StatsReport, into m: SeriesMirror) {
        let node = ("node", String(report.nodeID))
        m.gauge("disco_node_uptime_seconds", [node], Double(report.uptimeNanos) / 1e9)
        for c in report.counters {
            if let (vm, name) = vmCounter(c.name) {
                let labels = [node, ("vm", String(vm))]
                switch name {
                case "sampled_local_misses": m.counter("disco_sampled_misses_total", labels + [("locality", "local")], total: c.value)
                case "sampled_remote_misses": m.counter("disco_sampled_misses_total", labels + [("locality", "remote")], total: c.value)
                case "sample_slices": m.counter("disco_sample_slices_total", labels, total: c.value)
                // Per VCPU on this node (VCPUScheduler's accounts): `vcpu.<n>.run_ns|instructions`.
                case _ where name.hasPrefix("vcpu.") && name.split(separator: ".").count == 3:
                    let parts = name.split(separator: ".")
                    let vcpu = labels + [("vcpu", String(parts[1]))]
                    if parts[2] == "run_ns" { m.counter("disco_vcpu_run_nanoseconds_total", vcpu, total: c.value) }
                    else { m.counter("disco_vcpu_" + sanitized(String(parts[2])) + "_total", vcpu, total: c.value) }
                default: m.gauge("disco_node_vm_" + sanitized(name), labels, Double(c.value))
                }
            } else if let metric = counters[c.name] {
                m.counter(metric, [node], total: c.value)
            } else if let metric = gauges[c.name] {
                m.gauge(metric, [node], Double(c.value))
            } else if let l = labelled[c.name] {
                if l.counter { m.counter(l.metric, [node, (l.label, l.value)], total: c.value) }
                else { m.gauge(l.metric, [node, (l.label, l.value)], Double(c.value)) }
            } else if c.name == "heartbeat_rtt_ns" {
                // Only once a heartbeat was answered.
                if c.value > 0 { m.gauge("disco_heartbeat_round_trip_seconds", [node], Double(c.value) / 1e9) }
            } else if !skipped.contains(c.name) {
                // A counter added to the report later still shows, as a gauge of its name.
                m.gauge("disco_node_" + sanitized(c.name), [node], Double(c.value))
            }
        }
    }

    /// `vm.<id>.<name>`: the VM and the name (as the coordinator reads them).
    static func vmCounter(_ name: String) -> (vm: UInt32, name: String)? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "vm", let vm = UInt32(parts[1]) else { return nil }
        return (vm, String(parts[2]))
    }

    static func sanitized(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }
}
