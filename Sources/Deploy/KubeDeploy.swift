import Spec
import Spec
import Foundation
import Tracing

/// How objects are written.
public enum ApplyMode: String, Sendable, CaseIterable {
    /// Server-side apply, falling back to create/replace when the server does not support it.
    case auto
    /// Server-side apply only (field manager `autoglm`).
    case serverSide = "server-side"
    /// GET, then POST (create) or PUT (replace).
    case clientSide = "client-side"
}

/// What `KubeDeployer` reports while it works (for a live progress line).
public enum KubeEvent: Sendable {
    case applied(String)
    case note(String)
    case rollout(RolloutSnapshot)
    case rollingBack(String)
    /// The canary analysis' current state (replaced by the next one).
    case analysis(String)
}

public struct KubeDeployOptions: Sendable {
    public var applyMode: ApplyMode = .auto
    public var autoRollback = true
    /// Overall limit for one rollout wait; nil = the Deployment's progressDeadlineSeconds + 60 s.
    public var timeoutSeconds: Int?
    public var pollIntervalMilliseconds = 1000
    /// Create the namespace when it does not exist (after preflight; deleted again if the apply is undone).
    public var createNamespace = false
    /// Run a changed pod template as a canary first (`rollout.canaryPercent`); nil: no canary.
    public var canary: CanaryOptions?
    public init() {}
}

public enum ApplyOutcome: Sendable, Equatable {
    /// The new revision rolled out and is healthy.
    case rolledOut
    /// The new revision failed; the previous revision's pod template (and with it its ConfigMap)
    /// is live and healthy again, and the other objects this apply changed are restored.
    case rolledBack(failure: RolloutFailure, restoredRevision: Int, liveRevision: Int?)
    /// The new revision failed and nothing was rolled back (first revision, or --no-rollback).
    case failed(failure: RolloutFailure, why: String)
    /// A step failed after changes had begun (the API refused an object, the rollout wait timed
    /// out): what this apply changed was undone (`ApplyReport.undone`, `undoFailed`).
    case aborted(reason: String)
    /// The canary of the new pod template failed its analysis (or did not roll out): it was
    /// removed, the stable set was not changed, and what else this apply changed was undone.
    case canaryAborted(reason: String)
}

public struct ApplyReport: Sendable {
    /// `kind/name created|configured|unchanged`, in apply order.
    public var objects: [String] = []
    public var mode: ApplyMode = .serverSide
    public var previousRevision: Int?
    public var revision: Int?
    public var outcome: ApplyOutcome = .rolledOut
    /// What was taken back after a failure, one line per object (last change first).
    public var undone: [String] = []
    /// What could not be taken back, with the reason: fix these by hand.
    public var undoFailed: [String] = []
    /// Content-named ConfigMaps deleted after the rollout because no retained revision uses them.
    public var collected: [String] = []
    /// Remarks (e.g. a garbage collection that could not finish).
    public var notes: [String] = []
    /// This apply created the namespace (`createNamespace`).
    public var createdNamespace = false
    /// The canary analysis' verdict when the new template was promoted after a canary.
    public var canary: String?

    public var succeeded: Bool { outcome == .rolledOut }

    public var summary: String {
        switch outcome {
        case .rolledOut:
            return (canary.map { "canary promoted: \($0)\n" } ?? "")
                + "rolled out revision \(revision.map(String.init) ?? "?")"
                + (previousRevision.map { $0 == revision ? " (unchanged)" : " (previous: \($0))" } ?? "")
        case .rolledBack(let failure, let restored, let live):
            return "\(failure)\nrolled back automatically to the pod template of revision \(restored) (now live as revision \(live.map(String.init) ?? "?"), all replicas ready); fix the spec and apply again"
                + undoText(skipDeployment: true)
        case .failed(let failure, let why):
            return "\(failure)\nnot rolled back: \(why)" + undoText(skipDeployment: false)
        case .aborted(let reason):
            let nothing = undone.isEmpty && undoFailed.isEmpty
            return "apply stopped: \(reason)"
                + (nothing ? "\nnothing had been changed" : undoText(skipDeployment: false))
                + "\nfix the cause and apply again"
        case .canaryAborted(let reason):
            return "canary aborted: \(reason)\nthe stable set was not changed (revision \(previousRevision.map(String.init) ?? "?"))"
                + undoText(skipDeployment: false)
        }
    }

