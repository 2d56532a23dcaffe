import Spec

/// One object `apply` wrote (or was about to write when it failed), with the state read before.
public struct TouchedObject: Sendable, Equatable {
    public var object: KubeObject
    /// The object as it was before this apply; nil: it did not exist (this apply created it).
    public var before: JSONValue?

    public init(object: KubeObject, before: JSONValue?) {
        self.object = object
        self.before = before
    }
}

/// How to take back one change of a failed apply.
public enum UndoStep: Sendable, Equatable {
    /// It did not exist before: delete it (if it exists now). A ConfigMap a ReplicaSet of the
    /// Deployment refers to is kept instead (that revision stays usable for `rollback`).
    case delete(KubeObject)
    /// It existed: put `before` back (if it changed). The Deployment's previous spec brings its
    /// previous pod template back (the controller reuses that revision's ReplicaSet: a rollback).
    case restore(KubeObject, before: JSONValue)

    public var object: KubeObject {
        switch self {
        case .delete(let o), .restore(let o, _): return o
        }
    }
}

/// Compensation planning for `apply`. Pure.
public enum UndoPlan {
    /// The steps that take back `touched`, last change first.
    public static func plan(_ touched: [TouchedObject]) -> [UndoStep] {
        touched.reversed().map { t in
            if let before = t.before { return .restore(t.object, before: before) }
            return .delete(t.object)
        }
    }

    /// Annotations the Deployment controller owns (the revision numbers): left as they are live.
    static func controllerOwned(_ key: String) -> Bool { key.hasPrefix("deployment.kubernetes.io/") }

    /// The body of a PUT that puts `before` back over `live`: `before`'s labels, annotations and
    /// content (spec, data, ...), with `live`'s resourceVersion (optimistic concurrency: a change
    /// in between makes it a 409, and `restore` reads again). Server-owned fields
    /// (status, managedFields, generation, timestamps) are dropped; controller-owned annotations
    /// and a ServiceAccount's token secrets stay as they are live.
    public static func restoreBody(before: JSONValue, live: JSONValue) -> JSONValue {
        var body = before
        body["status"] = nil
        var meta = before["metadata"]?.object ?? [:]
        for k in ["managedFields", "creationTimestamp", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta[k] = nil
        }
        meta["resourceVersion"] = live.at("metadata", "resourceVersion")
        var annotations = (meta["annotations"]?.object ?? [:]).filter { !controllerOwned($0.key) }
        for (k, v) in live.at("metadata", "annotations")?.object ?? [:] where controllerOwned(k) { annotations[k] = v }
        meta["annotations"] = annotations.isEmpty ? nil : .object(annotations)
        body["metadata"] = .object(meta)
        if before["kind"]?.string == "ServiceAccount" { body["secrets"] = live["secrets"] }
        return body
    }

    /// Whether `live` differs from `before` in what an apply writes: labels, annotations (not the
    /// controller's) and every top-level field but metadata and status (a ServiceAccount's token
    /// `secrets` are the controller's too). Status updates alone are no change.
    public static func changed(before: JSONValue, live: JSONValue) -> Bool {
        func content(_ v: JSONValue) -> JSONValue {
            var c = v
            c["metadata"] = nil
            c["status"] = nil
            if v["kind"]?.string == "ServiceAccount" { c["secrets"] = nil }
            let labels = v.at("metadata", "labels")?.object ?? [:]
            let annotations = (v.at("metadata", "annotations")?.object ?? [:]).filter { !controllerOwned($0.key) }
            c["metadata"] = .object(["labels": .object(labels), "annotations": .object(annotations)])
            return c
        }
        return content(before) != content(live)
    }

    /// The body that re-creates `before` (someone deleted it meanwhile).
    public static func recreateBody(before: JSONValue) -> JSONValue {
        var body = restoreBody(before: before, live: .object([:]))
        body["metadata"]?["uid"] = nil
        return body
    }
}

/// What `KubeDeployer.undo` did.
struct UndoResult: Sendable {
    var undone: [String]
    var failed: [String]
    /// The revision number the restored pod template got.
    var liveRevision: Int?
    /// The Deployment's previous pod template was put back and rolled out healthy.
    var deploymentRestored: Bool
}

