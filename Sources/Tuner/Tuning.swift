import Backends
import Foundation
import Tracing
import LoadGen
import Optimizer
import Registry
import Spec

/// Why a tuning run stopped; each message says what to change.
public enum TunerError: Error, CustomStringConvertible, Equatable {
    /// The request cannot run as given (spec, model, knobs, a workload that does not fit).
    case invalid(String)
    /// A finished trial could not be written to the registry's database; the study stopped there,
    /// so that `--resume` never silently misses a measured trial.
    case trialNotStored(database: String, study: String, trial: Int, reason: String)

    public var description: String {
        switch self {
        case .invalid(let s): return s
        case .trialNotStored(let database, let study, let trial, let reason):
            return "trial \(trial + 1) of study \(study) could not be stored in \(database) (\(reason)); the study stopped so that no "
                + "measured trial goes missing. Make the database writable (the file, its directory, free disk space; or set "
                + "AUTOGLM_HOME to a writable directory), then rerun with --resume to continue from the stored trials"
        }
    }
}

/// A backend `optimize` tunes (`--backends`).
public enum BackendChoice: Sendable, Equatable {
    /// This engine, launched as `autoglm serve`.
    case native
    /// llama.cpp's `llama-server`.
    case llamacpp
    /// An OpenAI-compatible server that already runs at this base URL (measured once).
    case openai(String)
}

/// Everything one `optimize` run asks for.
public struct TuningRequest: Sendable {
    public var model: ModelSource
    /// throughput | goodput | latency | memory (`Objectives`).
    public var objective: String
    /// (ttft | tpot | e2e, limit in ms) of the SLOs given.
    public var slo: [(String, Double)]
    /// 95 or 99: the percentile the SLOs apply to.
    public var percentile: Int
    /// The workload's request template (`Workload.preset` or a LoadSpec file, with overrides).
    public var workload: LoadSpec
    /// The workload's name, for the study key when the template does not encode.
    public var workloadName: String
    public var levels: [LoadShape]
    public var backends: [BackendChoice]
    /// `autoglm` itself (native trials run `autoglm serve`).
    public var nativeExecutable: String
    public var llamaServer: String?
    public var upstreamAPIKey: String?
    /// Knobs to search (the others keep the backend's defaults); nil: all.
    public var searched: [String]?
    /// bayes | grid.
    public var strategy: String
    public var gridLevels: Int?
    public var seed: UInt64
    public var maxTrials: Int
    public var timeBudget: Duration?
    /// Seconds a trial's server may take to become ready.
    public var startupTimeout: Double
    public var resume: Bool
    /// Write the winner into the spec (`model` must be `.spec`).
    public var write: Bool
    /// Directory for report.json / report.html (and backends.json when several backends ran).
    public var reportDirectory: String?

    public init(model: ModelSource, objective: String, slo: [(String, Double)], percentile: Int, workload: LoadSpec,
                workloadName: String, levels: [LoadShape], backends: [BackendChoice], nativeExecutable: String,
                llamaServer: String?, upstreamAPIKey: String?, searched: [String]?, strategy: String, gridLevels: Int?,
                seed: UInt64, maxTrials: Int, timeBudget: Duration?, startupTimeout: Double, resume: Bool, write: Bool,
                reportDirectory: String?) {
        self.model = model; self.objective = objective; self.slo = slo; self.percentile = percentile
        self.workload = workload; self.workloadName = workloadName; self.levels = levels; self.backends = backends
        self.nativeExecutable = nativeExecutable; self.llamaServer = llamaServer; self.upstreamAPIKey = upstreamAPIKey
        self.searched = searched; self.strategy = strategy; self.gridLevels = gridLevels; self.seed = seed
        self.maxTrials = maxTrials; self.timeBudget = timeBudget; self.startupTimeout = startupTimeout
        self.resume = resume; self.write = write; self.reportDirectory = reportDirectory
    }

