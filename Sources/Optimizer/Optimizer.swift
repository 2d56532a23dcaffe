import Core
import Foundation

public struct OptimizerOptions: Sendable {
    public var seed: UInt64
    public var maxTrials: Int
    /// Size of the Latin-hypercube initial design (default: min(maxTrials, max(5, d + 3)) where d is
    /// the width of the knobs that can take more than one value: a pinned knob teaches the design nothing).
    public var initialPoints: Int?
    /// Wall-clock budget for the loop; checked between trials.
    public var timeBudget: Duration?
    /// Random candidates per acquisition maximisation.
    public var candidates: Int
    public var localStarts: Int
    public var localSteps: Int
    public init(seed: UInt64 = 0, maxTrials: Int = 30, initialPoints: Int? = nil, timeBudget: Duration? = nil,
                candidates: Int = 1500, localStarts: Int = 5, localSteps: Int = 40) {
        self.seed = seed; self.maxTrials = maxTrials; self.initialPoints = initialPoints
        self.timeBudget = timeBudget; self.candidates = candidates
        self.localStarts = localStarts; self.localSteps = localSteps
    }
    func initialCount(dimension d: Int) -> Int { min(maxTrials, initialPoints ?? max(5, d + 3)) }
}

public struct TrialProgress: Sendable {
    public var trial: Trial
    public var completed: Int
    public var total: Int
    public var best: Trial?
    /// Estimated seconds left (mean trial time × trials left), nil before the first trial.
    public var etaSeconds: Double?
}

public enum StopReason: String, Sendable, Codable {
    case maxTrials, timeBudget, exhausted
}

public struct StudyResult: Sendable {
    public var trials: [Trial]
    public var best: Trial?
    public var stopReason: StopReason
}

/// Constrained Bayesian optimisation: Latin-hypercube start, then GP-EI × P(feasible).
public enum Optimizer {
    /// Best feasible trial for the direction (nil when none).
    public static func best(_ trials: [Trial], direction: Direction) -> Trial? {
        var best: Trial?
        for t in trials {
            guard case .feasible(let m) = t.result else { continue }
            if let b = best?.result.measurement {
                if direction == .minimize ? m.objective < b.objective : m.objective > b.objective { best = t }
            } else {
                best = t
            }
        }
        return best
    }

    /// Runs trials until `maxTrials` (counting `history`) or the time budget. `history` are earlier
    /// trials of the same study (resume); proposals continue exactly as an uninterrupted run would.
    public static func run(space: SearchSpace, direction: Direction, options: OptimizerOptions,
                           history: [Trial] = [],
                           evaluate: (Config) async -> TrialResult,
                           progress: ((TrialProgress) throws -> Void)? = nil) async throws -> StudyResult {
        try await drive(direction: direction, options: options, history: history, total: options.maxTrials,
                        next: { try propose(space: space, direction: direction, trials: $0, options: options) },
                        evaluate: evaluate, progress: progress)
    }

    /// The trial loop both strategies share: asks `next` for a configuration until the trial cap,
    /// the time budget or `next` running out (nil), evaluates and times each, reports progress
    /// (ETA over `total` trials). An error thrown by `progress` (e.g. the trial could not be
    /// stored) stops the loop and is rethrown.
    static func drive(direction: Direction, options: OptimizerOptions, history: [Trial], total: Int,
                      next: ([Trial]) throws -> (Config, TrialOrigin)?,
                      evaluate: (Config) async -> TrialResult,
                      progress: ((TrialProgress) throws -> Void)?) async throws -> StudyResult {
        var trials = history
        let clock = ContinuousClock()
        let start = clock.now
        var spent = 0.0
        var ran = 0
        while trials.count < options.maxTrials {
            if let budget = options.timeBudget, clock.now - start >= budget {
                return StudyResult(trials: trials, best: best(trials, direction: direction), stopReason: .timeBudget)
            }
            guard let (config, origin) = try next(trials) else {
                return StudyResult(trials: trials, best: best(trials, direction: direction), stopReason: .exhausted)
            }
            let t0 = clock.now
            let result = await evaluate(config)
            let dt = clock.now - t0
            let seconds = dt.inSeconds
            spent += seconds; ran += 1
            let trial = Trial(index: trials.count, config: config, result: result, origin: origin, seconds: seconds)
            trials.append(trial)
            try progress?(TrialProgress(trial: trial, completed: trials.count, total: total,
                                    best: best(trials, direction: direction),
                                    etaSeconds: spent / Double(ran) * Double(max(total - trials.count, 0))))
        }
        return StudyResult(trials: trials, best: best(trials, direction: direction), stopReason: .maxTrials)
    }

