import Spec
import ArgumentParser
import Backends
import Deploy
import Engine
import Foundation
import LoadGen
import Optimizer
import Models
import Registry
import Tokenizers

struct Optimize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the serving configuration that best meets latency/throughput goals by measuring real runs (constrained Bayesian optimisation).")

    @Argument(help: "A spec (autoglm.yaml) whose model to tune; --write updates its backend section.") var spec: String?
    @Option(name: .long, help: "Model: registry reference (ID, ID@VERSION, ID:TAG) or a GGUF path (instead of SPEC).") var model: String?
    @Option(name: .long, help: "Spec environment overlay to read.") var env: String?
    @Option(name: .long, help: "throughput | goodput | latency | memory.") var objective = "throughput"
    @Option(name: .customLong("max-ttft-ms"), help: "SLO on time to first token (ms).") var maxTTFT: Double?
    @Option(name: .customLong("max-tpot-ms"), help: "SLO on time per output token (ms).") var maxTPOT: Double?
    @Option(name: .customLong("max-latency-ms"), help: "SLO on end-to-end request latency (ms).") var maxLatency: Double?
    @Option(name: .long, help: "Percentile the SLOs apply to: 95 or 99.") var percentile = 95
    @Option(name: .long, help: "chat | code | long-context | FILE (a LoadSpec JSON as loadtest uses).") var workload = "chat"
    @Option(name: .long, help: "Closed-loop concurrency levels, e.g. 1,4,8.") var concurrency: String?
    @Option(name: .long, help: "Open-loop arrival rate (requests/s) instead of --concurrency.") var rate: Double?
    @Option(name: .long, help: "Measured requests per load level (default: the workload's).") var requests: Int?
    @Option(name: .customLong("prompt-tokens"), help: "Override the workload's prompt length (tokens).") var promptTokens: Int?
    @Option(name: .customLong("max-tokens"), help: "Override the workload's output length (tokens).") var maxTokens: Int?
    @Option(name: .long, help: "Unmeasured warm-up requests per trial.") var warmup = 1
    @Option(name: .customLong("max-trials"), help: "Trials to run (counting resumed ones).") var maxTrials = 20
    @Option(name: .customLong("time-budget"), help: "Stop starting trials after this long, e.g. 30m, 90s, 1h.") var timeBudget: String?
    @Option(name: .long, help: "Seed: the same seed proposes the same configurations.") var seed: UInt64 = 0
    @Option(name: .long, help: "bayes (constrained Bayesian optimisation) | grid (every configuration of the discretised space, for comparison).") var strategy = "bayes"
    @Option(name: .customLong("grid-levels"), help: "Discretise each integer knob to this many values (grid default: 3; bayes default: the full integer range).") var gridLevels: Int?
    @Option(name: .long, help: "Backends to tune and compare, comma-separated: native (this engine), llamacpp (llama.cpp's llama-server), openai:URL (an OpenAI-compatible server already running; measured once).") var backends = "native"
    @Option(name: .customLong("llama-server"), help: "Path of llama-server for --backends llamacpp (default: $AUTOGLM_LLAMA_SERVER, the copy bench/build-llama-server.sh builds, then $PATH).") var llamaServer: String?
    @Option(name: .customLong("upstream-api-key"), help: "API key for openai:URL backends (default: $OPENAI_API_KEY).") var upstreamAPIKey: String?
    @Option(name: .long, help: "Search only these knobs (comma-separated names, e.g. threads,maxSeqs); the others keep the backend's defaults.") var knobs: String?
    @Option(name: .customLong("trial-timeout"), help: "Seconds a trial's server may take to become ready.") var startupTimeout: Double = 120
    @Option(name: .customLong("request-timeout"), help: "Per-request timeout in seconds.") var requestTimeout: Double = 300
    @Flag(name: .long, help: "Continue the stored trials of the same study instead of starting over.") var resume = false
    @Flag(name: .long, help: "Write the best configuration into SPEC's backend section.") var write = false
    @Option(name: .long, help: "Write report.json and report.html into this directory.") var report: String?

    func validate() throws {
        guard ["throughput", "goodput", "latency", "memory"].contains(objective) else {
            throw ValidationError("--objective must be throughput, goodput, latency or memory (got '\(objective)')")
        }
        guard percentile == 95 || percentile == 99 else { throw ValidationError("--percentile must be 95 or 99 (got \(percentile))") }
        guard (spec == nil) != (model == nil) else { throw ValidationError("give a SPEC file or --model REF (exactly one)") }
        try FlagRange.check("--max-trials", maxTrials, 1...100_000)
        guard strategy == "bayes" || strategy == "grid" else { throw ValidationError("--strategy must be bayes or grid (got '\(strategy)')") }
        if let g = gridLevels, !(2...64).contains(g) { throw ValidationError("--grid-levels must be between 2 and 64 (got \(g))") }
        if write && spec == nil { throw ValidationError("--write needs a SPEC file to update") }
        if objective == "goodput" && slo.isEmpty { throw ValidationError("--objective goodput needs an SLO: --max-ttft-ms, --max-tpot-ms or --max-latency-ms") }
        for (n, v) in [("--max-ttft-ms", maxTTFT), ("--max-tpot-ms", maxTPOT), ("--max-latency-ms", maxLatency)] {
            try FlagRange.check(n, v, 0.001...86_400_000, unit: " ms")
        }
        try FlagRange.check("--rate", rate, 0.000_001...1_000_000, unit: " requests/s")
        try FlagRange.check("--requests", requests, 1...10_000_000)
        try FlagRange.check("--prompt-tokens", promptTokens, 1...1_048_576)
        try FlagRange.check("--max-tokens", maxTokens, 1...1_048_576)
        try FlagRange.check("--trial-timeout", startupTimeout, 1...86_400, unit: " s")
        try FlagRange.check("--request-timeout", requestTimeout, 1...86_400, unit: " s")
        _ = try loadLevels()
        _ = try parseDuration()
        let choices = try backendChoices()
        if objective == "memory", choices.contains(where: { if case .openai = $0 { return true } else { return false } }) {
            throw ValidationError("--objective memory needs backends whose processes autoglm starts; an openai:URL upstream's memory is not measurable from here")
        }
        if choices.contains(.llamacpp), LlamaCppBackend.locate(explicit: llamaServer) == nil {
            throw ValidationError(llamaServer.map { "--llama-server \($0) is not an executable file" }
                ?? "--backends llamacpp: llama-server not found; give --llama-server PATH, set AUTOGLM_LLAMA_SERVER, or build it with bash bench/build-llama-server.sh")
        }
    }

    enum BackendChoice: Equatable {
        case native, llamacpp
        case openai(String)
    }

    /// The parsed --backends list (distinct, in the order given).
    func backendChoices() throws -> [BackendChoice] {
        var out: [BackendChoice] = []
        for raw in backends.split(separator: ",", omittingEmptySubsequences: false) {
            let b = raw.trimmingCharacters(in: .whitespaces)
            let choice: BackendChoice
            switch b {
            case "native": choice = .native
            case "llamacpp", "llama.cpp": choice = .llamacpp
            default:
                guard b.hasPrefix("openai:") else {
                    throw ValidationError("--backends: unknown backend '\(b)'; use native, llamacpp or openai:URL (e.g. openai:http://127.0.0.1:8000)")
                }
                let url = String(b.dropFirst("openai:".count))
                guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme),
                      let host = u.host, !host.isEmpty else {
                    throw ValidationError("--backends openai:URL needs an http(s) base URL, e.g. openai:http://127.0.0.1:8000 (got '\(url)')")
                }
                choice = .openai(url)
            }
            if out.contains(choice) { throw ValidationError("--backends lists '\(b)' twice") }
            out.append(choice)
        }
        guard !out.isEmpty else { throw ValidationError("--backends is empty; use native, llamacpp or openai:URL") }
        return out
    }

    /// (name, limit) of the SLOs given.
    var slo: [(String, Double)] {
        var out: [(String, Double)] = []
        if let v = maxTTFT { out.append(("ttft", v)) }
        if let v = maxTPOT { out.append(("tpot", v)) }
        if let v = maxLatency { out.append(("e2e", v)) }
        return out
    }

    func parseDuration() throws -> Duration? {
        guard let s = timeBudget else { return nil }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, f) in units where s.hasSuffix(u) {
            if let v = Double(s.dropLast(u.count)), v > 0, v.isFinite { return .milliseconds(Int64(v * f * 1000)) }
        }
        if let v = Double(s), v > 0 { return .seconds(v) }
        throw ValidationError("--time-budget must look like 30m, 90s or 1h (got '\(s)')")
    }

    func loadLevels() throws -> [LoadShape] {
        switch (concurrency, rate) {
        case (let c?, nil):
            let levels = c.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--concurrency must be a comma-separated list of positive integers, e.g. 1,4,8 (got '\(c)')")
            }
            return levels.compactMap { $0 }.map { .closed(concurrency: $0) }
        case (nil, let r?):
            guard r > 0, r.isFinite else { throw ValidationError("--rate must be a positive number of requests per second") }
            return [.open(ratePerSecond: r)]
        case (.some, .some): throw ValidationError("give either --concurrency or --rate, not both")
        case (nil, nil): return [.closed(concurrency: 4)]
        }
    }

    /// The workload's request template (url filled in per trial).
    func workloadSpec() throws -> LoadSpec {
        var w: LoadSpec
        switch workload {
        case "chat": w = LoadSpec(url: "", requests: 24, promptTokens: .normal(mean: 128, sd: 32, min: 32, max: 256),
                                  maxTokens: .normal(mean: 96, sd: 24, min: 16, max: 160))
        case "code": w = LoadSpec(url: "", requests: 16, promptTokens: .uniform(256, 512), maxTokens: .uniform(64, 192))
        case "long-context": w = LoadSpec(url: "", requests: 8, promptTokens: .uniform(1024, 2048), maxTokens: .fixed(64))
        default:
            guard let data = FileManager.default.contents(atPath: workload) else {
                throw ValidationError("--workload '\(workload)' is neither chat, code, long-context nor a readable LoadSpec JSON file")
            }
            do { w = try JSONDecoder().decode(LoadSpec.self, from: data) } catch {
                throw ValidationError("--workload \(workload): not a LoadSpec JSON (\(error)); see `autoglm loadtest` for the fields")
            }
        }
        if let r = requests { w.requests = r }
        if let p = promptTokens { w.promptTokens = .fixed(p) }
        if let m = maxTokens { w.maxTokens = .fixed(m) }
        w.warmupRequests = warmup
        w.timeoutSeconds = requestTimeout
        w.ignoreEOS = true
        w.seed = seed
        w.model = "trial"
        return w
    }

    static func upperBound(_ d: LengthDist) -> Int {
        switch d {
        case .fixed(let n): return n
        case .uniform(_, let hi): return hi
        case .normal(_, _, _, let hi): return hi
        }
    }

    var direction: Direction { objective == "latency" || objective == "memory" ? .minimize : .maximize }

    var objectiveUnit: String {
        switch objective {
        case "throughput": return "tok/s"
        case "goodput": return "req/s"
        case "latency": return "ms"
        default: return "MiB"
        }
    }

    func run() async throws {
        let out = OptimizeRun(command: self)
        try await out.run()
    }
}

