import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Hosts made of network namespaces on this machine: `count` namespaces, each with one
/// interface `eth0` holding 10.213.1.(10+i)/24, joined by a bridge that lives in a further
/// namespace of its own (nothing is added to the test's own network namespace). Names
/// carry a random tag, so runs side by side do not meet. `remove()` (also on deinit)
/// deletes every namespace, and with them their interfaces.
final class NamespaceHosts {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static let ip = "/usr/sbin/ip"

    /// Why these tests cannot run here (nil: they can): they need root and iproute2.
    static let unavailable: String? = {
        guard getuid() == 0 else { return "needs root to create network namespaces (CI runs the tests as root)" }
        guard FileManager.default.isExecutableFile(atPath: ip) else { return "needs iproute2's ip at \(ip)" }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return "needs util-linux's setpriv" }
        let probe = "disco-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard spawnAndWait([ip, "netns", "add", probe], timeout: 10).status == 0 else {
            return "ip netns add does not work here (no CAP_SYS_ADMIN?)"
        }
        _ = spawnAndWait([ip, "netns", "del", probe], timeout: 10)
        return nil
    }()

    let tag: String
    let namespaces: [String]
    private let bridgeNamespace: String
    private var made: [String] = []

    init(count: Int) throws {
        let tag = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        self.tag = tag
        bridgeNamespace = "disco-\(tag)-switch"
        namespaces = (0..<count).map { "disco-\(tag)-h\($0)" }
        do {
            try ip(["netns", "add", bridgeNamespace])
            made.append(bridgeNamespace)
            try ip(["-n", bridgeNamespace, "link", "add", "br0", "type", "bridge"])
            try ip(["-n", bridgeNamespace, "link", "set", "br0", "up"])
            for (i, ns) in namespaces.enumerated() {
                try ip(["netns", "add", ns])
                made.append(ns)
                try ip(["-n", bridgeNamespace, "link", "add", "port\(i)", "type", "veth", "peer", "name", "eth0", "netns", ns])
                try ip(["-n", bridgeNamespace, "link", "set", "port\(i)", "master", "br0"])
                try ip(["-n", bridgeNamespace, "link", "set", "port\(i)", "up"])
                try ip(["-n", ns, "addr", "add", "\(address(i))/24", "dev", "eth0"])
                try ip(["-n", ns, "link", "set", "lo", "up"])
                try ip(["-n", ns, "link", "set", "eth0", "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Host `i`'s address.
    func address(_ i: Int) -> String { "10.213.1.\(10 + i)" }

    /// A command line that runs `command` inside host `i`. It gets SIGTERM when the test
    /// process dies (setpriv --pdeathsig), so a test runner killed mid-test leaves nothing.
    func exec(_ i: Int, _ command: [String]) -> [String] { [Self.ip, "netns", "exec", namespaces[i]] + Self.dieWithTest(command) }

    /// `command` made to get SIGTERM when the test process dies.
    static func dieWithTest(_ command: [String]) -> [String] { ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--"] + command }

    /// Host `i`'s link down (the host is cut off) or up again.
    func setLink(_ i: Int, up: Bool) throws { try ip(["-n", namespaces[i], "link", "set", "eth0", up ? "up" : "down"]) }

    private func ip(_ arguments: [String]) throws {
        let r = spawnAndWait([Self.ip] + arguments, timeout: 20)
        guard r.status == 0 else { throw Failure(description: "ip \(arguments.joined(separator: " ")): \(r.output)") }
    }

    func remove() {
        for ns in made.reversed() { _ = spawnAndWait([Self.ip, "netns", "del", ns], timeout: 20) }
        made.removeAll()
    }

    deinit { remove() }
}
