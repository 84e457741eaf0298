import Cluster
import Coordinator
import Protocol
import Testing
import Transport
@testable import DiscoMetrics

/// The figures as Prometheus sees them: a node's report, and the coordinator's members,
/// VMs and relayed reports, through swift-metrics into the registry's text format.
@Suite struct ExporterTests {
    func report(node: Int32, uptime: UInt64 = 5_000_000_000, _ counters: [(String, Int64)]) -> StatsReport {
        StatsReport(nodeID: node, uptimeNanos: uptime, counters: counters.map { Counter(name: $0.0, value: $0.1) })
    }

    let full: [(String, Int64)] = [
        ("vms", 1), ("vcpus", 2), ("instructions", 900), ("instructions_total", 1000), ("heartbeat_rtt_ns", 250_000),
        ("vcpus_runnable", 1), ("vcpus_parked", 1), ("vcpus_waiting", 0), ("deferred_events", 0), ("send_queue_bytes", 4096),
        ("pages_migrated_in", 3), ("pages_migrated_out", 1), ("replicas_installed", 2), ("replicas_dropped", 1),
        ("vm.1.sampled_local_misses", 40), ("vm.1.sampled_remote_misses", 10), ("vm.1.sample_slices", 7),
        ("remote_misses", 77), ("prefetches", 31), ("lines_received", 80), ("lines_sent", 60), ("rejected_messages", 0),
        ("home_misses_served", 12), ("pages_with_remote_misses", 4), ("hottest_page", 0x1_0000_2000), ("hottest_page_misses", 9),
    ]

    @Test func everyCounterOfANodesReportBecomesASeriesOfTheRightType() {
        let metrics = NodeMetrics()
        #expect(Exposition(metrics.render()).series(of: "disco_instructions_total").isEmpty, "nothing before the first report")
        metrics.record(report(node: 3, full))
        let e = Exposition(metrics.render())
        #expect(e[#"disco_instructions_total{node="3"}"#] == 1000)
        #expect(e.types["disco_instructions_total"] == "counter")
        #expect(e[#"disco_remote_misses_total{node="3"}"#] == 77)
        #expect(e[#"disco_prefetched_lines_total{node="3"}"#] == 31)
        #expect(e[#"disco_send_queue_bytes{node="3"}"#] == 4096)
        #expect(e.types["disco_send_queue_bytes"] == "gauge")
        #expect(e[#"disco_lines_received_total{node="3"}"#] == 80)
        #expect(e[#"disco_lines_sent_total{node="3"}"#] == 60)
        #expect(e[#"disco_page_migrations_total{node="3",direction="in"}"#] == 3)
        #expect(e[#"disco_page_migrations_total{node="3",direction="out"}"#] == 1)
        #expect(e[#"disco_replicas_installed_total{node="3"}"#] == 2)
        #expect(e[#"disco_replicas_dropped_total{node="3"}"#] == 1)
        #expect(e[#"disco_sampled_misses_total{node="3",vm="1",locality="local"}"#] == 40)
        #expect(e[#"disco_sampled_misses_total{node="3",vm="1",locality="remote"}"#] == 10)
        #expect(e[#"disco_sample_slices_total{node="3",vm="1"}"#] == 7)
        #expect(e[#"disco_heartbeat_round_trip_seconds{node="3"}"#] == 0.00025)
        #expect(e.types["disco_heartbeat_round_trip_seconds"] == "gauge")
        #expect(e[#"disco_vcpus{node="3",state="runnable"}"#] == 1)
        #expect(e[#"disco_vcpus{node="3",state="parked"}"#] == 1)
        #expect(e[#"disco_vcpus{node="3",state="waiting"}"#] == 0)
        #expect(e[#"disco_node_vms{node="3"}"#] == 1)
        #expect(e[#"disco_home_misses_counted{node="3"}"#] == 12)
        #expect(e[#"disco_node_uptime_seconds{node="3"}"#] == 5)
        // The page address is no figure; the current VMs' instructions are the counter's part.
        #expect(e.series(of: "disco_node_hottest_page").isEmpty)
        #expect(e.series(of: "disco_node_instructions").isEmpty)
        // The process's own figures.
        #expect((e["process_cpu_seconds_total"] ?? 0) > 0)
        #expect((e["process_resident_memory_bytes"] ?? 0) > 1_000_000)
    }

    @Test func theBufferCacheFiguresHaveTheirMetrics() {
        let metrics = NodeMetrics()
        metrics.record(report(node: 1, [("guest_pages_mapped", 4688), ("machine_frames_used", 1209), ("buffer_cache_frames", 4096),
                                        ("buffer_cache_frames_used", 497), ("buffer_cache_mappings", 3976), ("buffer_cache_hits", 3479),
                                        ("buffer_cache_fills", 640), ("buffer_cache_full", 0), ("buffer_cache_copies_on_write", 128)]))
        let e = Exposition(metrics.render())
        #expect(e[#"disco_guest_pages_mapped{node="1"}"#] == 4688)
        #expect(e[#"disco_machine_frames_used{node="1"}"#] == 1209)
        #expect(e[#"disco_buffer_cache_frames_used{node="1"}"#] == 497)
        #expect(e[#"disco_buffer_cache_mappings{node="1"}"#] == 3976)
        #expect(e[#"disco_buffer_cache_hits_total{node="1"}"#] == 3479)
        #expect(e[#"disco_buffer_cache_copies_on_write_total{node="1"}"#] == 128)
        #expect(e.types["disco_buffer_cache_hits_total"] == "counter")
        #expect(e.types["disco_machine_frames_used"] == "gauge")
    }