    func undoText(skipDeployment: Bool) -> String {
        var s = ""
        let lines = skipDeployment ? undone.filter { !$0.hasPrefix("deployment/") } : undone
        if !lines.isEmpty { s += "\nundone:\n" + lines.map { "  - " + $0 }.joined(separator: "\n") }
        if !undoFailed.isEmpty { s += "\nNOT undone (fix by hand):\n" + undoFailed.map { "  - " + $0 }.joined(separator: "\n") }
        return s
    }
}

public struct RollbackReport: Sendable, Equatable {
    public var fromRevision: Int?
    public var toRevision: Int
    /// The revision number the restored template got (Kubernetes renumbers it).
    public var liveRevision: Int?
    /// The ConfigMaps the restored template mounts (its content-named config).
    public var configMaps: [String]

    public init(fromRevision: Int?, toRevision: Int, liveRevision: Int?, configMaps: [String] = []) {
        self.fromRevision = fromRevision
        self.toRevision = toRevision
        self.liveRevision = liveRevision
        self.configMaps = configMaps
    }
}

public struct StatusReport: Sendable {
    public var snapshot: RolloutSnapshot
    /// (revision, images, ConfigMaps, ready/replicas) of each ReplicaSet kept, newest first.
    public var history: [(revision: Int, images: [String], configMaps: [String], replicas: Int, ready: Int)]
    public var pods: [PodProblem]
    /// The canary track, while a canary of a new template runs (`deploy apply` with canaryPercent).
    public var canary: RolloutSnapshot?

    public var summary: String {
        var s = snapshot.summary
        if let c = canary {
            s += "  canary track: deployment/\(c.name): \(c.line)\n"
                + (c.images.isEmpty ? "" : "    images: \(c.images.joined(separator: ", "))\n")
        }
        if !history.isEmpty {
            s += "  history:\n"
            for h in history {
                let live = h.revision == snapshot.revision ? "  <- live" : ""
                let config = h.configMaps.isEmpty ? "" : ", config \(h.configMaps.joined(separator: ", "))"
                s += "    revision \(h.revision): \(h.images.joined(separator: ", "))\(config) (\(h.ready)/\(h.replicas) ready)\(live)\n"
            }
        }
        let bad = pods.filter { !$0.ready }
        if !bad.isEmpty {
            s += "  unhealthy pods:\n"
            for p in bad { s += "    \(p)\n" }
        }
        return s
    }
}

/// Applies rendered objects to a cluster, watches the Deployment's rollout, rolls back on failure.
public struct KubeDeployer: Sendable {
    public static let fieldManager = "autoglm"
    public let client: KubeClient
    public let namespace: String
    public let progress: @Sendable (KubeEvent) -> Void

    public init(client: KubeClient, namespace: String? = nil, progress: @escaping @Sendable (KubeEvent) -> Void = { _ in }) {
        self.client = client
        self.namespace = namespace ?? client.config.namespace
        self.progress = progress
    }

    // MARK: apply

