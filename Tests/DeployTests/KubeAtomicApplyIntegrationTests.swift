import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// Content-named ConfigMaps, rollback of the config, preflight and compensation against the real
/// control plane (see KubeIntegrationTests for how to start it). Specs come from
/// `KubeIntegrationTests.spec`, so these follow whatever that helper runs.
extension KubeIntegrationTests {
    static func spec(image: String, replicas: Int = 1, version: String) throws -> Spec {
        var s = try spec(image: image, replicas: replicas)
        s.model.version = version
        return s
    }

    static func render(_ spec: Spec, _ kv: KubeVersion) -> RenderResult {
        KubeRenderer.render(spec, options: RenderOptions(kubeVersion: kv))
    }

    static func configObject(_ r: RenderResult) throws -> KubeObject {
        try #require(r.objects.first { $0.kind == "ConfigMap" })
    }

    /// The ConfigMap the live Deployment's pod template mounts, and its data.
    static func liveConfig(_ client: KubeClient, _ ns: String, _ name: String = "itest") async throws -> (name: String, data: JSONValue?) {
        let dep = try await client.get("/apis/apps/v1/namespaces/\(ns)/deployments/\(name)")
        let names = ConfigHistory.configMaps(ofTemplate: dep.at("spec", "template"))
        #expect(names.count == 1, "\(names)")
        let cm = try #require(names.first)
        return (cm, try await client.get("/api/v1/namespaces/\(ns)/configmaps/\(cm)")["data"])
    }

    /// `value` with the field at `path` set to `new`.
    static func setting(_ value: YAMLValue, _ path: [String], _ new: YAMLValue) -> YAMLValue {
        guard let key = path.first else { return new }
        guard case .map(var fields) = value else { return value }
        if let i = fields.firstIndex(where: { $0.key == key }) {
            fields[i].value = setting(fields[i].value, Array(path.dropFirst()), new)
        } else {
            fields.append(YAMLField(key, setting(.map([]), Array(path.dropFirst()), new)))
        }
        return .map(fields)
    }

    /// Every rendered object that exists in the namespace ("kind/name").
    static func existing(_ objects: [KubeObject], _ client: KubeClient, _ ns: String) async throws -> [String] {
        var out: [String] = []
        for o in objects where o.kind != "ServiceMonitor" {
            let path = KubeResource(apiVersion: o.apiVersion, kind: o.kind).path(name: o.name, namespace: ns)
            if try await client.getIfExists(path) != nil { out.append("\(o.kind)/\(o.name)") }
        }
        return out
    }

    /// Objects labelled as autoglm's in the namespace, across the kinds apply writes or causes.
    static func managedObjects(_ client: KubeClient, _ ns: String) async throws -> [String] {
        var out: [String] = []
        for collection in ["/api/v1/namespaces/\(ns)/configmaps", "/api/v1/namespaces/\(ns)/serviceaccounts",
                           "/api/v1/namespaces/\(ns)/services", "/api/v1/namespaces/\(ns)/pods",
                           "/apis/apps/v1/namespaces/\(ns)/deployments", "/apis/apps/v1/namespaces/\(ns)/replicasets",
                           "/apis/policy/v1beta1/namespaces/\(ns)/poddisruptionbudgets"] {
            let list = try await client.get(collection + "?labelSelector=app.kubernetes.io%2Fname%3Dautoglm")
            out += (list["items"]?.array ?? []).compactMap { $0.at("metadata", "name")?.string.map { collection + "/" + $0 } }
        }
        return out
    }

