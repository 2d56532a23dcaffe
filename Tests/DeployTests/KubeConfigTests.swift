import Foundation
import Testing
import Deploy

/// A self-signed P-256 certificate and its key (test material only; no secret anywhere).
let testCertPEM = """
-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUAiE1phnkqSWYSC5CrFQ+FLhtjfwwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMYXV0b2dsbS10ZXN0MCAXDTI2MTIwMTE5MjQzMVoYDzIxMjYx
MTA3MTkyNDMxWjAXMRUwEwYDVQQDDAxhdXRvZ2xtLXRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAT798BnLEF25TRw5TTb3NBCapD9LG7IZhNQKdbNeZV9dDO/
truN+vkeRdD25DgE05uHqDz929M6BPrAXNgeeqv4o1MwUTAdBgNVHQ4EFgQUa+rm
FFpWJjMPATnpvGXj3zWE+WYwHwYDVR0jBBgwFoAUa+rmFFpWJjMPATnpvGXj3zWE
+WYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAzl7xsVa2Eo7V
wiTW/dvTIT9sm5aIw1J7Ojg94b4L5L8CIQCMG0M01beJ2DKxD28AXkUBg1w9sMkB
HoTQmitr60cqHw==
-----END CERTIFICATE-----
"""

let testKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdNEycCcKHdDzxhUq
9IeOsJLMFPkAkkhxz+b+epX/uyuhRANCAAT798BnLEF25TRw5TTb3NBCapD9LG7I
ZhNQKdbNeZV9dDO/truN+vkeRdD25DgE05uHqDz929M6BPrAXNgeeqv4
-----END PRIVATE KEY-----
"""

/// A temporary directory with the given files (name → contents), removed by the caller.
func kubeTempDir(_ files: [String: String]) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-kube-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, text) in files {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    return dir
}

func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

@Suite struct KubeConfigTests {
    let twoContexts = """
    apiVersion: v1
    kind: Config
    clusters:
    - name: prod
      cluster:
        server: https://10.0.0.1:6443/
        certificate-authority-data: \(b64(testCertPEM))
    - name: dev
      cluster:
        server: http://127.0.0.1:8080
        insecure-skip-tls-verify: true
        tls-server-name: kubernetes.default
    users:
    - name: alice
      user:
        token: abc.def
    - name: bob
      user:
        client-certificate-data: \(b64(testCertPEM))
        client-key-data: \(b64(testKeyPEM))
    contexts:
    - name: prod-alice
      context: {cluster: prod, user: alice, namespace: serving}
    - name: dev-bob
      context: {cluster: dev, user: bob}
    current-context: prod-alice
    """

    @Test func tokenAndCADataFromCurrentContext() throws {
        let cfg = try KubeConfigFile.parse(yaml: twoContexts, path: "/k/config").resolve()
        #expect(cfg.server == "https://10.0.0.1:6443")
        #expect(cfg.auth == .bearerToken("abc.def"))
        #expect(cfg.caPEM == Array(testCertPEM.utf8))
        #expect(cfg.namespace == "serving")
        #expect(cfg.contextName == "prod-alice")
        #expect(cfg.userName == "alice")
        #expect(!cfg.insecureSkipTLSVerify)
    }

    @Test func clientCertificateDataAndOtherContext() throws {
        let cfg = try KubeConfigFile.parse(yaml: twoContexts, path: "/k/config").resolve(context: "dev-bob", namespace: "x")
        #expect(cfg.server == "http://127.0.0.1:8080")
        #expect(cfg.auth == .clientCertificate(certPEM: Array(testCertPEM.utf8), keyPEM: Array(testKeyPEM.utf8)))
        #expect(cfg.namespace == "x")
        #expect(cfg.insecureSkipTLSVerify)
        #expect(cfg.tlsServerName == "kubernetes.default")
        #expect(cfg.caPEM == nil)
        // The client accepts the PEMs (parses certificate and key).
        let client = try KubeClient(config: KubeConnectionConfig(server: "https://127.0.0.1:1", auth: cfg.auth, caPEM: Array(testCertPEM.utf8)))
        Task { await client.shutdown() }
    }

    @Test func unknownContextListsTheAvailableOnes() throws {
        let file = try KubeConfigFile.parse(yaml: twoContexts, path: "/k/config")
        #expect(throws: KubeError.contextNotFound("nope", available: ["prod-alice", "dev-bob"], path: "/k/config")) {
            try file.resolve(context: "nope")
        }
        let e = KubeError.contextNotFound("nope", available: ["prod-alice", "dev-bob"], path: "/k/config")
        #expect(e.description.contains("prod-alice, dev-bob") && e.description.contains("--context"))
    }

    @Test func filesRelativeToTheKubeconfig() throws {
        let dir = try kubeTempDir([
            "ca.crt": testCertPEM, "certs/client.crt": testCertPEM, "certs/client.key": testKeyPEM, "token": "  tok-from-file\n",
            "config": """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {server: "https://127.0.0.1:16443", certificate-authority: ca.crt}
            users:
            - name: cert
              user: {client-certificate: certs/client.crt, client-key: certs/client.key}
            - name: tf
              user: {tokenFile: token}
            contexts:
            - name: a
              context: {cluster: c, user: cert}
            - name: b
              context: {cluster: c, user: tf}
            current-context: a
            """,
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try KubeConfigLoader.load(kubeconfig: dir + "/config", environment: [:])
        #expect(a.caPEM == Array(testCertPEM.utf8))
        #expect(a.auth == .clientCertificate(certPEM: Array(testCertPEM.utf8), keyPEM: Array(testKeyPEM.utf8)))
        #expect(a.namespace == "default")
        // $KUBECONFIG is used when there is no explicit path.
        let b = try KubeConfigLoader.load(context: "b", environment: ["KUBECONFIG": "/nonexistent:" + dir + "/config"])
        #expect(b.auth == .bearerToken("tok-from-file"))
        #expect(b.source == dir + "/config")
    }

    @Test func missingCertificateFileIsNamed() throws {
        let yaml = """
        clusters: [{name: c, cluster: {server: "https://h:6443", certificate-authority: /nonexistent/ca.crt}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: x, context: {cluster: c, user: u}}]
        current-context: x
        """
        let file = try KubeConfigFile.parse(yaml: yaml, path: "/k/config")
        do throws(KubeError) {
            _ = try file.resolve()
            Issue.record("expected an error")
        } catch {
            #expect(error == .credentialUnreadable(what: "certificate-authority", path: "/nonexistent/ca.crt", reason: "no such file"))
            #expect(error.description.contains("/nonexistent/ca.crt"))
        }
    }

    @Test func mergedKubeconfigsFirstWins() throws {
        let one = try KubeConfigFile.parse(yaml: """
        clusters: [{name: c, cluster: {server: "https://one:1"}}]
        users: [{name: u, user: {token: one}}]
        contexts: [{name: x, context: {cluster: c, user: u}}]
        """, path: "/a")
        let two = try KubeConfigFile.parse(yaml: """
        clusters: [{name: c, cluster: {server: "https://two:2"}}, {name: d, cluster: {server: "https://d:3"}}]
        users: [{name: u, user: {token: two}}]
        contexts: [{name: y, context: {cluster: d, user: u}}]
        current-context: y
        """, path: "/b")
        let merged = KubeConfigFile.merge([one, two])
        let cfg = try merged.resolve()
        #expect(cfg.server == "https://d:3")
        #expect(cfg.auth == .bearerToken("one"))
        #expect(try merged.resolve(context: "x").server == "https://one:1")
    }

    @Test func execAuthIsRejectedWithAFix() throws {
        let yaml = """
        clusters: [{name: c, cluster: {server: "https://h:6443"}}]
        users: [{name: eks, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}}}]
        contexts: [{name: x, context: {cluster: c, user: eks}}]
        current-context: x
        """
        #expect(throws: KubeError.unsupportedAuth(user: "eks", mechanism: "exec", path: "/k")) {
            try KubeConfigFile.parse(yaml: yaml, path: "/k").resolve()
        }
    }

    @Test func malformedKubeconfigs() {
        #expect(throws: KubeError.self) { try KubeConfigFile.parse(yaml: "clusters: [oops", path: "/k") }
        #expect(throws: KubeError.self) { try KubeConfigFile.parse(yaml: "clusters: {a: 1}", path: "/k") }
        #expect(throws: KubeError.noCurrentContext(path: "/k", available: [])) {
            try KubeConfigFile.parse(yaml: "kind: Config", path: "/k").resolve()
        }
        #expect(throws: KubeError.invalidServerURL("ftp://x", source: "/k")) {
            try KubeConfigFile.parse(yaml: """
            clusters: [{name: c, cluster: {server: "ftp://x"}}]
            contexts: [{name: x, context: {cluster: c}}]
            current-context: x
            """, path: "/k").resolve()
        }
    }

    @Test func nothingToLoad() {
        do throws(KubeError) {
            _ = try KubeConfigLoader.load(environment: ["HOME": "/nonexistent-home"])
            Issue.record("expected an error")
        } catch {
            guard case .kubeconfigNotFound = error else { Issue.record("got \(error)"); return }
            #expect(error.description.contains("--kubeconfig"))
        }
    }

    @Test func inClusterServiceAccount() throws {
        let dir = try kubeTempDir(["token": "sa-token\n", "ca.crt": testCertPEM, "namespace": "team-a"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": "/nonexistent-home"]
        let cfg = try KubeConfigLoader.load(environment: env, serviceAccountDir: dir)
        #expect(cfg.server == "https://10.96.0.1:443")
        #expect(cfg.auth == .bearerToken("sa-token"))
        #expect(cfg.caPEM == Array(testCertPEM.utf8))
        #expect(cfg.namespace == "team-a")
        #expect(cfg.source == "in-cluster")
        let v6 = try KubeConfigLoader.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "fd00::1"], serviceAccountDir: dir)
        #expect(v6.server == "https://[fd00::1]:443")
        do throws(KubeError) {
            _ = try KubeConfigLoader.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "h"], serviceAccountDir: dir + "/none")
            Issue.record("expected an error")
        } catch {
            guard case .inClusterUnavailable = error else { Issue.record("got \(error)"); return }
            #expect(error.description.contains("token"))
        }
    }

    @Test func resourcePaths() {
        #expect(KubeResource(apiVersion: "v1", kind: "ConfigMap").path(name: "a", namespace: "ns") == "/api/v1/namespaces/ns/configmaps/a")
        #expect(KubeResource(apiVersion: "policy/v1beta1", kind: "PodDisruptionBudget").collectionPath(namespace: "n")
                == "/apis/policy/v1beta1/namespaces/n/poddisruptionbudgets")
        #expect(KubeResource(apiVersion: "networking.k8s.io/v1", kind: "Ingress").plural == "ingresses")
        #expect(KubeResource(apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy").plural == "networkpolicies")
        #expect(KubeResource(apiVersion: "v1", kind: "Namespace").path(name: "x", namespace: "ignored") == "/api/v1/namespaces/x")
    }
}