    /// Applies `objects` all or nothing:
    /// 1. preflight (every kind served, every permission granted) before anything changes;
    /// 2. each object is read, then written (the new content-named ConfigMap before the Deployment);
    /// 3. the Deployment's rollout is watched; when it fails (and `autoRollback`), or when a write
    ///    fails, or the wait times out, what this apply changed is undone: objects it created are
    ///    deleted, objects it changed get their previous state back (the Deployment its previous
    ///    pod template, i.e. its previous revision, with its ConfigMap);
    /// 4. after a healthy rollout, ConfigMaps no retained revision uses are garbage-collected.
    public func apply(_ objects: [KubeObject], options: KubeDeployOptions = KubeDeployOptions()) async throws(KubeError) -> ApplyReport {
        var report = ApplyReport()
        var namespaceExists = true
        do throws(KubeError) {
            namespaceExists = try await client.namespaceExists(namespace)
        } catch .forbidden {
            // Not allowed to read namespaces (a namespaced Role): preflight and the writes will tell.
        }
        if !namespaceExists && !options.createNamespace { throw .namespaceMissing(namespace) }
        try await traceStep("deploy.preflight") { () throws(KubeError) in
            try await preflight(objects, mode: options.applyMode, createNamespace: !namespaceExists, canary: options.canary != nil)
        }
        if !namespaceExists {
            try await client.createNamespace(namespace)
            report.createdNamespace = true
            progress(.applied("namespace/\(namespace) created"))
        }

        // The state before: what compensation puts back.
        var before: [JSONValue?] = []
        for o in objects {
            let res = KubeResource(apiVersion: o.apiVersion, kind: o.kind)
            before.append(try await client.getIfExists(res.path(name: o.name, namespace: namespace),
                                                       what: "\(o.kind.lowercased())/\(o.name)"))
        }
        let deploymentIndex = objects.firstIndex { $0.kind == "Deployment" }
        if let i = deploymentIndex {
            report.previousRevision = before[i].flatMap { RolloutSnapshot.evaluate($0).revision }
        }

        var touched: [TouchedObject] = []
        var mode: ApplyMode = options.applyMode == .clientSide ? .clientSide : .serverSide
        // A changed pod template with rollout.canaryPercent runs as a canary first: every object
        // but the Deployment is written now, the Deployment only once the canary passed.
        var canary: CanaryOptions?
        if let c = options.canary, let i = deploymentIndex, let live = before[i],
           KubeCanary.recordedDigest(live) != KubeCanary.templateDigest(JSONValue(objects[i].value)) {
            canary = c
        }
        for (i, o) in objects.enumerated() {
            if canary != nil && i == deploymentIndex { continue }
            touched.append(TouchedObject(object: o, before: before[i]))
            let result: String
            let used: ApplyMode
            do throws(KubeError) {
                (result, used) = try await traceStep("deploy.write", ["k8s.object": "\(o.kind.lowercased())/\(o.name)"]) { () throws(KubeError) in
                    try await applyObject(o, mode: mode, allowFallback: options.applyMode == .auto)
                }
            } catch {
                let what = "\(o.kind.lowercased())/\(o.name)"
                let reason = error.description.hasPrefix(what) ? error.description : "\(what): \(error.description)"
                progress(.rollingBack("applying \(o.kind.lowercased())/\(o.name) failed; undoing this apply's changes"))
                return await abort(report, reason: reason, touched: touched, options: options)
            }
            if used != mode {
                progress(.note("the server does not support server-side apply; using create/replace"))
                mode = used
            }
            report.objects.append("\(o.kind.lowercased())/\(o.name) \(result)")
            progress(.applied("\(o.kind.lowercased())/\(o.name) \(result)"))
        }
        report.mode = mode
        guard let di = deploymentIndex else { return report }
        let d = objects[di]
        guard let c = canary, let live = before[di] else {
            return try await watchRollout(d, report: report, touched: touched, options: options)
        }

        let verdict: CanaryVerdict
        do throws(KubeError) {
            verdict = try await traceStep("deploy.canary", ["k8s.object": "deployment/\(KubeCanary.name(d.name))"]) { () throws(KubeError) in
                try await runCanary(stamped(JSONValue(d.value)), live: live, mode: mode, canary: c, options: options)
            }
        } catch {
            verdict = .rollback(error.description)
        }
        guard case .promote(let why) = verdict else {
            let reason: String
            if case .rollback(let r) = verdict { reason = r } else { reason = "no verdict" }
            progress(.rollingBack("canary aborted: \(reason); removing it"))
            var r = report
            do throws(KubeError) {
                if let line = try await removeCanary(d.name) { r.undone.append(line + " (the canary)") }
            } catch {
                r.undoFailed.append("deployment/\(KubeCanary.name(d.name)): \(error.description)")
            }
            let u = await undo(touched, options: options)
            r.undone += u.undone
            r.undoFailed += u.failed
            r.revision = report.previousRevision
            r.outcome = .canaryAborted(reason: reason)
            return r
        }
        progress(.note("canary passed: \(why); promoting"))
        report.canary = why
        touched.append(TouchedObject(object: d, before: live))
        do throws(KubeError) {
            let (result, _) = try await traceStep("deploy.write", ["k8s.object": "deployment/\(d.name)"]) { () throws(KubeError) in
                try await applyObject(d, mode: mode, allowFallback: options.applyMode == .auto)
            }
            report.objects.append("deployment/\(d.name) \(result)")
            progress(.applied("deployment/\(d.name) \(result)"))
        } catch {
            progress(.rollingBack("applying deployment/\(d.name) failed; undoing this apply's changes"))
            var r = await abort(report, reason: error.description, touched: touched, options: options)
            if let line = try? await removeCanary(d.name) { r.undone.append(line + " (the canary)") }
            return r
        }
        var r: ApplyReport
        do throws(KubeError) {
            r = try await watchRollout(d, report: report, touched: touched, options: options)
        } catch {
            _ = try? await removeCanary(d.name)
            throw error
        }
        do throws(KubeError) {
            if let line = try await removeCanary(d.name) { r.objects.append(line + " (promoted)") }
        } catch {
            r.notes.append("the canary deployment/\(KubeCanary.name(d.name)) could not be removed: \(error.description)")
        }
        return r
    }