    // (a) A model change is a new ConfigMap and a new revision; rollback brings the old config back.
    @Test(.timeLimit(.minutes(3)))
    func rollbackRestoresTheConfigOfTheRevision() async throws {
        try await Self.withNamespace("config") { client, ns, kv in
            let deployer = KubeDeployer(client: client, namespace: ns)
            let v1 = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1", version: "1.0.0"), kv)
            let v2 = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1", version: "2.0.0"), kv)
            let cm1 = try Self.configObject(v1), cm2 = try Self.configObject(v2)
            #expect(cm1.name != cm2.name)

            let a = try await deployer.apply(v1.objects, options: Self.fastOptions)
            #expect(a.succeeded && a.revision == 1, "\(a.summary)")
            let b = try await deployer.apply(v2.objects, options: Self.fastOptions)
            #expect(b.succeeded && b.revision == 2 && b.previousRevision == 1, "\(b.summary)")
            #expect(b.objects.contains("configmap/\(cm2.name) created"), "\(b.objects)")
            #expect(b.collected.isEmpty)  // revision 1 is kept (history limit 5), so is its ConfigMap
            let during = try await Self.liveConfig(client, ns)
            #expect(during.name == cm2.name)
            #expect(during.data?["autoglm.yaml"]?.string?.contains("2.0.0") == true)
            #expect(try await deployer.configMapNames(of: "itest") == [cm1.name, cm2.name].sorted())

            // The API server enforces immutable: the config of a revision cannot be edited in place.
            let edit = try await client.send("PATCH", "/api/v1/namespaces/\(ns)/configmaps/\(cm1.name)",
                                             body: JSONValue.object(["data": .object(["autoglm.yaml": "edited"])]).bytes,
                                             contentType: "application/merge-patch+json")
            #expect(edit.status == 422, "\(edit.text)")

            let rb = try await deployer.rollback("itest", options: Self.fastOptions)
            #expect(rb == RollbackReport(fromRevision: 2, toRevision: 1, liveRevision: 3, configMaps: [cm1.name]))
            let after = try await Self.liveConfig(client, ns)
            #expect(after.name == cm1.name)
            #expect(after.data == JSONValue(cm1.value)["data"])
            #expect(after.data?["autoglm.yaml"]?.string?.contains("1.0.0") == true)
            #expect(after.data?["autoglm.yaml"]?.string?.contains("2.0.0") == false)
            let status = try await deployer.status("itest")
            #expect(status.snapshot.state == .complete)
            #expect(status.history.map { $0.configMaps } == [[cm1.name], [cm2.name]])
            #expect(status.summary.contains("revision 3: registry.invalid/autoglm:v1, config \(cm1.name)"), "\(status.summary)")

            // A revision whose ConfigMap is gone (deleted by hand) is refused before anything changes.
            _ = try await client.request("DELETE", "/api/v1/namespaces/\(ns)/configmaps/\(cm2.name)")
            do throws(KubeError) {
                let r = try await deployer.rollback("itest", toRevision: 2, options: Self.fastOptions)
                Issue.record("expected configMapMissing, got \(r)")
            } catch {
                #expect(error == .configMapMissing(deployment: "itest", revision: 2, configMap: cm2.name))
                #expect(error.description.contains("apply that revision's autoglm.yaml again"))
            }
            #expect(try await Self.liveConfig(client, ns).name == cm1.name)
        }
    }