/// Resolved model for a study.
struct StudyModel {
    var path: String
    var digest: String
    var registryModel: String?
    var registryVersion: String?
}

/// The optimize command's state and steps.
struct OptimizeRun {
    let command: Optimize

    func resolveModel(registry: Registry) throws -> (StudyModel, LoadedSpec?) {
        var ref = command.model
        var loaded: LoadedSpec?
        if let specPath = command.spec {
            let text: String
            do { text = try SpecLoader.readFile(specPath) } catch { throw ValidationError(error.description) }
            do {
                loaded = try SpecLoader.load(yaml: text, file: specPath, environment: command.env, variables: SpecLoader.processEnvironment())
            } catch {
                throw ValidationError(error.diagnostics.map(\.description).joined(separator: "\n"))
            }
            ref = loaded?.spec.model.ref
        }
        guard let ref else { throw ValidationError("no model: give --model or a SPEC with model.ref") }
        if FileManager.default.fileExists(atPath: ref) {
            let attrs = try? FileManager.default.attributesOfItem(atPath: ref)
            let size = (attrs?[.size] as? NSNumber)?.int64Value ?? 0
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let abs = URL(fileURLWithPath: ref).standardizedFileURL.path
            return (StudyModel(path: abs, digest: "file:" + stableHash("\(abs)|\(size)|\(mtime)"), registryModel: nil, registryVersion: nil), loaded)
        }
        var reference = ref
        if let s = loaded?.spec.model, let v = s.version { reference = "\(ref)@\(v)" } else if let c = loaded?.spec.model.channel { reference = "\(ref)@\(c)" }
        let mv: ModelVersion
        do { mv = try registry.resolve(reference: reference) } catch {
            throw ValidationError("model '\(reference)' is neither a file nor in the registry (\(error)); pull it first or give a path")
        }
        return (StudyModel(path: mv.path, digest: mv.digest, registryModel: mv.model, registryVersion: mv.version), loaded)
    }

