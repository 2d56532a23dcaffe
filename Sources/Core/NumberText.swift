/// A number for a human-read sentence (scaling decisions, canary verdicts): at most two decimals,
/// no trailing ".0".
public func shortDecimal(_ d: Double) -> String {
    guard d.isFinite else { return "\(d)" }
    let r = (d * 100).rounded() / 100
    if r == r.rounded(), abs(r) < 1e15 { return String(Int(r)) }
    return "\(r)"
}