    // (b) ConfigMaps follow the Deployment's revisionHistoryLimit.
    @Test(.timeLimit(.minutes(4)))
    func configMapsFollowTheRevisionHistoryLimit() async throws {
        try await Self.withNamespace("history") { client, ns, kv in
            let deployer = KubeDeployer(client: client, namespace: ns)
            func rendered(_ version: String) throws -> RenderResult {
                var r = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1", version: version), kv)
                r.objects = r.objects.map { o in
                    var o = o
                    if o.kind == "Deployment" { o.value = Self.setting(o.value, ["spec", "revisionHistoryLimit"], .int(1)) }
                    return o
                }
                return r
            }
            let v1 = try rendered("1.0.0"), v2 = try rendered("2.0.0"), v3 = try rendered("3.0.0")
            let cm1 = try Self.configObject(v1).name, cm2 = try Self.configObject(v2).name, cm3 = try Self.configObject(v3).name

            for (i, v) in [v1, v2].enumerated() {
                let r = try await deployer.apply(v.objects, options: Self.fastOptions)
                #expect(r.succeeded && r.revision == i + 1, "\(r.summary)")
                #expect(r.collected.isEmpty, "\(r.collected)")  // 1 old revision may stay
            }
            #expect(try await deployer.configMapNames(of: "itest") == [cm1, cm2].sorted())

            // Revision 1 falls out of the history (limit 1): its ConfigMap goes.
            let third = try await deployer.apply(v3.objects, options: Self.fastOptions)
            #expect(third.succeeded && third.revision == 3, "\(third.summary)")
            #expect(third.collected == ["configmap/\(cm1) deleted (no retained revision of deployment/itest uses it)"])
            #expect(try await deployer.configMapNames(of: "itest") == [cm2, cm3].sorted())

            // Going back to v1's spec re-creates its ConfigMap (same content, same name); v2's goes.
            let back = try await deployer.apply(v1.objects, options: Self.fastOptions)
            #expect(back.succeeded && back.revision == 4, "\(back.summary)")
            #expect(back.objects.contains("configmap/\(cm1) created"))
            #expect(back.collected == ["configmap/\(cm2) deleted (no retained revision of deployment/itest uses it)"])
            #expect(try await deployer.configMapNames(of: "itest") == [cm1, cm3].sorted())
            // Every ConfigMap a ReplicaSet that is still there refers to exists.
            let kept = Set(try await deployer.configMapNames(of: "itest"))
            for (rev, rs) in try await deployer.replicaSets(of: "itest") {
                let uses = ConfigHistory.configMaps(ofTemplate: rs.at("spec", "template"))
                let pods = (rs.at("spec", "replicas")?.int ?? 0) + (rs.at("status", "replicas")?.int ?? 0)
                if pods > 0 || rev >= 3 { #expect(uses.allSatisfy(kept.contains), "revision \(rev) uses \(uses)") }
            }

            // delete removes every ConfigMap of the Deployment, not only the rendered one, and the
            // single mutable <name>-config earlier autoglm versions rendered (when it is autoglm's).
            for (name, instance) in [("itest-config", "itest"), ("other-config", "other")] {
                _ = try await client.request("POST", "/api/v1/namespaces/\(ns)/configmaps", json: [
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": ["name": .string(name), "labels": [
                        "app.kubernetes.io/managed-by": "autoglm", "app.kubernetes.io/instance": .string(instance)]],
                    "data": ["autoglm.yaml": "old"],
                ])
            }
            let deleted = try await deployer.delete(v1.objects)
            #expect(deleted.contains("configmap/\(cm3) deleted"), "\(deleted)")
            #expect(deleted.contains("configmap/itest-config deleted"), "\(deleted)")
            #expect(try await deployer.configMapNames(of: "itest").isEmpty)
            #expect(try await client.getIfExists("/api/v1/namespaces/\(ns)/configmaps/itest-config") == nil)
            #expect(try await client.getIfExists("/api/v1/namespaces/\(ns)/configmaps/other-config") != nil)
        }
    }

    // (c) A kind the cluster does not serve fails preflight; nothing is created.
    @Test(.timeLimit(.minutes(2)))
    func missingServiceMonitorCRDFailsPreflightAndChangesNothing() async throws {
        try await Self.withNamespace("crd") { client, ns, kv in
            var spec = try Self.spec(image: "registry.invalid/autoglm:v1")
            spec.monitoring.serviceMonitor = true
            let r = Self.render(spec, kv)
            #expect(r.objects.last?.kind == "ServiceMonitor")
            do throws(KubeError) {
                let report = try await KubeDeployer(client: client, namespace: ns).apply(r.objects, options: Self.fastOptions)
                Issue.record("expected a preflight failure, got \(report.summary)")
            } catch {
                guard case .preflightFailed(_, let namespace, let problems) = error else { Issue.record("got \(error)"); return }
                #expect(namespace == ns)
                #expect(problems == ["ServiceMonitor (monitoring.coreos.com/v1) is not served by the cluster, so servicemonitor/itest cannot be applied: install the Prometheus Operator CRDs (servicemonitors.monitoring.coreos.com) or set monitoring.serviceMonitor: false in autoglm.yaml"])
                #expect(error.description.contains("nothing was changed"))
            }
            #expect(try await Self.existing(r.objects, client, ns) == [])
            #expect(try await Self.managedObjects(client, ns) == [])
        }
    }

    // (d) Missing permissions fail preflight, naming the verbs and resources; nothing is created.
    @Test(.timeLimit(.minutes(2)))
    func missingPermissionsFailPreflightAndChangeNothing() async throws {
        try await Self.withNamespace("rbac") { client, ns, kv in
            // A service account that may do everything but write Deployments and touch PDBs.
            let all: JSONValue = ["get", "list", "create", "patch", "update", "delete"]
            _ = try await client.request("POST", "/api/v1/namespaces/\(ns)/serviceaccounts",
                                         json: ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "deployer"]])
            _ = try await client.request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/\(ns)/roles", json: [
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": ["name": "partial"],
                "rules": [
                    ["apiGroups": [""], "resources": ["configmaps", "serviceaccounts", "services"], "verbs": all],
                    ["apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]],
                    ["apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]],
                ],
            ])
            _ = try await client.request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/\(ns)/rolebindings", json: [
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": ["name": "partial"],
                "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "partial"],
                "subjects": [["kind": "ServiceAccount", "name": "deployer", "namespace": .string(ns)]],
            ])
            // The v1.20 token controller writes the account's token into a Secret.
            var token: String?
            for _ in 0..<100 where token == nil {
                let secrets = try await client.get("/api/v1/namespaces/\(ns)/secrets")
                token = (secrets["items"]?.array ?? []).first {
                    $0.at("type")?.string == "kubernetes.io/service-account-token"
                        && $0.at("metadata", "annotations", "kubernetes.io/service-account.name")?.string == "deployer"
                }?.at("data", "token")?.string.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
                if token == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            var config = client.config
            config.auth = .bearerToken(try #require(token, "no token Secret for serviceaccount/deployer"))
            config.userName = "deployer"
            let limited = try KubeClient(config: config)

            let r = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1"), kv)
            let outcome: Result<ApplyReport, KubeError>
            do throws(KubeError) {
                outcome = .success(try await KubeDeployer(client: limited, namespace: ns).apply(r.objects, options: Self.fastOptions))
            } catch {
                outcome = .failure(error)
            }
            await limited.shutdown()
            guard case .failure(let error) = outcome, case .preflightFailed(_, _, let problems) = error else {
                Issue.record("expected a preflight failure, got \(outcome)")
                return
            }
            let pdb = KubePreflight.group(try #require(r.objects.first { $0.kind == "PodDisruptionBudget" }).apiVersion)
            #expect(problems.count == 3, "\(problems)")
            #expect(problems.first == "user 'deployer' may not create, patch, update, delete deployments.apps in namespace '\(ns)'")
            #expect(problems.dropFirst().first == "user 'deployer' may not get, create, patch, update, delete poddisruptionbudgets.\(pdb) in namespace '\(ns)'")
            #expect(problems.last?.contains("kubectl create role autoglm-deploy -n \(ns) --verb=create,patch,update,delete,get --resource=deployments.apps,poddisruptionbudgets.\(pdb)") == true, "\(problems)")
            // Nothing of the spec exists: not even the objects the account may write.
            #expect(try await Self.existing(r.objects, client, ns) == [])
            #expect(try await Self.managedObjects(client, ns) == [])
        }
    }

    // (e) A write refused after the Deployment step: everything this apply changed is undone.
    @Test(.timeLimit(.minutes(3)))
    func refusedWriteAfterTheDeploymentUndoesTheApply() async throws {
        try await Self.withNamespace("undo") { client, ns, kv in
            let events = EventLog()
            let deployer = KubeDeployer(client: client, namespace: ns, progress: events.record)
            let v1 = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1", replicas: 2, version: "1.0.0"), kv)
            let first = try await deployer.apply(v1.objects, options: Self.fastOptions)
            #expect(first.succeeded && first.revision == 1, "\(first.summary)")
            let before = try await client.get("/apis/apps/v1/namespaces/\(ns)/deployments/itest")
            let serviceBefore = try await client.get("/api/v1/namespaces/\(ns)/services/itest")

            // The namespace's quota allows no HorizontalPodAutoscaler (an admission rejection).
            _ = try await client.request("POST", "/api/v1/namespaces/\(ns)/resourcequotas", json: [
                "apiVersion": "v1", "kind": "ResourceQuota", "metadata": ["name": "no-hpa"],
                "spec": ["hard": ["count/horizontalpodautoscalers.autoscaling": "0"]],
            ])
            for _ in 0..<100 {  // admission needs the quota controller's first count
                let q = try await client.get("/api/v1/namespaces/\(ns)/resourcequotas/no-hpa")
                if q.at("status", "used", "count/horizontalpodautoscalers.autoscaling") != nil { break }
                try await Task.sleep(for: .milliseconds(200))
            }

            // v2: a new model version (new ConfigMap, new template) and an HPA after the Deployment.
            var spec2 = try Self.spec(image: "registry.invalid/autoglm:v1", replicas: 2, version: "2.0.0")
            var scaling = AutoscalingSpec()
            scaling.enabled = true
            scaling.minReplicas = 2
            scaling.maxReplicas = 3
            scaling.metric = .cpu
            scaling.target = 70
            spec2.autoscaling = scaling
            let v2 = Self.render(spec2, kv)
            let kinds = v2.objects.map(\.kind)
            #expect((kinds.firstIndex(of: "Deployment") ?? 99) < (kinds.firstIndex(of: "HorizontalPodAutoscaler") ?? -1))
            let cm1 = try Self.configObject(v1).name, cm2 = try Self.configObject(v2).name

            let second = try await deployer.apply(v2.objects, options: Self.fastOptions)
            guard case .aborted(let reason) = second.outcome else {
                Issue.record("expected an aborted apply, got \(second.summary)")
                return
            }
            #expect(reason.hasPrefix("horizontalpodautoscaler/itest was refused by a ResourceQuota"), "\(reason)")
            #expect(reason.contains("exceeded quota: no-hpa"), "\(reason)")
            #expect(second.objects.contains("deployment/itest configured"), "\(second.objects)")
            #expect(second.objects.contains("configmap/\(cm2) created"), "\(second.objects)")
            #expect(second.undoFailed.isEmpty, "\(second.undoFailed)")
            #expect(second.undone.contains { $0.hasPrefix("deployment/itest restored to the pod template of revision 1 (configmap \(cm1))") },
                    "\(second.undone)")
            #expect(second.undone.contains("service/itest restored to its previous state"), "\(second.undone)")
            #expect(second.summary.contains("apply stopped: horizontalpodautoscaler/itest") && second.summary.contains("undone:"))
            #expect(events.lines.contains { $0.contains("undoing this apply's changes") })

            // The previous state is back: template (so ConfigMap), replica count, Service; no HPA.
            let after = try await client.get("/apis/apps/v1/namespaces/\(ns)/deployments/itest")
            #expect(after.at("spec", "template") == before.at("spec", "template"))
            #expect(after.at("spec", "replicas") == .int(2))
            let live = try await Self.liveConfig(client, ns)
            #expect(live.name == cm1)
            #expect(live.data == JSONValue(try Self.configObject(v1).value)["data"])
            let serviceAfter = try await client.get("/api/v1/namespaces/\(ns)/services/itest")
            #expect(serviceAfter.at("metadata", "labels") == serviceBefore.at("metadata", "labels"))
            #expect(serviceAfter["spec"] == serviceBefore["spec"])
            #expect(try await client.getIfExists("/apis/autoscaling/v2beta2/namespaces/\(ns)/horizontalpodautoscalers/itest") == nil)
            let status = try await deployer.status("itest")
            #expect(status.snapshot.state == .complete && status.snapshot.counts.ready == 2)
            // v2's ConfigMap goes only if no ReplicaSet (the interrupted revision's) refers to it.
            let users = try await deployer.revisionsUsing(configMap: cm2, deployment: "itest")
            let cm2Exists = try await client.getIfExists("/api/v1/namespaces/\(ns)/configmaps/\(cm2)") != nil
            if users.isEmpty {
                #expect(!cm2Exists)
                #expect(second.undone.contains("configmap/\(cm2) deleted (this apply created it)"), "\(second.undone)")
            } else {
                #expect(cm2Exists)
                #expect(second.undone.contains { $0.hasPrefix("configmap/\(cm2) kept: revision \(users[0]) of deployment/itest refers to it") },
                        "\(second.undone)")
            }
        }
    }

    // A rollout that does not finish within --timeout: the apply is undone (as a refused write is).
    @Test(.timeLimit(.minutes(3)))
    func rolloutTimeoutUndoesTheApply() async throws {
        try await Self.withNamespace("timeout") { client, ns, kv in
            let deployer = KubeDeployer(client: client, namespace: ns)
            let v1 = Self.render(try Self.spec(image: "registry.invalid/autoglm:v1", version: "1.0.0"), kv)
            let v2 = Self.render(try Self.spec(image: "registry.invalid/autoglm:bad-v2", version: "2.0.0"), kv)
            let first = try await deployer.apply(v1.objects, options: Self.fastOptions)
            #expect(first.succeeded, "\(first.summary)")
            var options = Self.fastOptions
            options.timeoutSeconds = 4  // well inside the 15 s progress deadline: the wait gives up first
            let second = try await deployer.apply(v2.objects, options: options)
            guard case .aborted(let reason) = second.outcome else {
                Issue.record("expected an aborted apply, got \(second.summary)")
                return
            }
            #expect(reason.contains("deployment/itest did not finish rolling out within 4 s"), "\(reason)")
            let cm1 = try Self.configObject(v1).name
            #expect(second.undone.contains { $0.hasPrefix("deployment/itest restored to the pod template of revision 1 (configmap \(cm1))") },
                    "\(second.undone)")
            #expect(second.undoFailed.isEmpty, "\(second.undoFailed)")
            let status = try await deployer.status("itest")
            #expect(status.snapshot.state == .complete)
            #expect(status.snapshot.images == ["registry.invalid/autoglm:v1"])
            #expect(try await Self.liveConfig(client, ns).name == cm1)

            // With --no-rollback the timed-out rollout stays, and the timeout is the error.
            options.autoRollback = false
            do throws(KubeError) {
                let r = try await deployer.apply(v2.objects, options: options)
                Issue.record("expected a rollout timeout, got \(r.summary)")
            } catch {
                guard case .rolloutTimeout(let name, let seconds, _) = error else { Issue.record("got \(error)"); return }
                #expect(name == "itest" && seconds == 4)
            }
            #expect(try await Self.liveConfig(client, ns).name == (try Self.configObject(v2).name))
        }
    }
}
