import Backends
import Foundation
import Optimizer
import Spec

/// `optimize`'s output: the text table and summary, report.json, a self-contained report.html
/// (inline SVG) per backend, and backends.json comparing them.
public enum OptimizeReport {
    public static func table(_ trials: [Trial], unit: String) -> String {
        var lines = ["  #  origin   config" + String(repeating: " ", count: 40) + "objective       p95 ttft  p95 e2e   status"]
        for t in trials {
            let m = t.result.measurement
            let obj = m.map { String(format: "%10.2f %@", $0.objective, unit as NSString) } ?? String(repeating: " ", count: 10 + unit.count + 1)
            let ttft = m?.metrics["ttft_p95_ms"].map { String(format: "%8.1f", $0) } ?? "       -"
            let e2e = m?.metrics["e2e_p95_ms"].map { String(format: "%8.1f", $0) } ?? "       -"
            let status: String
            switch t.result {
            case .feasible: status = "ok"
            case .infeasible(let r, let d, _): status = "\(r.rawValue): \(d.prefix(60))"
            }
            let cfg = t.config.description.padding(toLength: max(46, t.config.description.count), withPad: " ", startingAt: 0)
            lines.append(String(format: "%3d  ", t.index + 1) + t.origin.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + cfg + " \(obj)  \(ttft)  \(e2e)  \(status)")
        }
        return lines.joined(separator: "\n")
    }

    /// Best result, or which constraint came closest when nothing met the SLOs.
    public static func summary(trials: [Trial], best: Trial?, slo: [(String, Double)], percentile: Int, unit: String) -> String {
        if let b = best, let m = b.result.measurement {
            return String(format: "best: trial %d  %@  → %.2f %@", b.index + 1, b.config.description as NSString, m.objective, unit as NSString)
        }
        let measured = trials.filter { $0.result.measurement?.slack != nil }
        guard let closest = measured.min(by: { ($0.result.measurement?.slack ?? .infinity) < ($1.result.measurement?.slack ?? .infinity) }),
              let m = closest.result.measurement else {
            let reasons = Dictionary(grouping: trials.compactMap { $0.result.reason?.rawValue }, by: { $0 }).mapValues(\.count)
            return "no trial met the SLOs and none produced measurements (\(reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))"
        }
        var parts: [String] = []
        for (name, limit) in slo {
            let key = "\(name)_p\(percentile)_ms"
            if let v = m.metrics[key] {
                parts.append(String(format: "%@ p%d %.1f ms vs limit %.1f ms (%+.0f%%)", name as NSString, percentile, v, limit, (v / limit - 1) * 100))
            }
        }
        return "no configuration met the SLOs; closest: trial \(closest.index + 1) (\(closest.config)): " + parts.joined(separator: "; ")
    }

    struct JSONTrial: Encodable {
        var index: Int
        var origin: String
        var config: [String: String]
        var status: String
        var detail: String?
        var objective: Double?
        var slack: Double?
        var metrics: [String: Double]
        var seconds: Double
    }

    struct JSONReport: Encodable {
        var study: String
        var objective: String
        var direction: String
        var unit: String
        var percentile: Int
        var slo: [String: Double]
        var space: String
        var best: JSONTrial?
        var summary: String
        var trials: [JSONTrial]
    }

    static func jsonTrial(_ t: Trial) -> JSONTrial {
        var cfg: [String: String] = [:]
        for (n, v) in zip(t.config.names, t.config.values) { cfg[n] = v.description }
        let m = t.result.measurement
        var status = "ok", detail: String?
        if case .infeasible(let r, let d, _) = t.result { status = r.rawValue; detail = d }
        return JSONTrial(index: t.index, origin: t.origin.rawValue, config: cfg, status: status, detail: detail,
                         objective: m?.objective, slack: m?.slack, metrics: m?.metrics ?? [:], seconds: t.seconds)
    }

    public static func write(dir: String, study: String, objective: String, direction: Direction, unit: String,
                      slo: [(String, Double)], percentile: Int, trials: [Trial], best: Trial?,
                      space: SearchSpace, summary: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var sloMap: [String: Double] = [:]
        for (n, v) in slo { sloMap[n + "_ms"] = v }
        let rep = JSONReport(study: study, objective: objective, direction: direction.rawValue, unit: unit,
                             percentile: percentile, slo: sloMap, space: space.signature, best: best.map(jsonTrial),
                             summary: summary, trials: trials.map(jsonTrial))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try enc.encode(rep).write(to: URL(fileURLWithPath: dir + "/report.json"))
        let html = self.html(rep, trials: trials, direction: direction, slo: slo, percentile: percentile, space: space)
        try html.write(toFile: dir + "/report.html", atomically: true, encoding: .utf8)
    }

