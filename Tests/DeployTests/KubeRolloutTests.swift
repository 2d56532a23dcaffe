import Foundation
import Testing
@testable import Spec
import Deploy

/// Rollout evaluation on canned Deployment/Pod JSON, shaped like what kube-apiserver returns.
@Suite struct KubeRolloutTests {
    static func deployment(generation: Int = 3, observed: Int = 3, replicas: Int = 2, current: Int = 2, updated: Int = 2,
                           ready: Int = 2, available: Int = 2, revision: String = "2",
                           progressing: (String, String, String)? = ("True", "NewReplicaSetAvailable", "ReplicaSet \"demo-5d4\" has successfully progressed."),
                           paused: Bool = false) -> JSONValue {
        var conditions = """
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}
        """
        if let p = progressing {
            let (s, r, raw) = p
            let m = raw.replacingOccurrences(of: "\"", with: "\\\"")
            conditions += #", {"type": "Progressing", "status": "\#(s)", "reason": "\#(r)", "message": "\#(m)"}"#
        }
        let text = """
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "demo", "namespace": "ns", "generation": \(generation), "uid": "u1",
                      "annotations": {"deployment.kubernetes.io/revision": "\(revision)"}},
         "spec": {"replicas": \(replicas), "paused": \(paused), "progressDeadlineSeconds": 15,
                  "template": {"spec": {"containers": [{"name": "autoglm", "image": "registry.invalid/autoglm:v1"}]}}},
         "status": {"observedGeneration": \(observed), "replicas": \(current), "updatedReplicas": \(updated),
                    "readyReplicas": \(ready), "availableReplicas": \(available), "conditions": [\(conditions)]}}
        """
        guard let v = JSONValue.parse(text) else { fatalError("bad canned JSON") }
        return v
    }

    @Test func completeRollout() {
        let s = RolloutSnapshot.evaluate(Self.deployment())
        #expect(s.state == .complete)
        #expect(s.revision == 2)
        #expect(s.counts == RolloutCounts(desired: 2, current: 2, updated: 2, ready: 2, available: 2, unavailable: 0))
        #expect(s.images == ["registry.invalid/autoglm:v1"])
        #expect(s.line.contains("rolled out"))
        #expect(s.summary.contains("Progressing=True (NewReplicaSetAvailable)"))
    }

    @Test func generationNotObservedYet() {
        // Even with all counts good and an old ProgressDeadlineExceeded, an unobserved spec means "wait".
        let s = RolloutSnapshot.evaluate(Self.deployment(generation: 4, observed: 3,
                                                         progressing: ("False", "ProgressDeadlineExceeded", "old")))
        guard case .waiting(let why) = s.state else { Issue.record("\(s.state)"); return }
        #expect(why.contains("generation 4"))
    }

    @Test func progressDeadlineExceededFails() {
        let msg = "ReplicaSet \"demo-7f9\" has timed out progressing."
        let s = RolloutSnapshot.evaluate(Self.deployment(current: 3, updated: 1, ready: 2, available: 2,
                                                         progressing: ("False", "ProgressDeadlineExceeded", msg)))
        #expect(s.state == .failed(reason: "ProgressDeadlineExceeded", message: msg))
        #expect(s.line.contains("failed (ProgressDeadlineExceeded)"))
        #expect(s.summary.contains("FAILED ProgressDeadlineExceeded"))
    }

