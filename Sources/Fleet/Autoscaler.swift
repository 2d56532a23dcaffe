import Spec
import Core

/// What the fleet loop measured at one sampling instant. Counts marked "since the previous
/// sample" cover the interval that ends at `time`. Times are plain seconds on any clock.
public struct FleetSample: Sendable, Equatable {
    public var time: Double
    /// Replica processes running, starting ones included.
    public var replicas: Int
    /// Replicas passing their readiness check.
    public var ready: Int
    /// Requests being served.
    public var inFlight: Int
    /// Requests queued at the gateway, waiting for a replica.
    public var waiting: Int
    /// Requests that arrived since the previous sample.
    public var arrivals: Int
    /// Requests that ended since the previous sample (failed ones included).
    public var finished: Int
    /// Requests that failed since the previous sample.
    public var failed: Int
    /// p95 time to first token over the interval, seconds (nil: none measured).
    public var ttftP95: Double?
    /// p95 time per output token over the interval, seconds (nil: none measured).
    public var tpotP95: Double?

    public init(time: Double, replicas: Int, ready: Int, inFlight: Int, waiting: Int, arrivals: Int,
                finished: Int, failed: Int, ttftP95: Double?, tpotP95: Double?) {
        self.time = time
        self.replicas = replicas
        self.ready = ready
        self.inFlight = inFlight
        self.waiting = waiting
        self.arrivals = arrivals
        self.finished = finished
        self.failed = failed
        self.ttftP95 = ttftP95
        self.tpotP95 = tpotP95
    }
}

extension FleetMetric {
    /// The metric at sample `s` (`previous` gives the interval for rates); nil when it is not
    /// known: no ready replica (the per-replica metrics), no earlier sample (rps), nothing
    /// finished (error rate), no latency measured (ttft, tpot). A rule whose metric is unknown
    /// does not hold.
    public func value(_ s: FleetSample, previous: FleetSample?) -> Double? {
        let ready = Double(s.ready)
        switch self {
        case .queuePerReplica:
            return s.ready > 0 ? Double(s.waiting) / ready : nil
        case .inflightPerReplica:
            return s.ready > 0 ? Double(s.inFlight) / ready : nil
        case .rpsPerReplica:
            guard s.ready > 0, let p = previous, s.time > p.time else { return nil }
            return Double(s.arrivals) / (s.time - p.time) / ready
        case .ttftP95Seconds:
            return s.ttftP95
        case .tpotP95Seconds:
            return s.tpotP95
        case .errorRate:
            guard s.finished > 0 else { return nil }
            return min(1, Double(s.failed) / Double(s.finished))
        }
    }
}

/// A change of the replica count the fleet loop should make.
public struct ScaleDecision: Sendable, Equatable {
    public var from: Int
    public var to: Int
    /// The rule's name, or "predictive".
    public var reason: String
    /// One human line: the metric's value, the threshold, for how long.
    public var detail: String

    public init(from: Int, to: Int, reason: String, detail: String) {
        self.from = from
        self.to = to
        self.reason = reason
        self.detail = detail
    }
}

/// Pure scaling decisions from a stream of samples (no clock, no I/O: the fleet loop calls
/// `observe` every `intervalSeconds` and applies what it returns).
///
/// - A rule holds on a sample when its metric is known and above (below) its threshold; it may
///   act once it has held on every sample for at least `forSeconds` (one sample where it does not
///   hold, or its metric is unknown, starts the count again), at least `cooldownSeconds` after it
///   last acted. A scale-down rule also waits its `cooldownSeconds` after any scale-up.
/// - Of the rules that may act and would change the count (after clamping to
///   [minReplicas, maxReplicas]), the highest priority wins; at equal priority a scale-up beats a
///   scale-down, then the larger step, then the earlier rule.
/// - Predictive (when enabled): Holt's linear trend over the per-interval arrival rates inside
///   `windowSeconds` (at least `PredictiveSpec.minimumSamples` of them), forecast `horizonSeconds` ahead;
///   desired = ceil(forecast / capacityRPSPerReplica), clamped. It only scales up (reason
///   "predictive"), and a scale-down rule does not go below it; scaling down is left to the rules.
///   When a rule and the forecast both scale up, the larger target wins.
/// - Nothing is decided while the last decision is not realized (`sample.replicas` differs from
///   the last target), so one slow start does not add a replica per interval; conditions are
///   still tracked meanwhile.
/// - With `enabled: false` it never decides.
public struct Autoscaler: Sendable {
    struct Rate: Sendable, Equatable {
        var time: Double
        var perSecond: Double
    }

    public let spec: AutoscalingSpec
    public let rules: [ScalingRule]
    /// The replica count last decided (the `current` given at start until the first decision).
    public private(set) var target: Int
    /// The last forecast of the arrival rate (requests/s at the horizon), when predictive.
    public private(set) var lastForecast: Double?
    /// Since when each rule's condition has held without a break (nil: it does not hold now).
    private(set) var since: [Double?]
    private var lastActed: [Double?]
    private var lastScaleUp: Double?
    private var previous: FleetSample?
    private(set) var rates: [Rate] = []

