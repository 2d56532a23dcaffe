import Spec
import Foundation
import Yams

/// How requests authenticate.
public enum KubeAuth: Sendable, Equatable {
    case none
    case bearerToken(String)
    case basic(username: String, password: String)
    /// PEM bytes of the client certificate (chain) and its private key.
    case clientCertificate(certPEM: [UInt8], keyPEM: [UInt8])

    var kindName: String {
        switch self {
        case .none: return "no credentials"
        case .bearerToken: return "token"
        case .basic: return "basic auth"
        case .clientCertificate: return "client certificate"
        }
    }
}

/// Everything needed to talk to one cluster: the resolved context.
public struct KubeConnectionConfig: Sendable, Equatable {
    /// `https://host:port` (no trailing slash; may carry a path prefix).
    public var server: String
    public var namespace: String
    public var auth: KubeAuth
    /// PEM bundle of the CAs that sign the server certificate; nil = the system trust store.
    public var caPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    /// Name to verify the server certificate against when it differs from the URL's host.
    public var tlsServerName: String?
    public var contextName: String
    public var userName: String
    /// The kubeconfig path, or "in-cluster".
    public var source: String

    public init(server: String, namespace: String = "default", auth: KubeAuth = .none, caPEM: [UInt8]? = nil,
                insecureSkipTLSVerify: Bool = false, tlsServerName: String? = nil,
                contextName: String = "", userName: String = "", source: String = "") {
        self.server = server
        self.namespace = namespace
        self.auth = auth
        self.caPEM = caPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.tlsServerName = tlsServerName
        self.contextName = contextName
        self.userName = userName
        self.source = source
    }
}

/// A parsed kubeconfig file (`kind: Config`). Only what autoglm uses is kept.
public struct KubeConfigFile: Sendable, Equatable {
    public struct Cluster: Sendable, Equatable {
        public var server: String
        public var certificateAuthority: String?
        public var certificateAuthorityData: String?
        public var insecureSkipTLSVerify = false
        public var tlsServerName: String?
    }
    public struct User: Sendable, Equatable {
        public var token: String?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: String?
        public var clientKey: String?
        public var clientKeyData: String?
        public var username: String?
        public var password: String?
        /// `exec` or `auth-provider` when the user relies on one (not supported).
        public var externalMechanism: String?
    }
    public struct Context: Sendable, Equatable {
        public var cluster: String
        public var user: String
        public var namespace: String?
    }

    public var path: String
    public var clusters: [String: Cluster] = [:]
    public var users: [String: User] = [:]
    public var contexts: [String: Context] = [:]
    public var contextOrder: [String] = []
    public var currentContext: String?

