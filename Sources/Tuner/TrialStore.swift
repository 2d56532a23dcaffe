import Foundation
import Optimizer
import Registry

/// A study's trials in the registry's database (its study store): opened or created under the
/// study's id, resumed from or cleared, and one row per finished trial (the optimizer's JSON).
public struct TrialStore: Sendable {
    public let registry: Registry
    public let study: String

    /// Opens (creating when new) study `id`; an existing study keeps its row and its trials.
    public init(registry: Registry, study id: String, model: StudyModel, description: String) throws {
        self.registry = registry
        self.study = id
        try registry.openStudy(id: id, model: model.registryModel, version: model.registryVersion,
                               modelDigest: model.digest, description: description)
    }

    /// The stored trials, in index order (rows that no longer decode are skipped).
    public func trials() throws -> [Trial] {
        let dec = JSONDecoder()
        return try registry.trials(study: study).compactMap { try? dec.decode(Trial.self, from: $0.payload) }
    }

    /// Forgets the stored trials (a run without `--resume` starts over).
    public func clear() throws {
        try registry.clearTrials(study: study)
    }

    /// Stores (or replaces) a finished trial. A trial that cannot be stored is an error, never
    /// dropped: `--resume` relies on every finished trial being here.
    public func save(_ trial: Trial) throws(TunerError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        do {
            try registry.saveTrial(study: study, index: trial.index, payload: try enc.encode(trial))
        } catch {
            throw .trialNotStored(database: registry.databasePath, study: study, trial: trial.index, reason: "\(error)")
        }
    }
}
