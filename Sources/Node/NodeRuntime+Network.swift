import Cluster
import Foundation
import Platform
import Protocol

/// The node's side of the virtual Ethernet (docs/monitor.md, "Virtual Ethernet"): it
/// takes the frames its VMs' NICs sent and the frames peers sent, asks `NodeSwitch`
/// where each goes, and delivers: into a local NIC's receive queue (a copy from one
/// VM's memory to the other's, never through a socket, or for whole pages a remapping)
/// or to a peer node as an `ethernetFrame` message.
extension NodeRuntime {
    /// Frames waiting for a peer's connection to come up, at most, per peer.
    static let framesHeldPerPeer = 256
    /// How often learned addresses are aged.
    static let switchAgingPeriodNanos: UInt64 = 10_000_000_000

    /// The coordinator says which nodes have NICs on `subnet`: remember them, connect.
    func subnetMembers(_ subnet: String, _ nodes: [NodeAddress]) {
        guard let me = state.nodeID else { return }
        network.setMembers(subnet, nodes.map { Int($0.nodeID) }, me: me)
        apply(state.handle(.meet(nodes.filter { Int($0.nodeID) != me }), now: clock.localNanoseconds()))
    }

    /// Every local NIC on `subnet` (of VMs whose devices live here).
    private func localPorts(_ subnet: String) -> [NodeSwitch.Port] {
        var ports: [NodeSwitch.Port] = []
        for (id, vm) in vms.sorted(by: { $0.key < $1.key }) where vm.isDeviceNode {
            for i in vm.config.nics.indices where vm.subnet(ofNIC: i) == subnet { ports.append(.nic(vm: id, index: i)) }
        }
        return ports
    }

    /// Moves every frame sent since the last turn to where the switch says.
    func switchFrames() {
        let now = clock.localNanoseconds()
        if now >= nextSwitchAging {
            network.expire(now: now)
            nextSwitchAging = now + Self.switchAgingPeriodNanos
        }
        var moved = false
        for (id, vm) in vms.sorted(by: { $0.key < $1.key }) where vm.isDeviceNode {
            for (nic, frame) in vm.takeFrames() {
                guard let subnet = vm.subnet(ofNIC: nic) else { continue }
                let (deliveries, dropped) = network.fromNIC(vm: id, index: nic, subnet: subnet, frame: frame.bytes,
                                                            locals: localPorts(subnet), now: now)
                if let dropped { logger.warning("\(dropped)") }
                deliver(deliveries, frame)
                moved = true
            }
        }
        // Loans that no receiver took end: their pages are their VMs' alone again.
        pageLoans.settle()
        if !framesFromNodes.isEmpty {
            let frames = framesFromNodes
            framesFromNodes.removeAll(keepingCapacity: true)
            for (n, subnet, frame) in frames {
                let (deliveries, dropped) = network.fromNode(n, subnet: subnet, frame: frame, locals: localPorts(subnet), now: now)
                if let dropped { logger.warning("\(dropped)") }
                deliver(deliveries, NetFrame(frame))
                moved = true
            }
        }
        if moved { flush() }
    }

    /// Carries out the switch's `deliveries` of `frame`: a local NIC takes it as it is
    /// (mapping its lent pages where its buffer allows), a peer node gets its bytes.
    private func deliver(_ deliveries: [NodeSwitch.Delivery], _ frame: NetFrame) {
        var bytes: [UInt8]? = frame.lent.isEmpty ? frame.bytes : nil
        for d in deliveries {
            switch d {
            case .nic(let vm, let index, _):
                guard let v = vms[vm], index < v.nics.count else { continue }
                v.nics[index].receive(frame)
            case .node(let n, let subnet, _):
                if bytes == nil { bytes = frame.materialized { [agent] in agent?.readPage($0) } }
                guard let bytes else {
                    framesUnsent &+= 1
                    continue
                }
                if let c = state.connection(toNode: n) {
                    _ = transport.send(.ethernetFrame(subnet: subnet, frame: bytes), on: c)
                } else if state.isReachable(n), state.heldCount(forNode: n) < Self.framesHeldPerPeer {
                    state.hold(.ethernetFrame(subnet: subnet, frame: bytes), forNode: n)
                } else {
                    framesUnsent &+= 1
                }
            }
        }
    }

    /// A VM left this node: the switch forgets its NICs.
    func forgetNICs(of vm: UInt32) {
        guard let v = vms[vm] else { return }
        for i in v.config.nics.indices { network.remove(.nic(vm: vm, index: i)) }
    }

    /// The switch's and the NICs' counters, for `disco stats` and the metrics endpoint.
    var networkCounters: [Counter] {
        let c = network.counters
        var out = [
            Counter(name: "net_frames_from_nics", value: Int64(truncatingIfNeeded: c.fromNICs)),
            Counter(name: "net_frames_from_nodes", value: Int64(truncatingIfNeeded: c.fromNodes)),
            Counter(name: "net_frames_to_nics", value: Int64(truncatingIfNeeded: c.toNICs)),
            Counter(name: "net_frames_to_nodes", value: Int64(truncatingIfNeeded: c.toNodes)),
            Counter(name: "net_frames_malformed", value: Int64(truncatingIfNeeded: c.malformed)),
            Counter(name: "net_frames_no_port", value: Int64(truncatingIfNeeded: c.noPort)),
            Counter(name: "net_frames_unsent", value: Int64(truncatingIfNeeded: framesUnsent)),
        ]
        var dropped: UInt64 = 0
        for vm in vms.values where vm.isDeviceNode { for nic in vm.nics { dropped &+= nic.counters.receiveDropped } }
        out += [Counter(name: "net_receive_dropped", value: Int64(truncatingIfNeeded: dropped)),
                Counter(name: "net_pages_lent", value: Int64(truncatingIfNeeded: pageLoans.pagesLent)),
                Counter(name: "net_pages_remapped", value: Int64(truncatingIfNeeded: pageLoans.pagesRemapped)),
                Counter(name: "net_pages_on_loan", value: Int64(pageLoans.index.mappings)),
                Counter(name: "net_pages_copied_on_write", value: Int64(truncatingIfNeeded: pageLoans.copiesOnWrite))]
        return out
    }
}