    /// `current`: the replica count the fleet runs (or is starting) now; the first decision
    /// waits until a sample shows it.
    public init(spec: AutoscalingSpec, current: Int) {
        self.spec = spec
        self.rules = spec.effectiveRules
        self.target = current
        self.since = Array(repeating: nil, count: rules.count)
        self.lastActed = Array(repeating: nil, count: rules.count)
    }

    private var bounds: (lo: Int, hi: Int) { (spec.minReplicas, max(spec.minReplicas, spec.maxReplicas)) }

    private func clamp(_ n: Int) -> Int { min(max(n, bounds.lo), bounds.hi) }

    private var predictive: (spec: PredictiveSpec, capacity: Double)? {
        guard let p = spec.predictive, p.enabled, let c = p.capacityRPSPerReplica, c > 0 else { return nil }
        return (p, c)
    }

    public mutating func observe(_ s: FleetSample) -> ScaleDecision? {
        let prev = previous
        previous = s
        guard spec.enabled else { return nil }

        // The arrival rate of the interval ending now, for the forecast.
        if let pred = predictive {
            if let p = prev, s.time > p.time {
                rates.append(Rate(time: s.time, perSecond: Double(max(0, s.arrivals)) / (s.time - p.time)))
            }
            rates.removeAll { $0.time <= s.time - pred.spec.windowSeconds }
        }

        // Each rule's condition, tracked on every sample.
        var values: [Double?] = []
        for (i, rule) in rules.enumerated() {
            let v = rule.metric.value(s, previous: prev)
            values.append(v)
            if let v, rule.holds(v) {
                if since[i] == nil { since[i] = s.time }
            } else {
                since[i] = nil
            }
        }

        // The forecast (kept current even while a change is in progress, for display).
        var desired: (count: Int, detail: String)?
        if let pred = predictive, rates.count >= PredictiveSpec.minimumSamples,
           let holt = HoltForecaster.fit(rates.map(\.perSecond), alpha: pred.spec.alpha, beta: pred.spec.beta) {
            let steps = pred.spec.horizonSeconds / max(spec.intervalSeconds, .leastNonzeroMagnitude)
            let forecast = max(0, holt.forecast(steps: steps))
            lastForecast = forecast
            let need = (forecast / pred.capacity).rounded(.up)
            let count = clamp(need.isFinite ? Int(min(need, Double(bounds.hi))) : bounds.hi)
            let now = rates.last?.perSecond ?? 0
            desired = (count, "arrivals forecast \(shortDecimal(forecast)) req/s in \(shortDecimal(pred.spec.horizonSeconds)) s (now \(shortDecimal(now)) req/s, Holt over \(rates.count) samples) / \(shortDecimal(pred.capacity)) req/s per replica → \(count) replicas")
        }

        guard s.replicas == target else { return nil }

        // The rule that acts, if any.
        var best: (index: Int, to: Int, unclamped: Int)?
        for (i, rule) in rules.enumerated() {
            guard let start = since[i], s.time - start >= rule.forSeconds else { continue }
            if let last = lastActed[i], s.time - last < rule.cooldownSeconds { continue }
            if rule.change < 0, let up = lastScaleUp, s.time - up < rule.cooldownSeconds { continue }
            let (sum, overflow) = target.addingReportingOverflow(rule.change)
            let unclamped = overflow ? (rule.change > 0 ? Int.max : Int.min) : sum
            var to = clamp(unclamped)
            if rule.change < 0, let floor = desired?.count { to = max(to, min(floor, target)) }
            guard to != target else { continue }
            if let b = best {
                let r = rules[b.index]
                let key = (rule.priority, to > target ? 1 : 0, abs(to - target))
                let bestKey = (r.priority, b.to > target ? 1 : 0, abs(b.to - target))
                if key > bestKey { best = (i, to, unclamped) }
            } else {
                best = (i, to, unclamped)
            }
        }

        if let d = desired, d.count > target, best.map({ $0.to < d.count }) ?? true {
            let decision = ScaleDecision(from: target, to: d.count, reason: "predictive",
                                         detail: d.detail + ": \(target) → \(d.count)")
            target = d.count
            lastScaleUp = s.time
            return decision
        }
        guard let b = best else { return nil }
        let rule = rules[b.index]
        let held = s.time - (since[b.index] ?? s.time)
        var detail = "\(rule.metric.rawValue) \(values[b.index].map(shortDecimal) ?? "?") \(rule.comparison.rawValue) \(shortDecimal(rule.threshold)) for \(shortDecimal(held)) s (rule needs \(shortDecimal(rule.forSeconds)) s): \(target) → \(b.to)"
        if b.to != b.unclamped {
            detail += b.to == bounds.hi ? " (maxReplicas \(bounds.hi))" : b.to == bounds.lo ? " (minReplicas \(bounds.lo))" : " (the forecast needs \(b.to))"
        }
        let decision = ScaleDecision(from: target, to: b.to, reason: rule.name, detail: detail)
        if b.to > target { lastScaleUp = s.time }
        lastActed[b.index] = s.time
        target = b.to
        return decision
    }
}
