import Spec
import Testing
@testable import Fleet

/// Hermetic: every time is a plain number of seconds; no clock, no threads.
struct AutoscalerTests {
    static func sample(_ t: Double, replicas: Int = 2, ready: Int? = nil, inFlight: Int = 0, waiting: Int = 0,
                       arrivals: Int = 0, finished: Int = 0, failed: Int = 0,
                       ttft: Double? = nil, tpot: Double? = nil) -> FleetSample {
        FleetSample(time: t, replicas: replicas, ready: ready ?? replicas, inFlight: inFlight, waiting: waiting,
                    arrivals: arrivals, finished: finished, failed: failed, ttftP95: ttft, tpotP95: tpot)
    }

    static func spec(min: Int = 1, max: Int = 10, _ rules: [ScalingRule], predictive: PredictiveSpec? = nil) -> AutoscalingSpec {
        var a = AutoscalingSpec()
        a.enabled = true
        a.minReplicas = min
        a.maxReplicas = max
        a.rules = rules
        a.predictive = predictive
        return a
    }

    static func up(_ name: String = "up", _ metric: FleetMetric = .queuePerReplica, above: Double = 4, for f: Double = 20,
                   change: Int = 1, cooldown: Double = 0, priority: Int = 0) -> ScalingRule {
        ScalingRule(name: name, metric: metric, comparison: .above, threshold: above, forSeconds: f, change: change,
                    cooldownSeconds: cooldown, priority: priority)
    }

    static func down(_ name: String = "down", _ metric: FleetMetric = .inflightPerReplica, below: Double = 0.5, for f: Double = 0,
                     change: Int = -1, cooldown: Double = 0, priority: Int = 0) -> ScalingRule {
        ScalingRule(name: name, metric: metric, comparison: .below, threshold: below, forSeconds: f, change: change,
                    cooldownSeconds: cooldown, priority: priority)
    }

    /// Feeds the samples; when `follow`, each sample's replica count is the autoscaler's target
    /// (the fleet realizes every decision before the next sample). Returns (time, decision).
    static func run(_ a: inout Autoscaler, _ samples: [FleetSample], follow: Bool = true) -> [(Double, ScaleDecision)] {
        var out: [(Double, ScaleDecision)] = []
        for var s in samples {
            if follow {
                s.replicas = a.target
                s.ready = a.target
            }
            if let d = a.observe(s) { out.append((s.time, d)) }
        }
        return out
    }

    // MARK: the for-window