    /// Follows the Deployment's rollout after `apply` wrote it; on failure rolls back (undoes
    /// `touched`) unless `autoRollback` is off; after a healthy rollout collects old ConfigMaps.
    func watchRollout(_ d: KubeObject, report: ApplyReport, touched: [TouchedObject], options: KubeDeployOptions) async throws(KubeError) -> ApplyReport {
        var report = report
        let timeout = options.timeoutSeconds ?? ((JSONValue(d.value).at("spec", "progressDeadlineSeconds")?.int ?? 600) + 60)
        let snap: RolloutSnapshot
        do throws(KubeError) {
            snap = try await traceStep("deploy.rollout") { () throws(KubeError) in
                try await waitForRollout(d.name, timeoutSeconds: timeout, pollMs: options.pollIntervalMilliseconds)
            }
        } catch {
            guard options.autoRollback else { throw error }
            progress(.rollingBack("\(error.description)\nundoing this apply's changes"))
            return await abort(report, reason: error.description, touched: touched, options: options)
        }
        report.revision = snap.revision
        guard case .failed(let reason, let message) = snap.state else {
            do throws(KubeError) {
                report.collected = try await collectConfigMaps(d.name)
            } catch {
                report.notes.append("old ConfigMaps of deployment/\(d.name) were not garbage-collected: \(error.description)")
                progress(.note(report.notes[report.notes.count - 1]))
            }
            return report
        }

        let pods = await podsOfLiveRevision(d.name)
        let failure = RolloutFailure(deployment: d.name, revision: snap.revision, reason: reason, message: message, pods: pods)
        guard options.autoRollback else {
            report.outcome = .failed(failure: failure, why: "automatic rollback is off (--no-rollback); run 'autoglm deploy rollback' to go back")
            return report
        }
        if let previous = report.previousRevision, previous != snap.revision {
            // This apply changed the pod template: putting every object back restores the previous
            // template (the controller reuses revision `previous`'s ReplicaSet) and its ConfigMap.
            progress(.rollingBack("rollout failed (\(reason)); rolling back to revision \(previous)"))
            let u = await undo(touched, options: options)
            report.undone = u.undone
            report.undoFailed = u.failed
            report.outcome = u.deploymentRestored
                ? .rolledBack(failure: failure, restoredRevision: previous, liveRevision: u.liveRevision)
                : .failed(failure: failure, why: "rolling back to revision \(previous) failed too")
            return report
        }
        // The template was already live before this apply (an earlier rollout failed): go back to
        // the revision before it.
        let older = try await replicaSets(of: d.name).map { $0.revision }.filter { $0 < (snap.revision ?? Int.max) }.max()
        guard let target = older else {
            report.outcome = .failed(failure: failure, why: "this is the first revision of deployment/\(d.name), there is nothing to roll back to")
            return report
        }
        progress(.rollingBack("rollout failed (\(reason)); rolling back to revision \(target)"))
        let rb = try await rollback(d.name, toRevision: target, options: options)
        let u = await undo(touched.filter { $0.object.kind != "Deployment" }, options: options)
        report.undone = u.undone
        report.undoFailed = u.failed
        report.outcome = .rolledBack(failure: failure, restoredRevision: target, liveRevision: rb.liveRevision)
        return report
    }

    /// Undoes `touched` after a failed step and reports it as aborted.
    func abort(_ report: ApplyReport, reason: String, touched: [TouchedObject], options: KubeDeployOptions) async -> ApplyReport {
        let span = startSpan("deploy.rollback")
        span.attributes["autoglm.reason"] = reason
        defer { span.end() }
        var r = report
        let u = await undo(touched, options: options)
        r.undone = u.undone
        r.undoFailed = u.failed
        if r.createdNamespace && u.failed.isEmpty {
            do throws(KubeError) {
                try await client.deleteNamespace(namespace)
                r.undone.append("namespace/\(namespace) deleted (this apply created it)")
            } catch {
                r.undoFailed.append("namespace/\(namespace): \(error.description)")
            }
        }
        if u.deploymentRestored { r.revision = u.liveRevision }
        r.outcome = .aborted(reason: reason)
        return r
    }

