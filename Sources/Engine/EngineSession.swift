import Core
import Foundation
import Models

/// One request run to completion through the scheduler.
public struct GenerationResult: Sendable {
    public var promptIDs: [Int32]
    /// Every generated id, end-of-generation tokens included (they end the sequence unless
    /// `ignoreEOS`). After a stop from `onToken`, the ids up to and including the one it refused.
    public var generatedIDs: [Int32]
    public var finishReason: FinishReason
    /// Prompt tokens the scheduler's prefix cache supplied (not computed).
    public var cachedTokens: Int
    /// Scheduled → first token: the prompt's forward passes and the first sample.
    public var prefillSeconds: Double
    /// First token → finished: the other tokens' forward passes and samples.
    public var decodeSeconds: Double
    /// Queued → first token (time to first token, queueing included).
    public var firstTokenSeconds: Double
    public var timings: SequenceTimings
    /// Speculative decoding: draft tokens verified, and those accepted.
    public var draftTokens: Int = 0
    public var acceptedDraftTokens: Int = 0

    /// Prompt tokens computed this request (not served from the prefix cache).
    public var prefilledTokens: Int { promptIDs.count - cachedTokens }

    /// (generated − 1) / decode seconds: the first token belongs to prefill. Zero with fewer
    /// than two tokens.
    public var decodeTokensPerSecond: Double {
        generatedIDs.count > 1 && decodeSeconds > 0 ? Double(generatedIDs.count - 1) / decodeSeconds : 0
    }

    /// Computed prompt tokens / prefill seconds.
    public var prefillTokensPerSecond: Double {
        prefillSeconds > 0 ? Double(prefilledTokens) / prefillSeconds : 0
    }
}

/// The one generation path outside the server: owns a `Scheduler` for a loaded model and runs
/// requests through its public API (`submit` → events → completion), so `generate`, `chat` and
/// `bench` compute exactly as `serve` does. Every forward pass runs on the scheduler's engine
/// thread; the caller's task only consumes the events (it never blocks on compute).
///
/// Ownership: one session per model at a time (the scheduler drives the model's thread pool).
/// Call `close()` when done; `deinit` stops the engine thread hard if the caller did not.
public final class EngineSession: Sendable {
    public let scheduler: Scheduler

    /// Starts a scheduler for `model` with `config`.
    public init(model: LoadedModel, config: SchedulerConfig = SchedulerConfig()) {
        scheduler = Scheduler(model: model, config: config)
        scheduler.start()
    }

    deinit { scheduler.terminate() }

    public var model: LoadedModel { scheduler.loaded }
    /// Prompt + generated positions one sequence may hold.
    public var contextLength: Int { scheduler.contextLength }

    /// Stops accepting requests and waits (at most `timeout` seconds) for the engine thread to exit.
    public func close(timeout: Double = 60) {
        scheduler.shutdown()
        scheduler.join(timeout: timeout)
    }

    /// `maxTokens` lowered so prompt + answer fit the context (generation then ends with
    /// `.length` at the context, as a plain loop would). Throws when the prompt leaves no room.
    public func fittingContext(_ request: GenerationRequest) throws(EngineError) -> GenerationRequest {
        guard !request.promptIDs.isEmpty else { throw .emptyPrompt }
        var r = request
        let room = contextLength - r.promptIDs.count
        guard room > 0 || r.maxTokens == 0 else {
            throw .promptTooLong(tokens: r.promptIDs.count, context: contextLength)
        }
        r.maxTokens = max(0, min(r.maxTokens, room))
        return r
    }

    /// Runs one request to completion, calling `onToken` with each generated token in order
    /// (return false to stop: the request is cancelled and the result says `.cancelled`).
    public func run(_ request: GenerationRequest,
                    onToken: (TokenEvent) -> Bool = { _ in true }) async throws(EngineError) -> GenerationResult {
        let handle = try submit([request])[0]
        return try await drain(handle, request, onToken: onToken)
    }

    /// Submits all requests at once (the engine sees them together) and runs them to
    /// completion; results in request order.
    public func runAll(_ requests: [GenerationRequest]) async throws(EngineError) -> [GenerationResult] {
        let handles = try submit(requests)
        var results: [GenerationResult] = []
        results.reserveCapacity(requests.count)
        for (k, (h, r)) in zip(handles, requests).enumerated() {
            do {
                results.append(try await drain(h, r, onToken: { _ in true }))
            } catch {
                for other in handles[(k + 1)...] { scheduler.cancel(other.id) }
                throw error
            }
        }
        return results
    }

    private func submit(_ requests: [GenerationRequest]) throws(EngineError) -> [GenerationHandle] {
        do {
            return try scheduler.submitAll(requests, maxWaiting: Int.max)
        } catch {
            throw .rejected(error)
        }
    }

    private func drain(_ handle: GenerationHandle, _ request: GenerationRequest,
                       onToken: (TokenEvent) -> Bool) async throws(EngineError) -> GenerationResult {
        var ids: [Int32] = []
        var stopped = false
        var completion: SequenceCompletion?
        for await event in handle.events {
            switch event {
            case .token(let t):
                guard !stopped else { continue }  // produced before the cancel reached the engine
                ids.append(t.id)
                if !onToken(t) {
                    stopped = true
                    scheduler.cancel(handle.id)
                }
            case .finished(let c):
                completion = c
            }
        }
        let now = ContinuousClock.now
        // No completion: the consuming task was cancelled (the stream then cancels the request).
        let c = completion ?? SequenceCompletion(reason: .cancelled, text: "", promptTokens: request.promptIDs.count,
                                                 completionTokens: ids.count,
                                                 timings: SequenceTimings(queued: now, finished: now))
        let reason: FinishReason
        switch c.reason {
        case .error: throw .engineFailed(c.error ?? "the forward pass failed")
        case _ where stopped: reason = .cancelled
        case .stop: reason = .stop
        case .length: reason = .length
        case .cancelled: reason = .cancelled
        }
        let t = c.timings
        let finished = t.finished ?? now
        let scheduled = t.scheduled ?? t.queued
        let first = t.firstToken ?? finished
        return GenerationResult(promptIDs: request.promptIDs, generatedIDs: ids, finishReason: reason,
                                cachedTokens: c.cachedTokens,
                                prefillSeconds: (first - scheduled).inSeconds,
                                decodeSeconds: t.firstToken == nil ? 0 : (finished - first).inSeconds,
                                firstTokenSeconds: (first - t.queued).inSeconds, timings: t,
                                draftTokens: c.draftTokens, acceptedDraftTokens: c.acceptedDraftTokens)
    }
}