    public var direction: Direction { Objectives.direction(objective) }
    public var unit: String { Objectives.unit(objective) }
}

/// One backend's finished study.
public struct BackendStudy: Sendable {
    public var backend: any ServingBackend
    public var id: String
    public var space: SearchSpace
    public var result: StudyResult
    public init(backend: any ServingBackend, id: String, space: SearchSpace, result: StudyResult) {
        self.backend = backend; self.id = id; self.space = space; self.result = result
    }
}

/// `autoglm optimize`: one study per backend, the winner across them, its metrics in the registry,
/// its configuration written back into the spec, and the reports.
public enum Tuning {
    /// Runs the request. `print` gets the results (tables, summaries, the winner line); `log` the
    /// progress (one line per trial, what was written where).
    public static func run(_ req: TuningRequest, registry: Registry,
                           print: (String) -> Void, log: @escaping @Sendable (String) -> Void) async throws {
        let studyModel = try StudyModel.resolve(req.model, registry: registry)
        var template = req.workload
        let tokensPerSequence = Workload.tokensPerSequence(template)

        // Model facts for the spaces' bounds (the same arithmetic as `serve`).
        let (facts, modelContext, vocabulary) = try studyModel.facts()
        let context = min(modelContext, (tokensPerSequence + 15) / 16 * 16 + 16)
        template.promptTokenIDs = 1000...min(9999, max(1001, vocabulary - 1))
        let machine = MachineLimits.current()

        var backendsToRun: [any ServingBackend] = []
        for choice in req.backends {
            switch choice {
            case .native:
                // The spec's speculative decoding is not searched: every native trial runs it.
                var spec: BackendSpec?
                if case .spec(let path, let environment) = req.model {
                    spec = try StudyModel.loadSpec(path, environment: environment).spec.backend
                }
                let native = spec?.type == .native ? spec : nil
                backendsToRun.append(NativeBackend(executable: req.nativeExecutable, modelPath: studyModel.path, facts: facts,
                                                   contextLength: context, speculative: native?.speculative,
                                                   speculativeK: native?.speculativeK))
            case .llamacpp:
                guard let exe = LlamaCppBackend.locate(explicit: req.llamaServer) else { throw TunerError.invalid("llama-server not found") }
                backendsToRun.append(LlamaCppBackend(executable: exe, modelPath: studyModel.path, facts: facts, contextPerSlot: context))
            case .openai(let url):
                let key = req.upstreamAPIKey ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
                backendsToRun.append(UpstreamBackend(url: url, apiKey: key))
            }
        }
        if let searched = req.searched {
            var known = Set(NativeKnob.all)
            if backendsToRun.contains(where: { $0 is LlamaCppBackend }) { known.formUnion(LlamaCppKnob.all) }
            for n in searched where !known.contains(n) {
                throw TunerError.invalid("--knobs: unknown knob '\(n)'; the native engine has \(NativeKnob.all.joined(separator: ", ")); llama.cpp has \(LlamaCppKnob.all.joined(separator: ", "))")
            }
        }

        var studies: [BackendStudy] = []
        for backend in backendsToRun {
            studies.append(try await runStudy(backend, req: req, registry: registry, studyModel: studyModel, template: template,
                                              machine: machine, tokensPerSequence: tokensPerSequence, log: log))
        }

        let unit = req.unit
        let winner = Self.winner(studies, direction: req.direction)
        for st in studies {
            if studies.count > 1 { print("== backend \(st.backend.name)") }
            print(OptimizeReport.table(st.result.trials, unit: unit))
            print(OptimizeReport.summary(trials: st.result.trials, best: st.result.best, slo: req.slo,
                                         percentile: req.percentile, unit: unit))
        }
        if studies.count > 1 {
            let line = studies.map { st in
                "\(st.backend.name) " + (st.result.best?.result.measurement.map { String(format: "%.2f %@", $0.objective, unit as NSString) } ?? "nothing feasible")
            }.joined(separator: ", ")
            print("backends: \(line)" + (winner.map { " → winner: \($0.study.backend.name)" } ?? ""))
        }

        if let (st, best) = winner {
            try recordMetrics(st, best: best, objective: req.objective, studyModel: studyModel, machine: machine, registry: registry)
            if req.write, case .spec(let specPath, _) = req.model {
                try writeSpec(specPath, settings: st.backend.settings(best.config), log: log)
            }
        } else if req.write {
            log("--write: nothing met the SLOs; the spec is unchanged")
        }
        if let dir = req.reportDirectory {
            var written: [String] = []
            for st in studies {
                let sub = studies.count == 1 ? dir : dir + "/" + st.backend.name
                let summary = OptimizeReport.summary(trials: st.result.trials, best: st.result.best, slo: req.slo,
                                                     percentile: req.percentile, unit: unit)
                try OptimizeReport.write(dir: sub, study: st.id, objective: req.objective, direction: req.direction,
                                         unit: unit, slo: req.slo, percentile: req.percentile,
                                         trials: st.result.trials, best: st.result.best, space: st.space, summary: summary)
                written.append("\(sub)/report.html")
            }
            if studies.count > 1 {
                try OptimizeReport.writeComparison(dir: dir, objective: req.objective, unit: unit,
                                                   studies: studies.map { ($0.backend.name, $0.id, $0.result.best, $0.backend.settings) },
                                                   winner: winner?.study.backend.name)
                written.append("\(dir)/backends.json")
            }
            log("report: " + written.joined(separator: ", "))
        }
    }