    /// Writes one object; returns what happened and the mode that worked.
    /// (A Deployment is written with its template digest, `KubeCanary.templateDigestAnnotation`.)
    func applyObject(_ o: KubeObject, mode: ApplyMode, allowFallback: Bool) async throws(KubeError) -> (String, ApplyMode) {
        let body = o.kind == "Deployment" ? stamped(JSONValue(o.value)) : JSONValue(o.value)
        return try await applyBody(KubeResource(apiVersion: o.apiVersion, kind: o.kind), name: o.name, body: body,
                                   mode: mode, allowFallback: allowFallback)
    }

    /// `deployment` with the digest of its pod template in its annotations.
    func stamped(_ deployment: JSONValue) -> JSONValue {
        var d = deployment
        var annotations = d.at("metadata", "annotations")?.object ?? [:]
        annotations[KubeCanary.templateDigestAnnotation] = .string(KubeCanary.templateDigest(deployment))
        d["metadata"]?["annotations"] = .object(annotations)
        return d
    }

    /// Writes one object's body; returns what happened and the mode that worked.
    func applyBody(_ res: KubeResource, name: String, body rendered: JSONValue, mode: ApplyMode, allowFallback: Bool) async throws(KubeError) -> (String, ApplyMode) {
        var body = rendered
        if res.namespaced { body["metadata"]?["namespace"] = .string(namespace) }
        let path = res.path(name: name, namespace: namespace)
        let what = "\(res.kind.lowercased())/\(name)"
        if mode == .serverSide {
            let q = KubePath.query([("fieldManager", Self.fieldManager), ("force", "true")])
            let r = try await client.send("PATCH", path + q, body: body.bytes, contentType: "application/apply-patch+yaml")
            switch r.status {
            case 200: return ("configured", .serverSide)
            case 201: return ("created", .serverSide)
            case 415 where allowFallback:
                break  // no server-side apply here: create/replace below
            case 404:
                throw missing(r, res: res)
            default:
                throw KubeClient.httpError(status: r.status, body: r.body, method: "PATCH", path: path, config: client.config, what: what)
            }
        }
        // Client-side: create, or replace with the live resourceVersion.
        let q = KubePath.query([("fieldManager", Self.fieldManager)])
        for attempt in 0..<3 {
            let cur = try await client.send("GET", path)
            if cur.status == 404 {
                let r = try await client.send("POST", res.collectionPath(namespace: namespace) + q, body: body.bytes)
                if r.status == 201 || r.status == 200 { return ("created", .clientSide) }
                if r.status == 409 && attempt < 2 { continue }
                if r.status == 404 { throw missing(r, res: res) }
                throw KubeClient.httpError(status: r.status, body: r.body, method: "POST", path: path, config: client.config, what: what)
            }
            guard cur.status == 200, let live = cur.json else {
                throw KubeClient.httpError(status: cur.status, body: cur.body, method: "GET", path: path, config: client.config, what: what)
            }
            if res.kind == "PersistentVolumeClaim" { return ("unchanged (a claim's spec cannot change)", .clientSide) }
            var next = body
            next["metadata"]?["resourceVersion"] = live.at("metadata", "resourceVersion")
            // Keep annotations that controllers set (e.g. deployment.kubernetes.io/revision); ours win.
            if var annotations = live.at("metadata", "annotations")?.object {
                for (k, v) in next.at("metadata", "annotations")?.object ?? [:] { annotations[k] = v }
                next["metadata"]?["annotations"] = .object(annotations)
            }
            if res.kind == "Service" {
                // clusterIP is assigned by the server and immutable.
                next["spec"]?["clusterIP"] = live.at("spec", "clusterIP")
                if let ips = live.at("spec", "clusterIPs") { next["spec"]?["clusterIPs"] = ips }
            }
            if res.kind == "Deployment", next.at("spec", "replicas") == nil, let n = live.at("spec", "replicas") {
                next["spec"]?["replicas"] = n  // the HPA owns the count
            }
            if res.kind == "ServiceAccount", let secrets = live["secrets"] { next["secrets"] = secrets }
            let r = try await client.send("PUT", path + q, body: next.bytes)
            if r.status == 200 || r.status == 201 { return ("configured", .clientSide) }
            if r.status == 409 && attempt < 2 { continue }
            throw KubeClient.httpError(status: r.status, body: r.body, method: "PUT", path: path, config: client.config, what: what)
        }
        throw .conflict(what: what, detail: "it kept changing while being replaced")
    }

