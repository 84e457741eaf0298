import Foundation
import TestSupport
import Testing
import Yams

/// deploy/k8s: the manifests validate against the Kubernetes OpenAPI schemas offline
/// (PyPI's kubernetes-validate, which scripts/setup.sh installs), have the shape the
/// design asks for, and their containers' command lines start a coordinator and a node
/// that joins, here on loopback. (No Kubernetes cluster runs here: scheduling, DNS, the
/// Secret mount, probes and the image itself are not tested; docs/operations.md.)
@Suite(.serialized) struct KubernetesManifestTests {
    static let manifests = ["coordinator.yaml", "nodes.yaml", "secret.example.yaml"]

    func documents(_ file: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: Paths.deploy + "/k8s/" + file, encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    func object(kind: String, in file: String) throws -> [String: Any] {
        try #require(try documents(file).first { $0["kind"] as? String == kind }, "no \(kind) in \(file)")
    }

    @Test(arguments: ["1.30", "1.37"])
    func manifestsValidateAgainstTheSchemas(kubernetes: String) throws {
        let validator = try #require(Paths.tool("kubernetes-validate"),
                                     "kubernetes-validate is missing: scripts/setup.sh installs it from PyPI")
        let r = try run(validator, ["--strict", "--kubernetes-version", kubernetes] + Self.manifests.map { Paths.deploy + "/k8s/" + $0 })
        #expect(r.status == 0, "\(r.output)")
        // One line per resource, each a pass: 2 + 2 + 1.
        #expect(r.output.components(separatedBy: " passed for resource ").count - 1 == 5, "\(r.output)")
        #expect(!r.output.contains("ERROR"), "\(r.output)")
    }

