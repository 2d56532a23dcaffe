import Core
import Foundation
import Testing
@testable import Spec
@testable import Deploy

/// The pure parts of content-named ConfigMaps, their garbage collection, apply's preflight and
/// its compensation (undo) planning. The cluster side is in KubeIntegrationTests.
@Suite struct AtomicApplyTests {
    static func spec(version: String? = nil, autoscaling: Bool = false, serviceMonitor: Bool = false) -> Spec {
        var s = Spec(name: "demo", model: ModelSpec(ref: "gemma3-270m", version: version))
        s.monitoring.serviceMonitor = serviceMonitor
        if autoscaling {
            var a = AutoscalingSpec()
            a.enabled = true
            a.maxReplicas = 3
            a.metric = .cpu
            a.target = 70
            s.autoscaling = a
        }
        return s
    }

    static func configMap(_ r: RenderResult) throws -> JSONValue {
        JSONValue(try #require(r.objects.first { $0.kind == "ConfigMap" }).value)
    }

    static func deployment(_ r: RenderResult) throws -> JSONValue {
        JSONValue(try #require(r.objects.first { $0.kind == "Deployment" }).value)
    }

    // MARK: content-named ConfigMaps

    @Test func fnvMatchesTheReferenceVectors() {
        // FNV-1a 64-bit test vectors (Fowler/Noll/Vo reference: "" and "a", "foobar").
        #expect(fnv1a64Hex("") == "cbf29ce484222325")
        #expect(fnv1a64Hex("a") == "af63dc4c8601ec8c")
        #expect(fnv1a64Hex("foobar") == "85944171f73967e8")
    }

    @Test func configMapIsNamedAfterItsDataImmutableAndMountedByName() throws {
        let r = KubeRenderer.render(Self.spec(version: "1.0.0"))
        let cm = try Self.configMap(r)
        let data = try #require(cm.at("data", "autoglm.yaml")?.string)
        let name = try #require(cm.at("metadata", "name")?.string)
        #expect(name == "demo-config-" + fnv1a64Hex(data))
        #expect(cm["immutable"] == .bool(true))
        #expect(cm.at("metadata", "labels", "autoglm.dev/config-of") == .string("demo"))
        #expect(cm.at("metadata", "labels", "app.kubernetes.io/instance") == .string("demo"))
        // The pod template mounts exactly that ConfigMap.
        let dep = try Self.deployment(r)
        #expect(ConfigHistory.configMaps(ofTemplate: dep.at("spec", "template")) == [name])
        // Created before the Deployment that mounts it.
        let cmIndex = try #require(r.objects.firstIndex { $0.kind == "ConfigMap" })
        #expect(cmIndex < (try #require(r.objects.firstIndex { $0.kind == "Deployment" })))
    }

    @Test func aConfigChangeIsATemplateChange() throws {
        let a = KubeRenderer.render(Self.spec(version: "1.0.0"))
        let again = KubeRenderer.render(Self.spec(version: "1.0.0"))
        let b = KubeRenderer.render(Self.spec(version: "2.0.0"))
        let nameA = try Self.configMap(a).at("metadata", "name")
        #expect(nameA == (try Self.configMap(again).at("metadata", "name")))
        #expect(nameA != (try Self.configMap(b).at("metadata", "name")))
        #expect(try Self.configMap(b).at("data", "autoglm.yaml")?.string?.contains("2.0.0") == true)
        // Different config, different pod template (so Kubernetes makes a new ReplicaSet revision).
        #expect(try Self.deployment(a).at("spec", "template") != (try Self.deployment(b).at("spec", "template")))
        #expect(try Self.deployment(a).at("spec", "template") == (try Self.deployment(again).at("spec", "template")))
    }

    // MARK: which ConfigMaps a revision uses, which may go

    static func template(volumes: [String], envFrom: [String] = [], keyRefs: [String] = []) -> JSONValue {
        .object(["spec": .object([
            "volumes": .array(volumes.map { .object(["name": .string("v-\($0)"), "configMap": .object(["name": .string($0)])]) }
                              + [.object(["name": "tmp", "emptyDir": .object([:])])]),
            "initContainers": .array([.object(["name": "init", "envFrom": .array(envFrom.map { .object(["configMapRef": .object(["name": .string($0)])]) })])]),
            "containers": .array([.object(["name": "main", "env": .array(keyRefs.map {
                .object(["name": "X", "valueFrom": .object(["configMapKeyRef": .object(["name": .string($0), "key": "k"])])])
            })])]),
        ])])
    }

    @Test func configMapsOfATemplate() {
        #expect(ConfigHistory.configMaps(ofTemplate: Self.template(volumes: ["a", "b"], envFrom: ["c"], keyRefs: ["d", "a"])) == ["a", "b", "c", "d"])
        let projected: JSONValue = .object(["spec": .object(["volumes": .array([.object(["name": "p", "projected": .object(["sources": .array([
            .object(["configMap": .object(["name": "e"])]), .object(["secret": .object(["name": "s"])]),
        ])])])])])])
        #expect(ConfigHistory.configMaps(ofTemplate: projected) == ["e"])
        #expect(ConfigHistory.configMaps(ofTemplate: nil) == [])
    }

    @Test func retainedRevisionsFollowTheControllersRule() {
        let sets = (1...6).map { RevisionConfig(revision: $0, configMaps: ["c\($0)"], live: false) }
        // The current revision and the 2 newest others.
        #expect(ConfigHistory.retainedRevisions(sets, currentRevision: 6, historyLimit: 2) == [6, 5, 4])
        // A ReplicaSet with pods is never dropped, whatever its age.
        var withLive = sets
        withLive[0].live = true
        #expect(ConfigHistory.retainedRevisions(withLive, currentRevision: 6, historyLimit: 2) == [6, 5, 4, 1])
        // Whichever revision is current counts as current, not as history.
        #expect(ConfigHistory.retainedRevisions(sets, currentRevision: 3, historyLimit: 1) == [3, 6])
        #expect(ConfigHistory.retainedRevisions(sets, currentRevision: 6, historyLimit: 0) == [6])
    }

    @Test func collectableConfigMaps() {
        let sets = [
            RevisionConfig(revision: 4, configMaps: ["demo-config-000000000000000d"], live: true),
            RevisionConfig(revision: 3, configMaps: ["demo-config-000000000000000c"], live: false),
            RevisionConfig(revision: 2, configMaps: ["demo-config-000000000000000b"], live: false),
            RevisionConfig(revision: 1, configMaps: ["demo-config-000000000000000a", "shared"], live: true),
        ]
        let candidates = ["demo-config-000000000000000a", "demo-config-000000000000000b", "demo-config-000000000000000c",
                          "demo-config-000000000000000d", "demo-config-00000000000000ff", "demo-config-dashboard",
                          "other-config-0000000000000001", "demo-config-"]
        // limit 1: revision 4 (current), 3 (newest old), 1 (has pods) stay; 2 is past the limit.
        #expect(ConfigHistory.collectable(candidates: candidates, prefix: "demo-config-",
                                          deploymentTemplate: Self.template(volumes: ["demo-config-000000000000000d"]),
                                          sets: sets, currentRevision: 4, historyLimit: 1)
                == ["demo-config-000000000000000b", "demo-config-00000000000000ff"])
        // The Deployment's own template protects its ConfigMap even before a ReplicaSet exists for it.
        #expect(ConfigHistory.collectable(candidates: candidates, prefix: "demo-config-",
                                          deploymentTemplate: Self.template(volumes: ["demo-config-00000000000000ff"]),
                                          sets: sets, currentRevision: 4, historyLimit: 1)
                == ["demo-config-000000000000000b"])
        // A larger history keeps all of them.
        #expect(ConfigHistory.collectable(candidates: candidates, prefix: "demo-config-",
                                          deploymentTemplate: Self.template(volumes: ["demo-config-000000000000000d"]),
                                          sets: sets, currentRevision: 4, historyLimit: 10)
                == ["demo-config-00000000000000ff"])
    }

    @Test func revisionConfigFromAReplicaSet() {
        let rs: JSONValue = .object([
            "metadata": .object(["annotations": .object([RolloutSnapshot.revisionAnnotation: "7"])]),
            "spec": .object(["replicas": 0, "template": Self.template(volumes: ["x"])]),
            "status": .object(["replicas": 0]),
        ])
        #expect(RevisionConfig(replicaSet: rs) == RevisionConfig(revision: 7, configMaps: ["x"], live: false))
        var scaling = rs
        scaling["status"] = .object(["replicas": 1])
        #expect(RevisionConfig(replicaSet: scaling)?.live == true)
        var unnumbered = rs
        unnumbered["metadata"] = .object([:])
        #expect(RevisionConfig(replicaSet: unnumbered) == nil)
    }

    // MARK: preflight

    @Test func requiredAccessPerApplyMode() {
        let resources: [(apiVersion: String, plural: String)] = [
            ("v1", "configmaps"), ("apps/v1", "deployments"), ("policy/v1", "poddisruptionbudgets"),
        ]
        let ssa = KubePreflight.requiredAccess(resources: resources, mode: .serverSide).map(\.description)
        #expect(ssa == [
            "get configmaps", "create configmaps", "patch configmaps", "update configmaps", "delete configmaps", "list configmaps",
            "get deployments.apps", "create deployments.apps", "patch deployments.apps", "update deployments.apps",
            "delete deployments.apps", "list replicasets.apps",
            "get poddisruptionbudgets.policy", "create poddisruptionbudgets.policy", "patch poddisruptionbudgets.policy",
            "update poddisruptionbudgets.policy", "delete poddisruptionbudgets.policy",
        ])
        let cs = KubePreflight.requiredAccess(resources: resources, mode: .clientSide).map(\.description)
        // create/replace never patches, except the Deployment (rollback patches its template).
        #expect(!cs.contains("patch configmaps") && !cs.contains("patch poddisruptionbudgets.policy"))
        #expect(cs.contains("patch deployments.apps") && cs.contains("update configmaps"))
        #expect(KubePreflight.requiredAccess(resources: resources, mode: .auto) == KubePreflight.requiredAccess(resources: resources, mode: .serverSide))
    }

    @Test func preflightFixesNameTheSpecKeys() {
        let sm = KubePreflight.missingKindFix(apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", servedVersions: [])
        #expect(sm.contains("Prometheus Operator CRDs") && sm.contains("monitoring.serviceMonitor: false"))
        let hpa = KubePreflight.missingKindFix(apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler",
                                               servedVersions: ["autoscaling/v1", "autoscaling/v2beta2"])
        #expect(hpa.contains("autoscaling/v1, autoscaling/v2beta2") && hpa.contains("--kube-version") && hpa.contains("autoscaling.enabled: false"))
        // The spec keys the fixes name are real: setting them to false drops the objects.
        #expect(!KubeRenderer.render(Self.spec(serviceMonitor: false)).objects.contains { $0.kind == "ServiceMonitor" })
        #expect(KubeRenderer.render(Self.spec(serviceMonitor: true)).objects.contains { $0.kind == "ServiceMonitor" })
        #expect(KubeRenderer.render(Self.spec(autoscaling: true)).objects.contains { $0.kind == "HorizontalPodAutoscaler" })
        let loaded = try? SpecLoader.load(yaml: minimal + "monitoring: {serviceMonitor: false}\nautoscaling: {enabled: false}\n",
                                          file: "t.yaml", environment: nil, variables: [:])
        #expect(loaded?.spec.monitoring.serviceMonitor == false && loaded?.spec.autoscaling?.enabled == false)
    }

    @Test func accessProblemsGroupVerbsAndSayHowToGrant() {
        let denied = [
            AccessNeed(group: "apps", resource: "deployments", verb: "create"),
            AccessNeed(group: "apps", resource: "deployments", verb: "patch"),
            AccessNeed(group: "policy", resource: "poddisruptionbudgets", verb: "get"),
        ]
        let lines = KubePreflight.accessProblems(denied: denied, namespace: "llm", user: "ci")
        #expect(lines == [
            "user 'ci' may not create, patch deployments.apps in namespace 'llm'",
            "user 'ci' may not get poddisruptionbudgets.policy in namespace 'llm'",
            "grant them with a Role bound to that user: kubectl create role autoglm-deploy -n llm --verb=create,patch,get --resource=deployments.apps,poddisruptionbudgets.policy && kubectl create rolebinding autoglm-deploy -n llm --role=autoglm-deploy --user=USER (or --serviceaccount=NAMESPACE:NAME)",
        ])
        #expect(KubePreflight.accessProblems(denied: [], namespace: "llm", user: "ci").isEmpty)
        let ns = KubePreflight.accessProblems(denied: [AccessNeed(group: "", resource: "namespaces", verb: "create")], namespace: "llm", user: "ci")
        #expect(ns.count == 1 && ns[0].contains("kubectl create namespace llm"))
    }

    // MARK: compensation

    static func obj(_ kind: String, _ name: String) -> KubeObject {
        KubeObject(apiVersion: kind == "Deployment" ? "apps/v1" : "v1", kind: kind, name: name, value: .map([]))
    }

    @Test func undoPlanTakesBackLastChangeFirst() {
        let before: JSONValue = .object(["kind": "Service", "metadata": .object(["name": "demo", "resourceVersion": "5"])])
        let dep: JSONValue = .object(["kind": "Deployment", "metadata": .object(["name": "demo"])])
        let touched = [
            TouchedObject(object: Self.obj("ServiceAccount", "demo"), before: nil),
            TouchedObject(object: Self.obj("ConfigMap", "demo-config-1"), before: nil),
            TouchedObject(object: Self.obj("Service", "demo"), before: before),
            TouchedObject(object: Self.obj("Deployment", "demo"), before: dep),
            TouchedObject(object: Self.obj("HorizontalPodAutoscaler", "demo"), before: nil),
        ]
        #expect(UndoPlan.plan(touched) == [
            .delete(Self.obj("HorizontalPodAutoscaler", "demo")),
            .restore(Self.obj("Deployment", "demo"), before: dep),
            .restore(Self.obj("Service", "demo"), before: before),
            .delete(Self.obj("ConfigMap", "demo-config-1")),
            .delete(Self.obj("ServiceAccount", "demo")),
        ])
        #expect(UndoPlan.plan([]).isEmpty)
    }

    @Test func restoreBodyPutsThePreviousContentOverTheLiveVersion() {
        let template: JSONValue = .object(["metadata": .object(["labels": .object(["v": "1"])])])
        let before: JSONValue = .object([
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": .object([
                "name": "demo", "uid": "u1", "resourceVersion": "10", "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": .array([.object(["manager": "autoglm"])]),
                "labels": .object(["app.kubernetes.io/version": "1.0.0"]),
                "annotations": .object([RolloutSnapshot.revisionAnnotation: "1", "note": "mine"]),
            ]),
            "spec": .object(["replicas": 2, "template": template]),
            "status": .object(["readyReplicas": 2]),
        ])
        let live: JSONValue = .object([
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": .object([
                "name": "demo", "uid": "u1", "resourceVersion": "17", "generation": 4,
                "labels": .object(["app.kubernetes.io/version": "2.0.0"]),
                "annotations": .object([RolloutSnapshot.revisionAnnotation: "2"]),
            ]),
            "spec": .object(["replicas": 1, "template": .object([:])]),
        ])
        let body = UndoPlan.restoreBody(before: before, live: live)
        #expect(body == .object([
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": .object([
                "name": "demo", "uid": "u1", "resourceVersion": "17",
                "labels": .object(["app.kubernetes.io/version": "1.0.0"]),
                "annotations": .object([RolloutSnapshot.revisionAnnotation: "2", "note": "mine"]),
            ]),
            "spec": .object(["replicas": 2, "template": template]),
        ]))
        // A ServiceAccount keeps the token secrets the controller added meanwhile.
        let sa = UndoPlan.restoreBody(before: .object(["kind": "ServiceAccount", "metadata": .object(["name": "a"])]),
                                      live: .object(["kind": "ServiceAccount", "metadata": .object(["name": "a", "resourceVersion": "3"]),
                                                     "secrets": .array([.object(["name": "a-token-x"])])]))
        #expect(sa["secrets"] == .array([.object(["name": "a-token-x"])]))
        #expect(sa.at("metadata", "resourceVersion") == "3")
        let again = UndoPlan.recreateBody(before: before)
        #expect(again.at("metadata", "uid") == nil && again.at("metadata", "resourceVersion") == nil)
    }

    @Test func onlyRealChangesAreUndone() {
        let before: JSONValue = .object([
            "kind": "PodDisruptionBudget",
            "metadata": .object(["name": "demo", "resourceVersion": "4", "labels": .object(["a": "1"])]),
            "spec": .object(["minAvailable": 1]),
            "status": .object(["currentHealthy": 0]),
        ])
        var statusOnly = before
        statusOnly["status"] = .object(["currentHealthy": 2])
        statusOnly["metadata"]?["resourceVersion"] = "9"
        #expect(!UndoPlan.changed(before: before, live: statusOnly))
        var spec = before
        spec["spec"] = .object(["maxUnavailable": 1])
        #expect(UndoPlan.changed(before: before, live: spec))
        var label = before
        label["metadata"]?["labels"] = .object(["a": "2"])
        #expect(UndoPlan.changed(before: before, live: label))
        var revision = before
        revision["metadata"]?["annotations"] = .object([RolloutSnapshot.revisionAnnotation: "3"])
        #expect(!UndoPlan.changed(before: before, live: revision))
        let sa: JSONValue = .object(["kind": "ServiceAccount", "metadata": .object(["name": "a"])])
        var withToken = sa
        withToken["secrets"] = .array([.object(["name": "a-token-x"])])
        #expect(!UndoPlan.changed(before: sa, live: withToken))
    }

    @Test func abortedReportSaysWhatWasUndone() {
        var r = ApplyReport()
        r.outcome = .aborted(reason: "horizontalpodautoscaler/demo: refused")
        #expect(r.summary == "apply stopped: horizontalpodautoscaler/demo: refused\nnothing had been changed\nfix the cause and apply again")
        r.undone = ["deployment/demo restored to the pod template of revision 1", "configmap/demo-config-1 deleted (this apply created it)"]
        r.undoFailed = ["service/demo: conflict"]
        #expect(!r.succeeded)
        #expect(r.summary == """
        apply stopped: horizontalpodautoscaler/demo: refused
        undone:
          - deployment/demo restored to the pod template of revision 1
          - configmap/demo-config-1 deleted (this apply created it)
        NOT undone (fix by hand):
          - service/demo: conflict
        fix the cause and apply again
        """)
    }

    @Test func quotaRefusalIsNotCalledAPermissionProblem() {
        let body = Array(#"{"kind":"Status","message":"horizontalpodautoscalers.autoscaling \"demo\" is forbidden: exceeded quota: no-hpa, requested: count/horizontalpodautoscalers.autoscaling=1, used: count/horizontalpodautoscalers.autoscaling=0, limited: count/horizontalpodautoscalers.autoscaling=0","reason":"Forbidden","code":403}"#.utf8)
        let e = KubeClient.httpError(status: 403, body: body, method: "PATCH", path: "/apis/x", config: KubeConnectionConfig(server: "https://k"),
                                     what: "horizontalpodautoscaler/demo")
        guard case .quotaExceeded(let what, let detail) = e else { Issue.record("got \(e)"); return }
        #expect(what == "horizontalpodautoscaler/demo" && detail.contains("exceeded quota: no-hpa"))
        #expect(e.description.contains("ResourceQuota"))
        let denied = KubeClient.httpError(status: 403, body: Array(#"{"message":"deployments.apps is forbidden: User \"x\" cannot patch"}"#.utf8),
                                          method: "PATCH", path: "/apis/x", config: KubeConnectionConfig(server: "https://k"))
        guard case .forbidden = denied else { Issue.record("got \(denied)"); return }
    }
}