    struct JSONBackend: Encodable {
        var backend: String
        var study: String
        var report: String
        var best: JSONTrial?
        var settings: JSONSettings?
    }

    /// A backend's settings as backends.json shows them: the spec's `backend:` fields that are set,
    /// and `replicas`.
    struct JSONSettings: Encodable {
        var type: String
        var url: String?
        var replicas: Int?
        var threads: Int?
        var maxSeqs: Int?
        var maxBatchedTokens: Int?
        var kvCacheMB: Int?
        var kvCacheType: String?
        var contextLength: Int?
        var batchWaitMs: Int?
        var ubatchTokens: Int?
        var flashAttention: Bool?
        var gpuLayers: Int?
        var gpuMemoryUtilization: Double?
        var dtype: String?
        var quantization: String?

        init(_ s: ServingSettings) {
            let b = s.backend
            type = b.type.rawValue; url = b.url; replicas = s.replicas; threads = b.threads; maxSeqs = b.maxSeqs
            maxBatchedTokens = b.maxBatchedTokens; kvCacheMB = b.kvCacheMB; kvCacheType = b.kvCacheType?.rawValue
            contextLength = b.contextLength; batchWaitMs = b.batchWaitMs; ubatchTokens = b.ubatchTokens
            flashAttention = b.flashAttention; gpuLayers = b.gpuLayers; gpuMemoryUtilization = b.gpuMemoryUtilization
            dtype = b.dtype; quantization = b.quantization
        }
    }

    struct JSONComparison: Encodable {
        var objective: String
        var unit: String
        var winner: String?
        var backends: [JSONBackend]
    }

