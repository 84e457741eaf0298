import Coordinator
import Protocol

/// The coordinator's figures: its members, every VM it knows (state, VCPUs, memory,
/// page moves), and the latest counters report of each node not dead, relayed under
/// the node's own series (NodeFigures), so one scrape of the coordinator sees the cluster.
enum CoordinatorFigures {
    static func state(_ machine: CoordinatorStateMachine, reports: [Int32: StatsReport], into m: SeriesMirror) {
        let members = machine.membership.members
        var byStatus: [String: Int] = ["alive": 0, "suspect": 0, "dead": 0]
        for (id, member) in members {
            let status = "\(member.status)"
            byStatus[status, default: 0] += 1
            let node = ("node", String(id))
            m.gauge("disco_node_up", [node, ("name", member.name)], member.status == .dead ? 0 : 1)
            guard member.status != .dead else { continue }
            m.gauge("disco_node_cpus", [node], Double(member.resources.cpus))
            m.gauge("disco_node_memory_bytes", [node], Double(member.resources.memoryBytes))
            m.gauge("disco_node_memory_free_bytes", [node], Double(machine.freeBytes(of: id)))
            if let report = reports[Int32(id)] { NodeFigures.state(report, into: m) }
        }
        for (status, count) in byStatus { m.gauge("disco_nodes", [("status", status)], Double(count)) }

        var byState: [VMState: Int] = [:]
        for (id, r) in machine.vms {
            byState[r.state, default: 0] += 1
            let vm = ("vm", String(id))
            for s in VMState.allCases {
                m.gauge("disco_vm_state", [vm, ("name", r.name), ("state", "\(s)")], s == r.state ? 1 : 0)
            }
            m.gauge("disco_vm_vcpus", [vm], Double(r.placement.vcpuNodes.count))
            m.gauge("disco_vm_memory_bytes", [vm], Double(r.memoryBytes))
            for (n, bytes) in r.memoryOnNodes { m.gauge("disco_vm_memory_homed_bytes", [vm, ("node", String(n))], Double(bytes)) }
            m.counter("disco_vm_migrations_total", [vm], total: Int64(r.migrations))
            m.counter("disco_vm_replications_total", [vm], total: Int64(r.replications))
            m.counter("disco_vm_collapses_total", [vm], total: Int64(r.collapses))
            m.gauge("disco_vm_replicas", [vm], Double(r.replicas.values.reduce(0) { $0 + $1.count }))
            m.counter("disco_vm_first_touch_pages_total", [vm, ("placed", "local")], total: Int64(r.touchedLocal))
            m.counter("disco_vm_first_touch_pages_total", [vm, ("placed", "elsewhere")], total: Int64(r.touchedElsewhere))
            m.counter("disco_vm_first_touch_pages_total", [vm, ("placed", "ahead")], total: Int64(r.placedAhead))
            // The latest moves' times (command to done), as `disco stats` shows them.
            for (kind, list) in [("migrate", r.moveNanos), ("replicate", r.replicateNanos)] where !list.isEmpty {
                let sorted = list.sorted()
                for q in [0.5, 0.99] {
                    let nanos = sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
                    m.gauge("disco_vm_page_move_seconds", [vm, ("kind", kind), ("quantile", String(q))], Double(nanos) / 1e9)
                }
            }
        }
        for s in VMState.allCases { m.gauge("disco_vms", [("state", "\(s)")], Double(byState[s] ?? 0)) }
    }
}
