import Foundation
import Testing
@testable import Spec

/// The keys `autoglm up` reads: gateway, autoscaling rules/predictive/intervalSeconds, rollout.analysis.
@Suite struct FleetSpecTests {
    @Test func fleetKeysDecode() throws {
        let spec = try SpecLoader.load(yaml: Fixture.text("specs/fleet.yaml"), file: "fleet.yaml", variables: [:]).spec
        #expect(spec.gateway.policy == .prefixAffinity && spec.gateway.affinityThreshold == 6)
        let a = try #require(spec.autoscaling)
        #expect(a.intervalSeconds == 2.5)
        #expect(a.rules == [
            ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: 4, forSeconds: 20,
                        change: 1, cooldownSeconds: 30, priority: 10),
            ScalingRule(name: "slow-first-token", metric: .ttftP95Seconds, comparison: .above, threshold: 1.5, forSeconds: 60,
                        change: 2, cooldownSeconds: 90, priority: 0),
            ScalingRule(name: "idle", metric: .inflightPerReplica, comparison: .below, threshold: 0.5, forSeconds: 120,
                        change: -1, cooldownSeconds: 60, priority: 0),
        ])
        let p = try #require(a.predictive)
        #expect(p.enabled && p.windowSeconds == 300 && p.horizonSeconds == 30 && p.capacityRPSPerReplica == 3.5)
        #expect(p.alpha == 0.6 && p.beta == 0.2)
        let an = try #require(spec.rollout.analysis)
        #expect(an.maxErrorRate == 0.02 && an.maxTTFTRatio == 1.25 && an.maxTPOTRatio == 2)
        #expect(an.minRequests == 50 && an.durationSeconds == 120)
        #expect(spec.rollout.canaryPercent == 10)
        let dev = try SpecLoader.load(yaml: Fixture.text("specs/fleet.yaml"), file: "fleet.yaml", environment: "dev", variables: [:])
        #expect(dev.spec.gateway.policy == .roundRobin && dev.spec.gateway.affinityThreshold == 6)
        #expect(dev.spec.autoscaling?.predictive?.enabled == false)
        #expect(dev.notes.map(\.message).contains("gateway.affinityThreshold only applies to policy prefix-affinity (this gateway uses round-robin)"))
    }

    @Test func defaultsWhenAbsentAndNothingNewIsPrinted() throws {
        let spec = try SpecLoader.load(yaml: minimal + "autoscaling: {enabled: true, maxReplicas: 3}\n", file: "t.yaml", variables: [:]).spec
        #expect(spec.gateway == GatewaySpec())
        #expect(spec.gateway.policy == .leastOutstanding && spec.gateway.affinityThreshold == 4)
        #expect(spec.autoscaling?.rules == nil && spec.autoscaling?.predictive == nil)
        #expect(spec.autoscaling?.intervalSeconds == 5)
        #expect(spec.autoscaling?.effectiveRules == AutoscalingSpec.defaultRules(metric: .queue, target: 4))
        #expect(spec.rollout.analysis == nil)
        let printed = SpecEncoder.yaml(spec)
        for key in ["gateway", "rules", "predictive", "intervalSeconds", "analysis"] {
            #expect(!printed.contains(key + ":"), "\(key) printed for a spec without it")
        }
        // An empty section takes every default; rules: [] means no rules.
        let empty = try SpecLoader.load(yaml: minimal + "gateway: {}\nrollout: {analysis: {}}\nautoscaling: {rules: []}\n",
                                        file: "t.yaml", variables: [:]).spec
        #expect(empty.gateway == GatewaySpec())
        #expect(empty.rollout.analysis == CanaryAnalysisSpec())
        #expect(empty.autoscaling?.rules == [])
        #expect(try SpecLoader.load(yaml: SpecEncoder.yaml(empty), file: "p.yaml", variables: [:]).spec == empty)
    }

    @Test func everyNewKeyRoundTrips() throws {
        for env in [nil, "dev"] as [String?] {
            let loaded = try SpecLoader.load(yaml: Fixture.text("specs/fleet.yaml"), file: "fleet.yaml", environment: env, variables: [:])
            let printed = SpecEncoder.yaml(loaded.spec)
            var again = try SpecLoader.load(yaml: printed, file: "printed.yaml", variables: [:]).spec
            again.environmentNames = loaded.spec.environmentNames
            #expect(again == loaded.spec)
            #expect(SpecEncoder.yaml(again) == printed)
        }
        // Values the fixture does not use: fractions, exponents, negative priorities, error_rate.
        var spec = Spec(name: "x", model: ModelSpec(ref: "gemma3-270m"))
        var a = AutoscalingSpec()
        a.enabled = true
        a.maxReplicas = 3
        a.intervalSeconds = 0.75
        a.rules = [ScalingRule(name: "errors.v2", metric: .errorRate, comparison: .above, threshold: 0.00001, forSeconds: 0.5,
                               change: -3, cooldownSeconds: 0, priority: -7),
                   ScalingRule(name: "rps_high", metric: .rpsPerReplica, comparison: .below, threshold: 123456.789,
                               forSeconds: 86_400, change: 1000, cooldownSeconds: 1e-3, priority: 1000)]
        var p = PredictiveSpec()
        p.windowSeconds = 2.25
        p.horizonSeconds = 0.1
        p.alpha = 1
        p.beta = 0.001
        a.predictive = p
        spec.autoscaling = a
        spec.gateway.policy = .roundRobin
        var an = CanaryAnalysisSpec()
        an.maxErrorRate = 0
        an.maxTTFTRatio = 0.5
        an.durationSeconds = 0
        an.minRequests = 1
        spec.rollout.analysis = an
        spec.rollout.canaryPercent = 99
        let printed = SpecEncoder.yaml(spec)
        #expect(try SpecLoader.load(yaml: printed, file: "p.yaml", variables: [:]).spec == spec, "\(printed)")
    }

    static let scaling = minimal + """
    autoscaling:
      enabled: true
      maxReplicas: 4
      rules:

    """

    /// (YAML after `minimal`, the errors): every validation of the new keys, each at its line:column.
    @Test(arguments: [
        ("gateway:\n  policy: random\n",
         ["t.yaml:6:11: gateway.policy 'random' is not one of round-robin, least-outstanding, prefix-affinity"]),
        ("gateway:\n  policy: round-robbin\n",
         ["t.yaml:6:11: gateway.policy 'round-robbin' is not one of round-robin, least-outstanding, prefix-affinity; did you mean 'round-robin'?"]),
        ("gateway:\n  affinityThreshold: -1\n",
         ["t.yaml:6:22: gateway.affinityThreshold (-1) must be between 0 and 10000"]),
        ("gateway:\n  policyy: round-robin\n",
         ["t.yaml:6:3: gateway.policyy: unknown key 'policyy'; did you mean 'policy'?"]),
        ("autoscaling:\n  enabled: true\n  minReplicas: 3\n  maxReplicas: 2\n",
         ["t.yaml:8:16: autoscaling.maxReplicas (2) must be ≥ minReplicas (3); raise maxReplicas or lower minReplicas"]),
        ("autoscaling:\n  intervalSeconds: 0\n",
         ["t.yaml:6:20: autoscaling.intervalSeconds (0) must be more than 0 seconds, e.g. '20s'"]),
    ] as [(String, [String])])
    func gatewayAndAutoscalingErrors(_ c: (String, [String])) {
        #expect(errors(minimal + c.0) == c.1, "\(c.0)")
    }

    @Test(arguments: [
        ("    - {name: a, metric: queue, above: 4, change: 1}\n",
         ["t.yaml:9:25: autoscaling.rules[0].metric 'queue' is not one of queue_per_replica, inflight_per_replica, rps_per_replica, ttft_p95_seconds, tpot_p95_seconds, error_rate"]),
        ("    - {name: a, metric: error_rates, above: 0.1, change: 1}\n",
         ["t.yaml:9:25: autoscaling.rules[0].metric 'error_rates' is not one of queue_per_replica, inflight_per_replica, rps_per_replica, ttft_p95_seconds, tpot_p95_seconds, error_rate; did you mean 'error_rate'?"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, below: 1, change: 1}\n",
         ["t.yaml:9:61: autoscaling.rules[0]: set either above or below, not both; a rule compares its metric one way (write a second rule for the other)"]),
        ("    - {name: a, metric: queue_per_replica, change: 1}\n",
         ["t.yaml:9:7: autoscaling.rules[0] needs a condition: add 'above: N' (act while the metric is over N) or 'below: N' (while it is under N)"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: 0}\n",
         ["t.yaml:9:62: autoscaling.rules[0].change must not be 0; write +1 to add a replica or -1 to remove one"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: ~, for: ~}\n",
         ["t.yaml:9:7: autoscaling.rules[0].change is required; write +1 to add a replica or -1 to remove one"]),
        ("    - {name: a, metric: queue_per_replica, above: 4}\n",
         ["t.yaml:9:7: autoscaling.rules[0].change is required; write +1 to add a replica or -1 to remove one"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: 1, for: -5}\n",
         ["t.yaml:9:70: autoscaling.rules[0].for (-5) must not be negative; write 0 or more seconds, e.g. '20s'"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: 1, cooldown: -1m}\n",
         ["t.yaml:9:75: autoscaling.rules[0].cooldown (-1m) must not be negative; write 0 or more seconds, e.g. '20s'"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: 1, for: soon}\n",
         ["t.yaml:9:70: autoscaling.rules[0].for must be a duration: seconds as a number, or with a unit, e.g. '20s', '2m', '1h', got 'soon'"]),
        ("    - {name: a, metric: queue_per_replica, above: -1, change: 1}\n",
         ["t.yaml:9:51: autoscaling.rules[0].above (-1) must be between 0 and 1000000000, e.g. 4"]),
        ("    - {name: a, metric: error_rate, above: 2, change: 1}\n",
         ["t.yaml:9:44: autoscaling.rules[0].above (2) must be between 0 and 1, e.g. 0.05"]),
        ("    - {metric: queue_per_replica, above: 4, change: 1}\n",
         ["t.yaml:9:7: autoscaling.rules[0].name is required; name the rule, e.g. 'name: queue-high' (decisions are logged with it)"]),
        ("    - {name: a, metric: queue_per_replica, above: 4, change: 1}\n    - {name: a, metric: queue_per_replica, below: 1, change: -1}\n",
         ["t.yaml:10:14: autoscaling.rules[1].name 'a' is used by an earlier rule; give each rule its own name (decisions and cooldowns are reported by name)"]),
        ("    - {name: a, metric: queue_per_replica, abov: 4, change: 1}\n",
         ["t.yaml:9:7: autoscaling.rules[0] needs a condition: add 'above: N' (act while the metric is over N) or 'below: N' (while it is under N)",
          "t.yaml:9:44: autoscaling.rules[0].abov: unknown key 'abov'; did you mean 'above'?"]),
    ] as [(String, [String])])
    func ruleErrors(_ c: (String, [String])) {
        #expect(errors(Self.scaling + c.0) == c.1, "\(c.0)")
    }

    @Test(arguments: [
        ("autoscaling:\n  rules: {name: a}\n",
         ["t.yaml:6:10: autoscaling.rules must be a list of rules, e.g. '- {name: queue-high, metric: queue_per_replica, above: 4, for: 20s, change: 1, cooldown: 30s}', got a mapping"]),
        ("autoscaling:\n  predictive:\n    enabled: true\n",
         ["t.yaml:7:5: autoscaling.predictive.capacityRPSPerReplica is required when predictive is enabled: the requests per second one replica sustains (measure it with 'autoglm optimize' or a load test), e.g. 'capacityRPSPerReplica: 4'"]),
        ("autoscaling:\n  predictive: {enabled: true, capacityRPSPerReplica: 0}\n",
         ["t.yaml:6:54: autoscaling.predictive.capacityRPSPerReplica (0) must be greater than 0 and at most 1000000, e.g. 4"]),
        ("autoscaling:\n  predictive: {capacityRPSPerReplica: 4, alpha: 0, beta: 1.5}\n",
         ["t.yaml:6:49: autoscaling.predictive.alpha (0) must be greater than 0 and at most 1, e.g. 0.5",
          "t.yaml:6:58: autoscaling.predictive.beta (1.5) must be greater than 0 and at most 1, e.g. 0.3"]),
        ("autoscaling:\n  predictive: {capacityRPSPerReplica: 4, alpha: .nan}\n",
         ["t.yaml:6:49: autoscaling.predictive.alpha must be a number greater than 0 and at most 1, e.g. 0.5, got '.nan'"]),
        ("autoscaling:\n  intervalSeconds: 10\n  predictive: {capacityRPSPerReplica: 4, windowSeconds: 20s}\n",
         ["t.yaml:7:57: autoscaling.predictive.windowSeconds (20) must cover at least 3 samples (3 × intervalSeconds 10 = 30 s) for the trend to be estimated; raise it, e.g. '5m'"]),
        ("rollout:\n  canaryPercent: 0\n",
         ["t.yaml:6:18: rollout.canaryPercent (0) must be between 1 and 99"]),
        ("rollout:\n  canaryPercent: 100\n",
         ["t.yaml:6:18: rollout.canaryPercent (100) must be between 1 and 99"]),
        ("rollout:\n  analysis:\n    maxErrorRate: 1.5\n    maxTTFTRatio: 0\n    maxTPOTRatio: -2\n    minRequests: 0\n    durationSeconds: -1\n",
         ["t.yaml:7:19: rollout.analysis.maxErrorRate (1.5) must be between 0 and 1, e.g. 0.05",
          "t.yaml:8:19: rollout.analysis.maxTTFTRatio (0) must be greater than 0 and at most 1000, e.g. 1.5",
          "t.yaml:9:19: rollout.analysis.maxTPOTRatio (-2) must be greater than 0 and at most 1000, e.g. 1.5",
          "t.yaml:10:18: rollout.analysis.minRequests (0) must be between 1 and 1000000",
          "t.yaml:11:22: rollout.analysis.durationSeconds (-1) must not be negative; write 0 or more seconds, e.g. '20s'"]),
        ("rollout:\n  analysis:\n    maxErrorRate: \"0.05\"\n    minRequest: 5\n",
         ["t.yaml:7:19: rollout.analysis.maxErrorRate must be a number between 0 and 1, e.g. 0.05, got string \"0.05\"",
          "t.yaml:8:5: rollout.analysis.minRequest: unknown key 'minRequest'; did you mean 'minRequests'?"]),
    ] as [(String, [String])])
    func predictiveAndAnalysisErrors(_ c: (String, [String])) {
        #expect(errors(minimal + c.0) == c.1, "\(c.0)")
    }
}