    @Test func countersFollowTheTotalsAndStartOverWithTheirSourceAndEndedVMsLeave() {
        let metrics = NodeMetrics()
        metrics.record(report(node: 0, [("instructions_total", 1000), ("vm.4.sampled_local_misses", 5), ("mystery_figure", 3)]))
        _ = metrics.render()
        metrics.record(report(node: 0, [("instructions_total", 5000), ("vm.4.sampled_local_misses", 6), ("mystery_figure", 2)]))
        var e = Exposition(metrics.render())
        #expect(e[#"disco_instructions_total{node="0"}"#] == 5000)
        #expect(e[#"disco_sampled_misses_total{node="0",vm="4",locality="local"}"#] == 6)
        // A counter the mapping does not know yet still shows, as a gauge.
        #expect(e[#"disco_node_mystery_figure{node="0"}"#] == 2)
        // The node restarted: its counter starts over (Prometheus sees a reset); VM 4's
        // figures are no longer reported and leave the output.
        metrics.record(report(node: 0, [("instructions_total", 70)]))
        e = Exposition(metrics.render())
        #expect(e[#"disco_instructions_total{node="0"}"#] == 70)
        #expect(e.series(of: "disco_sampled_misses_total").isEmpty)
        #expect(e.series(of: "disco_node_mystery_figure").isEmpty)
    }

    // MARK: - Coordinator

    typealias SM = CoordinatorStateMachine
    let client = ConnectionID(rawValue: 100)
    func node(_ i: Int) -> ConnectionID { ConnectionID(rawValue: UInt64(i + 1)) }

    /// Two nodes joined, one 2-VCPU VM created on them and released (every node loaded).
    func runningCluster() -> SM {
        var sm = SM(configuration: .init(heartbeatMillis: 100, strategy: .roundRobin))
        for i in 0..<2 {
            _ = sm.handle(.connected(node(i), peer: Hello(role: .node, nodeID: -1, nonce: [], cpus: 2, memoryBytes: 256 << 20,
                                                          name: "n\(i)", listenAddress: "unix:/tmp/n\(i).sock")), now: 0)
        }
        _ = sm.handle(.connected(client, peer: Hello(role: .client, nodeID: -1, nonce: [], name: "cli")), now: 0)
        let spec = "name: demo\nvcpus: 2\nmemory: 16M\nbios: none\nkernel: /k.elf\nplacement: interleave\n"
        _ = sm.handle(.received(client, .vmRequest(id: 1, request: .create(spec: spec))), now: 0)
        for i in 0..<2 { _ = sm.handle(.received(node(i), .vmStatus(vm: 1, state: .starting, exit: nil, detail: "loaded")), now: 0) }
        return sm
    }

    @Test func theCoordinatorShowsMembersVMsAndEachLiveNodesRelayedCounters() throws {
        var sm = runningCluster()
        try #require(sm.vms[1]?.state == .running)
        let metrics = CoordinatorMetrics()
        let reports: [Int32: StatsReport] = [0: report(node: 0, full), 1: report(node: 1, [("instructions_total", 42)])]
        metrics.record(sm, reports)
        var e = Exposition(metrics.render())
        #expect(e[#"disco_nodes{status="alive"}"#] == 2)
        #expect(e[#"disco_node_up{node="1",name="n1"}"#] == 1)
        #expect(e[#"disco_node_cpus{node="0"}"#] == 2)
        #expect(e[#"disco_node_memory_bytes{node="0"}"#] == Double(256 << 20))
        #expect(e[#"disco_vm_state{vm="1",name="demo",state="running"}"#] == 1)
        #expect(e[#"disco_vm_state{vm="1",name="demo",state="starting"}"#] == 0)
        #expect(e[#"disco_vm_vcpus{vm="1"}"#] == 2)
        #expect(e[#"disco_vm_memory_bytes{vm="1"}"#] == Double(16 << 20))
        #expect(e[#"disco_vm_memory_homed_bytes{vm="1",node="0"}"#] == Double(8 << 20))
        #expect(e[#"disco_vm_migrations_total{vm="1"}"#] == 0)
        #expect(e.types["disco_vm_migrations_total"] == "counter")
        #expect(e[#"disco_vms{state="running"}"#] == 1)
        #expect(e[#"disco_instructions_total{node="0"}"#] == 1000)
        #expect(e[#"disco_instructions_total{node="1"}"#] == 42)
        #expect(e[#"disco_remote_misses_total{node="0"}"#] == 77)

        // Node 1's connection drops: it is dead, its VM failed, its counters leave.
        _ = sm.handle(.disconnected(node(1), reason: "gone"), now: 1_000_000)
        metrics.record(sm, reports)
        e = Exposition(metrics.render())
        #expect(e[#"disco_nodes{status="dead"}"#] == 1)
        #expect(e[#"disco_node_up{node="1",name="n1"}"#] == 0)
        #expect(e[#"disco_instructions_total{node="1"}"#] == nil)
        #expect(e[#"disco_instructions_total{node="0"}"#] == 1000)
        #expect(e[#"disco_vm_state{vm="1",name="demo",state="failed"}"#] == 1)
        #expect(e[#"disco_vm_state{vm="1",name="demo",state="running"}"#] == 0)
    }
}