    /// One backend's finished study.
    struct BackendStudy {
        var backend: any ServingBackend
        var id: String
        var space: SearchSpace
        var result: StudyResult
    }

    func run() async throws {
        let registry = try Registry()
        let (studyModel, _) = try resolveModel(registry: registry)
        var template = try command.workloadSpec()
        let levels = try command.loadLevels()
        let tokensPerSequence = Optimize.upperBound(template.promptTokens) + Optimize.upperBound(template.maxTokens)

        // Model facts for the spaces' bounds (the same arithmetic as `serve`).
        let lm = try LoadedModel(path: studyModel.path, threads: 1)
        let cfg = lm.model.config
        let kvElements = cfg.layers * cfg.kvHeads * (cfg.headDim + cfg.valueDim)
        let weightBytes = ((try? FileManager.default.attributesOfItem(atPath: studyModel.path))?[.size] as? NSNumber)?.int64Value ?? 0
        let facts = ModelFacts(weightBytes: weightBytes, kvElementsPerToken: kvElements, contextLength: cfg.contextLength)
        let context = min(cfg.contextLength, (tokensPerSequence + 15) / 16 * 16 + 16)
        template.promptTokenIDs = 1000...min(9999, max(1001, lm.tokenizer.vocabularySize - 1))
        let machine = MachineLimits.current()

        var backendsToRun: [any ServingBackend] = []
        for choice in try command.backendChoices() {
            switch choice {
            case .native:
                backendsToRun.append(NativeBackend(executable: Self.executable, modelPath: studyModel.path, facts: facts, contextLength: context))
            case .llamacpp:
                guard let exe = LlamaCppBackend.locate(explicit: command.llamaServer) else { throw ValidationError("llama-server not found") }
                backendsToRun.append(LlamaCppBackend(executable: exe, modelPath: studyModel.path, facts: facts, contextPerSlot: context))
            case .openai(let url):
                let key = command.upstreamAPIKey ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
                backendsToRun.append(UpstreamBackend(url: url, apiKey: key))
            }
        }
        let searched = command.knobs.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let searched {
            var known = Set(NativeKnob.all)
            if backendsToRun.contains(where: { $0 is LlamaCppBackend }) { known.formUnion(LlamaCppKnob.all) }
            for n in searched where !known.contains(n) {
                throw ValidationError("--knobs: unknown knob '\(n)'; the native engine has \(NativeKnob.all.joined(separator: ", ")); llama.cpp has \(LlamaCppKnob.all.joined(separator: ", "))")
            }
        }

        var studies: [BackendStudy] = []
        for backend in backendsToRun {
            studies.append(try await runStudy(backend, registry: registry, studyModel: studyModel, template: template,
                                              levels: levels, machine: machine, tokensPerSequence: tokensPerSequence,
                                              searched: searched))
        }

        let unit = command.objectiveUnit
        let better: (Double, Double) -> Bool = command.direction == .maximize ? { $0 > $1 } : { $0 < $1 }
        var winner: (study: BackendStudy, trial: Trial, objective: Double)?
        for st in studies {
            if studies.count > 1 { print("== backend \(st.backend.name)") }
            print(OptimizeReport.table(st.result.trials, unit: unit))
            print(OptimizeReport.summary(trials: st.result.trials, best: st.result.best, slo: command.slo,
                                         percentile: command.percentile, unit: unit))
            if let b = st.result.best, let m = b.result.measurement, winner.map({ better(m.objective, $0.objective) }) ?? true {
                winner = (st, b, m.objective)
            }
        }
        if studies.count > 1 {
            let line = studies.map { st in
                "\(st.backend.name) " + (st.result.best?.result.measurement.map { String(format: "%.2f %@", $0.objective, unit as NSString) } ?? "nothing feasible")
            }.joined(separator: ", ")
            print("backends: \(line)" + (winner.map { " → winner: \($0.study.backend.name)" } ?? ""))
        }

        if let (st, best, _) = winner, let m = best.result.measurement {
            let settings = st.backend.settings(best.config)
            if let rm = studyModel.registryModel, let rv = studyModel.registryVersion, let v = try? SemVer(parsing: rv) {
                var values = m.metrics
                values["objective"] = m.objective
                for (k, x) in zip(best.config.names, best.config.values) { if let d = x.doubleValue { values["knob." + k] = d } }
                var machineInfo = ["cores": String(machine.cores), "study": st.id, "backend": st.backend.name]
                for (k, x) in zip(best.config.names, best.config.values) where x.doubleValue == nil { machineInfo["knob." + k] = x.description }
                try registry.recordMetric(model: rm, version: v, kind: "optimize.\(command.objective)", values: values,
                                          configHash: stableHash(st.backend.name + "|" + best.config.description), machine: machineInfo)
            }
            if command.write, let specPath = command.spec {
                try writeSpec(specPath, settings: settings)
            }
        } else if command.write {
            optLog("--write: nothing met the SLOs; the spec is unchanged")
        }
        if let dir = command.report {
            var written: [String] = []
            for st in studies {
                let sub = studies.count == 1 ? dir : dir + "/" + st.backend.name
                let summary = OptimizeReport.summary(trials: st.result.trials, best: st.result.best, slo: command.slo,
                                                     percentile: command.percentile, unit: unit)
                try OptimizeReport.write(dir: sub, study: st.id, objective: command.objective, direction: command.direction,
                                         unit: unit, slo: command.slo, percentile: command.percentile,
                                         trials: st.result.trials, best: st.result.best, space: st.space, summary: summary)
                written.append("\(sub)/report.html")
            }
            if studies.count > 1 {
                try OptimizeReport.writeComparison(dir: dir, objective: command.objective, unit: unit,
                                                   studies: studies.map { ($0.backend.name, $0.id, $0.result.best, $0.backend.settings) },
                                                   winner: winner?.study.backend.name)
                written.append("\(dir)/backends.json")
            }
            optLog("report: " + written.joined(separator: ", "))
        }
    }