    /// backends.json: each backend's best trial and what it means in the spec, and the winner.
    public static func writeComparison(dir: String, objective: String, unit: String,
                                studies: [(name: String, id: String, best: Trial?, settings: (Config) -> ServingSettings)],
                                winner: String?) throws {
        let rep = JSONComparison(objective: objective, unit: unit, winner: winner, backends: studies.map { st in
            JSONBackend(backend: st.name, study: st.id, report: st.name + "/report.json", best: st.best.map(jsonTrial),
                        settings: st.best.map { JSONSettings(st.settings($0.config)) })
        })
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try enc.encode(rep).write(to: URL(fileURLWithPath: dir + "/backends.json"))
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Points that no other point beats on both higher throughput and lower latency.
    static func paretoFront(_ pts: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        pts.filter { p in !pts.contains { q in q.x <= p.x && q.y >= p.y && (q.x < p.x || q.y > p.y) } }
            .sorted { $0.x < $1.x }
    }

    static func html(_ rep: JSONReport, trials: [Trial], direction: Direction, slo: [(String, Double)],
                     percentile: Int, space: SearchSpace) -> String {
        let W = 560.0, H = 340.0, pad = 48.0
        // Throughput vs p95 latency (e2e).
        let latKey = "e2e_p\(percentile)_ms"
        var pts: [(x: Double, y: Double, ok: Bool, i: Int)] = []
        for t in trials {
            guard let m = t.result.measurement, let lat = m.metrics[latKey], let tp = m.metrics["output_tokens_per_s"] else { continue }
            pts.append((lat, tp, t.result.isFeasible, t.index))
        }
        let sloLine = slo.first { $0.0 == "e2e" }?.1
        let maxX = max(pts.map(\.x).max() ?? 1, sloLine ?? 0, 1) * 1.1
        let maxY = max(pts.map(\.y).max() ?? 1, 1) * 1.1
        func sx(_ x: Double) -> Double { pad + x / maxX * (W - 2 * pad) }
        func sy(_ y: Double) -> Double { H - pad - y / maxY * (H - 2 * pad) }
        var scatter = axes(W: W, H: H, pad: pad, xLabel: "p\(percentile) end-to-end latency (ms)", yLabel: "output tokens/s", maxX: maxX, maxY: maxY)
        let front = paretoFront(pts.map { ($0.x, $0.y) })
        if front.count > 1 {
            scatter += "<polyline fill='none' stroke='#2a7' stroke-width='2' points='" + front.map { String(format: "%.1f,%.1f", sx($0.x), sy($0.y)) }.joined(separator: " ") + "'/>"
        }
        for p in pts {
            scatter += String(format: "<circle cx='%.1f' cy='%.1f' r='5' fill='%@'><title>trial %d: %.1f ms, %.1f tok/s</title></circle>",
                              sx(p.x), sy(p.y), (p.ok ? "#27c" : "#d44") as NSString, p.i + 1, p.x, p.y)
        }
        if let s = sloLine {
            scatter += String(format: "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#d80' stroke-dasharray='6 4'/><text x='%.1f' y='%.1f' font-size='11' fill='#d80'>SLO %.0f ms</text>",
                              sx(s), pad / 2, sx(s), H - pad, sx(s) + 4, pad / 2 + 10, s)
        }
        // History: objective per trial and best so far.
        let objs = trials.map { $0.result.measurement?.objective }
        let hMaxY = max(objs.compactMap { $0 }.max() ?? 1, 1e-9) * 1.1
        let n = Double(max(trials.count, 2))
        func hx(_ i: Int) -> Double { pad + Double(i) / (n - 1) * (W - 2 * pad) }
        func hy(_ y: Double) -> Double { H - pad - y / hMaxY * (H - 2 * pad) }
        var history = axes(W: W, H: H, pad: pad, xLabel: "trial", yLabel: "objective (\(rep.unit))", maxX: n, maxY: hMaxY)
        var bestSoFar: Double?
        var bestPts: [String] = []
        for (i, t) in trials.enumerated() {
            if let o = objs[i] {
                history += String(format: "<circle cx='%.1f' cy='%.1f' r='4' fill='%@'><title>trial %d: %.2f</title></circle>",
                                  hx(i), hy(o), (t.result.isFeasible ? "#27c" : "#d44") as NSString, i + 1, o)
            } else {
                history += String(format: "<text x='%.1f' y='%.1f' font-size='12' fill='#d44' text-anchor='middle'>×<title>trial %d: %@</title></text>",
                                  hx(i), H - pad - 4, i + 1, (t.result.reason?.rawValue ?? "") as NSString)
            }
            if t.result.isFeasible, let o = objs[i] {
                if let b = bestSoFar {
                    if direction == .maximize ? o > b : o < b { bestSoFar = o }
                } else {
                    bestSoFar = o
                }
            }
            if let b = bestSoFar { bestPts.append(String(format: "%.1f,%.1f", hx(i), hy(b))) }
        }
        if bestPts.count > 1 { history += "<polyline fill='none' stroke='#2a7' stroke-width='2' points='\(bestPts.joined(separator: " "))'/>" }

        let effects = knobEffects(trials: trials, space: space, unit: rep.unit)

        var rows = ""
        for t in rep.trials {
            let cfg = t.config.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            rows += "<tr><td>\(t.index + 1)</td><td>\(esc(t.origin))</td><td>\(esc(cfg))</td><td>\(t.objective.map { String(format: "%.2f", $0) } ?? "–")</td><td>\(esc(t.status))\(t.detail.map { ": " + esc(String($0.prefix(120))) } ?? "")</td></tr>"
        }
        return """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>autoglm optimize — \(esc(rep.study))</title>
        <style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}svg{border:1px solid #eee;margin:8px 16px 8px 0}</style>
        </head><body>
        <h1>autoglm optimize</h1>
        <p>study <code>\(esc(rep.study))</code> · objective <b>\(esc(rep.objective))</b> (\(esc(rep.direction)), \(esc(rep.unit))) · SLOs \(esc(slo.map { "\($0.0) p\(percentile) ≤ \($0.1) ms" }.joined(separator: ", ")))</p>
        <p><b>\(esc(rep.summary))</b></p>
        <h2>Throughput vs latency</h2><p>blue: met the SLOs, red: did not; green line: Pareto front; dashed: latency SLO.</p>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))">\(scatter)</svg>
        <h2>Trial history</h2><p>objective per trial; green: best feasible so far; × : no measurement (crash, OOM, timeout).</p>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))">\(history)</svg>
        <h2>Each knob's effect</h2><p>objective of every measured trial against one knob's value (blue: met the SLOs, red: did not); knobs with one value in this study are left out.</p>
        \(effects)
        <h2>Trials</h2>
        <table><tr><th>#</th><th>origin</th><th>config</th><th>objective</th><th>status</th></tr>\(rows)</table>
        <p>search space: <code>\(esc(space.signature))</code></p>
        </body></html>
        """
    }

    /// One small scatter per knob that took more than one value: the knob's value (position
    /// along its normalised axis; categories by index) against the objective.
    static func knobEffects(trials: [Trial], space: SearchSpace, unit: String) -> String {
        let W = 300.0, H = 200.0, pad = 40.0
        let measured = trials.compactMap { t in t.result.measurement.map { (t, $0.objective) } }
        let maxY = max(measured.map(\.1).max() ?? 1, 1e-9) * 1.1
        var out = ""
        for knob in space.knobs {
            let values = measured.compactMap { $0.0.config[knob.name] }
            guard Set(values).count > 1 else { continue }
            // Axis positions and tick labels per kind.
            let pos: (KnobValue) -> Double
            var labels: [(Double, String)] = []
            switch knob.kind {
            case .categorical(let cats):
                pos = { v in if case .category(let c) = v, let i = cats.firstIndex(of: c) { return cats.count == 1 ? 0.5 : Double(i) / Double(cats.count - 1) }; return 0 }
                labels = cats.enumerated().map { (cats.count == 1 ? 0.5 : Double($0.offset) / Double(cats.count - 1), $0.element) }
            case .ordinal(let xs):
                pos = { v in Double(xs.firstIndex(of: v.intValue ?? xs[0]) ?? 0) / Double(max(xs.count - 1, 1)) }
                labels = xs.enumerated().map { (Double($0.offset) / Double(max(xs.count - 1, 1)), String($0.element)) }
            case .logInt(let r):
                let lo = Foundation.log(Double(r.lowerBound)), hi = Foundation.log(Double(r.upperBound))
                pos = { v in hi > lo ? (Foundation.log(max(v.doubleValue ?? 1, 1)) - lo) / (hi - lo) : 0.5 }
                labels = [(0, String(r.lowerBound)), (1, String(r.upperBound))]
            case .int(let r):
                pos = { v in r.upperBound > r.lowerBound ? ((v.doubleValue ?? 0) - Double(r.lowerBound)) / Double(r.upperBound - r.lowerBound) : 0.5 }
                labels = [(0, String(r.lowerBound)), (1, String(r.upperBound))]
            case .real(let r):
                pos = { v in r.upperBound > r.lowerBound ? ((v.doubleValue ?? 0) - r.lowerBound) / (r.upperBound - r.lowerBound) : 0.5 }
                labels = [(0, String(format: "%.3g", r.lowerBound)), (1, String(format: "%.3g", r.upperBound))]
            case .bool:
                pos = { v in (v.doubleValue ?? 0) }
                labels = [(0, "false"), (1, "true")]
            }
            func sx(_ u: Double) -> Double { pad + 10 + u * (W - 2 * pad - 20) }
            func sy(_ y: Double) -> Double { H - pad - y / maxY * (H - 1.5 * pad) }
            var g = String(format: "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#888'/><line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#888'/>",
                           pad, H - pad, W - pad / 2, H - pad, pad, pad / 2, pad, H - pad)
            for (u, l) in labels {
                g += String(format: "<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%@</text>", sx(u), H - pad + 13, esc(l) as NSString)
            }
            g += String(format: "<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>%.3g</text>", pad - 3, sy(maxY / 1.1) + 3, maxY / 1.1)
            g += "<text x='\(W / 2)' y='\(H - 8)' font-size='12' text-anchor='middle'>\(esc(knob.name))</text>"
            g += "<text x='10' y='\(H / 2)' font-size='10' transform='rotate(-90 10 \(H / 2))' text-anchor='middle'>\(esc(unit))</text>"
            for (t, o) in measured {
                guard let v = t.config[knob.name] else { continue }
                g += String(format: "<circle cx='%.1f' cy='%.1f' r='4' fill='%@' fill-opacity='0.8'><title>trial %d: %@=%@ → %.2f</title></circle>",
                            sx(pos(v)), sy(o), (t.result.isFeasible ? "#27c" : "#d44") as NSString, t.index + 1,
                            esc(knob.name) as NSString, esc(v.description) as NSString, o)
            }
            out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\">\(g)</svg>"
        }
        return out.isEmpty ? "<p>(no knob took more than one value among the measured trials)</p>" : out
    }

    static func axes(W: Double, H: Double, pad: Double, xLabel: String, yLabel: String, maxX: Double, maxY: Double) -> String {
        var s = String(format: "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#888'/><line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#888'/>",
                       pad, H - pad, W - pad, H - pad, pad, pad / 2, pad, H - pad)
        for k in 0...4 {
            let fx = Double(k) / 4
            s += String(format: "<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%.3g</text>", pad + fx * (W - 2 * pad), H - pad + 14, fx * maxX)
            s += String(format: "<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>%.3g</text>", pad - 4, H - pad - fx * (H - 2 * pad) + 3, fx * maxY)
        }
        s += "<text x='\(W / 2)' y='\(H - 8)' font-size='12' text-anchor='middle'>\(esc(xLabel))</text>"
        s += "<text x='12' y='\(H / 2)' font-size='12' transform='rotate(-90 12 \(H / 2))' text-anchor='middle'>\(esc(yLabel))</text>"
        return s
    }
}
