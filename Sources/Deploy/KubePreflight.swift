import Spec

/// One permission `apply` needs: `verb` on `resource` (plural, in API group `group`; "" is the
/// core group) in the target namespace.
public struct AccessNeed: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var group: String
    public var resource: String
    public var verb: String

    public init(group: String, resource: String, verb: String) {
        self.group = group
        self.resource = resource
        self.verb = verb
    }

    /// `deployments.apps`, `configmaps`: how kubectl's `--resource` names it.
    public var qualifiedResource: String { group.isEmpty ? resource : "\(resource).\(group)" }
    public var description: String { "\(verb) \(qualifiedResource)" }
}

/// What `apply` checks before it changes anything. The pure parts (which permissions, which
/// messages) live here; `KubeDeployer.preflight` asks the cluster.
public enum KubePreflight {
    /// The API group of an apiVersion (`apps/v1` → `apps`, `v1` → "").
    public static func group(_ apiVersion: String) -> String {
        guard let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }

    /// Every (verb, resource) `apply` may use on the rendered objects, in the order it uses them:
    /// `get` (reads each object before changing it), `create`, `patch` (server-side apply) or
    /// `update` (create/replace), `update` (restores a changed object when a later step fails),
    /// `delete` (removes an object it created when a later step fails); on top, for the
    /// Deployment's revisions: `patch` deployments (rollback), `list` replicasets, and `list` +
    /// `delete` configmaps (garbage-collecting ConfigMaps no retained revision uses).
    /// `resources` pairs each rendered object's apiVersion with its plural resource name.
    public static func requiredAccess(resources: [(apiVersion: String, plural: String)], mode: ApplyMode) -> [AccessNeed] {
        var out: [AccessNeed] = []
        func add(_ group: String, _ resource: String, _ verb: String) {
            let n = AccessNeed(group: group, resource: resource, verb: verb)
            if !out.contains(n) { out.append(n) }
        }
        var verbs = ["get", "create"]
        if mode != .clientSide { verbs.append("patch") }
        verbs += ["update", "delete"]
        for r in resources {
            let g = group(r.apiVersion)
            for v in verbs { add(g, r.plural, v) }
            if g == "apps" && r.plural == "deployments" {
                add("apps", "deployments", "patch")
                add("apps", "replicasets", "list")
            }
            if g == "" && r.plural == "configmaps" { add("", "configmaps", "list") }
        }
        return out
    }

    /// The fix for an object kind the cluster does not serve.
    public static func missingKindFix(apiVersion: String, kind: String, servedVersions: [String]) -> String {
        let served = servedVersions.isEmpty ? "" : " (it serves \(servedVersions.joined(separator: ", ")))"
        switch kind {
        case "ServiceMonitor":
            return "install the Prometheus Operator CRDs (servicemonitors.monitoring.coreos.com) or set monitoring.serviceMonitor: false in autoglm.yaml"
        case "HorizontalPodAutoscaler":
            return "the cluster does not serve \(apiVersion)\(served); pass --kube-version matching the server (it picks the HPA's API version) or set autoscaling.enabled: false in autoglm.yaml"
        case "ScaledObject":
            return "install KEDA (its CRD scaledobjects.keda.sh) or set autoscaling.provider: prometheus-adapter in autoglm.yaml"
        case "PodDisruptionBudget":
            return "the cluster does not serve \(apiVersion)\(served); pass --kube-version matching the server (it picks the PDB's API version)"
        default:
            if servedVersions.isEmpty {
                return "install the CRD or API that provides \(group(apiVersion).isEmpty ? apiVersion : group(apiVersion)), or turn the object off in autoglm.yaml"
            }
            return "the cluster does not serve \(apiVersion)\(served); pass --kube-version matching the server or turn the object off in autoglm.yaml"
        }
    }

    /// One problem line per resource with denied verbs, then the kubectl commands that grant them.
    public static func accessProblems(denied: [AccessNeed], namespace: String, user: String) -> [String] {
        guard !denied.isEmpty else { return [] }
        var out: [String] = []
        let namespaced = denied.filter { $0.resource != "namespaces" }
        if namespaced.count < denied.count {
            out.append("user '\(user)' may not create (and, if the apply fails, delete) namespaces: create namespace '\(namespace)' first (kubectl create namespace \(namespace)) and drop --create-namespace")
        }
        guard !namespaced.isEmpty else { return out }
        var byResource: [(String, [String])] = []
        for d in namespaced {
            if let i = byResource.firstIndex(where: { $0.0 == d.qualifiedResource }) {
                byResource[i].1.append(d.verb)
            } else {
                byResource.append((d.qualifiedResource, [d.verb]))
            }
        }
        out += byResource.map { res, verbs in
            "user '\(user)' may not \(verbs.joined(separator: ", ")) \(res) in namespace '\(namespace)'"
        }
        var verbs: [String] = []
        for d in namespaced where !verbs.contains(d.verb) { verbs.append(d.verb) }
        out.append("grant them with a Role bound to that user: kubectl create role autoglm-deploy -n \(namespace) --verb=\(verbs.joined(separator: ",")) --resource=\(byResource.map(\.0).joined(separator: ",")) && kubectl create rolebinding autoglm-deploy -n \(namespace) --role=autoglm-deploy --user=USER (or --serviceaccount=NAMESPACE:NAME)")
        return out
    }
}