extension KubeDeployer {
    /// Carries out `UndoPlan.plan(touched)`. Never throws: what could not be undone is listed in
    /// `failed` with the reason. The Deployment, when it changed, is restored and waited for.
    func undo(_ touched: [TouchedObject], options: KubeDeployOptions) async -> UndoResult {
        var undone: [String] = []
        var failed: [String] = []
        var liveRevision: Int?
        var deploymentRestored = false
        let deploymentName = touched.first { $0.object.kind == "Deployment" }?.object.name
        for step in UndoPlan.plan(touched) {
            let o = step.object
            let what = "\(o.kind.lowercased())/\(o.name)"
            let res = KubeResource(apiVersion: o.apiVersion, kind: o.kind)
            let path = res.path(name: o.name, namespace: namespace)
            do throws(KubeError) {
                let live = try await client.getIfExists(path, what: what)
                switch step {
                case .delete:
                    guard live != nil else { continue }
                    if o.kind == "ConfigMap", let d = deploymentName,
                       let rev = try await revisionsUsing(configMap: o.name, deployment: d).first {
                        undone.append("\(what) kept: revision \(rev) of deployment/\(d) refers to it (collected once that revision leaves the history)")
                        continue
                    }
                    let r = try await client.send("DELETE", path + KubePath.query([("propagationPolicy", "Background")]))
                    guard (200..<300).contains(r.status) || r.status == 404 else {
                        throw KubeClient.httpError(status: r.status, body: r.body, method: "DELETE", path: path, config: client.config, what: what)
                    }
                    undone.append("\(what) deleted (this apply created it)")
                case .restore(_, let before):
                    guard let live else {
                        _ = try await client.request("POST", res.collectionPath(namespace: namespace),
                                                     json: UndoPlan.recreateBody(before: before), what: what)
                        undone.append("\(what) re-created as it was before")
                        continue
                    }
                    if !UndoPlan.changed(before: before, live: live) { continue }
                    try await restore(path, before: before, live: live, what: what)
                    guard o.kind == "Deployment" else {
                        undone.append("\(what) restored to its previous state")
                        continue
                    }
                    let previous = before.at("metadata", "annotations", RolloutSnapshot.revisionAnnotation)?.string ?? "?"
                    let config = ConfigHistory.configMaps(ofTemplate: before.at("spec", "template"))
                    progress(.rollingBack("\(what): restoring the pod template of revision \(previous)"))
                    let deadline = before.at("spec", "progressDeadlineSeconds")?.int ?? 600
                    // Its own budget: the apply may have been stopped by its --timeout running out.
                    let snap = try await waitForRollout(o.name, timeoutSeconds: max(options.timeoutSeconds ?? 0, deadline + 60),
                                                        pollMs: options.pollIntervalMilliseconds)
                    liveRevision = snap.revision
                    if case .failed(let reason, let message) = snap.state {
                        failed.append("\(what): the previous pod template (revision \(previous)) was put back but does not roll out either (\(reason): \(message)); see 'autoglm deploy status'")
                        continue
                    }
                    deploymentRestored = true
                    undone.append("\(what) restored to the pod template of revision \(previous)"
                                  + (config.isEmpty ? "" : " (configmap \(config.joined(separator: ", ")))")
                                  + ", live as revision \(snap.revision.map(String.init) ?? "?"), all replicas ready")
                }
            } catch {
                failed.append(error.description.hasPrefix(what) ? error.description : "\(what): \(error.description)")
            }
        }
        return UndoResult(undone: undone, failed: failed, liveRevision: liveRevision, deploymentRestored: deploymentRestored)
    }

    /// PUTs `before` back over `live`. A 409 means the object changed since it was read — the
    /// Deployment and ReplicaSet controllers write status and revision annotations all the time —
    /// so it is read again and the restore retried (a few times).
    func restore(_ path: String, before: JSONValue, live: JSONValue, what: String) async throws(KubeError) {
        var current = live
        for attempt in 0..<5 {
            let r = try await client.send("PUT", path + KubePath.query([("fieldManager", Self.fieldManager)]),
                                          body: UndoPlan.restoreBody(before: before, live: current).bytes)
            if (200..<300).contains(r.status) { return }
            guard r.status == 409, attempt < 4, let fresh = try await client.getIfExists(path, what: what) else {
                throw KubeClient.httpError(status: r.status, body: r.body, method: "PUT", path: path, config: client.config, what: what)
            }
            current = fresh
        }
    }

    /// Revisions (newest first) of the Deployment whose pod template refers to `configMap`.
    func revisionsUsing(configMap: String, deployment: String) async throws(KubeError) -> [Int] {
        guard try await client.getIfExists(KubeResource.deployments.path(name: deployment, namespace: namespace)) != nil else { return [] }
        return try await replicaSets(of: deployment).compactMap { rev, rs in
            ConfigHistory.configMaps(ofTemplate: rs.at("spec", "template")).contains(configMap) ? rev : nil
        }
    }
}
