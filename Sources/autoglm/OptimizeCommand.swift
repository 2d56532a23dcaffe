import ArgumentParser
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
    @Option(name: .long, help: "Backends to tune (native; llamacpp and openai:URL are not implemented yet).") var backends = "native"
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
        guard maxTrials >= 1 else { throw ValidationError("--max-trials must be ≥ 1 (got \(maxTrials))") }
        guard strategy == "bayes" || strategy == "grid" else { throw ValidationError("--strategy must be bayes or grid (got '\(strategy)')") }
        if let g = gridLevels, !(2...64).contains(g) { throw ValidationError("--grid-levels must be between 2 and 64 (got \(g))") }
        if write && spec == nil { throw ValidationError("--write needs a SPEC file to update") }
        if objective == "goodput" && slo.isEmpty { throw ValidationError("--objective goodput needs an SLO: --max-ttft-ms, --max-tpot-ms or --max-latency-ms") }
        for (n, v) in [("--max-ttft-ms", maxTTFT), ("--max-tpot-ms", maxTPOT), ("--max-latency-ms", maxLatency)] {
            if let v, !(v > 0 && v.isFinite) { throw ValidationError("\(n) must be a positive number of milliseconds") }
        }
        if let r = requests, r < 1 { throw ValidationError("--requests must be ≥ 1 (got \(r))") }
        if let p = promptTokens, p < 1 { throw ValidationError("--prompt-tokens must be ≥ 1 (got \(p))") }
        if let m = maxTokens, m < 1 { throw ValidationError("--max-tokens must be ≥ 1 (got \(m))") }
        _ = try loadLevels()
        _ = try parseDuration()
        let names = backends.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for b in names where b != "native" {
            throw ValidationError("backend '\(b)' is not implemented yet; use --backends native")
        }
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

    func run() async throws {
        let registry = try Registry()
        let (studyModel, loadedSpec) = try resolveModel(registry: registry)
        var template = try command.workloadSpec()
        let levels = try command.loadLevels()
        let tokensPerSequence = Optimize.upperBound(template.promptTokens) + Optimize.upperBound(template.maxTokens)

        // Model facts for the space's bounds (the same arithmetic as `serve`).
        let lm = try LoadedModel(path: studyModel.path, threads: 1)
        let cfg = lm.model.config
        let kvBytesPerToken = cfg.layers * cfg.kvHeads * (cfg.headDim + cfg.valueDim) * 4
        let weightBytes = ((try? FileManager.default.attributesOfItem(atPath: studyModel.path))?[.size] as? NSNumber)?.int64Value ?? 0
        let facts = ModelFacts(weightBytes: weightBytes, kvBytesPerToken: kvBytesPerToken, contextLength: cfg.contextLength)
        let context = min(cfg.contextLength, (tokensPerSequence + 15) / 16 * 16 + 16)
        let backend = NativeBackend(modelPath: studyModel.path, facts: facts, contextLength: context)
        let machine = MachineLimits.current()
        let fullSpace: SearchSpace
        do { fullSpace = try backend.searchSpace(machine: machine, tokensPerSequence: tokensPerSequence) } catch {
            throw ValidationError("the workload's sequences (\(tokensPerSequence) tokens) do not fit this model/machine: \(error)")
        }
        // grid needs a discrete space; bayes searches the discretised one too when asked, so the two
        // strategies can be compared on exactly the same configurations.
        let gridLevels = command.gridLevels ?? (command.strategy == "grid" ? 3 : nil)
        let space = try gridLevels.map { try fullSpace.discretized(levels: $0) } ?? fullSpace
        if command.strategy == "grid", let g = space.grid(limit: 100_000) {
            optLog("grid: \(g.filter { space.feasible($0) }.count) feasible configurations of \(g.count) (\(space.signature))")
        }
        template.promptTokenIDs = 1000...min(9999, max(1001, lm.tokenizer.vocabularySize - 1))

        let keyEncoder = JSONEncoder()
        keyEncoder.outputFormatting = [.sortedKeys]
        let workloadKey = (try? String(decoding: keyEncoder.encode(template), as: UTF8.self)) ?? command.workload
        let levelKey = levels.map { "\($0)" }.joined(separator: ",")
        let sloKey = command.slo.map { "\($0.0)<=\($0.1)" }.joined(separator: ",") + "@p\(command.percentile)"
        let objectiveKey = "\(command.objective)|\(sloKey)|\(backend.name)|\(command.strategy)" + (gridLevels.map { "|L\($0)" } ?? "")
        // The study's identity uses the knob names and the core count, not the memory-derived bounds:
        // available memory moves between runs and must not orphan stored trials.
        let identitySpace = try SearchSpace(knobs: space.knobs.map { Knob($0.name, .categorical(["\(machine.cores) cores"])) })
        let id = studyID(modelDigest: studyModel.digest, space: identitySpace, workload: workloadKey + "|" + levelKey, objective: objectiveKey)
        try registry.openStudy(id: id, model: studyModel.registryModel, version: studyModel.registryVersion,
                               modelDigest: studyModel.digest,
                               description: "{\"objective\":\"\(objectiveKey)\",\"space\":\"\(space.signature)\",\"levels\":\"\(levelKey)\"}")
        var history: [Trial] = []
        if command.resume {
            let dec = JSONDecoder()
            history = try registry.trials(study: id).compactMap { try? dec.decode(Trial.self, from: $0.payload) }
            optLog("study \(id): resuming after \(history.count) stored trial(s)")
        } else {
            try registry.clearTrials(study: id)
            optLog("study \(id): \(space.knobs.map(\.name).joined(separator: ", ")) on \(machine.cores) cores; objective \(command.objective)")
        }

        let evaluator = TrialEvaluator(backend: backend, template: template, levels: levels, slo: command.slo,
                                       percentile: command.percentile, objective: command.objective,
                                       startupTimeout: command.startupTimeout)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let unit = command.objectiveUnit
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
                optLog("trial \(p.completed)/\(p.total) [\(p.trial.origin.rawValue)] \(p.trial.config) → \(status) | best \(best) | ETA \(eta)")
            }
        let options = OptimizerOptions(seed: command.seed, maxTrials: command.maxTrials, timeBudget: try command.parseDuration())
        let result: StudyResult
        do {
            if command.strategy == "grid" {
                result = try await Optimizer.runGrid(space: space, direction: command.direction, options: options, history: history,
                                                     evaluate: { config in await evaluator.evaluate(config) }, progress: progress)
            } else {
                result = try await Optimizer.run(space: space, direction: command.direction, options: options, history: history,
                                                 evaluate: { config in await evaluator.evaluate(config) }, progress: progress)
            }
        } catch let e as SearchSpaceError {
            throw ValidationError(e.description)
        }

        let trials = result.trials
        print(OptimizeReport.table(trials, unit: unit))
        let summary = OptimizeReport.summary(trials: trials, best: result.best, slo: command.slo,
                                             percentile: command.percentile, unit: unit)
        print(summary)

        if let best = result.best, let m = best.result.measurement {
            let fields = backend.specFields(best.config)
            if let rm = studyModel.registryModel, let rv = studyModel.registryVersion, let v = try? SemVer(parsing: rv) {
                var values = m.metrics
                values["objective"] = m.objective
                for (k, x) in fields { values["knob." + k] = Double(x) }
                try registry.recordMetric(model: rm, version: v, kind: "optimize.\(command.objective)", values: values,
                                          configHash: stableHash(best.config.description),
                                          machine: ["cores": String(machine.cores), "study": id, "backend": backend.name])
            }
            if command.write, let specPath = command.spec {
                try writeSpec(specPath, fields: fields)
            }
        } else if command.write {
            optLog("--write: nothing met the SLOs; the spec is unchanged")
        }
        if let dir = command.report {
            try OptimizeReport.write(dir: dir, study: id, objective: command.objective, direction: command.direction,
                                     unit: unit, slo: command.slo, percentile: command.percentile,
                                     trials: trials, best: result.best, space: space, summary: summary)
            optLog("report: \(dir)/report.html, \(dir)/report.json")
        }
        _ = loadedSpec
    }

    /// Writes the best knobs into the spec's backend section through the Deploy loader/encoder.
    func writeSpec(_ path: String, fields: [String: Int]) throws {
        let text: String
        do { text = try SpecLoader.readFile(path) } catch { throw ValidationError(error.description) }
        var base: LoadedSpec
        do { base = try SpecLoader.load(yaml: text, file: path, environment: nil, variables: SpecLoader.processEnvironment()) } catch {
            throw ValidationError(error.diagnostics.map(\.description).joined(separator: "\n"))
        }
        base.spec.backend.type = .native
        base.spec.backend.threads = fields["threads"]
        base.spec.backend.maxSeqs = fields["maxSeqs"]
        base.spec.backend.maxBatchedTokens = fields["maxBatchedTokens"]
        base.spec.backend.kvCacheMB = fields["kvCacheMB"]
        base.spec.backend.contextLength = fields["contextLength"]
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

/// Runs one trial: launch, load at each level, stop, classify.
struct TrialEvaluator: Sendable {
    let backend: NativeBackend
    let template: LoadSpec
    let levels: [LoadShape]
    let slo: [(String, Double)]
    let percentile: Int
    let objective: String
    let startupTimeout: Double

    func pick(_ s: LatencySummary) -> Double { percentile == 99 ? s.p99 : s.p95 }

    func evaluate(_ config: Config) async -> TrialResult {
        let handle: TrialHandle
        do { handle = try await backend.launch(config, startupTimeout: startupTimeout) } catch let f as TrialFailure {
            return .infeasible(reason: f.reason, detail: f.detail, measurement: nil)
        } catch {
            return .infeasible(reason: .crash, detail: "\(error)", measurement: nil)
        }
        var reports: [LoadReport] = []
        let sloSpec = slo.isEmpty ? nil : SLO(ttftMs: slo.first { $0.0 == "ttft" }?.1, tpotMs: slo.first { $0.0 == "tpot" }?.1,
                                              e2eMs: slo.first { $0.0 == "e2e" }?.1)
        let limits = slo
        let pct = percentile
        for level in levels {
            var spec = template
            spec.url = handle.baseURL
            spec.load = level
            spec.slo = sloSpec
            // Early stop: once 8 requests are in, a running percentile above twice a limit will not recover.
            if !limits.isEmpty {
                spec.abortWhen = { st in
                    guard st.completed >= 8 else { return false }
                    for (name, limit) in limits {
                        let s = name == "ttft" ? st.ttft : name == "tpot" ? st.tpot : st.e2e
                        if (pct == 99 ? s.p99 : s.p95) > 2 * limit { return true }
                    }
                    return false
                }
            }
            do { reports.append(try await LoadGen.run(spec)) } catch {
                _ = await backend.stop(handle)
                return .infeasible(reason: .crash, detail: "load generator: \(error)", measurement: nil)
            }
            if !backend.isAlive(handle) {
                let why = backend.exitDescription(handle)
                _ = await backend.stop(handle)
                return .infeasible(reason: why.oom ? .oom : .crash, detail: "server exited during the load run (\(why.text))", measurement: nil)
            }
        }
        let peak = await backend.stop(handle)
        guard let last = reports.last, last.completed > 0 else {
            let errs = reports.last?.errors.map { "\($0.key) \($0.value)" }.joined(separator: ", ") ?? "no report"
            let timedOut = (reports.last?.errors[LoadGen.ErrorKind.timeout] ?? 0) > 0
            return .infeasible(reason: timedOut ? .timeout : .crash, detail: "no request completed (\(errs))", measurement: nil)
        }
        var metrics: [String: Double] = [
            "ttft_p50_ms": last.ttft.p50, "ttft_p95_ms": last.ttft.p95, "ttft_p99_ms": last.ttft.p99,
            "tpot_p50_ms": last.tpot.p50, "tpot_p95_ms": last.tpot.p95, "tpot_p99_ms": last.tpot.p99,
            "itl_p95_ms": last.itl.p95, "itl_p99_ms": last.itl.p99,
            "e2e_p50_ms": last.e2e.p50, "e2e_p95_ms": last.e2e.p95, "e2e_p99_ms": last.e2e.p99,
            "output_tokens_per_s": last.outputTokensPerSecond, "requests_per_s": last.requestsPerSecond,
            "completed": Double(last.completed), "failed": Double(last.failed),
        ]
        if let g = last.goodput { metrics["goodput"] = g }
        if let p = peak { metrics["peak_rss_mb"] = Double(p) / 1_048_576 }
        var slack: Double?
        var worst = ""
        for r in reports {
            for (name, limit) in slo {
                let s = name == "ttft" ? r.ttft : name == "tpot" ? r.tpot : r.e2e
                let v = pick(s)
                let sl = Foundation.log(max(v, 1e-6) / limit)
                if sl > (slack ?? -Double.infinity) {
                    slack = sl
                    worst = String(format: "%@ p%d %.1f ms vs %.1f ms", name as NSString, percentile, v, limit)
                }
            }
        }
        if let s = slack { metrics["slack"] = s }
        let value: Double
        switch objective {
        case "throughput": value = last.outputTokensPerSecond
        case "goodput": value = last.goodput ?? 0
        case "latency": value = pick(last.e2e)
        default: value = metrics["peak_rss_mb"] ?? 0
        }
        let m = Measurement(objective: value, slack: slack, metrics: metrics)
        let failedShare = Double(last.failed) / Double(max(last.completed + last.failed, 1))
        if failedShare > 0.25 {
            let timedOut = (last.errors[LoadGen.ErrorKind.timeout] ?? 0) > 0
            return .infeasible(reason: timedOut ? .timeout : .crash,
                               detail: "\(last.failed) of \(last.completed + last.failed) requests failed: \(last.errors)", measurement: m)
        }
        if reports.contains(where: \.aborted) {
            return .infeasible(reason: .slo, detail: "stopped early: \(worst)", measurement: m)
        }
        return .measured(m, sloDetail: worst)
    }
}

private func optLog(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
