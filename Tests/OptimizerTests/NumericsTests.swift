import Foundation
import Optimizer
import Testing

/// Matérn 5/2 written out independently of the library, for the oracles below.
private func maternOracle(_ a: [Double], _ b: [Double], _ ls: [Double], _ s2: Double) -> Double {
    var r2 = 0.0
    for i in a.indices { r2 += pow((a[i] - b[i]) / ls[i], 2) }
    let r = sqrt(r2)
    return s2 * (1 + sqrt(5) * r + 5 * r * r / 3) * exp(-sqrt(5) * r)
}

@Suite struct LinearAlgebraTests {
    @Test func choleskyOfAKnownMatrix() throws {
        // Textbook example: A = L Lᵀ with L = [[2,0,0],[6,1,0],[-8,5,3]].
        let A = Matrix(rows: [[4, 12, -16], [12, 37, -43], [-16, -43, 98]])
        let L = try cholesky(A)
        let expected: [[Double]] = [[2, 0, 0], [6, 1, 0], [-8, 5, 3]]
        for i in 0..<3 { for j in 0..<3 { #expect(abs(L[i, j] - expected[i][j]) < 1e-12) } }
        // Solves: A x = b with x = (1, 2, 3) → b = A x.
        let b: [Double] = [4.0 + 24 - 48, 12 + 74 - 129, -16 - 86 + 294]
        let x = backSubstitute(L, forwardSubstitute(L, b))
        for (u, v) in zip(x, [1.0, 2, 3]) { #expect(abs(u - v) < 1e-10) }
    }

    @Test func semidefiniteNeedsJitter() throws {
        let A = Matrix(rows: [[1, 1], [1, 1]])
        #expect(throws: LinearAlgebraError.self) { try cholesky(A) }
        let (L, jitter) = try choleskyWithJitter(A)
        #expect(jitter > 0)
        #expect(abs(L[0, 0] * L[0, 0] - (1 + jitter)) < 1e-12)
    }

    @Test func nelderMeadFindsRosenbrockMinimum() {
        let r = nelderMead({ p in pow(1 - p[0], 2) + 100 * pow(p[1] - p[0] * p[0], 2) },
                           start: [-1.2, 1], step: 0.5, maxEvaluations: 4000, tolerance: 1e-14)
        #expect(abs(r.point[0] - 1) < 1e-3 && abs(r.point[1] - 1) < 1e-3)
    }

    @Test func normalFunctions() {
        #expect(abs(normalCDF(0) - 0.5) < 1e-15)
        #expect(abs(normalCDF(1.959963984540054) - 0.975) < 1e-12)
        #expect(abs(normalPDF(0) - 1 / sqrt(2 * Double.pi)) < 1e-15)
        // Asymptotic branch agrees with the direct one where both are accurate.
        #expect(abs(logNormalCDF(-29.9) - log(0.5 * erfc(29.9 / sqrt(2)))) < 1e-3)
        #expect(logNormalCDF(-40).isFinite)
    }
}

@Suite struct GaussianProcessTests {
    let ls = [0.3, 0.5]
    let s2 = 2.0
    let noise = 0.1
    var hyper: GPHyperparameters { GPHyperparameters(lengthScales: ls, signalVariance: s2, noiseVariance: noise) }

    @Test func onePointPosteriorIsClosedForm() throws {
        let x0 = [0.2, 0.7], y0 = 1.5
        let gp = try GaussianProcess(inputs: [x0], outputs: [y0], hyper: hyper, standardize: false)
        for x in [[0.4, 0.6], [0.2, 0.7], [0.9, 0.1]] {
            let k = maternOracle(x, x0, ls, s2)
            let (m, v) = gp.predict(x)
            #expect(abs(m - k * y0 / (s2 + noise)) < 1e-12)
            #expect(abs(v - (s2 - k * k / (s2 + noise))) < 1e-12)
        }
        // log N(y0; 0, s² + σ²)
        let lml = -0.5 * y0 * y0 / (s2 + noise) - 0.5 * log(2 * Double.pi * (s2 + noise))
        #expect(abs(gp.logMarginalLikelihood - lml) < 1e-12)
    }

    @Test func twoPointPosteriorMatchesExplicitInverse() throws {
        let X = [[0.1, 0.2], [0.6, 0.9]], y = [0.5, -1.0]
        let gp = try GaussianProcess(inputs: X, outputs: y, hyper: hyper, standardize: false)
        let a = s2 + noise, b = maternOracle(X[0], X[1], ls, s2)
        let det = a * a - b * b
        let inv = [[a / det, -b / det], [-b / det, a / det]]
        let x = [0.3, 0.5]
        let k = [maternOracle(x, X[0], ls, s2), maternOracle(x, X[1], ls, s2)]
        let w = [k[0] * inv[0][0] + k[1] * inv[1][0], k[0] * inv[0][1] + k[1] * inv[1][1]]
        let mean = w[0] * y[0] + w[1] * y[1]
        let variance = s2 - (w[0] * k[0] + w[1] * k[1])
        let (m, v) = gp.predict(x)
        #expect(abs(m - mean) < 1e-12)
        #expect(abs(v - variance) < 1e-12)
        let quad = y[0] * (inv[0][0] * y[0] + inv[0][1] * y[1]) + y[1] * (inv[1][0] * y[0] + inv[1][1] * y[1])
        let lml = -0.5 * quad - 0.5 * log(det) - log(2 * Double.pi)
        #expect(abs(gp.logMarginalLikelihood - lml) < 1e-12)
    }

    @Test func standardisationIsUndoneInPredictions() throws {
        // Standardising y ↦ (y − m)/s then predicting and mapping back equals predicting on the
        // standardised data by hand.
        let X = [[0.1, 0.2], [0.6, 0.9], [0.3, 0.3]], y = [10.0, 14.0, 9.0]
        let m = y.reduce(0, +) / 3
        let s = sqrt(y.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 3)
        let raw = try GaussianProcess(inputs: X, outputs: y.map { ($0 - m) / s }, hyper: hyper, standardize: false)
        let std = try GaussianProcess(inputs: X, outputs: y, hyper: hyper, standardize: true)
        let x = [0.5, 0.5]
        #expect(abs(std.predict(x).mean - (raw.predict(x).mean * s + m)) < 1e-10)
        #expect(abs(std.predict(x).variance - raw.predict(x).variance * s * s) < 1e-10)
    }

    @Test func fittingRaisesTheMarginalLikelihood() throws {
        var rng = SeededRNG(seed: 7)
        let X = (0..<15).map { _ in [rng.uniform(), rng.uniform()] }
        let y = X.map { sin(6 * $0[0]) + 0.1 * $0[1] }
        let fitted = try GaussianProcess.fit(inputs: X, outputs: y, rng: &rng)
        let fixed = try GaussianProcess(inputs: X, outputs: y, hyper: GPHyperparameters(lengthScales: [0.3, 0.3], signalVariance: 1, noiseVariance: 1e-3))
        #expect(fitted.logMarginalLikelihood >= fixed.logMarginalLikelihood)
        // y barely depends on x₂: its fitted length scale is longer than x₁'s.
        #expect(fitted.hyper.lengthScales[1] > fitted.hyper.lengthScales[0])
    }

    @Test func expectedImprovementClosedForms() {
        // At mean == best, EI = σ φ(0).
        #expect(abs(expectedImprovement(mean: 3, sd: 2, best: 3) - 2 / sqrt(2 * Double.pi)) < 1e-14)
        // No uncertainty: EI = max(best − mean, 0).
        #expect(expectedImprovement(mean: 1, sd: 0, best: 3) == 2)
        #expect(expectedImprovement(mean: 4, sd: 0, best: 3) == 0)
        // Against a numeric integral of max(best − f, 0) N(f; μ, σ²).
        let mu = 0.3, sd = 0.7, best = 0.0
        var integral = 0.0
        let h = 1e-4
        var f = mu - 10 * sd
        while f < best { integral += (best - f) * exp(-0.5 * pow((f - mu) / sd, 2)) / (sd * sqrt(2 * Double.pi)) * h; f += h }
        #expect(abs(expectedImprovement(mean: mu, sd: sd, best: best) - integral) < 1e-4)
    }
}

@Suite struct SearchSpaceTests {
    func space() throws -> SearchSpace {
        try SearchSpace(knobs: [
            Knob("threads", .int(1...8)),
            Knob("batch", .logInt(16...4096)),
            Knob("wait", .real(0...10)),
            Knob("kv", .categorical(["f16", "q8_0", "q4_0"])),
            Knob("flash", .bool),
        ])
    }

    @Test func encodeDecodeRoundTrip() throws {
        let s = try space()
        #expect(s.dimension == 7)
        let c = Config(["threads": .int(3), "batch": .int(256), "wait": .real(2.5), "kv": .category("q8_0"), "flash": .bool(true)])
        let x = s.encode(c)
        #expect(abs(x[0] - 2.0 / 7) < 1e-12)
        #expect(abs(x[1] - log(256.0 / 16) / log(4096.0 / 16)) < 1e-12)
        #expect(abs(x[2] - 0.25) < 1e-12)
        #expect(Array(x[3...5]) == [0, 1, 0])
        #expect(x[6] == 1)
        #expect(s.decode(x) == c)
        try s.validate(c)
        var rng = SeededRNG(seed: 1)
        for _ in 0..<200 {
            let u = (0..<s.dimension).map { _ in rng.uniform() }
            let snapped = s.snap(u)
            #expect(s.snap(snapped) == snapped)
            try s.validate(s.decode(u))
        }
    }

    @Test func constraintsFilterRandomSamples() throws {
        let s = try SearchSpace(knobs: [Knob("a", .int(1...10)), Knob("b", .int(1...10))],
                                constraints: [SpaceConstraint("a*b ≤ 12") { ($0.int("a") ?? 0) * ($0.int("b") ?? 0) <= 12 }])
        var rng = SeededRNG(seed: 3)
        for _ in 0..<300 {
            let c = s.decode(try s.randomFeasible(&rng))
            #expect((c.int("a") ?? 99) * (c.int("b") ?? 99) <= 12)
        }
        #expect(s.violated(Config(["a": .int(5), "b": .int(5)])) == ["a*b ≤ 12"])
        let impossible = try SearchSpace(knobs: [Knob("a", .int(1...3))], constraints: [SpaceConstraint("never") { _ in false }])
        #expect(throws: SearchSpaceError.self) { try impossible.randomFeasible(&rng, tries: 50) }
        #expect(s.grid()?.count == 100)
    }

    @Test func latinHypercubeHitsEveryStratumOnce() {
        var rng = SeededRNG(seed: 42)
        let n = 13, d = 4
        let pts = latinHypercube(n: n, dimension: d, rng: &rng)
        #expect(pts.count == n)
        for j in 0..<d {
            let strata = Set(pts.map { Int(($0[j] * Double(n)).rounded(.down)) })
            #expect(strata == Set(0..<n))
        }
    }

    @Test func seededGeneratorIsReproducible() {
        var a = SeededRNG(seed: 9), b = SeededRNG(seed: 9), c = SeededRNG(seed: 10)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }, sc = (0..<8).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
        // Uniform mean ≈ ½ and normal variance ≈ 1 over many draws (law of large numbers, loose bounds).
        var u = 0.0, v = 0.0
        for _ in 0..<20000 { u += a.uniform(); let z = a.normal(); v += z * z }
        #expect(abs(u / 20000 - 0.5) < 0.01)
        #expect(abs(v / 20000 - 1) < 0.05)
    }

    @Test func earlyStopIsCertainOnlyWhenThePercentileCannotRecover() {
        let rule = EarlyStop(limit: 100, percentile: 90, factor: 100, minSamples: 1000)
        // 20 planned; p90 may be violated by at most 2 samples.
        #expect(!rule.certainlyViolated([150, 150], plannedTotal: 20))
        #expect(rule.certainlyViolated([150, 150, 150], plannedTotal: 20))
        // Check by brute force: with 3 over-limit samples, even if all 17 remaining are 0, the
        // nearest-rank p90 of the 20 is > limit.
        let all = ([150.0, 150, 150] + [Double](repeating: 0, count: 17)).sorted()
        #expect(all[Int((0.9 * 20).rounded(.up)) - 1] > 100)
        let heuristic = EarlyStop(limit: 100, percentile: 50, factor: 2, minSamples: 4)
        #expect(!heuristic.shouldStop([300, 300, 300], plannedTotal: 1000))
        #expect(heuristic.shouldStop([300, 300, 300, 10], plannedTotal: 1000))
        #expect(!heuristic.shouldStop([150, 150, 150, 10], plannedTotal: 1000))
    }
}