    /// The study whose best trial is best for `direction` (the first on a tie); nil when no study
    /// has a feasible trial.
    public static func winner(_ studies: [BackendStudy], direction: Direction) -> (study: BackendStudy, trial: Trial)? {
        let better: (Double, Double) -> Bool = direction == .maximize ? { $0 > $1 } : { $0 < $1 }
        var winner: (study: BackendStudy, trial: Trial, objective: Double)?
        for st in studies {
            if let b = st.result.best, let m = b.result.measurement, winner.map({ better(m.objective, $0.objective) }) ?? true {
                winner = (st, b, m.objective)
            }
        }
        return winner.map { ($0.study, $0.trial) }
    }

    /// The winner's metrics, against the registry model version the study tuned (none for a file).
    static func recordMetrics(_ st: BackendStudy, best: Trial, objective: String,
                              studyModel: StudyModel, machine: MachineLimits, registry: Registry) throws {
        guard let m = best.result.measurement, let rm = studyModel.registryModel, let rv = studyModel.registryVersion, let v = try? SemVer(parsing: rv) else { return }
        var values = m.metrics
        values["objective"] = m.objective
        for (k, x) in zip(best.config.names, best.config.values) { if let d = x.doubleValue { values["knob." + k] = d } }
        var machineInfo = ["cores": String(machine.cores), "study": st.id, "backend": st.backend.name]
        for (k, x) in zip(best.config.names, best.config.values) where x.doubleValue == nil { machineInfo["knob." + k] = x.description }
        try registry.recordMetric(model: rm, version: v, kind: "optimize.\(objective)", values: values,
                                  configHash: stableHash(st.backend.name + "|" + best.config.description), machine: machineInfo)
    }