    static var executable: String {
        if let p = Bundle.main.executablePath, FileManager.default.isExecutableFile(atPath: p) { return p }
        return CommandLine.arguments[0]
    }

    /// The backend's space, discretised (--grid-levels) and restricted to --knobs; its study in the
    /// registry (resumed or cleared); the trials, run with the chosen strategy.
    func runStudy(_ backend: any ServingBackend, registry: Registry, studyModel: StudyModel, template: LoadSpec,
                  levels: [LoadShape], machine: MachineLimits, tokensPerSequence: Int, searched: [String]?) async throws -> BackendStudy {
        var space: SearchSpace
        do { space = try backend.searchSpace(machine: machine, tokensPerSequence: tokensPerSequence) } catch {
            throw ValidationError("\(backend.name): the workload's sequences (\(tokensPerSequence) tokens) do not fit this model/machine: \(error)")
        }
        let isUpstream = backend is UpstreamBackend
        // grid needs a discrete space; bayes searches the discretised one too when asked, so the two
        // strategies can be compared on exactly the same configurations.
        let gridLevels = command.gridLevels ?? (command.strategy == "grid" ? 3 : nil)
        space = try Self.restrict(space, levels: gridLevels, searched: isUpstream ? nil : searched,
                                  defaults: backend.defaults(cores: machine.cores), backend: backend.name)
        let strategy = isUpstream ? "grid" : command.strategy
        if strategy == "grid", let g = space.grid(limit: 100_000) {
            optLog("\(backend.name) grid: \(g.filter { space.feasible($0) }.count) feasible configurations of \(g.count) (\(space.signature))")
        }

        let keyEncoder = JSONEncoder()
        keyEncoder.outputFormatting = [.sortedKeys]
        let workloadKey = (try? String(decoding: keyEncoder.encode(template), as: UTF8.self)) ?? command.workload
        let levelKey = levels.map { "\($0)" }.joined(separator: ",")
        let sloKey = command.slo.map { "\($0.0)<=\($0.1)" }.joined(separator: ",") + "@p\(command.percentile)"
        let objectiveKey = "\(command.objective)|\(sloKey)|\(backend.name)|\(command.strategy)" + (gridLevels.map { "|L\($0)" } ?? "")
            + (searched.map { "|K" + $0.sorted().joined(separator: "+") } ?? "")
        // The study's identity uses the knob names and the core count, not the memory-derived bounds:
        // available memory moves between runs and must not orphan stored trials.
        let identitySpace = try SearchSpace(knobs: space.knobs.map { Knob($0.name, .categorical(["\(machine.cores) cores"])) })
        let upstreamKey = (backend as? UpstreamBackend).map { "|" + $0.url } ?? ""
        let id = studyID(modelDigest: studyModel.digest, space: identitySpace, workload: workloadKey + "|" + levelKey + upstreamKey,
                         objective: objectiveKey)
        try registry.openStudy(id: id, model: studyModel.registryModel, version: studyModel.registryVersion,
                               modelDigest: studyModel.digest,
                               description: "{\"objective\":\"\(objectiveKey)\",\"space\":\"\(space.signature)\",\"levels\":\"\(levelKey)\"}")
        var history: [Trial] = []
        if command.resume {
            let dec = JSONDecoder()
            history = try registry.trials(study: id).compactMap { try? dec.decode(Trial.self, from: $0.payload) }
            optLog("\(backend.name) study \(id): resuming after \(history.count) stored trial(s)")
        } else {
            try registry.clearTrials(study: id)
            optLog("\(backend.name) study \(id): \(space.knobs.map(\.name).joined(separator: ", ")) on \(machine.cores) cores; objective \(command.objective)")
        }

        let evaluator = TrialEvaluator(backend: backend, template: template, levels: levels, slo: command.slo,
                                       percentile: command.percentile, objective: command.objective,
                                       startupTimeout: command.startupTimeout)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let unit = command.objectiveUnit
        let name = backend.name
        let progress: (TrialProgress) -> Void = { p in
            if let data = try? enc.encode(p.trial) { try? registry.saveTrial(study: id, index: p.trial.index, payload: data) }
            let status: String
            switch p.trial.result {
            case .feasible(let m): status = String(format: "%.2f %@", m.objective, unit as NSString)
            case .infeasible(let r, let d, let m):
                status = "infeasible (\(r.rawValue)\(m.map { String(format: ", %.2f %@", $0.objective, unit as NSString) } ?? "")): \(d)"
            }
            let best = p.best?.result.measurement.map { String(format: "%.2f %@", $0.objective, unit as NSString) } ?? "none yet"
            let eta = p.etaSeconds.map { String(format: "%.0fs", $0) } ?? "?"
            optLog("\(name) trial \(p.completed)/\(p.total) [\(p.trial.origin.rawValue)] \(p.trial.config) → \(status) | best \(best) | ETA \(eta)")
        }
        let options = OptimizerOptions(seed: command.seed, maxTrials: isUpstream ? 1 : command.maxTrials,
                                       timeBudget: try command.parseDuration())
        let result: StudyResult
        do {
            if strategy == "grid" {
                result = try await Optimizer.runGrid(space: space, direction: command.direction, options: options, history: history,
                                                     evaluate: { config in await evaluator.evaluate(config) }, progress: progress)
            } else {
                result = try await Optimizer.run(space: space, direction: command.direction, options: options, history: history,
                                                 evaluate: { config in await evaluator.evaluate(config) }, progress: progress)
            }
        } catch let e as SearchSpaceError {
            throw ValidationError("\(backend.name): \(e.description)")
        }
        return BackendStudy(backend: backend, id: id, space: space, result: result)
    }

