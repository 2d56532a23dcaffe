import Core
import Foundation
import Grammar
import Tokenizers

/// The output processing of one sequence: sampling, detokenizing, stop strings, logprobs, and
/// its event stream. Which tokens and KV blocks it has is the policy's (`PolicySequence`).
///
/// Ownership: created by `submit`, then owned by the engine thread (one sequence's output is
/// touched by one sampling task of a step at a time).
final class SequenceOutput {
    let id: UInt64
    let request: GenerationRequest
    let continuation: AsyncStream<GenerationEvent>.Continuation
    var generated = 0
    var sampler: Sampler
    var detok: StreamingDetokenizer
    /// Detokenized text not yet released (could be the start of a stop string), as UTF-8.
    var held: [UInt8] = []
    let stops: [[UInt8]]
    var timings: SequenceTimings
    var stopped = false
    /// The grammar's state after the tokens so far (constrained requests only).
    var matcher: GrammarMatcher?
    let vocabulary: TokenVocabulary?
    /// Seconds spent computing token masks (cache misses; hits cost next to nothing).
    var maskSeconds: Double = 0

    init(id: UInt64, request: GenerationRequest, loaded: LoadedModel,
         continuation: AsyncStream<GenerationEvent>.Continuation, queued: ContinuousClock.Instant,
         speculativeK: Int? = nil) {
        self.id = id
        self.request = request
        self.continuation = continuation
        sampler = Sampler(request.sampling)
        detok = StreamingDetokenizer(tokenizer: loaded.tokenizer)
        if let g = request.grammar {
            matcher = GrammarMatcher(g)
            vocabulary = loaded.tokenVocabulary
        } else {
            matcher = nil
            vocabulary = nil
        }
        stops = request.stop.map { Array($0.utf8) }.filter { !$0.isEmpty }
        timings = SequenceTimings(queued: queued)
        // Grammar-constrained requests never draft: verifying a draft would need the matcher's
        // state after each drafted token (and its rollback on rejection); they decode one token
        // per step as without speculation. Everything else (penalties, logprobs, stop strings,
        // EOS, max tokens, every sampling setting) is verified exactly.
        if let k = speculativeK, request.grammar == nil, request.maxTokens > 1 {
            speculation = SpeculationState(maxK: k)
        }
    }

    /// Speculative decoding state (nil: this sequence never drafts — speculation off, or a
    /// grammar-constrained request, see `init`).
    var speculation: SpeculationState?

    /// Samples the next token from `logits` after `history` (the sequence's tokens so far);
    /// returns it, and a finish reason when the sequence ends with it.
    func accept(logits: inout [Float], history: [Int32], time: ContinuousClock.Instant, eog: Set<Int32>,
                contextLength: Int) -> (token: Int32, reason: SequenceFinishReason?) {
        if request.maxTokens == 0 { return (0, .length) }
        let lp = logprobBasis(logits)
        let next: Int32
        if let m = matcher, let vocab = vocabulary {
            // No token can follow (a grammar whose next bytes no token spells): cut, as for length.
            guard let t = sampleConstrained(&logits, history: history, matcher: m, vocab: vocab) else {
                return (0, .length)
            }
            next = t
            matcher?.accept(t, in: vocab)
        } else {
            next = sampler.sample(&logits, history: history)
        }
        return emit(next, logprob: lp, historyCount: history.count, time: time, eog: eog, contextLength: contextLength)
    }

    /// Verifies `drafts` against `rows` (the logits of the last known token's position and of
    /// each draft's, `drafts.count + 1` rows of `vocabulary` floats): left to right, each position's
    /// token is chosen by `Sampler.verify` (greedy: the argmax; sampling: the speculative
    /// acceptance rule), and goes through the same per-token processing as `accept` (logprobs,
    /// end of generation, stop strings, max tokens, the stream). It stops at the first rejected
    /// draft (its replacement is emitted), after the token past the last draft (the bonus), or
    /// when a token ends the sequence. Returns the emitted tokens, how many drafts were accepted
    /// (their positions' keys and values stay valid), and the finish reason.
    func acceptSpeculative(rows: UnsafeBufferPointer<Float>, vocabulary v: Int, drafts: [Int32], history: [Int32],
                           time: ContinuousClock.Instant, eog: Set<Int32>,
                           contextLength: Int) -> (tokens: [Int32], accepted: Int, reason: SequenceFinishReason?) {
        if request.maxTokens == 0 { return ([], 0, .length) }
        var hist = history
        var tokens: [Int32] = []
        var accepted = 0
        var reason: SequenceFinishReason?
        for i in 0...drafts.count {
            guard let base = rows.baseAddress, (i + 1) * v <= rows.count else { break }
            var row = Array(UnsafeBufferPointer(start: base + i * v, count: v))
            let lp = logprobBasis(row)
            let next: Int32
            var agreed = false
            if i < drafts.count {
                let verdict = sampler.verify(&row, history: hist, draft: drafts[i])
                next = verdict.token
                agreed = verdict.accepted
            } else {
                next = sampler.sample(&row, history: hist)
            }
            let r = emit(next, logprob: lp, historyCount: hist.count, time: time, eog: eog, contextLength: contextLength)
            tokens.append(next)
            hist.append(next)
            if agreed { accepted += 1 }
            if let why = r.reason { reason = why; break }
            if !agreed { break }
        }
        speculation?.record(proposed: drafts.count, kept: accepted)
        return (tokens, accepted, reason)
    }