    @Test func theValidatorRejectsWhatIsWrong() throws {
        let validator = try #require(Paths.tool("kubernetes-validate"))
        let dir = try scratch("k8s-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try String(contentsOfFile: Paths.deploy + "/k8s/nodes.yaml", encoding: .utf8)
        try text.replacingOccurrences(of: "replicas: 2", with: "replicas: two").write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let r = try run(validator, ["--strict", dir + "/bad.yaml"])
        #expect(r.status != 0 && r.output.contains("spec.replicas"), "\(r.output)")
    }

    func container(_ workload: [String: Any]) throws -> [String: Any] {
        let spec = try #require((workload["spec"] as? [String: Any])?["template"] as? [String: Any])
        let pod = try #require(spec["spec"] as? [String: Any])
        return try #require((pod["containers"] as? [[String: Any]])?.first)
    }

    func podSpec(_ workload: [String: Any]) throws -> [String: Any] {
        try #require(((workload["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
    }

    @Test func theShapeIsTheDesigns() throws {
        let deployment = try object(kind: "Deployment", in: "coordinator.yaml")
        let spec = try #require(deployment["spec"] as? [String: Any])
        #expect(spec["replicas"] as? Int == 1, "one coordinator")
        #expect((spec["strategy"] as? [String: Any])?["type"] as? String == "Recreate", "never two at once")
        let coordinatorService = try object(kind: "Service", in: "coordinator.yaml")
        #expect(((coordinatorService["metadata"] as? [String: Any])?["name"] as? String) == "disco-coordinator")

        let headless = try object(kind: "Service", in: "nodes.yaml")
        let headlessSpec = try #require(headless["spec"] as? [String: Any])
        #expect(headlessSpec["clusterIP"] as? String == "None")
        #expect(headlessSpec["publishNotReadyAddresses"] as? Bool == true)
        let statefulSet = try object(kind: "StatefulSet", in: "nodes.yaml")
        let setSpec = try #require(statefulSet["spec"] as? [String: Any])
        #expect(setSpec["serviceName"] as? String == (headless["metadata"] as? [String: Any])?["name"] as? String)

        let secret = try object(kind: "Secret", in: "secret.example.yaml")
        let secretName = try #require((secret["metadata"] as? [String: Any])?["name"] as? String)
        for workload in [deployment, statefulSet] {
            let c = try container(workload)
            let resources = try #require(c["resources"] as? [String: Any])
            let requests = try #require(resources["requests"] as? [String: Any])
            #expect(requests["cpu"] != nil && requests["memory"] != nil, "resource requests: \(resources)")
            // The secret comes from the Secret, mounted, and --secret-file names the file in it.
            let volumes = try #require(try podSpec(workload)["volumes"] as? [[String: Any]])
            let secretVolume = try #require(volumes.first { ($0["secret"] as? [String: Any])?["secretName"] as? String == secretName })
            let mounts = try #require(c["volumeMounts"] as? [[String: Any]])
            let mount = try #require(mounts.first { $0["name"] as? String == secretVolume["name"] as? String })
            let args = try #require(c["args"] as? [String])
            let file = try #require(args.firstIndex(of: "--secret-file").map { args[$0 + 1] })
            #expect(file.hasPrefix((mount["mountPath"] as? String ?? "?") + "/"), "\(file) is not in the mounted Secret")
            #expect(args.contains("--metrics"))
            #expect((c["env"] as? [[String: Any]])?.contains { $0["name"] as? String == "DISCO_SECRET" } != true, "the secret is no env var")
        }
    }

    /// A container's args with what Kubernetes would put in: `$(VAR)` from its env, the
    /// coordinator Service's name and the mounted secret mapped onto this machine.
    func commandLine(_ workload: [String: Any], env: [String: String], replacing: [String: String]) throws -> [String] {
        var args = try #require(try container(workload)["args"] as? [String])
        args = args.map { a in
            var a = a
            for (k, v) in env { a = a.replacingOccurrences(of: "$(\(k))", with: v) }
            for (k, v) in replacing { a = a.replacingOccurrences(of: k, with: v) }
            return a
        }
        return [Paths.disco] + args
    }

    @Test func theContainersCommandLinesStartACoordinatorAndANodeThatJoins() throws {
        let dir = try scratch("k8s-run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "k8s-test-secret".write(toFile: dir + "/secret", atomically: true, encoding: .utf8)
        let cluster = try freeLoopbackPort(), metrics = try freeLoopbackPort()
        // The pod network on loopback: every pod is 127.0.0.1, the Service resolves to it.
        let replacing = ["/etc/disco/secret/secret": dir + "/secret", "tcp:0.0.0.0:7070": "tcp:127.0.0.1:\(cluster)",
                         "tcp:disco-coordinator:7070": "tcp:127.0.0.1:\(cluster)", "0.0.0.0:9470": "127.0.0.1:\(metrics)"]
        let c = try commandLine(try object(kind: "Deployment", in: "coordinator.yaml"), env: [:], replacing: replacing)
        let env = ["PATH": "/usr/bin:/bin"]
        let coordinator = try Background(command: c, environment: env, log: dir + "/coordinator.log")
        defer { coordinator.stop() }
        try #require(coordinator.wait(for: "serving metrics on", timeout: 20), "\(coordinator.output)")
        var nodeReplacing = replacing
        nodeReplacing["0.0.0.0:9470"] = "127.0.0.1:0"
        nodeReplacing[":7071"] = ":0"
        let n = try commandLine(try object(kind: "StatefulSet", in: "nodes.yaml"),
                                env: ["POD_IP": "127.0.0.1", "POD_NAME": "disco-node-0"], replacing: nodeReplacing)
        let node = try Background(command: n, environment: env, log: dir + "/node.log")
        defer { node.stop() }
        #expect(node.wait(for: "joined as node 0", timeout: 30), "\(node.output)")
        var listed = false
        let deadline = Date().addingTimeInterval(20)
        while !listed && Date() < deadline {
            listed = metricValue(httpGet("http://127.0.0.1:\(metrics)/metrics"), #"disco_node_up{node="0",name="disco-node-0"}"#) == 1
            if !listed { usleep(200_000) }
        }
        #expect(listed, "coordinator: \(coordinator.output)")
    }
}