    /// The backend's space, discretised (`gridLevels`) and restricted to the searched knobs; its
    /// study in the registry (resumed or cleared); the trials, run with the chosen strategy.
    static func runStudy(_ backend: any ServingBackend, req: TuningRequest, registry: Registry, studyModel: StudyModel,
                         template: LoadSpec, machine: MachineLimits, tokensPerSequence: Int,
                         log: @escaping @Sendable (String) -> Void) async throws -> BackendStudy {
        let levels = req.levels
        var space: SearchSpace
        do { space = try backend.searchSpace(machine: machine, tokensPerSequence: tokensPerSequence) } catch {
            throw TunerError.invalid("\(backend.name): the workload's sequences (\(tokensPerSequence) tokens) do not fit this model/machine: \(error)")
        }
        let isUpstream = backend is UpstreamBackend
        // grid needs a discrete space; bayes searches the discretised one too when asked, so the two
        // strategies can be compared on exactly the same configurations.
        let gridLevels = req.gridLevels ?? (req.strategy == "grid" ? 3 : nil)
        space = try restrict(space, levels: gridLevels, searched: isUpstream ? nil : req.searched,
                             defaults: backend.defaults(cores: machine.cores), backend: backend.name)
        let strategy = isUpstream ? "grid" : req.strategy
        if strategy == "grid", let g = space.grid(limit: 100_000) {
            log("\(backend.name) grid: \(g.filter { space.feasible($0) }.count) feasible configurations of \(g.count) (\(space.signature))")
        }

        let keyEncoder = JSONEncoder()
        keyEncoder.outputFormatting = [.sortedKeys]
        let workloadKey = (try? String(decoding: keyEncoder.encode(template), as: UTF8.self)) ?? req.workloadName
        let levelKey = levels.map { "\($0)" }.joined(separator: ",")
        let sloKey = req.slo.map { "\($0.0)<=\($0.1)" }.joined(separator: ",") + "@p\(req.percentile)"
        let objectiveKey = "\(req.objective)|\(sloKey)|\(backend.name)|\(req.strategy)" + (gridLevels.map { "|L\($0)" } ?? "")
            + (req.searched.map { "|K" + $0.sorted().joined(separator: "+") } ?? "")
        // The study's identity uses the knob names and the core count, not the memory-derived bounds:
        // available memory moves between runs and must not orphan stored trials.
        let identitySpace = try SearchSpace(knobs: space.knobs.map { Knob($0.name, .categorical(["\(machine.cores) cores"])) })
        let upstreamKey = (backend as? UpstreamBackend).map { "|" + $0.url } ?? ""
        let id = studyID(modelDigest: studyModel.digest, space: identitySpace, workload: workloadKey + "|" + levelKey + upstreamKey,
                         objective: objectiveKey)
        let store = try TrialStore(registry: registry, study: id, model: studyModel,
                                   description: "{\"objective\":\"\(objectiveKey)\",\"space\":\"\(space.signature)\",\"levels\":\"\(levelKey)\"}")
        var history: [Trial] = []
        if req.resume {
            history = try store.trials()
            log("\(backend.name) study \(id): resuming after \(history.count) stored trial(s)")
        } else {
            try store.clear()
            log("\(backend.name) study \(id): \(space.knobs.map(\.name).joined(separator: ", ")) on \(machine.cores) cores; objective \(req.objective)")
        }

        let evaluator = TrialEvaluator(backend: backend, template: template, levels: levels, slo: req.slo,
                                       percentile: req.percentile, objective: req.objective,
                                       startupTimeout: req.startupTimeout)
        let options = OptimizerOptions(seed: req.seed, maxTrials: isUpstream ? 1 : req.maxTrials, timeBudget: req.timeBudget)
        let result = try await runTrials(space: space, strategy: strategy, direction: req.direction, options: options,
                                          history: history, store: store, backend: backend.name, unit: req.unit,
                                          evaluate: { config in await evaluator.evaluate(config) }, log: log)
        return BackendStudy(backend: backend, id: id, space: space, result: result)
    }