    /// The raw logits and their log-normaliser when logprobs are wanted (nil otherwise).
    private func logprobBasis(_ logits: [Float]) -> (raw: [Float], logZ: Float)? {
        guard request.logprobs != nil else { return nil }
        return (logits, Self.logSumExp(logits))
    }

    /// Everything after the choice of a token: counts it, logprobs, end of generation, stop
    /// strings, grammar completion, the stream event, max tokens and the context.
    private func emit(_ next: Int32, logprob basis: (raw: [Float], logZ: Float)?, historyCount: Int,
                      time: ContinuousClock.Instant, eog: Set<Int32>,
                      contextLength: Int) -> (token: Int32, reason: SequenceFinishReason?) {
        generated += 1
        if timings.firstToken == nil { timings.firstToken = time }
        var lp: TokenLogprob?
        if let k = request.logprobs, let b = basis {
            lp = TokenLogprob(id: next, logprob: b.raw[Int(next)] - b.logZ,
                              top: Self.top(b.raw, k: k).map { ($0, b.raw[Int($0)] - b.logZ) })
        }
        // Under a grammar an end-of-generation token was only allowed where the output is complete.
        let isEOG = (matcher != nil || !request.ignoreEOS) && eog.contains(next)
        var text = ""
        var reason: SequenceFinishReason?
        if isEOG {
            reason = .stop
        } else {
            held.append(contentsOf: detok.append(next).utf8)
            if let cut = stopMatch() {
                text = String(decoding: held[0..<cut], as: UTF8.self)
                held.removeAll()
                stopped = true
                reason = .stop
            } else {
                let keep = heldBackCount(held, markers: stops)
                let emit = held.count - keep
                if emit > 0 {
                    text = String(decoding: held[0..<emit], as: UTF8.self)
                    held.removeFirst(emit)
                }
            }
        }
        // A complete grammar allows nothing more: the output ends here.
        if reason == nil, let m = matcher, m.isComplete {
            reason = .stop
            let rest = flushText()
            if !rest.isEmpty { text += rest }
            stopped = true
        }
        continuation.yield(.token(TokenEvent(id: next, text: text, logprob: lp, time: time)))
        if reason != nil { return (next, reason) }
        if generated >= request.maxTokens || historyCount + 1 >= contextLength { return (next, .length) }
        return (next, nil)
    }

    /// The next token under the grammar (`Sampler.sample(_:history:matcher:vocabulary:maskSeconds:)`).
    func sampleConstrained(_ logits: inout [Float], history: [Int32], matcher m: GrammarMatcher,
                           vocab: TokenVocabulary) -> Int32? {
        sampler.sample(&logits, history: history, matcher: m, vocabulary: vocab, maskSeconds: &maskSeconds)
    }

    /// Ends the stream: releases held text (for stop / length), stamps the finish time.
    func finish(_ reason: SequenceFinishReason, promptTokens: Int, cachedTokens: Int, now: ContinuousClock.Instant,
                error: String? = nil) {
        var text = ""
        if reason == .stop || reason == .length { text = flushText() }
        timings.finished = now
        continuation.yield(.finished(SequenceCompletion(
            reason: reason, text: text, promptTokens: promptTokens, completionTokens: generated,
            cachedTokens: cachedTokens, timings: timings, grammarMasks: matcher?.masksBuilt ?? 0,
            grammarMaskSeconds: maskSeconds, draftTokens: speculation?.drafted ?? 0,
            acceptedDraftTokens: speculation?.accepted ?? 0, error: error)))
        continuation.finish()
    }

    /// Releases held text at the end (length / EOS), checking stop strings once more.
    func flushText() -> String {
        guard !stopped else { return "" }
        held.append(contentsOf: detok.flush().utf8)
        var out = held
        if let cut = stopMatch() { out = Array(held[0..<cut]) }
        held.removeAll()
        return String(decoding: out, as: UTF8.self)
    }

    /// Byte offset of the earliest stop-string match in `held`.
    func stopMatch() -> Int? {
        guard !stops.isEmpty, !held.isEmpty else { return nil }
        var best: Int?
        for s in stops where s.count <= held.count {
            if let r = Self.find(s, in: held), r < (best ?? Int.max) { best = r }
        }
        return best
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        let n = needle.count
        guard n > 0, n <= hay.count else { return nil }
        let first = needle[0]
        var i = 0
        while i <= hay.count - n {
            if hay[i] == first {
                var j = 1
                while j < n && hay[i + j] == needle[j] { j += 1 }
                if j == n { return i }
            }
            i += 1
        }
        return nil
    }

    static func logSumExp(_ x: [Float]) -> Float {
        var m = -Float.infinity
        for v in x where v > m { m = v }
        guard m.isFinite else { return m }
        var s: Float = 0
        for v in x { s += Foundation.exp(v - m) }
        return m + Foundation.log(s)
    }

    /// Ids of the `k` largest values, largest first.
    static func top(_ x: [Float], k: Int) -> [Int32] {
        guard k > 0 else { return [] }
        var best: [(Int32, Float)] = []
        best.reserveCapacity(k + 1)
        for (i, v) in x.enumerated() {
            if best.count < k || v > best[best.count - 1].1 {
                var pos = best.count
                while pos > 0 && best[pos - 1].1 < v { pos -= 1 }
                best.insert((Int32(i), v), at: pos)
                if best.count > k { best.removeLast() }
            }
        }
        return best.map(\.0)
    }
}
