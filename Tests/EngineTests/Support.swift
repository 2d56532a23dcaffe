import Engine
import Foundation
import Models
import Testing

/// Locates the real test models ($AUTOGLM_MODELS, default ~/.cache/autoglm/models) and loads
/// each once per test process.
enum TestModels {
    static var directory: String {
        ProcessInfo.processInfo.environment["AUTOGLM_MODELS"] ?? (NSHomeDirectory() + "/.cache/autoglm/models")
    }

    static let gemma3 = "gemma3-270m-q4_k_m.gguf"
    static let qwen25 = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

    static func path(_ name: String) -> String? {
        let p = directory + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
        Issue.record("model \(p) is missing: run scripts/fetch-models.sh (CI does)")
        return nil
    }

    nonisolated(unsafe) static var cache: [String: LoadedModel] = [:]
    static let lock = NSLock()

    static func load(_ name: String) throws -> LoadedModel? {
        guard let p = path(name) else { return nil }
        lock.lock(); defer { lock.unlock() }
        if let m = cache[p] { return m }
        let m = try LoadedModel(path: p, threads: 2)
        cache[p] = m
        return m
    }
}

/// Everything a stream produced.
struct Collected {
    var ids: [Int32] = []
    var text = ""
    var streamedText = ""
    var completion: SequenceCompletion?
}

func collect(_ h: GenerationHandle) async -> Collected {
    var c = Collected()
    for await e in h.events {
        switch e {
        case .token(let t):
            c.ids.append(t.id)
            c.streamedText += t.text
        case .finished(let f):
            c.streamedText += f.text
            c.completion = f
        }
    }
    c.text = c.streamedText
    return c
}

/// Waits (bounded) until the scheduler reports no KV blocks in use.
func waitForFreeKV(_ s: Scheduler) async -> Int {
    for _ in 0..<200 {
        if s.stats.kvBlocksUsed == 0 { return 0 }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return s.stats.kvBlocksUsed
}

/// The single-sequence reference the scheduler is checked against: the plain loop with no
/// scheduler in it. One cache, the prompt in one forward pass, then one token per forward pass;
/// greedy ends at `maxTokens`, at the context, or at an end-of-generation token (included), as
/// `generate` always did.
func referenceGreedy(_ lm: LoadedModel, _ prompt: [Int32], maxTokens: Int, ignoreEOS: Bool = false) throws -> [Int32] {
    let cache = lm.model.makeCache()
    var sampler = Sampler(.greedy)
    var logits = try lm.model.forward([SequenceInput(cache: cache, tokens: prompt, logits: .last)], pool: lm.pool)[0]
    var history = prompt
    var generated: [Int32] = []
    let eog = lm.tokenizer.endOfGenerationIDs
    while generated.count < maxTokens {
        let next = sampler.sample(&logits, history: history)
        generated.append(next)
        history.append(next)
        if (!ignoreEOS && eog.contains(next)) || generated.count == maxTokens || cache.count >= cache.maxPositions { break }
        logits = try lm.model.forward([SequenceInput(cache: cache, tokens: [next])], pool: lm.pool)[0]
    }
    return generated
}
