import Foundation

/// Hyperparameters of a zero-mean GP with a Matérn 5/2 ARD kernel plus Gaussian noise.
public struct GPHyperparameters: Sendable, Equatable {
    public var lengthScales: [Double]
    public var signalVariance: Double
    public var noiseVariance: Double
    public init(lengthScales: [Double], signalVariance: Double, noiseVariance: Double) {
        self.lengthScales = lengthScales
        self.signalVariance = signalVariance
        self.noiseVariance = noiseVariance
    }
}

/// Matérn 5/2 with per-dimension length scales:
/// k(x, y) = s² (1 + √5 r + 5r²/3) exp(−√5 r),  r² = Σ ((xᵢ − yᵢ)/ℓᵢ)².
@inline(__always)
public func matern52(_ x: [Double], _ y: [Double], lengthScales: [Double], signalVariance: Double) -> Double {
    var r2 = 0.0
    for i in 0..<x.count {
        let d = (x[i] - y[i]) / lengthScales[i]
        r2 += d * d
    }
    let r = r2.squareRoot()
    let s5r = 5.0.squareRoot() * r
    return signalVariance * (1 + s5r + 5 * r2 / 3) * Foundation.exp(-s5r)
}

public enum GPError: Error, CustomStringConvertible {
    case noData
    case dimensionMismatch
    case numerical(LinearAlgebraError)
    public var description: String {
        switch self {
        case .noData: return "the Gaussian process needs at least one observation"
        case .dimensionMismatch: return "observations have different input dimensions"
        case .numerical(let e): return "Gaussian process covariance: \(e)"
        }
    }
}

/// A fitted GP surrogate. Outputs are standardised internally (zero mean, unit variance) unless
/// `standardize` is false; predictions are returned in the original units.
public struct GaussianProcess: Sendable {
    public let inputs: [[Double]]
    public let outputs: [Double]
    public let hyper: GPHyperparameters
    public let standardize: Bool
    let mean: Double
    let scale: Double
    let L: Matrix
    let alpha: [Double]
    /// Log marginal likelihood of the standardised outputs under `hyper`.
    public let logMarginalLikelihood: Double

    public init(inputs: [[Double]], outputs: [Double], hyper: GPHyperparameters, standardize: Bool = true) throws(GPError) {
        guard !inputs.isEmpty, inputs.count == outputs.count else { throw .noData }
        let d = inputs[0].count
        guard inputs.allSatisfy({ $0.count == d }), hyper.lengthScales.count == d else { throw .dimensionMismatch }
        self.inputs = inputs
        self.outputs = outputs
        self.hyper = hyper
        self.standardize = standardize
        let n = Double(outputs.count)
        if standardize {
            let m = outputs.reduce(0, +) / n
            let v = outputs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n
            mean = m
            scale = v > 1e-24 ? v.squareRoot() : 1
        } else {
            mean = 0; scale = 1
        }
        let (m0, s0) = (mean, scale)
        let y = outputs.map { ($0 - m0) / s0 }
        guard let fit = GaussianProcess.factor(inputs, y, hyper) else {
            throw .numerical(.notPositiveDefinite(pivot: 0))
        }
        L = fit.L
        alpha = fit.alpha
        logMarginalLikelihood = fit.lml
    }

    static func covariance(_ X: [[Double]], _ h: GPHyperparameters) -> Matrix {
        let n = X.count
        var K = Matrix(n: n)
        for i in 0..<n {
            for j in 0...i {
                let k = matern52(X[i], X[j], lengthScales: h.lengthScales, signalVariance: h.signalVariance)
                K[i, j] = k; K[j, i] = k
            }
            K[i, i] += h.noiseVariance
        }
        return K
    }

    /// Cholesky of K + σ²I, α = K⁻¹y and the log marginal likelihood
    /// log p(y) = −½ yᵀα − Σ log Lᵢᵢ − n/2 log 2π.
    static func factor(_ X: [[Double]], _ y: [Double], _ h: GPHyperparameters) -> (L: Matrix, alpha: [Double], lml: Double)? {
        let K = covariance(X, h)
        guard let (L, _) = try? choleskyWithJitter(K) else { return nil }
        let alpha = backSubstitute(L, forwardSubstitute(L, y))
        var quad = 0.0
        for i in 0..<y.count { quad += y[i] * alpha[i] }
        var logDet = 0.0
        for i in 0..<y.count { logDet += Foundation.log(L[i, i]) }
        let lml = -0.5 * quad - logDet - 0.5 * Double(y.count) * Foundation.log(2 * Double.pi)
        return (L, alpha, lml)
    }

    /// Posterior mean and variance of the latent function f(x) (noise excluded), original units.
    public func predict(_ x: [Double]) -> (mean: Double, variance: Double) {
        let n = inputs.count
        var ks = [Double](repeating: 0, count: n)
        for i in 0..<n { ks[i] = matern52(x, inputs[i], lengthScales: hyper.lengthScales, signalVariance: hyper.signalVariance) }
        var mu = 0.0
        for i in 0..<n { mu += ks[i] * alpha[i] }
        let v = forwardSubstitute(L, ks)
        var vv = 0.0
        for i in 0..<n { vv += v[i] * v[i] }
        let variance = max(hyper.signalVariance - vv, 1e-12)
        return (mu * scale + mean, variance * scale * scale)
    }