    func missing(_ r: KubeResponse, res: KubeResource) -> KubeError {
        if r.json?.at("details", "kind")?.string == "namespaces" { return .namespaceMissing(namespace) }
        return .resourceTypeMissing(apiVersion: res.apiVersion, kind: res.kind, server: client.config.server)
    }

    // MARK: rollout

    /// Polls the Deployment until its rollout completes or fails (or `timeoutSeconds` pass).
    public func waitForRollout(_ name: String, timeoutSeconds: Int, pollMs: Int = 1000) async throws(KubeError) -> RolloutSnapshot {
        let start = ContinuousClock.now
        let path = KubeResource.deployments.path(name: name, namespace: namespace)
        var last: RolloutSnapshot?
        while true {
            let dep = try await client.get(path, what: "deployment/\(name)")
            let snap = RolloutSnapshot.evaluate(dep)
            progress(.rollout(snap))
            last = snap
            if case .waiting = snap.state {} else { return snap }
            if ContinuousClock.now - start > .seconds(timeoutSeconds) {
                throw .rolloutTimeout(deployment: name, seconds: timeoutSeconds, last: last?.line ?? "unknown")
            }
            try? await Task.sleep(for: .milliseconds(pollMs))
        }
    }

    /// ReplicaSets owned by the Deployment, newest revision first.
    public func replicaSets(of name: String) async throws(KubeError) -> [(revision: Int, rs: JSONValue)] {
        let dep = try await client.get(KubeResource.deployments.path(name: name, namespace: namespace), what: "deployment/\(name)")
        let uid = dep.at("metadata", "uid")?.string
        let selector = Self.selector(dep.at("spec", "selector", "matchLabels"))
        let list = try await client.get(KubeResource.replicaSets.collectionPath(namespace: namespace)
                                        + KubePath.query([("labelSelector", selector)]))
        var out: [(revision: Int, rs: JSONValue)] = []
        for rs in list["items"]?.array ?? [] {
            let owners = rs.at("metadata", "ownerReferences")?.array ?? []
            guard owners.contains(where: { $0["uid"]?.string == uid }) else { continue }
            guard let rev = rs.at("metadata", "annotations", RolloutSnapshot.revisionAnnotation)?.string.flatMap({ Int($0) }) else { continue }
            out.append((revision: rev, rs: rs))
        }
        return out.sorted { $0.revision > $1.revision }
    }

    static func selector(_ labels: JSONValue?) -> String {
        (labels?.object ?? [:]).sorted { $0.key < $1.key }.compactMap { k, v in v.string.map { "\(k)=\($0)" } }.joined(separator: ",")
    }

    /// Pods of the Deployment's current revision, diagnosed (best effort: empty on error).
    func podsOfLiveRevision(_ name: String) async -> [PodProblem] {
        do {
            let dep = try await client.get(KubeResource.deployments.path(name: name, namespace: namespace))
            let rev = RolloutSnapshot.evaluate(dep).revision
            guard let rs = try await replicaSets(of: name).first(where: { $0.revision == rev })?.rs,
                  let hash = rs.at("metadata", "labels", "pod-template-hash")?.string else { return [] }
            var sel = Self.selector(dep.at("spec", "selector", "matchLabels"))
            sel += (sel.isEmpty ? "" : ",") + "pod-template-hash=\(hash)"
            let pods = try await client.get(KubeResource.pods.collectionPath(namespace: namespace) + KubePath.query([("labelSelector", sel)]))
            return (pods["items"]?.array ?? []).map(PodProblem.diagnose).sorted { $0.pod < $1.pod }
        } catch {
            return []
        }
    }

    // MARK: rollback / status / delete