    /// The space discretised to `levels` values per integer knob (when given), searching only
    /// `searched` (the other knobs keep the backend's defaults).
    static func restrict(_ space: SearchSpace, levels: Int?, searched: [String]?, defaults: [String: KnobValue],
                         backend: String) throws -> SearchSpace {
        var s = space
        do {
            if let g = levels { s = try s.discretized(levels: g) }
            if let searched { s = try s.searching(only: Set(searched), defaults: defaults) }
        } catch {
            throw ValidationError("\(backend): \(error.description)")
        }
        return s
    }

    /// Writes the winning backend's settings into the spec through the Deploy loader/encoder.
    func writeSpec(_ path: String, settings: BackendSettings) throws {
        let text: String
        do { text = try SpecLoader.readFile(path) } catch { throw ValidationError(error.description) }
        var base: LoadedSpec
        do { base = try SpecLoader.load(yaml: text, file: path, environment: nil, variables: SpecLoader.processEnvironment()) } catch {
            throw ValidationError(error.diagnostics.map(\.description).joined(separator: "\n"))
        }
        guard let type = BackendType(rawValue: settings.type) else { throw ValidationError("internal: backend type \(settings.type)") }
        var b = BackendSpec()
        b.type = type
        b.url = settings.url
        b.threads = settings.threads
        b.maxSeqs = settings.maxSeqs
        b.maxBatchedTokens = settings.maxBatchedTokens
        b.kvCacheMB = settings.kvCacheMB
        b.contextLength = settings.contextLength
        b.kvCacheType = settings.kvCacheType.flatMap { KVCacheType(rawValue: $0) }
        b.batchWaitMs = settings.batchWaitMs
        b.ubatchTokens = settings.ubatchTokens
        b.flashAttention = settings.flashAttention
        base.spec.backend = b
        if let r = settings.replicas { base.spec.replicas = r }
        let yaml = SpecEncoder.yaml(base.spec)
        // The encoder writes the resolved base spec; overlays would be lost, so a spec with
        // environments gets a sibling file instead of being overwritten.
        let target = base.spec.environmentNames.isEmpty ? path : path.replacingOccurrences(of: ".yaml", with: "") + ".optimized.yaml"
        do { _ = try SpecLoader.load(yaml: yaml, file: target, environment: nil, variables: SpecLoader.processEnvironment()) } catch {
            throw ValidationError("internal: the rewritten spec does not load: \(error.diagnostics.map(\.description).joined(separator: "; "))")
        }
        try yaml.write(toFile: target, atomically: true, encoding: .utf8)
        optLog("wrote the best backend configuration to \(target)\(target == path ? "" : " (the spec has environments overlays, which the encoder does not keep)")")
    }
}

private func optLog(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