    @Test(arguments: [
        // waiting per sample (every 5 s from t=0, 2 ready replicas → waiting/2 per replica; rule: > 4 for 20 s)
        (name: "held from the start", waiting: [10, 10, 10, 10, 10, 10], fires: [20.0]),
        (name: "held only 15 s", waiting: [10, 10, 10, 10, 0, 0], fires: []),
        (name: "a break restarts the count", waiting: [10, 10, 0, 10, 10, 10, 10, 10, 10], fires: [35.0]),
        (name: "exactly at the threshold does not hold", waiting: [8, 8, 8, 8, 8, 8], fires: []),
    ] as [(name: String, waiting: [Int], fires: [Double])])
    func ruleFiresAfterHoldingForItsWindow(_ c: (name: String, waiting: [Int], fires: [Double])) {
        var a = Autoscaler(spec: Self.spec([Self.up(cooldown: 1000)]), current: 2)
        let samples = c.waiting.enumerated().map { Self.sample(Double($0.offset) * 5, waiting: $0.element) }
        let fired = Self.run(&a, samples, follow: false)
        #expect(fired.map(\.0) == c.fires, "\(c.name)")
        if let first = fired.first?.1 {
            #expect(first == ScaleDecision(from: 2, to: 3, reason: "up",
                                           detail: "queue_per_replica 5 above 4 for 20 s (rule needs 20 s): 2 → 3"))
        }
    }

    @Test func anUnknownMetricResetsTheWindow() {
        // No ready replica: queue_per_replica is unknown on that sample.
        var a = Autoscaler(spec: Self.spec([Self.up(for: 10)]), current: 2)
        let samples = [Self.sample(0, waiting: 20), Self.sample(5, waiting: 20), Self.sample(10, ready: 0, waiting: 20),
                       Self.sample(15, waiting: 20), Self.sample(20, waiting: 20), Self.sample(25, waiting: 20)]
        #expect(Self.run(&a, samples, follow: false).map(\.0) == [25])
        // A latency rule on a sample without TTFT.
        var b = Autoscaler(spec: Self.spec([Self.up("slow", .ttftP95Seconds, above: 2, for: 10)]), current: 2)
        let ttfts: [Double?] = [3, 3, nil, 3, 3, 3]
        let lat = ttfts.enumerated().map { Self.sample(Double($0.offset) * 5, ttft: $0.element) }
        let fired = Self.run(&b, lat, follow: false)
        #expect(fired.map(\.0) == [25])
        #expect(fired.first?.1.detail == "ttft_p95_seconds 3 above 2 for 10 s (rule needs 10 s): 2 → 3")
    }

    // MARK: cooldown, priority, bounds

    @Test func cooldownSpacesARulesActions() {
        var a = Autoscaler(spec: Self.spec([Self.up(for: 0, cooldown: 30)]), current: 2)
        let samples = stride(from: 0.0, through: 70, by: 5).map { Self.sample($0, waiting: 100) }
        #expect(Self.run(&a, samples).map(\.0) == [0, 30, 60])
        #expect(a.target == 5)
    }

    @Test(arguments: [
        // (rules, expected reason, expected target from 4)
        (name: "higher priority wins", rules: [AutoscalerTests.up("a", change: 1, priority: 1), AutoscalerTests.up("b", change: 2, priority: 5)], reason: "b", to: 6),
        (name: "priority beats direction", rules: [AutoscalerTests.up("u", priority: 0), AutoscalerTests.down("d", .queuePerReplica, below: 100, priority: 3)], reason: "d", to: 3),
        (name: "equal priority: up beats down", rules: [AutoscalerTests.down("d", .queuePerReplica, below: 100), AutoscalerTests.up("u")], reason: "u", to: 5),
        (name: "equal priority and direction: larger step", rules: [AutoscalerTests.up("one", change: 1), AutoscalerTests.up("two", change: 2)], reason: "two", to: 6),
        (name: "all equal: the earlier rule", rules: [AutoscalerTests.up("first"), AutoscalerTests.up("second")], reason: "first", to: 5),
    ] as [(name: String, rules: [ScalingRule], reason: String, to: Int)])
    func priorityPicksTheRule(_ c: (name: String, rules: [ScalingRule], reason: String, to: Int)) {
        let rules = c.rules.map { r -> ScalingRule in var r = r; r.forSeconds = 0; return r }
        var a = Autoscaler(spec: Self.spec(rules), current: 4)
        let d = a.observe(Self.sample(0, replicas: 4, waiting: 40))
        #expect(d?.reason == c.reason, "\(c.name)")
        #expect(d?.to == c.to, "\(c.name)")
    }

    @Test func noScaleDownWithinTheDownRulesCooldownAfterAScaleUp() {
        // Load spikes once (scale-up at t=0), then the fleet is idle: the down rule (cooldown 60 s)
        // waits until 60 s after the scale-up, then every 60 s.
        var a = Autoscaler(spec: Self.spec([Self.up(for: 0, cooldown: 0), Self.down(for: 0, cooldown: 60)]), current: 2)
        var samples = [Self.sample(0, waiting: 100)]
        samples += stride(from: 5.0, through: 130, by: 5).map { Self.sample($0, inFlight: 0) }
        let fired = Self.run(&a, samples)
        #expect(fired.map(\.0) == [0, 60, 120])
        #expect(fired.map(\.1.reason) == ["up", "down", "down"])
        #expect(fired.map(\.1.to) == [3, 2, 1])
    }

    @Test func minAndMaxClampTheChange() {
        // At max: nothing to do, and the rule does not count as having acted.
        var a = Autoscaler(spec: Self.spec(min: 1, max: 3, [Self.up(for: 0, change: 2)]), current: 3)
        #expect(a.observe(Self.sample(0, replicas: 3, waiting: 100)) == nil)
        // A step past max stops at max and says so.
        var b = Autoscaler(spec: Self.spec(min: 1, max: 3, [Self.up(for: 0, change: 2)]), current: 2)
        let d = b.observe(Self.sample(0, replicas: 2, waiting: 100))
        #expect(d == ScaleDecision(from: 2, to: 3, reason: "up",
                                   detail: "queue_per_replica 50 above 4 for 0 s (rule needs 0 s): 2 → 3 (maxReplicas 3)"))
        // At min: the down rule does nothing; a step past min stops at min.
        var c = Autoscaler(spec: Self.spec(min: 2, max: 9, [Self.down(for: 0, change: -5)]), current: 2)
        #expect(c.observe(Self.sample(0, replicas: 2)) == nil)
        var e = Autoscaler(spec: Self.spec(min: 2, max: 9, [Self.down(for: 0, change: -5)]), current: 4)
        #expect(e.observe(Self.sample(0, replicas: 4))?.detail == "inflight_per_replica 0 below 0.5 for 0 s (rule needs 0 s): 4 → 2 (minReplicas 2)")
    }

    @Test func nothingIsDecidedUntilTheLastChangeIsRealized() {
        var a = Autoscaler(spec: Self.spec([Self.up(for: 0, cooldown: 0)]), current: 2)
        // The fleet is slow to start the third replica: replicas stays 2 for 30 s.
        var samples = stride(from: 0.0, through: 30, by: 5).map { Self.sample($0, replicas: 2, waiting: 100) }
        // It appears at t=35 (not yet ready): the next +1 (to 4) may go; the fourth is slow too.
        samples += [Self.sample(35, replicas: 3, ready: 2, waiting: 100), Self.sample(40, replicas: 3, waiting: 100),
                    Self.sample(45, replicas: 4, ready: 3, waiting: 100)]
        let fired = Self.run(&a, samples, follow: false)
        #expect(fired.map(\.0) == [0, 35, 45])
        #expect(fired.map(\.1.to) == [3, 4, 5])
    }

    @Test func disabledNeverDecides() {
        var s = Self.spec([Self.up(for: 0)])
        s.enabled = false
        var a = Autoscaler(spec: s, current: 2)
        #expect(a.observe(Self.sample(0, waiting: 100)) == nil)
    }

    // MARK: metrics and defaults

    @Test func metricValues() {
        let prev = Self.sample(0)
        let s = Self.sample(5, replicas: 3, ready: 2, inFlight: 3, waiting: 7, arrivals: 20, finished: 10, failed: 4, ttft: 0.4, tpot: 0.05)
        let cases: [(FleetMetric, Double?)] = [
            (.queuePerReplica, 3.5), (.inflightPerReplica, 1.5), (.rpsPerReplica, 2), (.ttftP95Seconds, 0.4),
            (.tpotP95Seconds, 0.05), (.errorRate, 0.4),
        ]
        for (m, want) in cases { #expect(m.value(s, previous: prev) == want, "\(m)") }
        // Unknown: no ready replica, no earlier sample, nothing finished, no latency.
        let none = Self.sample(5, ready: 0)
        for m in FleetMetric.allCases { #expect(m.value(none, previous: prev) == nil, "\(m)") }
        #expect(FleetMetric.rpsPerReplica.value(s, previous: nil) == nil)
    }

    @Test func defaultRulesComeFromTheHPAMetricAndTarget() {
        var a = AutoscalingSpec()
        a.enabled = true
        a.target = 6
        let idle = ScalingRule(name: "idle", metric: .inflightPerReplica, comparison: .below, threshold: 0.5,
                               forSeconds: 120, change: -1, cooldownSeconds: 60, priority: 0)
        #expect(a.effectiveRules == [
            ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: 6,
                        forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10), idle,
        ])
        #expect(AutoscalingSpec.defaultRules(metric: .rps, target: 10).first
                == ScalingRule(name: "rps-high", metric: .rpsPerReplica, comparison: .above, threshold: 10,
                               forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10))
        #expect(AutoscalingSpec.defaultRules(metric: .cpu, target: 70).first?.threshold == 4)
        a.rules = []
        #expect(a.effectiveRules.isEmpty)
    }

    // MARK: predictive

    /// Arrivals: 4 req/s for a minute, then +0.25 req/s every second. Each replica serves
    /// 4 req/s; the fleet starts with 2 (8 req/s), so a queue builds once the rate passes 8
    /// (t ≈ 76 s). A fluid queue model turns the excess into waiting requests.
    static func ramp(until end: Double) -> [(time: Double, arrivals: Int)] {
        stride(from: 0.0, through: end, by: 5).map { t in
            let rate = t < 60 ? 4 : 4 + 0.25 * (t - 60)
            return (t, Int((rate * 5).rounded()))
        }
    }

    static func firstDecision(_ spec: AutoscalingSpec) -> (Double, ScaleDecision)? {
        var a = Autoscaler(spec: spec, current: 2)
        var waiting = 0.0
        var last: Double?
        for (t, arrivals) in ramp(until: 200) {
            let dt = last.map { t - $0 } ?? 0
            last = t
            waiting = max(0, waiting + Double(arrivals) - 8 * dt)   // 2 replicas × 4 req/s
            let s = sample(t, replicas: 2, inFlight: 8, waiting: Int(waiting), arrivals: arrivals)
            if let d = a.observe(s) { return (t, d) }
        }
        return nil
    }

    @Test func predictiveScalesUpEarlierThanTheQueueRuleOnARamp() throws {
        let queueRule = ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: 4,
                                    forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10)
        var predictive = PredictiveSpec()
        predictive.enabled = true
        predictive.capacityRPSPerReplica = 4
        let rulesOnly = try #require(Self.firstDecision(Self.spec([queueRule])))
        let withForecast = try #require(Self.firstDecision(Self.spec([queueRule], predictive: predictive)))
        #expect(rulesOnly.1.reason == "queue-high")
        #expect(withForecast.1.reason == "predictive")
        #expect(withForecast.0 < rulesOnly.0, "predictive at \(withForecast.0) s, rule at \(rulesOnly.0) s")
        // The forecast acts before the queue even starts (the rate passes 8 req/s at t = 76 s).
        #expect(withForecast.0 <= 75)
        // Exactly (the series is fixed): the forecast at t=70 s, the queue rule at t=105 s.
        #expect(withForecast.0 == 70 && rulesOnly.0 == 105)
        print("ramp: predictive at t=\(withForecast.0) s (\(withForecast.1.detail)); queue rule at t=\(rulesOnly.0) s (\(rulesOnly.1.detail))")
    }

    @Test func predictiveNeverScalesDownAndFloorsTheDownRules() throws {
        var predictive = PredictiveSpec()
        predictive.enabled = true
        predictive.capacityRPSPerReplica = 4
        predictive.horizonSeconds = 5
        // 20 req/s steady: the forecast needs 5 replicas.
        var a = Autoscaler(spec: Self.spec(min: 1, max: 10, [Self.down("down", .queuePerReplica, below: 1, for: 15, change: -4)],
                                           predictive: predictive), current: 8)
        var decisions: [ScaleDecision] = []
        for t in stride(from: 0.0, through: 60, by: 5) {
            if let d = a.observe(Self.sample(t, replicas: a.target, arrivals: 100)) { decisions.append(d) }
        }
        // The down rule (−4 from 8) acts at t=15, the first sample with a forecast, which stops it
        // at 5; after that it would go below the forecast and does nothing.
        #expect(decisions.map(\.to) == [5])
        #expect(decisions.first?.detail == "queue_per_replica 0 below 1 for 15 s (rule needs 15 s): 8 → 5 (the forecast needs 5)")
        #expect(a.target == 5)
        #expect(a.lastForecast.map { abs($0 - 20) < 1e-9 } == true)
        // From 2 replicas the same load scales up to 5 at once, and only up.
        var b = Autoscaler(spec: Self.spec(min: 1, max: 10, [], predictive: predictive), current: 2)
        var ups: [ScaleDecision] = []
        for t in stride(from: 0.0, through: 60, by: 5) {
            if let d = b.observe(Self.sample(t, replicas: b.target, arrivals: 100)) { ups.append(d) }
        }
        #expect(ups.count == 1)
        #expect(ups.first?.from == 2 && ups.first?.to == 5 && ups.first?.reason == "predictive")
        #expect(ups.first?.detail.hasPrefix("arrivals forecast 20 req/s in 5 s (now 20 req/s, Holt over 3 samples) / 4 req/s per replica → 5 replicas") == true)
    }
}