    /// Puts the pod template of `toRevision` (default: the one before the live revision) back
    /// and waits until it is healthy.
    public func rollback(_ name: String, toRevision: Int? = nil, options: KubeDeployOptions = KubeDeployOptions()) async throws(KubeError) -> RollbackReport {
        let path = KubeResource.deployments.path(name: name, namespace: namespace)
        let dep = try await client.getIfExists(path)
        guard let dep else { throw .notFound(what: "deployment/\(name)", namespace: namespace) }
        let current = RolloutSnapshot.evaluate(dep).revision
        let sets = try await replicaSets(of: name)
        let target: Int
        if let toRevision {
            target = toRevision
        } else if let prev = sets.map(\.revision).filter({ $0 < (current ?? Int.max) }).max() {
            target = prev
        } else {
            throw .noPreviousRevision(deployment: name, current: current ?? 0)
        }
        guard let rs = sets.first(where: { $0.revision == target })?.rs, var template = rs.at("spec", "template") else {
            throw .revisionNotFound(deployment: name, revision: target, available: sets.map { $0.revision })
        }
        // The template's config must still be there (content-named ConfigMaps are collected once
        // no retained revision uses them; one from before that, or deleted by hand, may be gone).
        let configMaps = ConfigHistory.configMaps(ofTemplate: template)
        for cm in configMaps {
            let cmPath = KubeResource(apiVersion: "v1", kind: "ConfigMap").path(name: cm, namespace: namespace)
            if try await client.getIfExists(cmPath, what: "configmap/\(cm)") == nil {
                throw .configMapMissing(deployment: name, revision: target, configMap: cm)
            }
        }
        if var labels = template.at("metadata", "labels")?.object {
            labels["pod-template-hash"] = nil
            template["metadata"]?["labels"] = .object(labels)
        }
        if target != current {
            progress(.rollingBack("deployment/\(name): restoring the pod template of revision \(target)"))
            let patch: JSONValue = .array([.object(["op": .string("replace"), "path": .string("/spec/template"), "value": template])])
            _ = try await client.request("PATCH", path + KubePath.query([("fieldManager", Self.fieldManager)]), json: patch,
                                         contentType: "application/json-patch+json", what: "deployment/\(name)")
        }
        let deadline = dep.at("spec", "progressDeadlineSeconds")?.int ?? 600
        let snap = try await waitForRollout(name, timeoutSeconds: options.timeoutSeconds ?? deadline + 60,
                                            pollMs: options.pollIntervalMilliseconds)
        if case .failed(let reason, let message) = snap.state {
            let pods = await podsOfLiveRevision(name)
            let f = RolloutFailure(deployment: name, revision: snap.revision, reason: reason, message: message, pods: pods)
            throw .rollbackFailed(deployment: name, toRevision: target, failure: f.description)
        }
        return RollbackReport(fromRevision: current, toRevision: target, liveRevision: snap.revision, configMaps: configMaps)
    }

    public func status(_ name: String) async throws(KubeError) -> StatusReport {
        let path = KubeResource.deployments.path(name: name, namespace: namespace)
        guard let dep = try await client.getIfExists(path) else {
            throw .notFound(what: "deployment/\(name)", namespace: namespace)
        }
        let snap = RolloutSnapshot.evaluate(dep)
        let history = try await replicaSets(of: name).map { rev, rs in
            (revision: rev,
             images: (rs.at("spec", "template", "spec", "containers")?.array ?? []).compactMap { $0["image"]?.string },
             configMaps: ConfigHistory.configMaps(ofTemplate: rs.at("spec", "template")),
             replicas: rs.at("status", "replicas")?.int ?? 0, ready: rs.at("status", "readyReplicas")?.int ?? 0)
        }
        let pods = snap.state == .complete ? [] : await podsOfLiveRevision(name)
        let canary = try await client.getIfExists(KubeResource.deployments.path(name: KubeCanary.name(name), namespace: namespace),
                                                  what: "deployment/\(KubeCanary.name(name))")
        return StatusReport(snapshot: snap, history: history, pods: pods, canary: canary.map(RolloutSnapshot.evaluate))
    }

