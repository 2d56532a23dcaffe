import Spec

/// One ReplicaSet of a Deployment as the ConfigMap garbage collection sees it.
public struct RevisionConfig: Sendable, Equatable {
    public var revision: Int
    /// ConfigMaps its pod template refers to.
    public var configMaps: [String]
    /// It has (or is meant to have) pods.
    public var live: Bool

    public init(revision: Int, configMaps: [String], live: Bool) {
        self.revision = revision
        self.configMaps = configMaps
        self.live = live
    }

    /// From a ReplicaSet object; nil when it carries no revision annotation.
    public init?(replicaSet rs: JSONValue) {
        guard let rev = rs.at("metadata", "annotations", RolloutSnapshot.revisionAnnotation)?.string.flatMap({ Int($0) }) else {
            return nil
        }
        self.init(revision: rev, configMaps: ConfigHistory.configMaps(ofTemplate: rs.at("spec", "template")),
                  live: (rs.at("spec", "replicas")?.int ?? 1) > 0 || (rs.at("status", "replicas")?.int ?? 0) > 0)
    }
}

/// Which content-named ConfigMaps (`<name>-config-<hash>`, see `KubeRenderer.configMapName`) a
/// Deployment still needs. Pure.
public enum ConfigHistory {
    /// The Deployment controller's default `revisionHistoryLimit`.
    public static let defaultRevisionHistoryLimit = 10

    /// Names of the ConfigMaps a pod template refers to: volumes (plain and projected), `envFrom`
    /// and `env[].valueFrom.configMapKeyRef` of every container and init container.
    public static func configMaps(ofTemplate template: JSONValue?) -> [String] {
        var out: [String] = []
        func add(_ name: String?) {
            if let name, !out.contains(name) { out.append(name) }
        }
        let pod = template?["spec"]
        for v in pod?["volumes"]?.array ?? [] {
            add(v.at("configMap", "name")?.string)
            for s in v.at("projected", "sources")?.array ?? [] { add(s.at("configMap", "name")?.string) }
        }
        let containers = (pod?["initContainers"]?.array ?? []) + (pod?["containers"]?.array ?? [])
        for c in containers {
            for e in c["envFrom"]?.array ?? [] { add(e.at("configMapRef", "name")?.string) }
            for e in c["env"]?.array ?? [] { add(e.at("valueFrom", "configMapKeyRef", "name")?.string) }
        }
        return out
    }

    /// The revisions the Deployment controller keeps: the current one, every ReplicaSet that has
    /// pods, and the `historyLimit` newest of the others (it deletes the oldest idle ones beyond that).
    public static func retainedRevisions(_ sets: [RevisionConfig], currentRevision: Int?, historyLimit: Int) -> Set<Int> {
        var keep: Set<Int> = []
        let old = sets.filter { $0.revision != currentRevision }.sorted { $0.revision > $1.revision }
        for s in sets where s.revision == currentRevision || s.live { keep.insert(s.revision) }
        for s in old.prefix(max(0, historyLimit)) { keep.insert(s.revision) }
        return keep
    }

    /// The candidates (ConfigMaps listed by the app's config label) that may be deleted: named
    /// `prefix` + hash, and referred to neither by the Deployment's template nor by any retained
    /// revision. Sorted by name.
    public static func collectable(candidates: [String], prefix: String, deploymentTemplate: JSONValue?,
                                   sets: [RevisionConfig], currentRevision: Int?, historyLimit: Int) -> [String] {
        let retained = retainedRevisions(sets, currentRevision: currentRevision, historyLimit: historyLimit)
        var used = Set(configMaps(ofTemplate: deploymentTemplate))
        for s in sets where retained.contains(s.revision) { used.formUnion(s.configMaps) }
        return candidates.filter { name in
            guard name.hasPrefix(prefix), name.count > prefix.count else { return false }
            let hash = name.dropFirst(prefix.count)
            return hash.allSatisfy { $0.isHexDigit } && !used.contains(name)
        }.sorted()
    }
}
