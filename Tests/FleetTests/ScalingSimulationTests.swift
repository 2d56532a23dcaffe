import Spec
import Testing
@testable import Fleet

/// The autoscaler against a simulated fleet on a fake clock: requests arrive at a ramping rate,
/// each ready replica serves `capacity` requests/s, the rest wait; a replica the autoscaler adds
/// is ready `startup` seconds later. The queue-time area (waiting requests × seconds, i.e. the
/// total time requests spent queued) is what scaling early saves.
@Suite struct ScalingSimulationTests {
    struct Outcome { var queueArea: Double; var firstScaleUp: Double?; var peakReplicas: Int }

    static func simulate(_ spec: AutoscalingSpec, rate: (Double) -> Double, seconds: Double,
                         capacity: Double, startup: Double, step: Double = 1) -> Outcome {
        var scaler = Autoscaler(spec: spec, current: 1)
        var readyAt: [Double] = [0]        // when each replica is (or will be) ready
        var queue = 0.0, area = 0.0
        var arrivedSinceSample = 0.0
        var nextSample = spec.intervalSeconds
        var first: Double?
        var peak = 1
        var t = 0.0
        while t < seconds {
            let ready = readyAt.filter { $0 <= t }.count
            let arrivals = rate(t) * step
            arrivedSinceSample += arrivals
            let served = min(queue + arrivals, capacity * Double(ready) * step)
            queue += arrivals - served
            area += queue * step
            t += step
            if t >= nextSample {
                nextSample += spec.intervalSeconds
                let readyNow = readyAt.filter { $0 <= t }.count
                let s = FleetSample(time: t, replicas: readyAt.count, ready: readyNow, inFlight: readyNow + Int(queue),
                                    waiting: Int(queue), arrivals: Int(arrivedSinceSample.rounded()), finished: Int(served),
                                    failed: 0, ttftP95: nil, tpotP95: nil)
                arrivedSinceSample = 0
                if let d = scaler.observe(s) {
                    if d.to > readyAt.count {
                        if first == nil { first = t }
                        for _ in readyAt.count..<d.to { readyAt.append(t + startup) }
                    } else {
                        readyAt = Array(readyAt.prefix(d.to))
                    }
                    peak = max(peak, readyAt.count)
                }
            }
        }
        return Outcome(queueArea: area, firstScaleUp: first, peakReplicas: peak)
    }

    static func spec(predictive: Bool) -> AutoscalingSpec {
        var a = AutoscalingSpec()
        a.enabled = true
        a.minReplicas = 1
        a.maxReplicas = 8
        a.intervalSeconds = 5
        a.rules = [ScalingRule(name: "queue-high", metric: .queuePerReplica, comparison: .above, threshold: 4,
                               forSeconds: 20, change: 1, cooldownSeconds: 30, priority: 10)]
        if predictive {
            var p = PredictiveSpec()
            p.enabled = true
            p.capacityRPSPerReplica = 4
            p.windowSeconds = 60
            p.horizonSeconds = 30
            a.predictive = p
        }
        return a
    }

    @Test func predictionScalesBeforeTheQueueBuildsAndQueuesLess() {
        // 2 req/s rising by 0.1 req/s every second to 22 req/s at 200 s; 4 req/s per replica;
        // a new replica takes 20 s to load its model.
        let ramp: (Double) -> Double = { t in 2 + 0.1 * min(t, 200) }
        let rules = Self.simulate(Self.spec(predictive: false), rate: ramp, seconds: 300, capacity: 4, startup: 20)
        let predicted = Self.simulate(Self.spec(predictive: true), rate: ramp, seconds: 300, capacity: 4, startup: 20)
        print("ramp 2→22 req/s: rules only: first scale-up at \(rules.firstScaleUp ?? -1) s, queue-time area \(Int(rules.queueArea)) request·s, peak \(rules.peakReplicas) replicas; "
              + "with the forecast: first at \(predicted.firstScaleUp ?? -1) s, area \(Int(predicted.queueArea)) request·s, peak \(predicted.peakReplicas)")
        let r = rules.firstScaleUp ?? .infinity, p = predicted.firstScaleUp ?? .infinity
        #expect(p < r)
        #expect(predicted.queueArea < rules.queueArea)
        // Both end with enough replicas for 22 req/s (6 at 4 req/s each).
        #expect(rules.peakReplicas >= 6 && predicted.peakReplicas >= 6)
    }
}
