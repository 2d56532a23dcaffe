import ArgumentParser
import Engine
import Foundation
import Models

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Debug: run token ids through the model and print the logits of every position.")

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "Comma-separated token ids.") var ids: String
    @Option(name: .long, help: "Print only the K largest logits per position (0 = all).") var top: Int = 10
    @Flag(name: .long, help: "Print JSON.") var json = false

    func parsedIDs() throws -> [Int32] {
        let parts = ids.split(separator: ",", omittingEmptySubsequences: false)
        var out: [Int32] = []
        for p in parts {
            guard let v = Int32(p.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--ids must be comma-separated integers; '\(p)' is not one")
            }
            out.append(v)
        }
        return out
    }

    func validate() throws {
        try FlagRange.check("--top", top, 0...16_777_216)
        guard try !parsedIDs().isEmpty else { throw ValidationError("--ids is empty") }
    }

    func run() throws {
        let model = try options.modelPath()
        let lm = try LoadedModel(path: model, threads: options.effectiveThreads())
        let tokens = try parsedIDs()
        let vocab = lm.model.config.vocabulary
        let cache = lm.model.makeCache(maxPositions: tokens.count)
        let all = try lm.model.forward([SequenceInput(cache: cache, tokens: tokens, logits: .all)], pool: lm.pool)[0]
        var positions: [[String: Any]] = []
        for p in 0..<tokens.count {
            let row = all[(p * vocab)..<((p + 1) * vocab)]
            if top == 0 {
                positions.append(["position": p, "token": Int(tokens[p]), "logits": row.map(Double.init)])
            } else {
                let best = row.indices.sorted { row[$0] > row[$1] }.prefix(top)
                positions.append(["position": p, "token": Int(tokens[p]),
                                  "top": best.map { [$0 - p * vocab, Double(row[$0])] as [Any] }])
            }
        }
        if json {
            printJSON(["vocabulary": vocab, "positions": positions])
        } else {
            for (p, entry) in positions.enumerated() {
                let tops = (entry["top"] as? [[Any]] ?? []).map { "\($0[0])=\(String(format: "%.4f", $0[1] as? Double ?? 0))" }
                print("pos \(p) token \(tokens[p]): " + (top == 0 ? "\(vocab) logits (use --json)" : tops.joined(separator: " ")))
            }
        }
    }
}