    @Test func waitingStages() {
        func why(_ d: JSONValue) -> String {
            if case .waiting(let w) = RolloutSnapshot.evaluate(d).state { return w }
            return "not waiting"
        }
        #expect(why(Self.deployment(current: 3, updated: 1, ready: 2, available: 2,
                                    progressing: ("True", "ReplicaSetUpdated", "progressing"))) == "1 of 2 replicas updated")
        #expect(why(Self.deployment(current: 3, updated: 2, ready: 3, available: 3)) == "1 old replica(s) pending termination")
        #expect(why(Self.deployment(current: 2, updated: 2, ready: 1, available: 1)) == "1 of 2 updated replicas available")
        #expect(why(Self.deployment(paused: true)).contains("paused"))
    }

    @Test func freshDeploymentWithoutStatus() {
        let d = JSONValue.parse(#"{"metadata": {"name": "x", "generation": 1}, "spec": {"replicas": 3}}"#) ?? .null
        let s = RolloutSnapshot.evaluate(d)
        #expect(s.revision == nil)
        guard case .waiting = s.state else { Issue.record("\(s.state)"); return }
    }

    @Test func podDiagnosis() throws {
        let pod = try #require(JSONValue.parse("""
        {"metadata": {"name": "demo-7f9-abcde"},
         "spec": {"containers": [{"name": "autoglm", "image": "registry.invalid/autoglm:bad-v2"}]},
         "status": {"phase": "Running",
           "conditions": [{"type": "Initialized", "status": "True"},
                          {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "readiness probe failed"},
                          {"type": "ContainersReady", "status": "False"},
                          {"type": "PodScheduled", "status": "True"}],
           "containerStatuses": [{"name": "autoglm", "ready": false, "restartCount": 2,
                                  "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}}]}}
        """))
        let p = PodProblem.diagnose(pod)
        #expect(p.pod == "demo-7f9-abcde")
        #expect(!p.ready)
        #expect(p.reasons.contains("Ready=False (ContainersNotReady): readiness probe failed"))
        #expect(p.reasons.contains("container autoglm waiting (CrashLoopBackOff: back-off 10s)"))
        #expect(p.reasons.contains("container autoglm restarted 2×"))
        let f = RolloutFailure(deployment: "demo", revision: 2, reason: "ProgressDeadlineExceeded", message: "timed out", pods: [p])
        #expect(f.description.contains("demo-7f9-abcde"))
        #expect(f.description.contains("bad-v2"))
        #expect(f.description.contains("ProgressDeadlineExceeded"))

        let pending = PodProblem.diagnose(try #require(JSONValue.parse(#"{"metadata": {"name": "p"}, "status": {"phase": "Pending"}}"#)))
        #expect(pending.reasons == ["not scheduled yet"])
    }

    @Test func proxyPaths() {
        #expect(KubeClient.proxyPath(.service("demo", port: "8080"), namespace: "llm", path: "/v1/models")
                == "/api/v1/namespaces/llm/services/demo:8080/proxy/v1/models")
        #expect(KubeClient.proxyPath(.service("demo", port: "http"), namespace: "llm", path: "metrics")
                == "/api/v1/namespaces/llm/services/demo:http/proxy/metrics")
        #expect(KubeClient.proxyPath(.pod("demo-7f9-abcde", port: 8080), namespace: "llm", path: "/metrics?x=1")
                == "/api/v1/namespaces/llm/pods/demo-7f9-abcde:8080/proxy/metrics?x=1")
        #expect(KubeProxyTarget.pod("p", port: 80).description == "pod/p:80")
        #expect(KubeProxyTarget.service("s", port: "http").description == "service/s:http")
    }

    @Test func jsonRoundTripOfRenderedObjects() throws {
        let spec = try SpecLoader.load(yaml: """
        apiVersion: autoglm/v1
        name: demo
        model: {ref: gemma3-270m}
        replicas: 2
        """, file: "t.yaml", environment: nil, variables: [:]).spec
        let objects = KubeRenderer.render(spec, options: RenderOptions(kubeVersion: KubeVersion(major: 1, minor: 20))).objects
        let dep = try #require(objects.first { $0.kind == "Deployment" })
        let json = JSONValue(dep.value)
        #expect(json.at("spec", "replicas") == .int(2))
        #expect(json.at("metadata", "name") == .string("demo"))
        #expect(JSONValue.parse(json.bytes) == json)
        #expect(objects.first { $0.kind == "PodDisruptionBudget" }?.apiVersion == "policy/v1beta1")
    }
}

/// HTTP status and transport failures become messages that say what to do.
@Suite struct KubeErrorMappingTests {
    let config = KubeConnectionConfig(server: "https://10.1.2.3:6443", auth: .bearerToken("t"), userName: "alice")

    @Test func unauthorizedTellsToCheckCredentials() {
        let body = Array(#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#.utf8)
        let e = KubeClient.httpError(status: 401, body: body, method: "GET", path: "/version", config: config)
        #expect(e == .unauthorized(server: "https://10.1.2.3:6443", user: "alice", detail: ""))
        #expect(e.description.contains("401"))
        #expect(e.description.contains("check the token or client certificate"))
        #expect(e.description.contains("https://10.1.2.3:6443"))
    }

    @Test func forbiddenAndInvalid() {
        let forbidden = Array(#"{"kind":"Status","message":"deployments.apps \"x\" is forbidden: User \"alice\" cannot patch resource","reason":"Forbidden","code":403}"#.utf8)
        let f = KubeClient.httpError(status: 403, body: forbidden, method: "PATCH", path: "/apis/apps/v1/namespaces/n/deployments/x", config: config)
        #expect(f.description.contains("cannot patch") && f.description.contains("RoleBinding"))
        let invalid = Array(#"{"kind":"Status","message":"Deployment.apps \"x\" is invalid","reason":"Invalid","details":{"causes":[{"field":"spec.replicas","message":"must be >= 0"}]},"code":422}"#.utf8)
        let i = KubeClient.httpError(status: 422, body: invalid, method: "PATCH", path: "/p?x=1", config: config, what: "deployment/x")
        #expect(i == .invalidObject(what: "deployment/x", detail: "spec.replicas: must be >= 0"))
        let other = KubeClient.httpError(status: 500, body: Array("boom".utf8), method: "GET", path: "/p?q=1", config: config)
        #expect(other == .apiError(status: 500, method: "GET", path: "/p", detail: "boom"))
    }

    @Test func connectionRefusedNamesTheServer() async throws {
        let port = try TestSockets.closedPort()
        let server = "https://127.0.0.1:\(port)"
        let client = try KubeClient(config: KubeConnectionConfig(server: server, auth: .bearerToken("t")), requestTimeoutSeconds: 60)
        do throws(KubeError) {
            _ = try await client.serverVersion()
            Issue.record("expected a connection error")
        } catch {
            guard case .cannotConnect(let s, let reason) = error else { Issue.record("got \(error)"); await client.shutdown(); return }
            #expect(s == server)
            #expect(reason.contains("refused"))
            #expect(error.description.contains(server))
        }
        await client.shutdown()
    }

    @Test(arguments: ["http", "https"])
    func silentServerTimesOut(scheme: String) async throws {
        let listener = try TestSockets.silentListener()
        defer { close(listener.fd) }
        let server = "\(scheme)://127.0.0.1:\(listener.port)"
        let client = try KubeClient(config: KubeConnectionConfig(server: server), requestTimeoutSeconds: 1)
        do throws(KubeError) {
            _ = try await client.get("/version")
            Issue.record("expected a timeout")
        } catch {
            guard case .timeout(let s, let seconds, _) = error else { Issue.record("got \(error)"); await client.shutdown(); return }
            #expect(s == server && seconds == 1)
            #expect(error.description.contains("no answer within 1 s"))
        }
        await client.shutdown()
    }

    @Test func badCertificateAuthority() {
        #expect(throws: KubeError.self) {
            _ = try KubeClient(config: KubeConnectionConfig(server: "https://h:1", caPEM: Array("not a pem".utf8)))
        }
    }
}

/// Raw sockets for the transport tests (loopback only).
enum TestSockets {
    struct Listener { var fd: Int32; var port: Int }

    /// A TCP socket that listens but never accepts or answers: connects succeed, nothing comes back.
    static func silentListener() throws -> Listener {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Listener(fd: fd, port: Int(UInt16(bigEndian: bound.sin_port)))
    }

    /// A loopback port nothing listens on.
    static func closedPort() throws -> Int {
        let l = try silentListener()
        close(l.fd)
        return l.port
    }
}