    /// Exhaustive search: every feasible configuration of an all-discrete space (`SearchSpace.grid`),
    /// in the grid's order, skipping those already in `history`, up to `maxTrials` trials in all.
    public static func runGrid(space: SearchSpace, direction: Direction, options: OptimizerOptions,
                               history: [Trial] = [],
                               evaluate: (Config) async -> TrialResult,
                               progress: ((TrialProgress) throws -> Void)? = nil) async throws -> StudyResult {
        guard let grid = space.grid(limit: 100_000) else { throw SearchSpaceError.gridTooLarge }
        let seen = Set(history.map(\.config))
        let todo = grid.filter { space.feasible($0) && !seen.contains($0) }
        var queue = todo[...]
        return try await drive(direction: direction, options: options, history: history,
                               total: min(options.maxTrials, history.count + todo.count),
                               next: { _ in queue.popFirst().map { ($0, .grid) } },
                               evaluate: evaluate, progress: progress)
    }

    /// The next configuration to try given the trials so far (deterministic for options.seed and the
    /// number of trials). Nil when every configuration of a finite space has been tried.
    public static func propose(space: SearchSpace, direction: Direction, trials: [Trial],
                               options: OptimizerOptions) throws -> (Config, TrialOrigin)? {
        let index = trials.count
        let seen = Set(trials.map(\.config))
        var rng = SeededRNG(seed: options.seed, stream: UInt64(index) + 1)
        let nInit = options.initialCount(dimension: space.freeDimension)
        if let grid = space.grid(limit: 100_000), grid.allSatisfy({ seen.contains($0) || !space.feasible($0) }) {
            return nil
        }
        if index < nInit {
            var designRNG = SeededRNG(seed: options.seed, stream: 0)
            let design = latinHypercube(n: nInit, dimension: space.dimension, rng: &designRNG)
            let c = space.decode(design[index])
            if space.feasible(c), !seen.contains(c) { return (c, .initial) }
            // Repair: the nearest of a few random feasible points to the design point.
            var bestC: Config?
            var bestD = Double.infinity
            for _ in 0..<64 {
                let x = try space.randomFeasible(&rng)
                let cand = space.decode(x)
                if seen.contains(cand) { continue }
                let dist = zip(x, design[index]).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                if dist < bestD { bestD = dist; bestC = cand }
            }
            if let c = bestC { return (c, .initial) }
        }
        if let c = try bayesProposal(space: space, direction: direction, trials: trials, seen: seen, rng: &rng, options: options) {
            return (c, .bayes)
        }
        for _ in 0..<1000 {
            let c = space.decode(try space.randomFeasible(&rng))
            if !seen.contains(c) { return (c, .random) }
        }
        return nil
    }

    /// Surrogates fitted to the trials: objective (in minimisation form) and constraint slack.
    public struct Surrogates: Sendable {
        public var objective: GaussianProcess?
        public var constraint: GaussianProcess?
        /// Best feasible objective so far in minimisation form.
        public var incumbent: Double?
    }

    /// Slack used for trials that produced no measurement (crash/OOM/timeout): above every
    /// observed slack, so the constraint model learns to avoid the region.
    static func imputedSlack(_ trials: [Trial]) -> Double {
        let observed = trials.compactMap { $0.result.measurement?.slack }
        return max(observed.max() ?? 0, 0) + 1
    }

    public static func fitSurrogates(space: SearchSpace, direction: Direction, trials: [Trial],
                                     rng: inout SeededRNG) throws -> Surrogates {
        let sign = direction == .minimize ? 1.0 : -1.0
        var xo: [[Double]] = [], yo: [Double] = []
        var xc: [[Double]] = [], yc: [Double] = []
        var incumbent: Double?
        let crashSlack = imputedSlack(trials)
        var anyConstraint = false
        for t in trials {
            let x = space.encode(t.config)
            if let m = t.result.measurement, m.objective.isFinite {
                xo.append(x); yo.append(sign * m.objective)
            }
            switch t.result {
            case .feasible(let m):
                xc.append(x); yc.append(m.slack ?? -1)
                incumbent = min(incumbent ?? .infinity, sign * m.objective)
            case .infeasible(_, _, let m):
                anyConstraint = true
                xc.append(x); yc.append(m?.slack ?? crashSlack)
            }
            if t.result.measurement?.slack != nil { anyConstraint = true }
        }
        var s = Surrogates(objective: nil, constraint: nil, incumbent: incumbent)
        if !xo.isEmpty { s.objective = try GaussianProcess.fit(inputs: xo, outputs: yo, rng: &rng) }
        if anyConstraint, !xc.isEmpty { s.constraint = try GaussianProcess.fit(inputs: xc, outputs: yc, rng: &rng) }
        return s
    }

