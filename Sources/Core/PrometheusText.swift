/// One sample of the Prometheus text exposition format (0.0.4): `name{label="value",...} value`.
public struct PromSample: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

/// Reading what a `/metrics` endpoint exports (the canary analysis of `deploy apply` reads each
/// pod's counters and histograms through the API server's pod proxy).
public enum PrometheusText {
    /// The samples of `text`, in order. Comments (`# HELP`, `# TYPE`), blank lines and lines that
    /// are not a well-formed sample are skipped; a trailing timestamp is ignored.
    public static func parse(_ text: String) -> [PromSample] {
        var out: [PromSample] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            if let s = sample(Substring(line)) { out.append(s) }
        }
        return out
    }

    static func sample(_ line: Substring) -> PromSample? {
        let chars = Array(line.utf8)
        var i = 0
        while i < chars.count, chars[i] == 0x20 || chars[i] == 0x09 { i += 1 }
        guard i < chars.count, chars[i] != UInt8(ascii: "#") else { return nil }
        let nameStart = i
        while i < chars.count, isNameByte(chars[i]) { i += 1 }
        guard i > nameStart else { return nil }
        let name = String(decoding: chars[nameStart..<i], as: UTF8.self)
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == UInt8(ascii: "{") {
            i += 1
            while true {
                while i < chars.count, chars[i] == 0x20 || chars[i] == UInt8(ascii: ",") { i += 1 }
                guard i < chars.count else { return nil }
                if chars[i] == UInt8(ascii: "}") { i += 1; break }
                let keyStart = i
                while i < chars.count, isNameByte(chars[i]) { i += 1 }
                guard i > keyStart, i < chars.count, chars[i] == UInt8(ascii: "=") else { return nil }
                let key = String(decoding: chars[keyStart..<i], as: UTF8.self)
                i += 1
                guard i < chars.count, chars[i] == UInt8(ascii: "\"") else { return nil }
                i += 1
                var value: [UInt8] = []
                var closed = false
                while i < chars.count {
                    let c = chars[i]
                    if c == UInt8(ascii: "\\"), i + 1 < chars.count {
                        let n = chars[i + 1]
                        value.append(n == UInt8(ascii: "n") ? 0x0A : n)
                        i += 2
                        continue
                    }
                    i += 1
                    if c == UInt8(ascii: "\"") { closed = true; break }
                    value.append(c)
                }
                guard closed else { return nil }
                labels[key] = String(decoding: value, as: UTF8.self)
            }
        }
        while i < chars.count, chars[i] == 0x20 || chars[i] == 0x09 { i += 1 }
        let valueStart = i
        while i < chars.count, chars[i] != 0x20, chars[i] != 0x09 { i += 1 }
        guard let value = number(String(decoding: chars[valueStart..<i], as: UTF8.self)) else { return nil }
        return PromSample(name: name, labels: labels, value: value)
    }

    static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "_") || c == UInt8(ascii: ":")
    }

    /// A sample value or a bucket bound: a float, `+Inf`, `-Inf` or `NaN`.
    public static func number(_ s: String) -> Double? {
        switch s {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    /// The `q`-quantile (0…1) of a cumulative histogram given as (upper bound `le`, count of
    /// observations ≤ le) pairs, as PromQL's `histogram_quantile` computes it: the bucket holding
    /// rank q × total, linearly interpolated between its lower and upper bound (the first bucket's
    /// lower bound is 0; a rank in the +Inf bucket answers the highest finite bound). nil when
    /// nothing was observed or there is no +Inf bucket.
    public static func quantile(_ q: Double, buckets raw: [(le: Double, count: Double)]) -> Double? {
        let buckets = raw.sorted { $0.le < $1.le }
        guard let last = buckets.last, last.le == .infinity, last.count > 0, q >= 0, q <= 1 else { return nil }
        let rank = q * last.count
        guard let i = buckets.firstIndex(where: { $0.count >= rank }) else { return nil }
        if buckets[i].le == .infinity { return buckets.count > 1 ? buckets[buckets.count - 2].le : nil }
        let lower = i == 0 ? 0 : buckets[i - 1].le
        let below = i == 0 ? 0 : buckets[i - 1].count
        if i == 0 && buckets[i].le <= 0 { return buckets[i].le }
        let inBucket = buckets[i].count - below
        guard inBucket > 0 else { return buckets[i].le }
        return lower + (buckets[i].le - lower) * ((rank - below) / inBucket)
    }
}
