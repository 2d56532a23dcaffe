import Foundation
import GRDB

// The registry's study store: tuning studies and their trials as opaque payloads, in the registry's
// own database (migration "v2: tuning studies and trials"), so a study can point at a registered
// model version. What a trial *is* (its JSON, resume, identity) is the Tuner's business
// (`Tuner.TrialStore`); this file only keeps rows.

/// A tuning study (`autoglm optimize`): its id is a hash of model digest + search space + workload +
/// objective, so re-running the same study with `--resume` finds its trials.
public struct StudyRecord: Sendable, Codable, Equatable {
    public var id: String
    /// Registry model/version when the model came from the registry, else nil.
    public var model: String?
    public var version: String?
    public var modelDigest: String
    /// Free-form JSON describing the study (space, workload, objective, SLOs).
    public var description: String
    public var created: Date
}

/// One stored trial: its index in the study and the optimizer's JSON encoding of it.
public struct StoredTrial: Sendable, Equatable {
    public var index: Int
    public var payload: Data
    public var created: Date
}

extension Registry {
    static func createTuningTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE tuning_studies (
                id TEXT PRIMARY KEY NOT NULL,
                model_id TEXT,
                version TEXT,
                model_digest TEXT NOT NULL,
                description TEXT NOT NULL,
                created REAL NOT NULL
            );
            CREATE TABLE tuning_trials (
                study_id TEXT NOT NULL REFERENCES tuning_studies(id) ON DELETE CASCADE,
                trial_index INTEGER NOT NULL,
                payload TEXT NOT NULL,
                created REAL NOT NULL,
                PRIMARY KEY(study_id, trial_index)
            );
            """)
    }

    /// Creates the study when new; an existing study keeps its row (and its trials).
    @discardableResult
    public func openStudy(id: String, model: String?, version: String?, modelDigest: String,
                          description: String) throws -> StudyRecord {
        try write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO tuning_studies (id, model_id, version, model_digest, description, created)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [id, model, version, modelDigest, description, Date().timeIntervalSince1970])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tuning_studies WHERE id = ?", arguments: [id]) else {
                throw RegistryError.database("tuning study \(id) vanished after insert; check the database file is writable")
            }
            return Registry.decodeStudy(row)
        }
    }

    public func study(id: String) throws -> StudyRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM tuning_studies WHERE id = ?", arguments: [id]).map(Registry.decodeStudy)
        }
    }

    static func decodeStudy(_ row: Row) -> StudyRecord {
        let created: Double = row["created"]
        return StudyRecord(id: row["id"], model: row["model_id"], version: row["version"],
                           modelDigest: row["model_digest"], description: row["description"],
                           created: Date(timeIntervalSince1970: created))
    }

    /// Stores (or replaces) trial `index` of a study.
    public func saveTrial(study: String, index: Int, payload: Data) throws {
        try write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO tuning_trials (study_id, trial_index, payload, created) VALUES (?, ?, ?, ?)
                """, arguments: [study, index, String(decoding: payload, as: UTF8.self), Date().timeIntervalSince1970])
        }
    }

    /// The study's trials in index order.
    public func trials(study: String) throws -> [StoredTrial] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT trial_index, payload, created FROM tuning_trials WHERE study_id = ? ORDER BY trial_index",
                             arguments: [study]).map { row in
                let p: String = row["payload"]
                let c: Double = row["created"]
                return StoredTrial(index: row["trial_index"], payload: Data(p.utf8), created: Date(timeIntervalSince1970: c))
            }
        }
    }

    /// Deletes a study's trials (a fresh run without `--resume`).
    public func clearTrials(study: String) throws {
        try write { db in try db.execute(sql: "DELETE FROM tuning_trials WHERE study_id = ?", arguments: [study]) }
    }
}
