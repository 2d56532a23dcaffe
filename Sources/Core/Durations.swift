/// The one conversion from a `Duration` to seconds as a `Double` (metrics, timings, reports).
extension Duration {
    @inlinable public var inSeconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