    /// log(EI(x) · P(slack(x) ≤ 0)); with no feasible incumbent yet, log P(feasible) alone.
    public static func logAcquisition(_ x: [Double], _ s: Surrogates) -> Double {
        var logPoF = 0.0
        if let c = s.constraint {
            let (mu, v) = c.predict(x)
            logPoF = logNormalCDF(-mu / v.squareRoot())
        }
        guard let best = s.incumbent, let f = s.objective else { return logPoF }
        let (mu, v) = f.predict(x)
        return Foundation.log(max(expectedImprovement(mean: mu, sd: v.squareRoot(), best: best), 1e-300)) + logPoF
    }

    static func bayesProposal(space: SearchSpace, direction: Direction, trials: [Trial], seen: Set<Config>,
                              rng: inout SeededRNG, options: OptimizerOptions) throws -> Config? {
        let s = try fitSurrogates(space: space, direction: direction, trials: trials, rng: &rng)
        if s.objective == nil && s.constraint == nil { return nil }
        var scored: [(x: [Double], a: Double)] = []
        func consider(_ raw: [Double]) {
            let c = space.decode(raw)
            guard space.feasible(c), !seen.contains(c) else { return }
            let x = space.encode(c)
            scored.append((x, logAcquisition(x, s)))
        }
        for _ in 0..<options.candidates {
            consider((0..<space.dimension).map { _ in rng.uniform() })
        }
        // Around the best trials: the optimum is often close to the incumbent.
        let sign = direction == .minimize ? 1.0 : -1.0
        let ranked = trials.filter { $0.result.isFeasible }
            .sorted { sign * ($0.result.measurement?.objective ?? 0) < sign * ($1.result.measurement?.objective ?? 0) }
        for t in ranked.prefix(3) {
            let x0 = space.encode(t.config)
            for sigma in [0.1, 0.02, 0.004] {
                for _ in 0..<60 { consider(perturb(x0, sigma: sigma, space: space, rng: &rng)) }
            }
        }
        guard !scored.isEmpty else { return nil }
        scored.sort { $0.a > $1.a }
        var best = scored[0]
        // Local search (stochastic hill climbing with shrinking steps) from the top candidates.
        for startPoint in scored.prefix(options.localStarts) {
            var cur = startPoint
            var sigma = 0.05
            for _ in 0..<options.localSteps {
                let cand = perturb(cur.x, sigma: sigma, space: space, rng: &rng)
                let c = space.decode(cand)
                if space.feasible(c), !seen.contains(c) {
                    let x = space.encode(c)
                    let a = logAcquisition(x, s)
                    if a > cur.a { cur = (x, a); continue }
                }
                sigma = max(sigma * 0.7, 1e-4)
            }
            if cur.a > best.a { best = cur }
        }
        return space.decode(best.x)
    }

    /// Gaussian step on ordinal dimensions; categoricals switch to a random choice with probability ¼.
    static func perturb(_ x: [Double], sigma: Double, space: SearchSpace, rng: inout SeededRNG) -> [Double] {
        var y = x
        for (i, k) in space.knobs.enumerated() {
            let o = space.offsets[i]
            switch k.kind {
            case .categorical(let cats):
                if rng.uniform() < 0.25 {
                    for j in 0..<cats.count { y[o + j] = 0 }
                    y[o + rng.below(cats.count)] = 1
                }
            case .bool:
                if rng.uniform() < 0.25 { y[o] = 1 - y[o] }
            case .int(let r), .logInt(let r):
                // At least about one step of the integer grid, or the step never changes the value.
                let minStep = r.upperBound > r.lowerBound ? 0.6 / Double(r.upperBound - r.lowerBound) : 0
                y[o] = min(max(y[o] + max(sigma, minStep) * rng.normal(), 0), 1)
            case .real:
                y[o] = min(max(y[o] + sigma * rng.normal(), 0), 1)
            case .ordinal(let v):
                let minStep = v.count > 1 ? 0.6 / Double(v.count - 1) : 0
                y[o] = min(max(y[o] + max(sigma, minStep) * rng.normal(), 0), 1)
            }
        }
        return y
    }
}

/// EI for minimisation: E[max(best − f, 0)] with f ~ N(mean, sd²).
public func expectedImprovement(mean: Double, sd: Double, best: Double) -> Double {
    guard sd > 1e-12 else { return max(best - mean, 0) }
    let z = (best - mean) / sd
    return (best - mean) * normalCDF(z) + sd * normalPDF(z)
}

/// log Φ(z), accurate in the far left tail (asymptotic expansion) where Φ underflows.
public func logNormalCDF(_ z: Double) -> Double {
    if z > -30 { return Foundation.log(max(normalCDF(z), 1e-300)) }
    return -0.5 * z * z - Foundation.log(-z) - 0.5 * Foundation.log(2 * Double.pi)
}
