/// Holt's linear trend (double exponential smoothing, additive trend, no damping), the forecast
/// behind `autoscaling.predictive`:
///
///     level[t] = α·y[t] + (1 − α)·(level[t−1] + trend[t−1])
///     trend[t] = β·(level[t] − level[t−1]) + (1 − β)·trend[t−1]
///     forecast(h) = level[n] + h·trend[n]
///
/// It matches statsmodels' `Holt(y, exponential=False).fit(smoothing_level=α, smoothing_trend=β,
/// optimized=False)` exactly: `init(alpha:beta:level:trend:)` is its `initialization_method="known"`
/// (every y, the first included, is then added), `fit(_:alpha:beta:)` its
/// `"legacy-heuristic"` initialisation (level y[0], trend y[1] − y[0], then every y added).
/// scripts/make-holt-reference.py made the reference numbers ForecastTests checks.
public struct HoltForecaster: Sendable, Equatable {
    public let alpha: Double
    public let beta: Double
    public private(set) var level: Double
    public private(set) var trend: Double
    /// Observations added so far.
    public private(set) var count = 0

    /// Starts from a known level and trend (before the first observation).
    public init(alpha: Double, beta: Double, level: Double, trend: Double) {
        self.alpha = alpha
        self.beta = beta
        self.level = level
        self.trend = trend
    }

    /// Smooths one observation in.
    public mutating func add(_ y: Double) {
        let previous = level
        level = alpha * y + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
        count += 1
    }

    /// The value `steps` observation intervals after the last one (fractions interpolate).
    public func forecast(steps: Double) -> Double {
        level + steps * trend
    }

    /// Level y[0], trend y[1] − y[0], then every y added (y[0] included); nil for fewer than two.
    public static func fit(_ ys: [Double], alpha: Double, beta: Double) -> HoltForecaster? {
        guard ys.count >= 2 else { return nil }
        var h = HoltForecaster(alpha: alpha, beta: beta, level: ys[0], trend: ys[1] - ys[0])
        for y in ys { h.add(y) }
        return h
    }
}