    /// A study's trial loop with the chosen strategy (bayes | grid), continuing `history`: each
    /// finished trial is logged and stored before the next one starts; one that cannot be stored
    /// stops the study (`TunerError.trialNotStored`).
    public static func runTrials(space: SearchSpace, strategy: String, direction: Direction, options: OptimizerOptions,
                                 history: [Trial], store: TrialStore, backend name: String, unit: String,
                                 evaluate: (Config) async -> TrialResult,
                                 log: @escaping @Sendable (String) -> Void) async throws -> StudyResult {
        let progress: (TrialProgress) throws -> Void = { p in
            log(progressLine(p, backend: name, unit: unit))
            try store.save(p.trial)
        }
        // Each trial is a span (a child of the command's; a no-op without a tracer).
        var trialNumber = history.count
        func tracedEvaluate(_ config: Config) async -> TrialResult {
            trialNumber += 1
            let span = startSpan("optimize.trial")
            span.attributes["autoglm.backend"] = name
            span.attributes["autoglm.trial"] = trialNumber
            span.attributes["autoglm.config"] = "\(config)"
            let result = await evaluate(config)
            switch result {
            case .feasible(let m): span.attributes["autoglm.objective"] = m.objective
            case .infeasible(let r, let d, _):
                span.attributes["autoglm.infeasible"] = r.rawValue
                span.setStatus(SpanStatus(code: .error, message: d))
            }
            span.end()
            return result
        }
        do {
            if strategy == "grid" {
                return try await Optimizer.runGrid(space: space, direction: direction, options: options, history: history,
                                                   evaluate: tracedEvaluate, progress: progress)
            }
            return try await Optimizer.run(space: space, direction: direction, options: options, history: history,
                                           evaluate: tracedEvaluate, progress: progress)
        } catch let e as SearchSpaceError {
            throw TunerError.invalid("\(name): \(e.description)")
        }
    }

    /// One trial's progress line: its result, the best so far and the ETA.
    static func progressLine(_ p: TrialProgress, backend name: String, unit: String) -> String {
        let status: String
        switch p.trial.result {
        case .feasible(let m): status = String(format: "%.2f %@", m.objective, unit as NSString)
        case .infeasible(let r, let d, let m):
            status = "infeasible (\(r.rawValue)\(m.map { String(format: ", %.2f %@", $0.objective, unit as NSString) } ?? "")): \(d)"
        }
        let best = p.best?.result.measurement.map { String(format: "%.2f %@", $0.objective, unit as NSString) } ?? "none yet"
        let eta = p.etaSeconds.map { String(format: "%.0fs", $0) } ?? "?"
        return "\(name) trial \(p.completed)/\(p.total) [\(p.trial.origin.rawValue)] \(p.trial.config) → \(status) | best \(best) | ETA \(eta)"
    }

    /// The space discretised to `levels` values per integer knob (when given), searching only
    /// `searched` (the other knobs keep the backend's defaults).
    public static func restrict(_ space: SearchSpace, levels: Int?, searched: [String]?, defaults: [String: KnobValue],
                                backend: String) throws(TunerError) -> SearchSpace {
        var s = space
        do {
            if let g = levels { s = try s.discretized(levels: g) }
            if let searched { s = try s.searching(only: Set(searched), defaults: defaults) }
        } catch {
            throw .invalid("\(backend): \(error.description)")
        }
        return s
    }

    /// Writes the winning backend's settings into the spec through the Spec loader/encoder.
    static func writeSpec(_ path: String, settings: ServingSettings, log: (String) -> Void) throws {
        var base = try StudyModel.loadSpec(path, environment: nil)
        base.spec.backend = settings.backend
        if let r = settings.replicas { base.spec.replicas = r }
        let yaml = SpecEncoder.yaml(base.spec)
        // The encoder writes the resolved base spec; overlays would be lost, so a spec with
        // environments gets a sibling file instead of being overwritten.
        let target = base.spec.environmentNames.isEmpty ? path : path.replacingOccurrences(of: ".yaml", with: "") + ".optimized.yaml"
        do { _ = try SpecLoader.load(yaml: yaml, file: target, environment: nil, variables: SpecLoader.processEnvironment()) } catch {
            throw TunerError.invalid("internal: the rewritten spec does not load: \(error.diagnostics.map(\.description).joined(separator: "; "))")
        }
        try yaml.write(toFile: target, atomically: true, encoding: .utf8)
        log("wrote the best backend configuration to \(target)\(target == path ? "" : " (the spec has environments overlays, which the encoder does not keep)")")
    }
}