    /// Deletes the objects (reverse apply order), then every other content-named ConfigMap of the
    /// Deployment (older revisions' config) and the single `<name>-config` of autoglm versions
    /// before content-named ConfigMaps; objects already gone are reported, not errors.
    public func delete(_ objects: [KubeObject]) async throws(KubeError) -> [String] {
        var out: [String] = []
        var done: Set<String> = []
        for o in objects.reversed() {
            out.append(try await deleteObject(KubeResource(apiVersion: o.apiVersion, kind: o.kind), o.name))
            done.insert("\(o.kind)/\(o.name)")
        }
        let configMaps = KubeResource(apiVersion: "v1", kind: "ConfigMap")
        for d in objects where d.kind == "Deployment" {
            if let line = try await removeCanary(d.name) { out.append(line) }
            for name in try await configMapNames(of: d.name) where !done.contains("ConfigMap/\(name)") {
                out.append(try await deleteObject(configMaps, name))
                done.insert("ConfigMap/\(name)")
            }
            let legacy = "\(d.name)-config"
            if !done.contains("ConfigMap/\(legacy)"),
               let cm = try await client.getIfExists(configMaps.path(name: legacy, namespace: namespace), what: "configmap/\(legacy)"),
               cm.at("metadata", "labels", "app.kubernetes.io/managed-by")?.string == "autoglm",
               cm.at("metadata", "labels", "app.kubernetes.io/instance")?.string == d.name {
                out.append(try await deleteObject(configMaps, legacy))
            }
        }
        return out
    }

    func deleteObject(_ res: KubeResource, _ name: String) async throws(KubeError) -> String {
        let path = res.path(name: name, namespace: namespace)
        let r = try await client.send("DELETE", path + KubePath.query([("propagationPolicy", "Background")]))
        let what = "\(res.kind.lowercased())/\(name)"
        let line: String
        switch r.status {
        case 200, 202: line = "\(what) deleted"
        case 404: line = "\(what) not found"
        default:
            throw KubeClient.httpError(status: r.status, body: r.body, method: "DELETE", path: path, config: client.config, what: what)
        }
        progress(.applied(line))
        return line
    }

    /// Names of the content-named ConfigMaps of deployment `name` (by the `autoglm.dev/config-of` label).
    public func configMapNames(of name: String) async throws(KubeError) -> [String] {
        let list = try await client.get(KubeResource(apiVersion: "v1", kind: "ConfigMap").collectionPath(namespace: namespace)
                                        + KubePath.query([("labelSelector", "\(KubeRenderer.configOfLabel)=\(name)")]),
                                        what: "the ConfigMaps of deployment/\(name)")
        return (list["items"]?.array ?? []).compactMap { $0.at("metadata", "name")?.string }.sorted()
    }

    /// Deletes the content-named ConfigMaps of deployment `name` that neither its template nor any
    /// revision the controller retains (`revisionHistoryLimit`, and any ReplicaSet with pods) uses.
    /// Returns one line per ConfigMap deleted.
    public func collectConfigMaps(_ name: String) async throws(KubeError) -> [String] {
        let dep = try await client.get(KubeResource.deployments.path(name: name, namespace: namespace), what: "deployment/\(name)")
        let sets = try await replicaSets(of: name).compactMap { RevisionConfig(replicaSet: $0.rs) }
        let doomed = ConfigHistory.collectable(
            candidates: try await configMapNames(of: name), prefix: KubeRenderer.configMapPrefix(name),
            deploymentTemplate: dep.at("spec", "template"), sets: sets,
            currentRevision: RolloutSnapshot.evaluate(dep).revision,
            historyLimit: dep.at("spec", "revisionHistoryLimit")?.int ?? ConfigHistory.defaultRevisionHistoryLimit)
        var out: [String] = []
        let res = KubeResource(apiVersion: "v1", kind: "ConfigMap")
        for cm in doomed {
            let path = res.path(name: cm, namespace: namespace)
            let r = try await client.send("DELETE", path)
            guard (200..<300).contains(r.status) || r.status == 404 else {
                throw KubeClient.httpError(status: r.status, body: r.body, method: "DELETE", path: path, config: client.config, what: "configmap/\(cm)")
            }
            out.append("configmap/\(cm) deleted (no retained revision of deployment/\(name) uses it)")
            progress(.applied(out[out.count - 1]))
        }
        return out
    }
}

/// One step of `deploy apply` as a span (a child of the command's span; a no-op without a tracer).
func traceStep<T>(_ name: String, _ attributes: [String: String] = [:],
                  _ body: () async throws(KubeError) -> T) async throws(KubeError) -> T {
    let span = startSpan(name)
    for (k, v) in attributes { span.attributes[k] = v }
    defer { span.end() }
    do {
        return try await body()
    } catch {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error))
        throw error
    }
}