    /// Fits the hyperparameters by maximising the log marginal likelihood over
    /// (log ℓ₁…log ℓ_d, log s², log σ²) with multi-start Nelder–Mead, deterministic for the rng state.
    public static func fit(inputs: [[Double]], outputs: [Double], rng: inout SeededRNG,
                           starts: Int = 4, previous: GPHyperparameters? = nil,
                           bounds: GPHyperBounds = GPHyperBounds()) throws(GPError) -> GaussianProcess {
        guard !inputs.isEmpty, inputs.count == outputs.count else { throw .noData }
        let d = inputs[0].count
        guard inputs.allSatisfy({ $0.count == d }) else { throw .dimensionMismatch }
        let n = Double(outputs.count)
        let m = outputs.reduce(0, +) / n
        let v = outputs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n
        let s = v > 1e-24 ? v.squareRoot() : 1
        let y = outputs.map { ($0 - m) / s }

        func unpack(_ p: [Double]) -> GPHyperparameters {
            GPHyperparameters(lengthScales: p[0..<d].map { Foundation.exp($0) },
                              signalVariance: Foundation.exp(p[d]), noiseVariance: Foundation.exp(p[d + 1]))
        }
        let lo = [Double](repeating: Foundation.log(bounds.lengthScale.lowerBound), count: d)
            + [Foundation.log(bounds.signalVariance.lowerBound), Foundation.log(bounds.noiseVariance.lowerBound)]
        let hi = [Double](repeating: Foundation.log(bounds.lengthScale.upperBound), count: d)
            + [Foundation.log(bounds.signalVariance.upperBound), Foundation.log(bounds.noiseVariance.upperBound)]
        let objective: ([Double]) -> Double = { p in
            // Outside the box: a penalty that grows with the distance, so the simplex walks back in.
            var out = 0.0
            var q = p
            for i in 0..<p.count {
                if q[i] < lo[i] { out += lo[i] - q[i]; q[i] = lo[i] }
                if q[i] > hi[i] { out += q[i] - hi[i]; q[i] = hi[i] }
            }
            guard let f = factor(inputs, y, unpack(q)) else { return 1e10 }
            // A weak log-normal prior on the length scales (centred at 0.5 of the unit cube) keeps
            // tiny data sets from picking degenerate, very short scales.
            var prior = 0.0
            for i in 0..<d { let z = (q[i] - Foundation.log(0.5)) / 1.5; prior += 0.5 * z * z }
            return -f.lml + prior + 1e3 * out
        }
        var startPoints: [[Double]] = []
        if let prev = previous, prev.lengthScales.count == d {
            startPoints.append(prev.lengthScales.map { Foundation.log($0) } + [Foundation.log(prev.signalVariance), Foundation.log(prev.noiseVariance)])
        }
        startPoints.append([Double](repeating: Foundation.log(0.3), count: d) + [0, Foundation.log(1e-3)])
        while startPoints.count < max(starts, 1) {
            startPoints.append((0..<(d + 2)).map { lo[$0] + rng.uniform() * (hi[$0] - lo[$0]) })
        }
        var bestP = startPoints[0]
        var bestF = Double.infinity
        for sp in startPoints {
            let r = nelderMead(objective, start: sp, step: 0.7, maxEvaluations: 150 * (d + 2))
            if r.value < bestF { bestF = r.value; bestP = r.point }
        }
        let clamped = (0..<bestP.count).map { min(max(bestP[$0], lo[$0]), hi[$0]) }
        return try GaussianProcess(inputs: inputs, outputs: outputs, hyper: unpack(clamped))
    }
}

public struct GPHyperBounds: Sendable {
    public var lengthScale: ClosedRange<Double> = 0.01...10
    public var signalVariance: ClosedRange<Double> = 0.05...20
    public var noiseVariance: ClosedRange<Double> = 1e-6...1
    public init() {}
}

/// Nelder–Mead simplex minimisation (reflection 1, expansion 2, contraction ½, shrink ½).
public func nelderMead(_ f: ([Double]) -> Double, start: [Double], step: Double,
                       maxEvaluations: Int, tolerance: Double = 1e-8) -> (point: [Double], value: Double) {
    let n = start.count
    var simplex: [[Double]] = [start]
    for i in 0..<n {
        var p = start
        p[i] += step
        simplex.append(p)
    }
    var values = simplex.map(f)
    var evals = n + 1
    while evals < maxEvaluations {
        let order = values.indices.sorted { values[$0] < values[$1] }
        simplex = order.map { simplex[$0] }
        values = order.map { values[$0] }
        if abs(values[n] - values[0]) <= tolerance * (abs(values[0]) + tolerance) { break }
        var centroid = [Double](repeating: 0, count: n)
        for p in simplex[0..<n] { for j in 0..<n { centroid[j] += p[j] / Double(n) } }
        let worst = simplex[n]
        func along(_ t: Double) -> [Double] { (0..<n).map { centroid[$0] + t * (worst[$0] - centroid[$0]) } }
        let xr = along(-1)
        let fr = f(xr); evals += 1
        if fr < values[0] {
            let xe = along(-2)
            let fe = f(xe); evals += 1
            if fe < fr { simplex[n] = xe; values[n] = fe } else { simplex[n] = xr; values[n] = fr }
        } else if fr < values[n - 1] {
            simplex[n] = xr; values[n] = fr
        } else {
            let outside = fr < values[n]
            let xc = outside ? along(-0.5) : along(0.5)
            let fc = f(xc); evals += 1
            if fc < (outside ? fr : values[n]) {
                simplex[n] = xc; values[n] = fc
            } else {
                for i in 1...n {
                    simplex[i] = (0..<n).map { simplex[0][$0] + 0.5 * (simplex[i][$0] - simplex[0][$0]) }
                    values[i] = f(simplex[i]); evals += 1
                }
            }
        }
    }
    var best = 0
    for i in 1..<values.count where values[i] < values[best] { best = i }
    return (simplex[best], values[best])
}