extension KubeDeployer {
    /// Checks, before anything is changed, that the cluster serves every object's apiVersion/kind
    /// (discovery) and that the caller may do what `apply` will do (a SelfSubjectAccessReview per
    /// verb and resource). Throws `.preflightFailed` naming everything missing, with the fix.
    public func preflight(_ objects: [KubeObject], mode: ApplyMode, createNamespace: Bool = false, canary: Bool = false) async throws(KubeError) {
        var problems: [String] = []
        var resources: [(apiVersion: String, plural: String)] = []
        var lists: [String: JSONValue?] = [:]
        var groups: JSONValue?
        for o in objects {
            let list: JSONValue?
            if let cached = lists[o.apiVersion] {
                list = cached
            } else {
                list = try await client.getIfExists(KubeResource(apiVersion: o.apiVersion, kind: o.kind).groupPath,
                                                    what: "API discovery of \(o.apiVersion)")
                lists[o.apiVersion] = list
            }
            let entry = (list?["resources"]?.array ?? []).first {
                $0["kind"]?.string == o.kind && !($0["name"]?.string ?? "/").contains("/")
            }
            if let plural = entry?["name"]?.string {
                if !resources.contains(where: { $0.apiVersion == o.apiVersion && $0.plural == plural }) {
                    resources.append((o.apiVersion, plural))
                }
                continue
            }
            let g = KubePreflight.group(o.apiVersion)
            var served: [String] = []
            if !g.isEmpty {
                if groups == nil { groups = try await client.get("/apis", what: "API discovery") }
                let entry = (groups?["groups"]?.array ?? []).first { $0["name"]?.string == g }
                served = (entry?["versions"]?.array ?? []).compactMap { $0["groupVersion"]?.string }
            }
            problems.append("\(o.kind) (\(o.apiVersion)) is not served by the cluster, so \(o.kind.lowercased())/\(o.name) cannot be applied: "
                            + KubePreflight.missingKindFix(apiVersion: o.apiVersion, kind: o.kind, servedVersions: served))
        }

        var denied: [AccessNeed] = []
        var needs = KubePreflight.requiredAccess(resources: resources, mode: mode)
        if createNamespace {
            needs.insert(AccessNeed(group: "", resource: "namespaces", verb: "create"), at: 0)
            needs.insert(AccessNeed(group: "", resource: "namespaces", verb: "delete"), at: 1)
        }
        if canary {
            // The canary analysis lists both tracks' pods and reads their /metrics through the pod proxy.
            needs.append(AccessNeed(group: "", resource: "pods", verb: "list"))
            needs.append(AccessNeed(group: "", resource: "pods/proxy", verb: "get"))
        }
        for need in needs {
            let parts = need.resource.split(separator: "/", maxSplits: 1).map(String.init)
            var attributes: [String: JSONValue] = [
                "verb": .string(need.verb), "group": .string(need.group), "resource": .string(parts.first ?? need.resource),
            ]
            if parts.count == 2 { attributes["subresource"] = .string(parts[1]) }
            if need.resource != "namespaces" { attributes["namespace"] = .string(namespace) }
            let review: JSONValue = .object([
                "apiVersion": .string("authorization.k8s.io/v1"),
                "kind": .string("SelfSubjectAccessReview"),
                "spec": .object(["resourceAttributes": .object(attributes)]),
            ])
            let answer = try await client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                                  json: review, what: "a SelfSubjectAccessReview (\(need))")
            if answer.at("status", "allowed")?.bool != true { denied.append(need) }
        }
        let user = client.config.userName.isEmpty ? client.config.auth.kindName : client.config.userName
        problems += KubePreflight.accessProblems(denied: denied, namespace: namespace, user: user)
        if !problems.isEmpty {
            throw .preflightFailed(server: client.config.server, namespace: namespace, problems: problems)
        }
    }
}