    public static func parse(yaml: String, path: String) throws(KubeError) -> KubeConfigFile {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw .kubeconfigInvalid(path: path, reason: "malformed YAML: \(error)")
        }
        guard let root, root.mapping != nil else {
            throw .kubeconfigInvalid(path: path, reason: "the file is empty or not a mapping")
        }
        var cfg = KubeConfigFile(path: path)
        func named(_ key: String) throws(KubeError) -> [(String, Node)] {
            guard let n = root[key] else { return [] }
            if n.scalar != nil { return [] }  // `clusters: null` / `clusters: ~`
            guard let seq = n.sequence else {
                throw .kubeconfigInvalid(path: path, reason: "'\(key)' must be a list")
            }
            var out: [(String, Node)] = []
            for (i, item) in seq.enumerated() {
                guard let name = item["name"]?.string, !name.isEmpty else {
                    throw .kubeconfigInvalid(path: path, reason: "\(key)[\(i)] has no name")
                }
                let singular = String(key.dropLast())
                out.append((name, item[singular] ?? Node.mapping(Node.Mapping([]))))
            }
            return out
        }
        for (name, c) in try named("clusters") where cfg.clusters[name] == nil {
            guard let server = c["server"]?.string, !server.isEmpty else {
                throw .kubeconfigInvalid(path: path, reason: "cluster '\(name)' has no server")
            }
            cfg.clusters[name] = Cluster(
                server: server,
                certificateAuthority: c["certificate-authority"]?.string,
                certificateAuthorityData: c["certificate-authority-data"]?.string,
                insecureSkipTLSVerify: c["insecure-skip-tls-verify"]?.bool ?? false,
                tlsServerName: c["tls-server-name"]?.string)
        }
        for (name, u) in try named("users") where cfg.users[name] == nil {
            var user = User()
            user.token = u["token"]?.string
            user.tokenFile = u["tokenFile"]?.string
            user.clientCertificate = u["client-certificate"]?.string
            user.clientCertificateData = u["client-certificate-data"]?.string
            user.clientKey = u["client-key"]?.string
            user.clientKeyData = u["client-key-data"]?.string
            user.username = u["username"]?.string
            user.password = u["password"]?.string
            if u["exec"]?.mapping != nil { user.externalMechanism = "exec" }
            if u["auth-provider"]?.mapping != nil { user.externalMechanism = "auth-provider" }
            cfg.users[name] = user
        }
        for (name, c) in try named("contexts") where cfg.contexts[name] == nil {
            cfg.contexts[name] = Context(cluster: c["cluster"]?.string ?? "", user: c["user"]?.string ?? "",
                                         namespace: c["namespace"]?.string)
            cfg.contextOrder.append(name)
        }
        if let cur = root["current-context"]?.string, !cur.isEmpty { cfg.currentContext = cur }
        return cfg
    }

    /// Merges several files the way KUBECONFIG=a:b does: the first file that defines a name wins,
    /// and the first current-context set wins.
    public static func merge(_ files: [KubeConfigFile]) -> KubeConfigFile {
        guard var out = files.first else { return KubeConfigFile(path: "") }
        for f in files.dropFirst() {
            out.path += ":" + f.path
            for (k, v) in f.clusters where out.clusters[k] == nil { out.clusters[k] = v }
            for (k, v) in f.users where out.users[k] == nil { out.users[k] = v }
            for k in f.contextOrder where out.contexts[k] == nil {
                out.contexts[k] = f.contexts[k]
                out.contextOrder.append(k)
            }
            if out.currentContext == nil { out.currentContext = f.currentContext }
        }
        return out
    }

    /// Resolves a context (default: current-context) into connection settings, reading any
    /// referenced files. Relative file paths are relative to the kubeconfig's directory.
    public func resolve(context: String? = nil, namespace: String? = nil) throws(KubeError) -> KubeConnectionConfig {
        guard let ctxName = context ?? currentContext else {
            throw .noCurrentContext(path: path, available: contextOrder)
        }
        guard let ctx = contexts[ctxName] else {
            throw .contextNotFound(ctxName, available: contextOrder, path: path)
        }
        guard let cluster = clusters[ctx.cluster] else {
            throw .clusterNotFound(ctx.cluster, context: ctxName, path: path)
        }
        let user: User
        if ctx.user.isEmpty {
            user = User()
        } else if let u = users[ctx.user] {
            user = u
        } else {
            throw .userNotFound(ctx.user, context: ctxName, path: path)
        }
        var server = cluster.server
        while server.hasSuffix("/") { server.removeLast() }
        guard server.hasPrefix("https://") || server.hasPrefix("http://"), server.count > 8 else {
            throw .invalidServerURL(cluster.server, source: path)
        }
        var ca: [UInt8]?
        if let data = cluster.certificateAuthorityData, !data.isEmpty {
            ca = try Self.base64(data, what: "certificate-authority-data")
        } else if let file = cluster.certificateAuthority, !file.isEmpty {
            ca = try Self.readFile(relativeTo(file), what: "certificate-authority")
        }

        let auth: KubeAuth
        if let mech = user.externalMechanism, user.token == nil, user.tokenFile == nil,
           user.clientCertificate == nil, user.clientCertificateData == nil {
            throw .unsupportedAuth(user: ctx.user, mechanism: mech, path: path)
        }
        if user.clientCertificate != nil || user.clientCertificateData != nil {
            let cert: [UInt8]
            if let d = user.clientCertificateData, !d.isEmpty {
                cert = try Self.base64(d, what: "client-certificate-data")
            } else {
                cert = try Self.readFile(relativeTo(user.clientCertificate ?? ""), what: "client-certificate")
            }
            let key: [UInt8]
            if let d = user.clientKeyData, !d.isEmpty {
                key = try Self.base64(d, what: "client-key-data")
            } else if let f = user.clientKey, !f.isEmpty {
                key = try Self.readFile(relativeTo(f), what: "client-key")
            } else {
                throw .invalidCredential(what: "user '\(ctx.user)' client certificate",
                                         reason: "it has no client-key or client-key-data")
            }
            auth = .clientCertificate(certPEM: cert, keyPEM: key)
        } else if let t = user.token, !t.isEmpty {
            auth = .bearerToken(t)
        } else if let f = user.tokenFile, !f.isEmpty {
            let t = String(decoding: try Self.readFile(relativeTo(f), what: "tokenFile"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            auth = .bearerToken(t)
        } else if let u = user.username, let p = user.password {
            auth = .basic(username: u, password: p)
        } else {
            auth = .none
        }
        return KubeConnectionConfig(
            server: server, namespace: namespace ?? ctx.namespace ?? "default", auth: auth, caPEM: ca,
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify, tlsServerName: cluster.tlsServerName,
            contextName: ctxName, userName: ctx.user, source: path)
    }

    func relativeTo(_ file: String) -> String {
        if file.hasPrefix("/") || file.isEmpty { return file }
        let first = path.split(separator: ":").first.map(String.init) ?? path
        let dir = (first as NSString).deletingLastPathComponent
        return dir.isEmpty ? file : dir + "/" + file
    }

    static func base64(_ s: String, what: String) throws(KubeError) -> [UInt8] {
        guard let d = Data(base64Encoded: s, options: .ignoreUnknownCharacters), !d.isEmpty else {
            throw .invalidCredential(what: what, reason: "not valid base64")
        }
        return Array(d)
    }

    static func readFile(_ path: String, what: String) throws(KubeError) -> [UInt8] {
        guard let fh = FileHandle(forReadingAtPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            throw .credentialUnreadable(what: what, path: path, reason: reason)
        }
        defer { try? fh.close() }
        do {
            return Array(try fh.readToEnd() ?? Data())
        } catch {
            throw .credentialUnreadable(what: what, path: path, reason: "\(error)")
        }
    }
}

/// Finds the cluster to talk to: --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the
/// in-cluster service account.
public enum KubeConfigLoader {
    public static let serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

    public static func load(kubeconfig explicit: String? = nil, context: String? = nil, namespace: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment,
                            serviceAccountDir: String = KubeConfigLoader.serviceAccountDir) throws(KubeError) -> KubeConnectionConfig {
        var searched: [String] = []
        var paths: [String] = []
        if let explicit, !explicit.isEmpty {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw .credentialUnreadable(what: "kubeconfig", path: explicit, reason: "no such file")
            }
            paths = [explicit]
        } else if let env = environment["KUBECONFIG"], !env.isEmpty {
            let listed = env.split(separator: ":").map(String.init)
            searched += listed.map { "KUBECONFIG entry \($0)" }
            paths = listed.filter { FileManager.default.fileExists(atPath: $0) }
        } else if let home = environment["HOME"], !home.isEmpty {
            let p = home + "/.kube/config"
            searched.append(p)
            if FileManager.default.fileExists(atPath: p) { paths = [p] }
        }
        if !paths.isEmpty {
            var files: [KubeConfigFile] = []
            for p in paths {
                let bytes = try KubeConfigFile.readFile(p, what: "kubeconfig")
                files.append(try KubeConfigFile.parse(yaml: String(decoding: bytes, as: UTF8.self), path: p))
            }
            return try KubeConfigFile.merge(files).resolve(context: context, namespace: namespace)
        }
        if environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try inCluster(environment: environment, serviceAccountDir: serviceAccountDir, namespace: namespace)
        }
        searched.append("in-cluster (KUBERNETES_SERVICE_HOST is not set)")
        throw .kubeconfigNotFound(searched: searched)
    }

    /// The pod's own service account: KUBERNETES_SERVICE_HOST/PORT plus token, ca.crt and
    /// namespace from the mounted secret.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 serviceAccountDir dir: String = KubeConfigLoader.serviceAccountDir,
                                 namespace: String? = nil) throws(KubeError) -> KubeConnectionConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw .inClusterUnavailable(reason: "KUBERNETES_SERVICE_HOST is not set")
        }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        guard Int(port) != nil else {
            throw .inClusterUnavailable(reason: "KUBERNETES_SERVICE_PORT '\(port)' is not a port number")
        }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let token: [UInt8]
        do { token = try KubeConfigFile.readFile(dir + "/token", what: "service account token") } catch {
            throw .inClusterUnavailable(reason: error.description)
        }
        let tokenText = String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !tokenText.isEmpty else { throw .inClusterUnavailable(reason: "\(dir)/token is empty") }
        let ca = try? KubeConfigFile.readFile(dir + "/ca.crt", what: "service account CA")
        let ns = (try? KubeConfigFile.readFile(dir + "/namespace", what: "namespace"))
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        return KubeConnectionConfig(
            server: "https://\(hostPart):\(port)", namespace: namespace ?? ((ns?.isEmpty ?? true) ? "default" : ns ?? "default"),
            auth: .bearerToken(tokenText), caPEM: ca, contextName: "in-cluster", userName: "serviceaccount",
            source: "in-cluster")
    }
}
